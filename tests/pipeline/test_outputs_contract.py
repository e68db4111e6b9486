"""Names, fields and formats of the published outputs (OUTPUTS.md is a contract)."""

from __future__ import annotations

import json
import re

import cv2

from clf_analysis.render.png import read_png_size

LEGACY_KEYS = {
    "files_analyzed",
    "layers",
    "platform_composites",
    "clean_platforms",
    "file_identifier_summary",
    "identifier_platform_views",
    "non_identifier_views",
    "closed_paths_summary",
    "global_height_info",
    "folder_info",
    "exclusion_info",
    "combined_identifier_view",
    "holes_views_interval",
    "unclosed_shapes_view",
    "analysis_summary",
}
NEW_KEYS = {
    "schema_version",
    "build",
    "parts",
    "layer_stats",
    "invalid_loops",
    "warnings",
    "timings",
}
RECORD_FIELDS = {
    "type",
    "shape_type",
    "points",
    "color",
    "clf_name",
    "clf_folder",
    "fill_closed",
    "should_close",
    "identifier",
    "is_hole",
    "parent_shape_id",
    "parent_shape_index",
    "path_index",
    "shape_index",
    "total_paths_in_shape",
    "model_name",
    "area_mm2",
    "nesting_depth",
    "kind",
    "line_format",
}
# Added to the records of holes only (OUTPUTS.md, per-layer path data).
HOLE_FIELDS = {
    "perimeter_mm",
    "equivalent_diameter_mm",
    "circularity",
    "bounding_box",
    "centroid",
    "hole_track",
}
CONSUMER_PATTERN = re.compile(r"^platform_layer_pathdata_([0-9.]+)mm\.json$")


def test_platform_info_has_legacy_and_new_keys(analysed):
    info = analysed.info
    assert set(info) >= LEGACY_KEYS | NEW_KEYS
    assert info["build"]["id"] == "271360"
    assert re.fullmatch(r"[0-9a-f]{64}", info["build"]["sha256"])
    assert info["build"]["size_bytes"] == analysed.build.size_bytes
    assert info["exclusion_info"]["exclusions_enabled"] == "y"
    interval = info["holes_views_interval"]
    assert interval["height_range"] == [0.0, 12.0]
    assert isinstance(interval["height_range"], list) and len(interval["height_range"]) == 2
    for view in info["identifier_platform_views"]:
        assert len(view["height_range"]) == 2 and view["height_range"][0] <= view["height_range"][1]
    assert set(info["timings"]) >= {"prepare", "layers", "pathdata", "images"}


def test_pathdata_files_are_compact_with_four_decimals_and_every_field(analysed):
    folder = analysed.out / "imagePathRawData-"
    names = [p.name for p in folder.iterdir()]
    assert all(CONSUMER_PATTERN.match(n) for n in names)
    raw = (folder / "platform_layer_pathdata_6.0mm.json").read_text()
    assert "\n" not in raw and ", " not in raw
    records = json.loads(raw)
    assert records
    assert any(rec["is_hole"] for rec in records)
    for rec in records:
        assert set(rec) == RECORD_FIELDS | (HOLE_FIELDS if rec["is_hole"] else set())
        assert rec["type"] == "path" and rec["fill_closed"] == "y"
        assert rec["line_format"] in ("closed", "open", "dashed")
        assert rec["should_close"] is (rec["line_format"] == "closed")
        assert len(rec["points"]) >= 3
        for x, y in rec["points"][:20]:
            assert round(x, 4) == x and round(y, 4) == y
        assert rec["points"][0] != rec["points"][-1]  # first vertex never repeated


def test_plate_images_are_2100px_rgba_with_transparent_background(analysed):
    plate_images = [
        analysed.out / "identifier_views" / "transparent_all_pathdata_210mmx210mm_2100px.png",
        analysed.out
        / "identifier_views"
        / "transparent_all_pathdata_WITH_NO_ID_210mmx210mm_2100px.png",
        *(analysed.out / "clean_platforms").iterdir(),
    ]
    for path in plate_images:
        assert read_png_size(path) == (2100, 2100), path
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (2100, 2100, 4)
        assert image[0, 0, 3] == 0  # a plate corner holds no part
        assert (image[..., 3] > 0).any()


def test_id_labels_only_on_the_all_pathdata_image_with_ids(analysed):
    folder = analysed.out / "identifier_views"
    with_ids = cv2.imread(str(folder / "transparent_all_pathdata_210mmx210mm_2100px.png"), -1)
    without = cv2.imread(
        str(folder / "transparent_all_pathdata_WITH_NO_ID_210mmx210mm_2100px.png"), -1
    )
    differs = (with_ids != without).any(axis=2)
    assert differs.sum() > 100


def test_image_sets_follow_the_requested_heights(analysed):
    out = analysed.out
    clean = sorted(p.name for p in (out / "clean_platforms").iterdir())
    assert clean == sorted(f"clean_platform_{h}mm.png" for h in (1.0, 6.0, 11.0))
    holes = sorted(p.name for p in (out / "holes_views").iterdir())
    assert holes == sorted(f"combined_holes_platform_view_{h}mm.png" for h in (0.0, 5.0, 7.3, 10.0))
    composites = sorted(p.name for p in (out / "composite_platforms").iterdir())
    assert composites == sorted(f"platform_composite_folders_{h}mm.png" for h in (1.0, 6.0, 11.0))
    parts = analysed.info["parts"]
    views = list((out / "identifier_views").glob("identifier_*_platform_view.png"))
    assert len(views) == len(parts)
    assert (out / "identifier_views" / "combined_identifiers_platform_view.png").exists()
    assert (out / "unclosed_shapes_platform_view.png").exists()
    listed = {v["filename"] for v in analysed.info["identifier_platform_views"]}
    assert listed == {f"identifier_views/{p.name}" for p in views}


def test_holes_view_statistics_count_the_holes_at_that_height(analysed):
    views = {v["height"]: v for v in analysed.info["holes_views_interval"]["views"]}

    def holes_at(z):
        return sum(
            section.holes
            for key in analysed.truth.parts
            if (section := analysed.truth.at(key, z)) is not None
        )

    assert views[5.0]["holes_statistics"]["total_holes"] == holes_at(5.0)
    # docs/FORMAT.md#finding-the-layer-at-a-height: 0 mm lies in the files' boxes and the
    # first layer is within one thickness.
    assert views[0.0]["holes_statistics"]["total_holes"] == holes_at(0.05) > 0


def test_run_log_records_the_completed_run(analysed):
    log = json.loads((analysed.build.build_dir / "processes_run.json").read_text())
    runs = log["clf_analysis"]["runs"]
    assert runs[-1]["status"] == "completed"
    assert runs[-1]["run_id"] == analysed.result.run_id
    leftovers = [p.name for p in analysed.build.build_dir.iterdir() if ".tmp-" in p.name]
    assert leftovers == []
