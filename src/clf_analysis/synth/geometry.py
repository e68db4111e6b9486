"""Loop builders for synthetic parts: sampled circles, rectangles, stadiums, a bow-tie.

Every builder returns an `(n, 2)` float32 array with the first vertex not repeated, the
way the format stores loops. Counter-clockwise unless `clockwise=True`. Areas are taken
from the float32 vertices actually written, so the ground truth describes the file, not
the ideal shape.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from clf_analysis.clf import LoopArray

FloatArray = npt.NDArray[np.float64]


@lru_cache(maxsize=1024)
def unit_circle(n: int) -> FloatArray:
    """`n` points on the unit circle, counter-clockwise from angle 0 (cached, read-only)."""
    if n < 3:
        raise ValueError(f"a circle needs at least 3 vertices, got {n}")
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    points = np.column_stack((np.cos(angles), np.sin(angles)))
    # Shared by every caller through the cache: a write would corrupt other parts.
    points.setflags(write=False)
    return points


@lru_cache(maxsize=1024)
def _unit_arc(n: int) -> FloatArray:
    """`n` points of the half circle from -90° to +90° inclusive (the right cap of a stadium)."""
    angles = np.linspace(-0.5 * np.pi, 0.5 * np.pi, n)
    points = np.column_stack((np.cos(angles), np.sin(angles)))
    points.setflags(write=False)
    return points


def _finish(points: FloatArray, clockwise: bool) -> LoopArray:
    loop = points.astype(np.float32)
    return loop[::-1].copy() if clockwise else loop


def circle(cx: float, cy: float, r: float, n: int, *, clockwise: bool = False) -> LoopArray:
    """A circle of radius `r` sampled at `n` vertices."""
    return _finish(unit_circle(n) * r + (cx, cy), clockwise)


def rectangle(x0: float, y0: float, x1: float, y1: float, *, clockwise: bool = False) -> LoopArray:
    """The rectangle [x0, x1] × [y0, y1] as exactly 4 vertices."""
    points = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)
    return _finish(points, clockwise)


def stadium(
    cx: float, cy: float, half_length: float, r: float, n: int, *, clockwise: bool = False
) -> LoopArray:
    """The convex hull of two circles of radius `r` at (cx ± half_length, cy); ~n vertices."""
    cap = _unit_arc(max(n // 2, 3)) * r
    right = cap + np.array((cx + half_length, cy))
    left = np.array((cx - half_length, cy)) - cap
    return _finish(np.concatenate((right, left)), clockwise)


def bow_tie(x0: float, y0: float, x1: float, y1: float) -> LoopArray:
    """A self-intersecting 4-vertex loop in [x0, x1] × [y0, y1].

    Asymmetric on purpose: a symmetric bow-tie has zero signed area, and a reader of the
    truth should see "self-intersection", not "zero area".
    """
    h = y1 - y0
    points = np.array([(x0, y0), (x1, y1), (x1, y0), (x0, y0 + 0.6 * h)], dtype=np.float64)
    return points.astype(np.float32)


def signed_area(loop: LoopArray) -> float:
    """Shoelace area of the loop as written (float32 vertices, float64 sums); CCW > 0.

    Deliberately not `clf_analysis.geometry.signed_area`: the ground truth is computed
    apart from the code it checks.
    """
    pts = np.asarray(loop, dtype=np.float64)
    # Centring first keeps the cross products small, so the sum loses no digits.
    pts = pts - pts.mean(axis=0)
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
