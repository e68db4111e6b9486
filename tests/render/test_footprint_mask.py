import numpy as np
from canvases import painted

from clf_analysis.render.plate import Plate
from clf_analysis.render.raster import FootprintMask


def _square(cx: float, cy: float, half: float, ccw: bool = True) -> np.ndarray:
    pts = np.array(
        [
            [cx - half, cy - half],
            [cx + half, cy - half],
            [cx + half, cy + half],
            [cx - half, cy + half],
        ],
        dtype=np.float32,
    )
    return pts if ccw else pts[::-1].copy()


def _at(mask: FootprintMask, x: float, y: float) -> bool:
    col, row = np.rint(mask.plate.to_px([[x, y]])[0]).astype(int)
    return bool(mask.full()[row, col])


def test_hole_stays_open_and_island_in_hole_is_solid_in_one_layer():
    mask = FootprintMask(Plate())
    outer, hole, island = _square(0, 0, 20), _square(0, 0, 10, ccw=False), _square(0, 0, 4)
    mask.add([island, outer, hole])  # any order: parity decides
    assert _at(mask, 15, 0)
    assert not _at(mask, 7, 0)
    assert _at(mask, 0, 0)
    assert not _at(mask, 30, 0)


def test_layers_accumulate_as_a_union_and_pack_to_bits():
    plate = Plate()
    mask = FootprintMask(plate)
    mask.add([_square(-50, 0, 5)])
    mask.add([_square(50, 0, 5)])
    mask.add([np.zeros((2, 2), np.float32)])  # too few vertices: ignored
    assert _at(mask, -50, 0) and _at(mask, 50, 0) and not _at(mask, 0, 0)
    bits = mask.packed()
    unpacked = np.unpackbits(bits, count=plate.px * plate.px).reshape(plate.px, plate.px)
    assert np.array_equal(unpacked.astype(bool), mask.full() > 0)
    # A 10 mm square at 10 px/mm covers 101 x 101 pixel centres (edges inclusive).
    assert int((mask.full() > 0).sum()) == 2 * 101 * 101


def test_dashed_lines_leave_the_gaps_between_their_pairs():
    from clf_analysis.render.raster import PlateRaster

    pairs = np.array([[0, 0], [10, 0], [20, 0], [30, 0]], dtype=np.float32)
    dashed, solid = FootprintMask(Plate()), FootprintMask(Plate())
    dashed.stroke(pairs, closed=False, dashed=True)
    solid.stroke(pairs, closed=False)
    assert _at(dashed, 5, 0) and _at(dashed, 25, 0) and not _at(dashed, 15, 0)
    assert _at(solid, 15, 0)
    raster = PlateRaster(Plate())
    raster.stroke(pairs, (0, 255, 0, 255), closed=True, dashed=True)
    (gap_col, gap_row), (dash_col, dash_row) = np.rint(raster.plate.to_px([[15, 0], [5, 0]]))
    assert raster.rgba[int(gap_row), int(gap_col), 3] == 0
    assert raster.rgba[int(dash_row), int(dash_col), 3] == 255


def test_the_window_matches_a_whole_plate_canvas_and_stays_small():
    from clf_analysis.render.raster import PlateRaster

    plate = Plate()
    mask = FootprintMask(plate)
    reference = PlateRaster(plate)
    shapes = [
        [_square(30, 30, 5)],
        [_square(-80, 60, 3), _square(-80, 60, 1, ccw=False)],
        [_square(104, -104, 4)],  # partly off the plate
        [_square(300, 300, 5)],  # entirely off the plate: nothing drawn
    ]
    for loops in shapes:
        mask.add(loops)
        reference.fill_shape(loops, (255, 255, 255, 255))
    assert np.array_equal(mask.full() > 0, painted(reference))
    single = FootprintMask(plate)
    single.add([_square(0, 0, 5)])
    assert single._window.size < 200 * 200  # not a 2100 x 2100 canvas
