"""The ground truth describes the bytes that were written: read back, measured by shapely."""

from __future__ import annotations

import itertools
import zipfile
from collections import Counter

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from clf_analysis.clf import CLFFile, Layer, open_clf
from clf_analysis.synth import GeneratedBuild, GroundTruth, SectionTruth, load_ground_truth


def _open_member(build: GeneratedBuild, member: str) -> CLFFile:
    with zipfile.ZipFile(build.archive) as zf:
        return open_clf(zf.read(member), name=member)


def _sample_heights(section: SectionTruth) -> list[float]:
    middle = round(section.z_from + (section.layers // 2) * 0.05, 4)
    return sorted({section.z_from, middle, section.z_to})


def _file_loops(layer: Layer) -> list[np.ndarray]:
    return [np.asarray(loop, dtype=np.float64) for shape in layer.shapes for loop in shape.loops]


def _depths(loops: list[np.ndarray], valid: list[int]) -> dict[int, tuple[int, int | None]]:
    """(depth, smallest container) of each valid loop, by shapely containment."""
    polygons = {i: Polygon(loops[i]) for i in valid}
    result: dict[int, tuple[int, int | None]] = {}
    for i in valid:
        containers = [j for j in valid if j != i and polygons[j].contains(polygons[i])]
        smallest = min(containers, key=lambda j: polygons[j].area, default=None)
        result[i] = (len(containers), smallest)
    return result


@pytest.mark.parametrize("which", ["demo", "crowded"])
def test_parts_match_the_loops_written(
    which: str, demo_build: GeneratedBuild, crowded_build: GeneratedBuild
) -> None:
    build = demo_build if which == "demo" else crowded_build
    truth = load_ground_truth(build.ground_truth)
    members = {(f.folder, f.name): f.member for f in truth.files}
    checked = 0
    for key, part in truth.parts.items():
        clf = _open_member(build, members[key[:2]])
        assert clf.models[key[2]].name == part.model_name
        for section in part.sections:
            for z in _sample_heights(section):
                assert truth.at(key, z) is section
                layer = clf.find(z)
                loops = _file_loops(layer)
                kinds = [shape.kind for shape in layer.shapes for _ in shape.loops]
                owners = [shape.model_id for shape in layer.shapes for _ in shape.loops]
                mine = list(section.loops)
                assert [r.index for r in mine] == [
                    i
                    for i, (k, m) in enumerate(zip(kinds, owners, strict=True))
                    if k == "model" and m == key[2]
                ]
                # Nesting is among every valid model loop of the file, whichever its model.
                valid = [
                    i for i, k in enumerate(kinds) if k == "model" and Polygon(loops[i]).is_valid
                ]
                assert {r.index for r in mine if r.invalid is None} == {
                    i for i in valid if owners[i] == key[2]
                }
                depths = _depths(loops, valid)
                for r in mine:
                    loop = loops[r.index]
                    assert len(loop) == r.vertices
                    ring = shapely.LinearRing(loop)
                    if r.invalid is not None:
                        reason = shapely.is_valid_reason(Polygon(loop))
                        assert reason.startswith("Self-intersection"), reason
                        continue
                    assert Polygon(loop).is_valid
                    assert Polygon(loop).area == pytest.approx(abs(r.signed_area), rel=1e-9)
                    assert ring.is_ccw == (r.signed_area > 0)
                    assert depths[r.index] == (r.depth, r.enclosing)
                    assert r.is_hole == (r.depth % 2 == 1)
                    assert r.parent == (r.enclosing if r.is_hole else None)
                assert section.holes == sum(r.is_hole and r.invalid is None for r in mine)
                checked += 1
    assert checked >= 3 * len(truth.parts)


def test_file_sections_count_the_shapes_written(demo_build: GeneratedBuild) -> None:
    truth = load_ground_truth(demo_build.ground_truth)
    for f in truth.files:
        clf = _open_member(demo_build, f.member)
        assert len(clf) == f.layer_count
        zs = np.round(clf.zs.astype(np.float64), 4)
        assert zs[0] == f.z_min and zs[-1] == f.z_max
        assert sorted(m.id for m in clf.models.values()) == [m[0] for m in f.models]
        for section in f.sections:
            layer = clf.find(section["z"][0])
            kinds = Counter(s.kind for s in layer.shapes)
            assert {k: kinds.get(k, 0) for k in section["shapes"]} == section["shapes"]
            loops = [lp for s in layer.shapes for lp in s.loops]
            assert len(loops) == section["loops"]
            assert sum(len(lp) >= 3 for lp in loops) == section["loops_min3"]


def test_section_runs_cover_each_part_and_sum_to_its_volume(demo_truth: GroundTruth) -> None:
    t = demo_truth.layer_thickness
    for key, part in demo_truth.parts.items():
        runs = part.sections
        assert runs[0].z_from == part.z_min and runs[-1].z_to == part.z_max
        for a, b in itertools.pairwise(runs):
            assert b.z_from == pytest.approx(a.z_to + t), key
            assert a.loops != b.loops, key  # maximal runs
        assert sum(s.layers for s in runs) == part.layer_count
        assert round((part.z_max - part.z_min) / t) + 1 == part.layer_count
        volume = sum(s.net_area * s.layers * t for s in runs)
        assert part.volume_mm3 == pytest.approx(volume, abs=1e-3)
        assert part.max_area == max(s.net_area for s in runs)
        assert demo_truth.at(key, part.z_min - t) is None
        assert demo_truth.at(key, part.z_max + t) is None


def _part_of(truth: GroundTruth, design: str) -> list[SectionTruth]:
    (part,) = [p for p in truth.parts.values() if p.design == design]
    return list(part.sections)


def test_designs_have_the_nesting_they_promise(demo_truth: GroundTruth) -> None:
    (tube,) = _part_of(demo_truth, "tube")
    assert (tube.solids, tube.holes) == (1, 1)
    (island,) = _part_of(demo_truth, "island_in_hole")
    assert (island.solids, island.holes) == (2, 1)
    assert [r.depth for r in island.loops] == [0, 1, 2]
    assert [r.shape_index for r in island.loops] == [0, 0, 1]  # island: its own cluster
    (block,) = _part_of(demo_truth, "block_with_holes")
    assert block.loops[0].vertices == 4 and 2 <= block.holes <= 5
    merging = _part_of(demo_truth, "merging_islands")
    assert [s.solids for s in merging] == [2, 1]
    stepped = _part_of(demo_truth, "stepped_holes")
    assert [s.holes for s in stepped] == [0, 3, 1, 2]
    defect = _part_of(demo_truth, "reversed_tube_with_defect")
    assert all(s.winding_mismatches == 2 and s.holes == 1 for s in defect)
    assert all(
        s.winding_mismatches == 0
        for p in demo_truth.parts.values()
        if p.design != "reversed_tube_with_defect"
        for s in p.sections
    )


def test_invalid_loops_are_listed_per_layer(demo_truth: GroundTruth) -> None:
    invalid = demo_truth.invalid_loops
    assert 2 <= len(invalid) <= 5
    assert {(e.reason, e.file) for e in invalid} == {("self-intersection", "Part.clf")}
    for e in invalid:
        section = demo_truth.at((e.folder, e.file, e.model_id), e.z)
        assert section is not None
        assert [r.index for r in section.loops if r.invalid] == [e.index]
