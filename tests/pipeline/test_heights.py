import numpy as np
import pytest

from clf_analysis.layout import height_name
from clf_analysis.pipeline.heights import (
    MAX_HOLE_VIEWS,
    clean_platform_heights,
    every,
    hole_view_heights,
    hole_view_interval,
    hole_view_warnings,
    layer_grid,
    legacy_sample_candidates,
)


def test_height_names_follow_python_str_of_rounded_float():
    assert [height_name(z) for z in (0.05, 0.1, 1, 73.35, 0.15000000000000002)] == [
        "0.05",
        "0.1",
        "1.0",
        "73.35",
        "0.15",
    ]
    assert height_name(np.float32(0.05)) == "0.05"


def test_layer_grid_starts_at_one_thickness_and_ignores_float32_noise_at_the_top():
    grid = layer_grid(0.05, float(np.float32(20.0)) + 3e-7)
    assert grid.size == 400
    assert grid[0] == 0.05 and grid[-1] == 20.0
    assert height_name(grid[2]) == "0.15"


def test_layer_grid_uses_the_decimal_step_of_a_float32_thickness():
    grid = layer_grid(float(np.float32(0.05)), float(np.float32(20.0)))
    assert grid.size == 400 and grid[-1] == 20.0
    assert layer_grid(float(np.float32(0.05)), float(np.float32(19.999998))).size == 400
    assert layer_grid(0.05, 0.04).size == 0


def test_layer_grid_rejects_non_positive_thickness():
    with pytest.raises(ValueError, match="thickness"):
        layer_grid(0.0, 10)


def test_clean_platform_heights_every_5mm_from_1mm_past_196():
    heights = clean_platform_heights(200.0)
    assert heights[0] == 1.0 and heights[-1] == 196.0
    taller = clean_platform_heights(215.0)
    assert taller[-1] == 211.0
    assert all(isinstance(h, float) for h in taller)


def test_hole_view_heights_from_zero_to_top_plus_requested():
    assert hole_view_heights(25.0, 10) == [0.0, 10.0, 20.0]
    assert hole_view_heights(25.0, 10, [13.4]) == [0.0, 10.0, 13.4, 20.0]
    assert every(7, 0, 20) == [0.0, 7.0, 14.0]


def test_legacy_sample_candidates_are_a_few_per_layer_however_far_apart():
    zs = np.array([0.05, 0.1, 2.9999998, 1e6], dtype=np.float32)
    candidates = legacy_sample_candidates(zs).tolist()
    assert {0.0, 2.0, 4.0, 1e6} <= set(candidates)
    assert len(candidates) <= 3 * len(zs)


@pytest.mark.parametrize(
    ("top", "interval", "views", "drawn_every"),
    [
        (199.5, 0.5, 400, 0.5),
        (200.0, 0.5, 201, 1.0),
        (1000.0, 0.5, 334, 3.0),
        (1000.0, 2.5, 201, 5.0),
    ],
)
def test_holes_views_of_one_run_are_capped_on_the_grid_asked_for(
    top: float, interval: float, views: int, drawn_every: float
) -> None:
    heights = hole_view_heights(top, interval)
    assert len(heights) == views <= MAX_HOLE_VIEWS
    assert hole_view_interval(top, interval) == drawn_every
    # Every height drawn is a height of the full grid, which the file passes sample.
    assert set(heights) <= set(hole_view_heights(top, interval, capped=False))
    assert bool(hole_view_warnings(top, interval)) == (drawn_every != interval)


def test_requested_hole_heights_come_on_top_of_the_capped_grid() -> None:
    heights = hole_view_heights(1000.0, 0.5, [0.5, 1.5])
    assert {0.5, 1.5} <= set(heights) and len(heights) == 334 + 2
