"""Loop builders for the geometry tests: exact squares, regular polygons, bow-ties."""

from __future__ import annotations

import numpy as np

from clf_analysis.clf.types import LoopArray


def square(x0: float, y0: float, side: float, cw: bool = False) -> LoopArray:
    """Axis-aligned square, counter-clockwise unless `cw`."""
    return rect(x0, y0, side, side, cw)


def rect(x0: float, y0: float, w: float, h: float, cw: bool = False) -> LoopArray:
    pts = [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]]
    loop = np.array(pts, dtype=np.float32)
    return loop[::-1].copy() if cw else loop


def regular(n: int, r: float, cx: float = 0.0, cy: float = 0.0, cw: bool = False) -> LoopArray:
    """Regular n-gon inscribed in a circle of radius r."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    if cw:
        t = -t
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]).astype(np.float32)


def regular_area(n: int, r: float) -> float:
    return 0.5 * n * r * r * np.sin(2.0 * np.pi / n)


def rotate_start(loop: LoopArray, k: int) -> LoopArray:
    """Same loop, starting at another vertex."""
    return np.roll(loop, -k, axis=0)
