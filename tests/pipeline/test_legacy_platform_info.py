"""The legacy fields of platform_info.json and of the path data, field for field (issue 15).

Every synthetic build the pipeline tests analyse validates against the legacy JSON Schema
(with JSON integers kept apart from floats), and the values are checked against the
ground truth or against an independent count over the CLF files.
"""

from __future__ import annotations

import copy
import json
import zipfile
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, validators
from package_builders import cube_clf, square, write_package

from clf_analysis.clf import open_clf, write_clf
from clf_analysis.clf.types import Box, Layer, Model, Shape
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import run
from clf_analysis.synth import designs, generate_build

SCHEMAS = resources.files("clf_analysis.pipeline") / "schemas"
LEGACY = json.loads((SCHEMAS / "platform_info.legacy.schema.json").read_text())
RECORD = json.loads((SCHEMAS / "pathdata_record.schema.json").read_text())
PATHDATA = "imagePathRawData-"


def _strict(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for which `integer` means a JSON integer (`1`), never `1.0` or `true`:
    legacy readers that format or compare the values see the difference."""

    def is_int(checker: Any, instance: object) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_int)
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


INFO_VALIDATOR = _strict(LEGACY)
RECORD_VALIDATOR = _strict(RECORD)


def _errors(validator: Draft202012Validator, instance: object) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def _records(out: Path, z: float) -> list[dict[str, Any]]:
    return json.loads(
        (out / PATHDATA / f"platform_layer_pathdata_{round(z, 4)}mm.json").read_text()
    )


# ------------------------------------------------------------------- the builds analysed


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The conftest's small build, without path data or composites."""
    base = tmp_path_factory.mktemp("small")
    generate_build(base, build_id="b-1", parts=3, height_mm=3.0, seed=1)
    result = run("b-1", AnalysisParams(pathdata=False), midas_base_path=base)
    return result.output_dir, json.loads(result.summary_path.read_text())


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two layers, 0.1 mm tall: the one sample lies above the top."""
    base = tmp_path_factory.mktemp("tiny")
    write_package(base, "tiny", {"Models/Cube/Part.clf": cube_clf([0.05, 0.1], 0.05)})
    result = run("tiny", AnalysisParams(), midas_base_path=base)
    return result.output_dir, json.loads(result.summary_path.read_text())


@pytest.fixture(scope="module")
def same_key_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two folders whose parts meet on one readable key, one of them with a repeated layer."""
    base = tmp_path_factory.mktemp("same-key")
    zs = [round(0.05 * k, 4) for k in range(1, 61)]
    members = {
        "Models/a b/Part.clf": cube_clf(zs, 0.05, cx=-30.0),
        "Models/a_b/Part.clf": cube_clf([*zs[:10], zs[9], *zs[10:]], 0.05, cx=30.0),
    }
    write_package(base, "same-key", members)
    result = run("same-key", AnalysisParams(create_composite_views=True), midas_base_path=base)
    return result.output_dir, json.loads(result.summary_path.read_text())


BUILDS = ["analysed", "small_build", "tiny_build", "same_key_build"]


def _outputs(request: pytest.FixtureRequest, name: str) -> tuple[Path, dict[str, Any]]:
    built = request.getfixturevalue(name)
    if name == "analysed":
        return built.out, built.info
    return built


def test_the_schemas_are_draft_2020_12_schemas():
    Draft202012Validator.check_schema(LEGACY)
    Draft202012Validator.check_schema(RECORD)


def test_the_default_build_holds_every_synthetic_design(analysed):
    found = {f.design for f in analysed.truth.included_files}
    assert found >= {name for name, _, _ in designs.PART_DESIGNS}
    assert found >= {"wafer_support", "lattice_net"}
    assert analysed.truth.excluded_files


@pytest.mark.parametrize("name", BUILDS)
def test_every_synthetic_build_has_the_legacy_shapes(request, name):
    out, info = _outputs(request, name)
    assert _errors(INFO_VALIDATOR, info) == []
    assert info["schema_version"] == 4
    assert (out / PATHDATA).exists() is info["parameters"]["pathdata"]
    if info["parameters"]["pathdata"]:  # the records of every layer the legacy samples answer
        for z in sorted({entry["z"] for entry in info["layers"]}):
            for record in _records(out, z):
                assert _errors(RECORD_VALIDATOR, record) == []
    else:
        assert all(h["filename"] is None for h in info["heights"])


SCHEMA_2_SHAPES = [
    ("identifier_platform_views", lambda i: i[0].update(identifier=str(i[0]["identifier"]))),
    ("exclusion_info", lambda i: i.update(exclusions_enabled=True)),
    ("analysis_summary", lambda i: i["visualization_settings"].update(draw_points=False)),
    ("analysis_summary", lambda i: i.update(path_counts={"Tube 01/Part.clf": 12})),
    ("analysis_summary", lambda i: i.update(shape_types={"model": 3, "open": 1})),
    ("closed_paths_summary", lambda i: i.update({"Tube_01-Part-1": i.pop(next(iter(i)))})),
    ("folder_info", lambda i: i.clear() or i.update({"Tube 01": {"files": ["Part.clf"]}})),
    ("layers", lambda i: i.insert(0, {"height": 0.05, "filename": "x.json", "shapes": 1})),
    ("layers", lambda i: i[0]["position"].update(x_min="-1.0")),
    ("platform_composites", lambda i: i[0].update(height=1.0)),
    ("global_height_info", lambda i: i.pop("padding_applied")),
    ("holes_views_interval", lambda i: i.update(height_range=[0.0])),
]


@pytest.mark.parametrize(("key", "change"), SCHEMA_2_SHAPES)
def test_the_schema_refuses_the_shapes_that_broke_legacy_readers(analysed, key, change):
    info = copy.deepcopy(analysed.info)
    change(info[key])
    assert _errors(INFO_VALIDATOR, info)


def test_a_record_with_a_boolean_fill_closed_is_refused(analysed):
    record = _records(analysed.out, 6.0)[0]
    assert _errors(RECORD_VALIDATOR, record) == []
    assert _errors(RECORD_VALIDATOR, {**record, "fill_closed": True})
    assert _errors(RECORD_VALIDATOR, {**record, "is_hole": not record["is_hole"]})


# --------------------------------------------------------------------- the values


def test_flags_are_the_legacy_strings(analysed):
    info = analysed.info
    assert info["exclusion_info"]["exclusions_enabled"] == "y"
    assert info["analysis_summary"]["visualization_settings"] == {
        "draw_points": "n",
        "draw_lines": "y",
    }


def test_sample_heights_are_every_2_mm_and_reach_every_layer(analysed, tiny_build):
    heights = analysed.info["global_height_info"]
    assert heights["height_samples"] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert heights["num_samples"] == 7
    assert heights["min_height"] == analysed.truth.heights[0]
    assert heights["max_height"] == 12.0 and heights["padding_applied"] == 0.0
    assert heights["layer_count"] == len(analysed.truth.heights)
    _, tiny = tiny_build
    assert tiny["global_height_info"]["height_samples"] == [0.0]
    # 0.1 mm is within 1 mm of 0 only: no padding above a top the samples do not pass.
    assert tiny["global_height_info"]["max_height"] == 0.1
    assert tiny["global_height_info"]["padding_applied"] == 0.0


def _nearest_layer(f, sample: float, thickness: float) -> float | None:
    """The file's layer nearest to `sample`, if within 1 mm (its layers are contiguous)."""
    if not (f.z_min - 1.0 <= sample <= f.z_max + 1.0):
        return None
    return round(min(max(sample, f.z_min), f.z_max) / thickness) * thickness


def test_layers_list_each_file_at_each_sample_it_reaches(analysed):
    truth, info = analysed.truth, analysed.info
    order = [(f["folder"], f["filename"]) for f in info["files_analyzed"]]
    expected = []
    for sample in info["global_height_info"]["height_samples"]:
        for folder, name in order:
            f = next(t for t in truth.included_files if (t.folder, t.name) == (folder, name))
            z = _nearest_layer(f, sample, truth.layer_thickness)
            if z is not None:
                expected.append((sample, folder, name, round(z, 4)))
    entries = info["layers"]
    assert [(e["height"], e["folder"], e["file"], e["z"]) for e in entries] == expected
    for entry in entries:
        f = next(
            t
            for t in truth.included_files
            if (t.folder, t.name) == (entry["folder"], entry["file"])
        )
        section = next(s for s in f.sections if s["z"][0] - 1e-6 <= entry["z"] <= s["z"][1] + 1e-6)
        assert entry["image"] is None
        assert entry["num_shapes"] == sum(section["shapes"].values())
        assert entry["total_paths"] == section["loops"]
        own = [
            r
            for r in _records(analysed.out, entry["z"])
            if (r["clf_folder"], r["clf_name"]) == (entry["folder"], entry["file"])
        ]
        assert entry["closed_paths"] == sum(r["should_close"] for r in own)
        xs = [x for r in own for x, _ in r["points"]]
        ys = [y for r in own for _, y in r["points"]]
        assert entry["position"] == pytest.approx(
            {"x_min": min(xs), "x_max": max(xs), "y_min": min(ys), "y_max": max(ys)}, abs=1e-4
        )


def _independent_counts(analysed) -> tuple[dict, dict, Counter]:
    """Shapes, paths and closed paths per (file, model id), read straight from the CLF
    files: a path is a loop, typed by its vertices; closed when its shape is closed by
    format (MODEL, CLOSED) and it has at least 3 vertices."""
    per: dict[tuple[str, int], Counter] = {}
    with zipfile.ZipFile(analysed.build.archive) as z:
        for f in analysed.truth.included_files:
            for layer in open_clf(z.read(f.member), name=f.name):
                for shape in layer.shapes:
                    c = per.setdefault((f"{f.folder}/{f.name}", shape.model_id), Counter())
                    c["shapes"] += 1
                    for loop in shape.loops:
                        n = len(loop)
                        c["total"] += 1
                        c[{0: "unknown", 1: "point", 2: "line"}.get(n, "path")] += 1
                        c["closed"] += n >= 3 and shape.is_closed
    by_id: dict[int, Counter] = {}
    for (_, model_id), c in per.items():
        by_id.setdefault(model_id, Counter()).update(c)
    return per, by_id, sum(per.values(), Counter())


def test_summaries_keyed_by_model_id_count_equal_ids_of_all_files_together(analysed):
    info = analysed.info
    per, by_id, total = _independent_counts(analysed)
    files_with_id_1 = {path for path, model_id in per if model_id == 1}
    assert len(files_with_id_1) > 1  # the legacy merge is exercised
    summary = info["closed_paths_summary"]
    assert set(summary) == {str(i) for i in by_id}
    path_counts = info["analysis_summary"]["path_counts"]
    for model_id, c in by_id.items():
        assert summary[str(model_id)]["total_count"] == c["total"]
        assert summary[str(model_id)]["closed_count"] == c["closed"]
        assert summary[str(model_id)]["percentage_closed"] == round(
            100 * c["closed"] / c["total"], 2
        )
        assert path_counts[str(model_id)] == {
            "total": c["total"],
            "by_type": {k: c[k] for k in ("point", "line", "path", "circle", "unknown")},
            "closed_paths": c["closed"],
            "open_paths": c["total"] - c["closed"],
        }
    assert info["analysis_summary"]["closed_paths"] == summary
    assert info["analysis_summary"]["shape_types"] == {
        k: total[k] for k in ("point", "line", "path")
    }
    for entry in info["file_identifier_summary"]:
        mine = {i: c for (path, i), c in per.items() if path == entry["file_path"]}
        assert entry["identifier_counts"] == {str(i): c["shapes"] for i, c in sorted(mine.items())}
        assert entry["total_shapes"] == sum(c["shapes"] for c in mine.values())
        assert entry["unique_identifiers"] == len(mine)
    by_file = info["analysis_summary"]["path_counts_by_file"]
    assert {k: v["total"] for k, v in by_file.items()} == {
        path: sum(c["total"] for (p, _), c in per.items() if p == path) for path, _ in per
    }


def test_per_part_truth_sits_beside_the_merged_summaries(analysed):
    info = analysed.info
    per, _, _ = _independent_counts(analysed)
    views = info["identifier_platform_views"]
    assert {v["part_key"] for v in views} == {p["part_key"] for p in info["parts"]}
    for view in views:
        assert isinstance(view["identifier"], int) and view["identifier"] == view["model_id"]
        c = per[(f"{view['folder']}/{view['file']}", view["model_id"])]
        assert (view["total_shapes"], view["total_paths"], view["closed_paths"]) == (
            c["shapes"],
            c["total"],
            c["closed"],
        )
        by_part = info["closed_paths_by_part"][view["part_key"]]
        assert (by_part["total_count"], by_part["closed_count"]) == (c["total"], c["closed"])
    for model_id, merged in info["closed_paths_summary"].items():
        own = [c for c in info["closed_paths_by_part"].values() if c["model_id"] == int(model_id)]
        assert merged["total_count"] == sum(c["total_count"] for c in own)
        assert merged["closed_count"] == sum(c["closed_count"] for c in own)
    assert len(info["closed_paths_by_part"]) == len(per)
    combined = info["combined_identifier_view"]
    assert combined["total_identifiers"] == len({v["identifier"] for v in views})
    assert combined["total_parts"] == len(views)


def test_folder_info_keeps_totals_and_sorted_lists(analysed):
    truth, folder_info = analysed.truth, analysed.info["folder_info"]
    included = sorted({f.folder for f in truth.included_files})
    excluded = sorted({f.folder for f in truth.excluded_files})
    assert folder_info == {
        "total_unique_folders": len(set(included) | set(excluded)),
        "all_folders": sorted(set(included) | set(excluded)),
        "included_folders": included,
        "excluded_folders": excluded,
        "included_folder_count": len(included),
        "excluded_folder_count": len(excluded),
    }
    folders = analysed.info["folders"]
    assert {k for k, v in folders.items() if v["excluded"]} == set(excluded)


def test_num_layers_is_the_count_the_header_declares(tmp_path):
    # The header's count is informational: here it says 7 for 3 layers.
    model = Model(1, "Cube", Box(-5, -5, 0, 5, 5, 0.15), 0.05)
    layers = [Layer(z=z, shapes=(Shape(1, "model", (square(2.0),)),)) for z in (0.05, 0.1, 0.15)]
    data = write_clf(None, models=[model], layers=layers, layer_count=7)
    write_package(tmp_path, "nl", {"Models/Cube/Part.clf": data})
    info = json.loads(
        run("nl", AnalysisParams(), midas_base_path=tmp_path).summary_path.read_text()
    )
    (entry,) = info["files_analyzed"]
    assert (entry["num_layers"], entry["layers_indexed"]) == (7, 3)


def test_holes_statistics_detail_each_file_at_the_height(analysed):
    truth = analysed.truth
    for view in analysed.info["holes_views_interval"]["views"]:
        stats = view["holes_statistics"]
        z = max(view["height"], truth.heights[0])  # 0 mm shows the first layer
        for detail in stats["file_details"]:
            parts = [k for k in truth.parts if k[:2] == (detail["folder"], detail["filename"])]
            sections = [s for k in parts if (s := truth.at(k, z)) is not None]
            assert detail["holes"] == sum(s.holes for s in sections)
            assert detail["exteriors"] == sum(s.solids for s in sections)
            assert detail["can_have_holes"] is bool(sections)
        assert stats["total_files"] == len(stats["file_details"])
        assert stats["total_holes"] == sum(d["holes"] for d in stats["file_details"])
        assert stats["total_exteriors"] == sum(d["exteriors"] for d in stats["file_details"])
        assert stats["files_with_holes"] == sum(d["holes"] > 0 for d in stats["file_details"])


def test_composites_keep_integer_heights_and_the_exact_one_beside(analysed):
    composites = analysed.info["platform_composites"]
    assert [(c["height"], c["height_mm"]) for c in composites] == [(1, 1.0), (6, 6.0), (11, 11.0)]
    assert all(type(c["height"]) is int for c in composites)
