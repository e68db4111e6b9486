from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clf_analysis.geometry import BuildStats, PartStats, analyze_loops
from clf_analysis.layout import mm

from .shapes import regular, square

THICKNESS = 0.05
NAMES = {1: "bracket", 2: "pin"}


def layer_input(k: int) -> tuple[float, list[np.ndarray], list[int]]:
    """Layer k of a synthetic Part.clf: a block with a hole growing in, and a pin.

    Model 1: 10 x 10 square with a 2 x 2 hole from layer 20 on and a second one from
    layer 40 on. Model 2: a 12-gon pin in the first 30 layers only.
    """
    z = float(np.float32((k + 1) * THICKNESS))
    loops = [square(0, 0, 10)]
    owners = [1]
    if k >= 20:
        loops.append(square(2, 2, 2, cw=True))
        owners.append(1)
    if k >= 40:
        loops.append(square(6, 6, 2, cw=True))
        owners.append(1)
    if k < 30:
        loops.append(regular(12, 1.0, 30, 30))
        owners.append(2)
    return z, loops, owners


LAYERS = 60


def feed(stats: BuildStats, ks: range | list[int], file: str = "Part.clf") -> BuildStats:
    for k in ks:
        z, loops, owners = layer_input(k)
        stats.add_layer("Models/Block", file, z, THICKNESS, analyze_loops(loops), owners, NAMES)
    return stats


def test_part_statistics_of_a_block_with_holes_and_a_pin() -> None:
    parts = {p["model_id"]: p for p in feed(BuildStats(), range(LAYERS)).to_dict()["parts"]}
    block, pin = parts[1], parts[2]
    assert block["key"] == ["Models/Block", "Part.clf", 1]
    assert block["model_name"] == "bracket"
    assert block["layer_count"] == LAYERS
    assert block["z_range"] == [0.05, 3.0]
    assert block["max_area_mm2"] == 100.0
    # 20 layers of 100, 20 of 96, 20 of 92
    assert block["mean_area_mm2"] == pytest.approx(96.0)
    assert block["volume_mm3"] == pytest.approx((20 * 100 + 20 * 96 + 20 * 92) * THICKNESS)
    assert block["hole_count"] == 2
    assert block["hole_loops_total"] == 20 + 2 * 20
    assert block["layers_with_holes"] == 40
    assert block["bounding_box"] == [0.0, 0.0, 10.0, 10.0]

    pin_area = 0.5 * 12 * math.sin(2 * math.pi / 12)
    assert pin["layer_count"] == 30
    assert pin["z_range"] == [0.05, 1.5]
    assert pin["max_area_mm2"] == pytest.approx(pin_area, abs=1e-4)
    assert pin["hole_count"] == 0
    assert pin["bounding_box"] == pytest.approx([29.0, 29.0, 31.0, 31.0], abs=1e-4)


def test_volume_is_the_sum_of_area_times_thickness_of_each_layer() -> None:
    stats = BuildStats()
    rng = np.random.default_rng(7)
    expected = 0.0
    for k in range(50):
        side = float(rng.uniform(1, 20))
        thickness = float(rng.choice([0.05, 0.1, 0.09]))
        loop = square(0, 0, side)
        a = analyze_loops([loop])
        expected += float(a.area[0]) * thickness
        stats.add_layer("F", "Part.clf", 0.1 * (k + 1), thickness, a, [7], {7: "cube"})
    (part,) = stats.to_dict()["parts"]
    assert part["volume_mm3"] == pytest.approx(expected, abs=1e-3)


def test_layer_statistics_sum_over_files_at_one_height() -> None:
    stats = feed(BuildStats(), range(LAYERS))
    feed(stats, range(10), file="WaferSupport.clf")
    layers = {entry["z"]: entry for entry in stats.to_dict()["layer_stats"]}
    assert len(layers) == LAYERS
    first, late = layers[0.05], layers[3.0]
    pin_area = 0.5 * 12 * math.sin(2 * math.pi / 12)
    assert first["parts"] == 4
    assert first["loops"] == 4
    assert first["holes"] == 0
    assert first["total_area_mm2"] == pytest.approx(2 * (100 + pin_area), abs=1e-4)
    assert late == {
        "z": 3.0,
        "parts": 1,
        "total_area_mm2": 92.0,
        "loops": 3,
        "holes": 2,
        "invalid_loops": 0,
    }


def split_and_merge(pieces: list[list[int]]) -> dict[str, object]:
    partial = [feed(BuildStats(), piece) for piece in pieces]
    total = BuildStats()
    for stats in partial:
        total.merge(stats)
    return total.to_dict()


def test_merge_is_independent_of_the_split_point() -> None:
    whole = feed(BuildStats(), range(LAYERS)).to_dict()
    for cut in (1, 7, 20, 29, 30, 41, 59):
        assert split_and_merge([list(range(cut, LAYERS)), list(range(cut))]) == whole
        assert split_and_merge([list(range(cut)), list(range(cut, LAYERS))]) == whole


def test_merge_of_interleaved_and_uneven_pieces_is_exact() -> None:
    # Many small float sums in another order would differ in the last digits; the
    # integer quanta make every split give the same numbers, not just close ones.
    rng = np.random.default_rng(3)
    whole = feed(BuildStats(), range(LAYERS)).to_dict()
    for _ in range(5):
        order = rng.permutation(LAYERS).tolist()
        cuts = sorted(rng.choice(np.arange(1, LAYERS), size=3, replace=False).tolist())
        pieces = [order[a:b] for a, b in zip([0, *cuts], [*cuts, LAYERS], strict=True)]
        assert split_and_merge(pieces) == whole


def test_merge_does_not_alias_the_other_accumulator() -> None:
    other = feed(BuildStats(), range(5))
    total = BuildStats()
    total.merge(other)
    feed(total, range(5, 10))
    assert other.to_dict() == feed(BuildStats(), range(5)).to_dict()


def test_model_inside_another_models_metal_counts_as_its_hole() -> None:
    # Nesting is per file: overlapping models are a build defect and show as a negative
    # layer area of the inner model.
    a = analyze_loops([square(0, 0, 10), square(2, 2, 2)])
    stats = BuildStats()
    stats.add_layer("F", "Part.clf", 0.05, 0.05, a, [1, 2], NAMES)
    parts = {p["model_id"]: p for p in stats.to_dict()["parts"]}
    assert parts[1]["max_area_mm2"] == 100.0
    assert parts[2]["max_area_mm2"] == -4.0
    assert parts[2]["hole_count"] == 1


def test_invalid_and_duplicate_loops_count_for_nothing_but_are_counted_per_layer() -> None:
    loops = [square(0, 0, 10), square(0, 0, 10), np.zeros((2, 2), np.float32)]
    stats = BuildStats()
    stats.add_layer("F", "Part.clf", 0.05, 0.05, analyze_loops(loops), [1, 1, 2], NAMES)
    out = stats.to_dict()
    assert [p["model_id"] for p in out["parts"]] == [1]  # model 2 has no nestable loop
    assert out["parts"][0]["max_area_mm2"] == 100.0
    assert out["layer_stats"] == [
        {"z": 0.05, "parts": 1, "total_area_mm2": 100.0, "loops": 3, "holes": 0, "invalid_loops": 2}
    ]


def test_a_self_crossing_loop_counts_for_no_area_but_keeps_its_children_nested() -> None:
    bow_tie = np.array([[20, 0], [30, 10], [30, 0], [20, 10]], dtype=np.float32)
    a = analyze_loops([square(0, 0, 10), bow_tie])
    assert a.invalid_reason[1] == "self-intersection"
    assert a.counted.tolist() == [True, False]
    stats = BuildStats()
    stats.add_layer("F", "Part.clf", 0.05, 0.05, a, [1, 1], NAMES)
    assert stats.to_dict()["parts"][0]["max_area_mm2"] == 100.0


def test_to_dict_is_plain_json() -> None:
    out = feed(BuildStats(), range(LAYERS)).to_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out
    for part in out["parts"]:
        assert all(type(v) in (int, float) for v in part["bounding_box"])
        assert type(part["volume_mm3"]) is float and type(part["layer_count"]) is int


def test_model_ids_must_match_the_loops() -> None:
    with pytest.raises(ValueError, match="2 model ids for 1 loops"):
        BuildStats().add_layer(
            "F", "P.clf", 0.05, 0.05, analyze_loops([square(0, 0, 1)]), [1, 2], NAMES
        )


def test_merging_different_names_for_one_part_is_an_error() -> None:
    a = PartStats("F", "P.clf", 1, "one")
    with pytest.raises(ValueError, match="named"):
        a.merge(PartStats("F", "P.clf", 1, "other"))
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(PartStats("F", "P.clf", 2, "one"))


def test_heights_are_filed_at_four_decimals() -> None:
    assert mm(np.float32(0.05)) == 0.05
    assert mm(np.float32(73.35)) == 73.35
    assert str(mm(1.00000001)) == "1.0"
