"""Plate registration and OpenCV rasterising of plate images."""

from __future__ import annotations

import numpy as np
import pytest
from canvases import painted

from clf_analysis.render import Plate, PlateRaster, RenderError

RED = (255, 0, 0, 255)
BLUE = (0, 0, 255, 255)


def square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array(
        [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)], dtype=np.float32
    )


def painted_box(canvas: PlateRaster) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(painted(canvas))
    return int(cols.min()), int(cols.max()), int(rows.min()), int(rows.max())


def test_default_plate_is_2100_px_and_centred() -> None:
    plate = Plate()
    assert plate.px == 2100
    np.testing.assert_allclose(plate.to_px([[0, 0], [-105, 105]]), [[1050, 1050], [0, 0]])
    np.testing.assert_allclose(plate.to_mm(plate.to_px([[3.25, -7.5]])), [[3.25, -7.5]])


def test_y_up_means_rows_decrease() -> None:
    rows = Plate().to_px([[0, -10], [0, 0], [0, 10]])[:, 1]
    assert rows[0] > rows[1] > rows[2]


def test_canvas_is_exact_rgba_and_transparent() -> None:
    canvas = PlateRaster()
    assert canvas.rgba.shape == (2100, 2100, 4)
    assert canvas.rgba.dtype == np.uint8
    assert not canvas.rgba.any()


def test_ten_mm_square_lands_on_its_pixels() -> None:
    # x in [20, 30], y in [-40, -30]: pixel centres on or inside the boundary are painted.
    canvas = PlateRaster()
    canvas.fill_shape([square(20, -40, 10)], RED)
    assert painted_box(canvas) == (1250, 1350, 1350, 1450)
    assert int(painted(canvas).sum()) == 101 * 101
    assert tuple(canvas.rgba[1400, 1300]) == RED


def test_upper_half_of_plate_is_top_of_image() -> None:
    canvas = PlateRaster()
    canvas.fill_shape([square(-5, 80, 10)], RED)
    _, _, rmin, rmax = painted_box(canvas)
    assert rmax < 1050 and (rmin, rmax) == (150, 250)


def test_hole_stays_transparent_whatever_its_orientation() -> None:
    for hole in (square(-10, -10, 20), square(-10, -10, 20)[::-1]):
        canvas = PlateRaster()
        canvas.fill_shape([square(-30, -30, 60), hole], BLUE)
        assert tuple(canvas.rgba[1050, 1050]) == (0, 0, 0, 0)  # plate origin, in the hole
        assert tuple(canvas.rgba[1050, 850]) == BLUE  # x = -20 mm, metal


def test_hole_does_not_erase_what_was_painted_before() -> None:
    canvas = PlateRaster()
    canvas.fill_shape([square(-5, -5, 10)], RED)
    canvas.fill_shape([square(-30, -30, 60), square(-10, -10, 20)], BLUE)
    assert tuple(canvas.rgba[1050, 1050]) == RED


def test_plate_resolution_is_configurable() -> None:
    plate = Plate(size_mm=100, px_per_mm=4)
    canvas = PlateRaster(plate)
    canvas.fill_shape([square(0, 0, 10)], RED)
    assert canvas.rgba.shape == (400, 400, 4)
    assert painted_box(canvas) == (200, 240, 160, 200)


def test_open_stroke_leaves_the_closing_edge_out() -> None:
    loop = square(0, 0, 10)
    opened, closed = PlateRaster(), PlateRaster()
    opened.stroke(loop, RED, closed=False)
    closed.stroke(loop, RED, closed=True)
    # The closing edge runs from (0, 10) to (0, 0): x = 0 -> col 1050, rows 950..1050.
    assert not opened.rgba[960:1040, 1050, 3].any()
    assert closed.rgba[960:1040, 1050, 3].all()
    assert not closed.rgba[1000, 1100, 3]  # the inside of an outline stays empty


@pytest.mark.parametrize(("requested", "drawn"), [(1, 1), (2, 1), (3, 3), (5, 5), (6, 5)])
def test_stroke_thickness_is_odd_and_centred(requested: int, drawn: int) -> None:
    canvas = PlateRaster()
    line = np.array([(-50, 0), (50, 0)], np.float32)
    canvas.stroke(line, RED, closed=False, thickness_px=requested)
    column = canvas.rgba[1030:1071, 1050, 3].astype(bool)
    assert int(column.sum()) == drawn
    rows = np.nonzero(column)[0] + 1030
    assert (rows.min() + rows.max()) / 2 == 1050


def test_label_draws_near_its_position_only() -> None:
    canvas = PlateRaster()
    canvas.label("7_path_0", (-50, 50), (255, 255, 0, 255), height_mm=3)
    cmin, cmax, rmin, rmax = painted_box(canvas)
    centre_col, centre_row = Plate().to_px([[-50, 50]])[0]
    assert abs((cmin + cmax) / 2 - centre_col) < 10
    assert abs((rmin + rmax) / 2 - centre_row) < 10
    assert (canvas.rgba[..., :3] == (255, 255, 0)).all(axis=-1).any()  # the text colour


def test_bad_colour_is_refused() -> None:
    with pytest.raises(RenderError, match="colour"):
        PlateRaster().fill_shape([square(0, 0, 1)], (255, 0, 0))  # type: ignore[arg-type]


def test_far_off_plate_geometry_does_not_crash_or_paint() -> None:
    canvas = PlateRaster()
    canvas.fill_shape([square(1e7, 1e7, 5)], RED)
    assert not canvas.rgba.any()
