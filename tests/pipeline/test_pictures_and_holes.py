"""Pictures drawn by nesting, and hole metrics and tracks, on a build of known geometry.

One synthetic build with one part of each design, analysed with a holes view at the
height of a defective layer and at a height of the island in a hole.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from clf_analysis.layout import (
    CLEAN_DIR,
    HOLES_DIR,
    UNCLOSED,
    clean_platform_name,
    holes_view_name,
    pathdata_name,
)
from clf_analysis.pipeline.images import RGBA_OF
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.render import figures
from clf_analysis.render.plate import Plate
from clf_analysis.synth import GroundTruth, generate_build, load_ground_truth


@dataclass(frozen=True)
class Built:
    out: Path
    truth: GroundTruth
    info: dict[str, Any]
    defect_z: float
    island_z: float

    def layer(self, z: float) -> list[dict[str, Any]]:
        return json.loads((self.out / "imagePathRawData-" / pathdata_name(z)).read_text())

    def part(self, design: str) -> dict[str, Any]:
        key = next(k for k, p in self.truth.parts.items() if p.design == design)
        return next(p for p in self.info["parts"] if (p["folder"], p["file"], p["model_id"]) == key)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("midas")
    build = generate_build(base, build_id="nest-1", parts=8, height_mm=4.0, seed=11)
    truth = load_ground_truth(build.ground_truth)
    defect_z = truth.invalid_loops[0].z
    island = next(p for p in truth.parts.values() if p.design == "island_in_hole")
    island_z = round(round((island.z_min + island.z_max) / 2 / 0.05) * 0.05, 4)
    result = run(
        "nest-1",
        AnalysisParams(
            holes_interval=100,
            hole_heights=(defect_z, island_z),
            clean_platform_heights=(island_z,),
        ),
        midas_base_path=base,
        options=RunOptions(processes=1),
    )
    info = json.loads(result.summary_path.read_text())
    return Built(result.output_dir, truth, info, defect_z, island_z)


def figure_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(int)


def close_to(rgb: np.ndarray, color: str, tol: int = 4) -> bool:
    return bool(np.abs(rgb - np.round(np.array(to_rgb(color)) * 255)).max() <= tol)


def island_geometry(built: Built) -> tuple[np.ndarray, float]:
    """Centre of the island in a hole, and the radius of its part's outer loop."""
    part = built.part("island_in_hole")
    records = [
        r
        for r in built.layer(built.island_z)
        if r["clf_folder"] == part["folder"] and r["clf_name"] == part["file"]
    ]
    island = next(r for r in records if r["nesting_depth"] == 2)
    outer = next(r for r in records if r["nesting_depth"] == 0)
    centre = np.mean(island["points"], axis=0)
    radius = float(np.max(np.hypot(*(np.array(outer["points"]) - centre).T)))
    return centre, radius


def test_holes_view_shows_the_island_as_metal_and_its_hole_as_hole(built: Built) -> None:
    centre, r = island_geometry(built)
    image = figure_rgb(built.out / HOLES_DIR / holes_view_name(built.island_z))

    def pixel(dx: float) -> np.ndarray:
        col, row = figures.plate_pixel((centre[0] + dx, centre[1]))
        return image[row, col]

    # Island radius 0.35 r, hole 0.7 r, outer r (synth.designs.island_in_hole).
    assert close_to(pixel(0.0), figures.METAL_FACE)
    assert close_to(pixel(-0.52 * r), figures.HOLE_FACE)
    assert close_to(pixel(-0.85 * r), figures.METAL_FACE)


def test_clean_raster_shows_the_island_as_metal_and_its_hole_transparent(built: Built) -> None:
    centre, r = island_geometry(built)
    rgba = cv2.imread(
        str(built.out / CLEAN_DIR / clean_platform_name(built.island_z)), cv2.IMREAD_UNCHANGED
    )
    rgba = cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)
    plate = Plate()

    def pixel(dx: float) -> tuple[int, ...]:
        col, row = np.rint(plate.to_px([(centre[0] + dx, centre[1])])[0]).astype(int)
        return tuple(int(v) for v in rgba[row, col])

    assert pixel(0.0) == RGBA_OF["blue"]
    assert pixel(-0.52 * r)[3] == 0
    assert pixel(-0.85 * r) == RGBA_OF["blue"]


def test_an_invalid_loop_shows_the_alarm_colour_in_the_holes_and_unclosed_views(
    built: Built,
) -> None:
    bad = built.truth.invalid_loops[0]
    record = next(
        r
        for r in built.layer(built.defect_z)
        if r["clf_folder"] == bad.folder and r["identifier"].endswith(f"_path_{bad.index}")
    )
    points = np.array(record["points"])
    for path in (built.out / HOLES_DIR / holes_view_name(built.defect_z), built.out / UNCLOSED):
        image = figure_rgb(path)
        (c0, r0), (c1, r1) = (
            figures.plate_pixel((points[:, 0].min(), points[:, 1].max())),
            figures.plate_pixel((points[:, 0].max(), points[:, 1].min())),
        )
        window = image[r0 - 2 : r1 + 3, c0 - 2 : c1 + 3]
        alarm = np.round(np.array(to_rgb(figures.ALARM)) * 255)
        assert int((np.abs(window - alarm).max(axis=-1) <= 4).sum()) >= 4, path.name
    # Nowhere else: the only invalid loops of the build are the bow-ties.
    assert built.info["unclosed_shapes_view"]["by_reason"]["self-intersection"] == len(
        built.truth.invalid_loops
    )


def test_hole_records_carry_their_measures(built: Built) -> None:
    checked = 0
    for record in built.layer(built.island_z):
        if not record["is_hole"]:
            continue
        xy = np.array(record["points"], dtype=np.float64)
        step = np.roll(xy, -1, axis=0) - xy
        perimeter = float(np.hypot(step[:, 0], step[:, 1]).sum())
        area = record["area_mm2"]
        assert record["perimeter_mm"] == pytest.approx(perimeter, abs=2e-3)
        assert record["equivalent_diameter_mm"] == pytest.approx(
            2 * math.sqrt(area / math.pi), abs=1e-4
        )
        assert record["circularity"] == pytest.approx(4 * math.pi * area / perimeter**2, abs=2e-4)
        assert record["bounding_box"] == pytest.approx([*xy.min(axis=0), *xy.max(axis=0)], abs=1e-4)
        assert isinstance(record["hole_track"], int)
        assert record["parent_shape_id"] is not None
        checked += 1
    assert checked >= 4


def track_at(built: Built, z: float, part: dict[str, Any]) -> set[int]:
    return {
        r["hole_track"]
        for r in built.layer(z)
        if r["is_hole"]
        and r["clf_folder"] == part["folder"]
        and r["identifier"].startswith(f"{part['model_id']}_")
    }


def test_a_tube_s_hole_is_one_track_from_its_first_layer_to_its_last(built: Built) -> None:
    part = built.part("tube")
    holes = part["holes"]
    assert holes["tracks"] == 1
    assert holes["opening_inside"] == holes["closing_inside"] == 0
    (track,) = holes["listed"]
    assert track["z_range"] == part["z_range"]
    assert track["layers"] == part["layer_count"]
    z0, z1 = part["z_range"]
    assert track_at(built, z0, part) == track_at(built, z1, part) == {track["track"]}


def test_holes_that_open_and_close_inside_a_part_are_tracked_as_such(built: Built) -> None:
    part = built.part("stepped_holes")
    truth = next(p for p in built.truth.parts.values() if p.design == "stepped_holes")
    holes = part["holes"]
    # 0, then 3, then 1, then 2 holes: the 3 slots open above the part's first layer.
    assert holes["opening_inside"] >= 3
    listed = holes["listed"]
    assert len(listed) == holes["tracks"]
    thickness = built.truth.layer_thickness
    for t in listed:
        z0, z1 = t["z_range"]
        assert part["z_range"][0] <= z0 <= z1 <= part["z_range"][1]
        assert t["layers"] == round((z1 - z0) / thickness) + 1  # consecutive layers
        assert t["opens_inside"] is (z0 > part["z_range"][0])
        assert t["track"] in track_at(built, z0, part)
        below = round(z0 - thickness, 4)
        if below >= part["z_range"][0]:
            assert t["track"] not in track_at(built, below, part)
    # At every height, as many tracks are open as the truth has holes.
    for section in truth.sections:
        z = section.z_from
        open_there = [t for t in listed if t["z_range"][0] <= z <= t["z_range"][1]]
        assert len(open_there) == section.holes, z
