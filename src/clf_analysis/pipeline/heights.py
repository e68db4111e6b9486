"""Layer-height grids: every layer of a build, and the heights the images are drawn at."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from clf_analysis.layout import MM_DECIMALS, mm

# The legacy `layers[]` of platform_info.json: each file answers a sample height with its
# nearest layer within ±1 mm (the legacy's window). Samples every 2 mm, on even
# millimetres, are the sparsest whose windows still reach every layer, so every file with
# a layer is listed; denser samples would only repeat near-identical entries.
LEGACY_SAMPLE_STEP_MM = 2.0
LEGACY_SAMPLE_WINDOW_MM = 1.0
# Holes views drawn at most on the `holes_interval` grid of one run (each is a plate
# image): 0.5 mm up a 400 mm build would be 801. Past this, every k-th height is drawn.
MAX_HOLE_VIEWS = 400


def layer_grid(thickness: float, top: float) -> np.ndarray:
    """Every layer height from one thickness up to the highest layer, on the thickness grid.

    Heights are k × thickness computed in float64 and rounded to 4 decimals, so that the
    names are the ones a person expects (0.15, not 0.15000000000000002).
    """
    if not (thickness > 0 and math.isfinite(thickness)):
        raise ValueError(f"layer thickness must be a positive number, got {thickness!r}")
    # Thicknesses come from float32 fields (0.05 is stored as 0.0500000007): the grid
    # step is the decimal value the writer meant, and the top may sit a few float32 ulps
    # under its layer, so counting allows a small fraction of a layer.
    step = round(float(thickness), 6)
    count = math.floor(top / step + 1e-3)
    if count < 1:
        return np.empty(0, dtype=np.float64)
    return np.round(np.arange(1, count + 1, dtype=np.float64) * step, MM_DECIMALS)


def every(interval: float, start: float, top: float) -> list[float]:
    """start, start + interval, … up to top inclusive (rounded to 4 decimals)."""
    if not (interval > 0):
        raise ValueError(f"interval must be > 0, got {interval!r}")
    count = math.floor(round((top - start) / interval, 6))
    return [mm(float(start) + i * float(interval)) for i in range(max(count, -1) + 1)]


def clean_platform_heights(top: float, requested: Iterable[float] | None = None) -> list[float]:
    """Heights of the clean plate images: every 5 mm from 1 mm to the top, unless requested."""
    if requested is not None:
        return sorted({mm(h) for h in requested})
    return every(5.0, 1.0, top) if top >= 1.0 else []


def hole_view_step(top: float, interval: float) -> int:
    """Every how many heights of the `interval` grid from 0 to `top` a holes view is
    drawn: 1, or the fewest that keeps the views at MAX_HOLE_VIEWS."""
    return max(1, math.ceil(len(every(interval, 0.0, top)) / MAX_HOLE_VIEWS))


def hole_view_interval(top: float, interval: float) -> float:
    """The interval the holes views are drawn at: `interval`, or a multiple of it."""
    step = hole_view_step(top, interval)
    return interval if step == 1 else mm(interval * step)


def hole_view_heights(
    top: float,
    interval: float,
    requested: Iterable[float] | None = None,
    *,
    capped: bool = True,
) -> list[float]:
    """Heights of the holes views: every `interval` mm from 0 to the top, plus requested ones.

    `capped`: every `hole_view_step`-th height of the grid only, so that the heights
    drawn are always heights of the full grid (which the file passes take shapes at).
    """
    grid = every(interval, 0.0, top)
    heights = set(grid[:: hole_view_step(top, interval)] if capped else grid)
    if requested is not None:
        heights.update(mm(h) for h in requested)
    return sorted(heights)


def hole_view_warnings(top: float, interval: float) -> list[str]:
    """What a run says when it draws fewer holes views than `interval` asks for."""
    step = hole_view_step(top, interval)
    if step == 1:
        return []
    asked = len(every(interval, 0.0, top))
    return [
        f"holes_interval {interval:g} mm from 0 to {top:g} mm asks for {asked} holes views, "
        f"more than {MAX_HOLE_VIEWS}: drawn every {hole_view_interval(top, interval):g} mm instead "
        f"({len(every(interval, 0.0, top)[::step])} views)"
    ]


def legacy_sample_candidates(zs: np.ndarray) -> np.ndarray:
    """Sample heights (on the 2 mm grid) that may lie within the window of one of `zs`.

    Found per layer, never by walking from the lowest layer to the highest: a stray layer
    far above the others must cost two candidates, not millions.
    """
    step, window = LEGACY_SAMPLE_STEP_MM, LEGACY_SAMPLE_WINDOW_MM
    per_window = math.floor(2 * window / step) + 2  # one more for float32 heights
    first = np.ceil((np.asarray(zs, dtype=np.float64) - window) / step - 1e-6)
    ks = (first[:, None] + np.arange(per_window)[None, :]).ravel()
    return np.round(np.unique(ks[ks >= 0]) * step, 2)


def legacy_sample_range(first: float, last: float) -> list[float]:
    """Every sample height from `first` to `last`, both samples themselves."""
    step = LEGACY_SAMPLE_STEP_MM
    return [round(k * step, 2) for k in range(round(first / step), round(last / step) + 1)]
