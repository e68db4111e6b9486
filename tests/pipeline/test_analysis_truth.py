"""The analysis of a synthetic build against its ground truth, known by construction."""

from __future__ import annotations

import math

import pytest


def test_parts_are_keyed_by_folder_file_and_model_id(analysed):
    found = {(p["folder"], p["file"], p["model_id"]) for p in analysed.info["parts"]}
    assert found == set(analysed.truth.parts)
    # The same model id in two folders stays two parts.
    assert len({k[2] for k in found}) < len(found)


def test_part_statistics_match_truth(analysed):
    by_key = {(p["folder"], p["file"], p["model_id"]): p for p in analysed.info["parts"]}
    for key, truth in analysed.truth.parts.items():
        part = by_key[key]
        assert part["model_name"] == truth.model_name
        assert part["layer_count"] == truth.layer_count, key
        assert part["z_range"] == [truth.z_min, truth.z_max]
        assert part["hole_count"] == truth.max_holes, key
        assert part["volume_mm3"] == pytest.approx(truth.volume_mm3, rel=1e-3)
        assert part["max_area_mm2"] == pytest.approx(truth.max_area, rel=1e-3)
        assert part["mean_area_mm2"] == pytest.approx(truth.mean_area, rel=1e-3)
        assert part["bounding_box"] == pytest.approx(list(truth.bbox), abs=1e-3)


def test_every_layer_of_the_build_has_a_pathdata_file(analysed):
    names = sorted(p.name for p in (analysed.out / "imagePathRawData-").iterdir())
    expected = sorted(f"platform_layer_pathdata_{h}mm.json" for h in analysed.truth.heights)
    assert names == expected
    assert analysed.info["global_height_info"]["layer_count"] == len(analysed.truth.heights)
    listed = [h["height"] for h in analysed.info["heights"]]
    assert listed == list(analysed.truth.heights)


def _sample_heights(section):
    mid = round((section.z_from + section.z_to) / 2 / 0.05) * 0.05
    return sorted({section.z_from, round(mid, 4), section.z_to})


def test_holes_parents_and_areas_per_part_and_height_match_truth(analysed):
    checked = 0
    for key, part in analysed.truth.parts.items():
        folder, file, model_id = key
        for section in part.sections:
            for z in _sample_heights(section):
                records = [
                    r
                    for r in analysed.layer(z)
                    if r["clf_folder"] == folder and r["clf_name"] == file
                ]
                for loop in section.loops:
                    rec = next(r for r in records if r["identifier"].endswith(f"_{loop.index}"))
                    assert rec["identifier"] == f"{model_id}_path_{loop.index}"
                    assert rec["shape_index"] == loop.shape_index
                    assert rec["path_index"] == loop.path_index
                    assert len(rec["points"]) == loop.vertices
                    if loop.invalid:
                        continue
                    assert rec["is_hole"] is loop.is_hole, (key, z, loop)
                    assert rec["shape_type"] == ("interior" if loop.is_hole else "exterior")
                    assert rec["nesting_depth"] == loop.depth
                    assert rec["area_mm2"] == pytest.approx(abs(loop.signed_area), rel=1e-3)
                    if loop.parent is None:
                        assert rec["parent_shape_index"] is None
                    else:
                        assert rec["parent_shape_index"] == loop.parent
                        assert rec["parent_shape_id"].endswith(f"_path_{loop.parent}")
                    checked += 1
                own = [r for r in records if r["identifier"].startswith(f"{model_id}_path_")]
                assert sum(r["is_hole"] for r in own) == section.holes, (key, z)
    assert checked > 100


def test_island_inside_a_hole_is_solid_with_the_hole_as_parent(analysed):
    islands = [
        (key, section, loop)
        for key, part in analysed.truth.parts.items()
        for section in part.sections
        for loop in section.loops
        if loop.depth == 2
    ]
    assert islands, "the demo build has an island in a hole"
    key, section, loop = islands[0]
    rec = next(
        r
        for r in analysed.layer(section.z_from)
        if r["clf_folder"] == key[0] and r["identifier"].endswith(f"_path_{loop.index}")
    )
    assert rec["is_hole"] is False and rec["shape_type"] == "exterior"
    assert rec["nesting_depth"] == 2
    assert rec["parent_shape_index"] is None  # only holes name a parent
    assert loop.enclosing is not None


def test_closed_rectangles_are_closed_and_valid(analysed):
    rectangles = [
        r
        for z in analysed.truth.heights[:5]
        for r in analysed.layer(z)
        if len(r["points"]) == 4 and r["clf_name"] == "Part.clf"
    ]
    assert rectangles
    assert all(r["should_close"] is True and r["fill_closed"] == "y" for r in rectangles)
    invalid_files = {i["file"] for i in analysed.info["invalid_loops"]}
    for r in rectangles:
        assert f"{r['clf_folder']}/{r['clf_name']}" not in invalid_files or r["area_mm2"] > 0


def test_invalid_loops_are_the_known_defects(analysed):
    found = {(i["file"], i["z"], i["reason"]) for i in analysed.info["invalid_loops"]}
    expected = {(f"{t.folder}/{t.file}", t.z, t.reason) for t in analysed.truth.invalid_loops}
    assert expected and found == expected
    assert analysed.info["invalid_loops_total"] == len(expected)


def test_excluded_folders_are_not_analysed(analysed):
    excluded = {(f.folder, f.name) for f in analysed.truth.excluded_files}
    assert excluded
    listed = {(e["folder"], e["name"]) for e in analysed.info["exclusion_info"]["excluded_files"]}
    assert listed == excluded
    for z in analysed.truth.heights[::40]:
        assert not {(r["clf_folder"], r["clf_name"]) for r in analysed.layer(z)} & excluded
    analysed_files = {(f["folder"], f["filename"]) for f in analysed.info["files_analyzed"]}
    assert analysed_files == {(f.folder, f.name) for f in analysed.truth.included_files}


def test_line_geometry_is_listed_with_file_colours_and_not_closed_when_open(analysed):
    records = [r for z in analysed.truth.heights[:3] for r in analysed.layer(z)]
    colours = {r["clf_name"]: r["color"] for r in records}
    assert colours["Part.clf"] == "blue"
    assert colours["Net.clf"] == "green"
    assert colours["WaferSupport.clf"] == "red"
    net = [r for r in records if r["clf_name"] == "Net.clf"]
    assert {r["should_close"] for r in net} == {True, False}
    assert all(r["is_hole"] is False and r["nesting_depth"] == 0 for r in net)


def test_layer_stats_sum_the_files_at_each_height(analysed):
    stats = {s["z"]: s for s in analysed.info["layer_stats"]}
    z = analysed.truth.heights[len(analysed.truth.heights) // 2]
    expected_area = 0.0
    parts_present = 0
    for key in analysed.truth.parts:
        section = analysed.truth.at(key, z)
        if section is not None:
            expected_area += section.net_area
            parts_present += 1
    assert stats[z]["parts"] == parts_present
    assert stats[z]["total_area_mm2"] == pytest.approx(expected_area, rel=1e-3)
    assert math.isclose(stats[z]["z"], z)


def test_unclosed_view_counts_line_geometry_including_two_vertex_dashes(analysed):
    by_reason = analysed.info["unclosed_shapes_view"]["by_reason"]
    assert by_reason["dashed line"] > 0 and by_reason["open line"] > 0
    assert by_reason["self-intersection"] == len(analysed.truth.invalid_loops)
    assert analysed.info["unclosed_shapes_view"]["total_shapes"] == sum(by_reason.values())
