"""Loops of one part file at one height -> areas, validity, hole nesting.

Everything here is a pure function of the loop coordinates: no file, model or pipeline
knowledge. The pipeline calls `analyze_loops` ~100,000 times per build, so the work is
done on one concatenated vertex array and on shapely geometry arrays, never per vertex in
Python.

Rules (docs/OUTPUTS.md#words-used-below, "Hole" and "Closed path"):

* A loop contained in an odd number of other loops is a hole; its parent is the smallest
  loop that contains it. Winding (counter-clockwise solid, clockwise hole) is only a
  cross-check, reported in `winding_mismatch`.
* Loops with fewer than 3 vertices, a non-finite coordinate or zero area enclose nothing:
  they take no part in nesting (depth 0, parent -1) and are reported invalid.
* Self-intersecting loops are reported invalid but still take part in nesting: a small
  spike crossing an outline must not turn the holes of a part into metal.
* Duplicates (two loops enclosing the same region, whatever their start vertex or
  direction) would push everything inside them two levels deeper and turn holes into
  metal. The first loop of a duplicate group in the content order below is kept; the
  others are reported invalid ("duplicate loop"), left out of the containment counts and
  given the depth, parent and hole flag of the kept loop.

Containment: loops of a valid layer do not cross, so loop i lies inside loop j iff i is no
larger than j, within j's bounds, and one point strictly interior to i (GEOS
point_on_surface) is strictly inside j. Unlike testing i's vertices, this stays right when
i touches j's boundary or shares vertices or whole edges with it. For crossing loops (a
defect) it still gives a deterministic answer.

Areas are shoelace areas in float64 (`area` unsigned, `signed_area` + counter-clockwise);
for a self-intersecting loop that is the net of its lobes.

Order independence: every decision depends on loop contents only. Where a total order is
needed (parent among equal-area containers, which loop of a duplicate group is kept) loops
are ordered by (area, vertex count, raw vertex bytes). Only byte-identical loops tie on
that key; they fall back to input order, which cannot be observed because swapping two
identical arrays leaves the input unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from clf_analysis.clf.types import LoopArray

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

REASON_FEW_VERTICES = "fewer than 3 vertices"
REASON_NON_FINITE = "non-finite coordinate"
REASON_ZERO_AREA = "zero area"
REASON_SELF_INTERSECTION = "self-intersection"
REASON_SELF_TOUCHING = "self-touching"
REASON_DUPLICATE = "duplicate loop"

# A loop is "zero area" when all its vertices lie within this many float32 steps (at the
# layer's largest coordinate) of one line: collinear points rounded to float32 are not
# exactly collinear, so "area == 0" would miss a line traced back and forth.
ZERO_WIDTH_ULPS = 4.0

# Two loops enclosing the same region have areas equal up to summation rounding; a
# containing loop that is larger by less than this fraction is treated as a duplicate
# candidate rather than a strict parent.
DUPLICATE_AREA_RTOL = 1e-9

# From this many nestable loops on, an R-tree query beats the n x n bounds prefilter
# (measured on the 2-core dev machine: equal at 150-200 loops, the tree 1.5x faster at
# 400 and 2.6x at 1,600 loops, where the matrix grows quadratically).
STRTREE_MIN_LOOPS = 200

_GEOS_REASONS = (
    ("Ring Self-intersection", REASON_SELF_TOUCHING),
    ("Self-intersection", REASON_SELF_INTERSECTION),
    ("Too few points", REASON_FEW_VERTICES),
    ("Invalid Coordinate", REASON_NON_FINITE),
)
_GEOS_POINT = re.compile(r"\[([-+0-9.eE]+|nan|inf) ([-+0-9.eE]+|nan|inf)")


@dataclass(frozen=True, eq=False)
class LoopAnalysis:
    """Per-loop results for the loops of one part file at one height, in input order.

    `parent` and `duplicate_of` are indices into the same input sequence (-1: none).
    `bounds` rows are (min x, min y, max x, max y), NaN for a loop without vertices.
    `invalid_point` is where GEOS located a self-intersection (NaN otherwise).
    """

    vertex_count: IntArray
    area: FloatArray
    signed_area: FloatArray
    bounds: FloatArray
    in_nesting: BoolArray
    depth: IntArray
    parent: IntArray
    is_hole: BoolArray
    valid: BoolArray
    invalid_reason: list[str | None]
    invalid_point: FloatArray
    duplicate_of: IntArray
    winding_mismatch: BoolArray

    def __len__(self) -> int:
        return len(self.area)

    @property
    def counted(self) -> BoolArray:
        """Loops whose area counts for the part: nested, not a duplicate, not crossing.

        A loop that crosses itself still nests (its children keep their depth), but its
        shoelace area is the net of its lobes, which measures nothing: it counts for no
        area and no hole. A loop that only touches itself (a pinch) has a true area.
        """
        crossing = np.fromiter(
            (r == REASON_SELF_INTERSECTION for r in self.invalid_reason),
            dtype=bool,
            count=len(self.invalid_reason),
        )
        return self.in_nesting & (self.duplicate_of < 0) & ~crossing

    @property
    def signed_by_nesting(self) -> FloatArray:
        """Area with the sign of its role: + solid, - hole, 0 when not counted."""
        return np.where(self.counted, np.where(self.is_hole, -self.area, self.area), 0.0)


def analyze_loops(loops: Sequence[LoopArray]) -> LoopAnalysis:
    """Areas, validity and hole nesting of the closed loops of one part file at one height.

    Each loop is an (n, 2) array, first vertex not repeated. The result does not depend on
    the order of `loops` (see the module docstring for ties and duplicates).
    """
    if len(loops) == 1:
        return _analyze_one(loops[0])
    n = len(loops)
    counts = np.fromiter(map(len, loops), dtype=np.int64, count=n)
    reasons: list[str | None] = [None] * n
    invalid_point = np.full((n, 2), np.nan)
    if n and counts.min() >= 3:
        # The common case: every loop can be measured in one pass over one array.
        measured = np.arange(n)
        xy = np.concatenate(loops, dtype=np.float64).reshape(-1, 2)
    else:
        measured = np.flatnonzero(counts > 0)
        parts = [np.asarray(loops[i], dtype=np.float64).reshape(-1, 2) for i in measured.tolist()]
        xy = np.concatenate(parts) if parts else np.empty((0, 2))
    m_counts = counts[measured]
    starts = np.zeros(len(measured), dtype=np.int64)
    np.cumsum(m_counts[:-1], out=starts[1:])

    in_nesting = counts >= 3
    signed, swept, reach = _shoelace(xy, starts, m_counts)
    bounds = np.empty((len(measured), 4))
    if len(measured):
        bounds[:, :2] = np.minimum.reduceat(xy, starts, axis=0)
        bounds[:, 2:] = np.maximum.reduceat(xy, starts, axis=0)
    if len(measured) < n:
        signed, bounds = _scatter(signed, measured, n, 0.0), _scatter(bounds, measured, n, np.nan)
    max_abs = float(np.abs(bounds).max(initial=0.0))
    if not math.isfinite(max_abs):
        finite = np.asarray(np.isfinite(bounds).all(axis=1), dtype=bool)
        in_nesting &= finite
        signed[~finite] = 0.0
        swept[~finite[measured]] = 0.0
        max_abs = float(np.abs(bounds[finite]).max(initial=0.0))
    width = ZERO_WIDTH_ULPS * float(np.spacing(np.float32(max_abs)))
    for k in np.flatnonzero(swept <= reach * width).tolist():
        loop = xy[starts[k] : starts[k] + m_counts[k]]
        if _collinear(loop - loop[0], width):
            in_nesting[measured[k]] = False
    area = np.abs(signed)
    for i in [] if in_nesting.all() else np.flatnonzero(~in_nesting).tolist():
        if counts[i] < 3:
            reasons[i] = REASON_FEW_VERTICES
        elif not np.isfinite(bounds[i]).all():
            reasons[i] = REASON_NON_FINITE
        else:
            reasons[i] = REASON_ZERO_AREA

    depth = np.zeros(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    nested = np.flatnonzero(in_nesting)
    if len(nested):
        polys = _polygons(xy, measured, m_counts, nested)
        ok = shapely.is_valid(polys)
        for k in [] if ok.all() else np.flatnonzero(~ok).tolist():
            reasons[nested[k]], invalid_point[nested[k]] = _geos_reason(polys[k])
        if len(nested) > 1:
            sub = _nest(polys, area[nested], bounds[nested], [loops[i] for i in nested.tolist()])
            depth[nested] = sub[0]
            parent[nested] = np.where(sub[1] >= 0, nested[sub[1]], -1)
            duplicate_of[nested] = np.where(sub[2] >= 0, nested[sub[2]], -1)
            if (sub[2] >= 0).any():
                for i in np.flatnonzero(duplicate_of >= 0).tolist():
                    if reasons[i] is None:
                        reasons[i] = REASON_DUPLICATE

    is_hole = (depth % 2 == 1) & in_nesting
    valid = np.fromiter((r is None for r in reasons), dtype=bool, count=n)
    # A symmetric bow-tie has no winding: signed area 0 with nonzero extent.
    winding_mismatch = in_nesting & (signed != 0) & ((signed > 0) == is_hole)
    return LoopAnalysis(
        vertex_count=counts,
        area=area,
        signed_area=signed,
        bounds=bounds,
        in_nesting=in_nesting,
        depth=depth,
        parent=parent,
        is_hole=is_hole,
        valid=valid,
        invalid_reason=reasons,
        invalid_point=invalid_point,
        duplicate_of=duplicate_of,
        winding_mismatch=winding_mismatch,
    )


def signed_area(loop: npt.ArrayLike) -> float:
    """Shoelace area of one loop in float64, counter-clockwise positive; 0 below 3 vertices.

    The same sum as `analyze_loops`, for callers that need one loop's area or winding
    without its nesting (line geometry, figure paths).
    """
    xy = np.asarray(loop, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 3:
        return 0.0
    signed, _, _ = _shoelace(xy, np.zeros(1, dtype=np.int64), np.array([len(xy)]))
    return float(signed[0])


def _analyze_one(loop: LoopArray) -> LoopAnalysis:
    """`analyze_loops` for the most common layer of a part file: a single loop.

    Same rules as the general path with a third of its numpy calls; tests check that
    both agree.
    """
    xy = np.asarray(loop, dtype=np.float64).reshape(-1, 2)
    count = len(xy)
    signed = 0.0
    bounds = np.full((1, 4), np.nan)
    reason: str | None = None
    point = np.full((1, 2), np.nan)
    if count < 3:
        reason = REASON_FEW_VERTICES
    elif not np.isfinite(xy).all():
        reason = REASON_NON_FINITE
    if count:
        bounds[0, :2] = xy.min(axis=0)
        bounds[0, 2:] = xy.max(axis=0)
    if reason is None:
        local = xy - xy[0]
        # Relative to the first vertex the closing term of the shoelace vanishes.
        cross = local[:-1, 0] * local[1:, 1] - local[1:, 0] * local[:-1, 1]
        signed = 0.5 * float(cross.sum())
        width = ZERO_WIDTH_ULPS * float(np.spacing(np.float32(np.abs(bounds).max())))
        if 0.5 * float(np.abs(cross).sum()) <= width * float(
            np.hypot(local[:, 0], local[:, 1]).sum()
        ) and _collinear(local, width):
            reason = REASON_ZERO_AREA
    nested = reason is None
    if nested:
        poly = shapely.polygons(xy)
        if not shapely.is_valid(poly):
            reason, point[0] = _geos_reason(poly)
    return LoopAnalysis(
        vertex_count=np.array([count], dtype=np.int64),
        area=np.array([abs(signed)]),
        signed_area=np.array([signed]),
        bounds=bounds,
        in_nesting=np.array([nested]),
        depth=np.zeros(1, dtype=np.int64),
        parent=np.full(1, -1, dtype=np.int64),
        is_hole=np.zeros(1, dtype=bool),
        valid=np.array([reason is None]),
        invalid_reason=[reason],
        invalid_point=point,
        duplicate_of=np.full(1, -1, dtype=np.int64),
        winding_mismatch=np.array([nested and signed < 0]),
    )


def _shoelace(
    xy: FloatArray, starts: IntArray, counts: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Signed area (+ counter-clockwise), swept area and reach of each loop.

    The swept area sums the unsigned triangles of the fan from the first vertex, the reach
    the distances of the vertices from it. If every vertex lies within w of a line through
    the first one, swept <= w * reach; the cheap test picks the few loops worth checking
    for collinearity. (The signed area is no test: it is also zero for a symmetric
    bow-tie, a self-intersection.)
    """
    # Each loop relative to its own first vertex: the cross products stay small, so loops
    # far from the origin lose no digits. It also makes every loop start at (0, 0), so the
    # closing edge's cross product vanishes and so does the one spanning two loops: one
    # pass over the concatenation needs no per-loop wrap.
    local = np.zeros((len(xy) + 1, 2))
    np.subtract(xy, np.repeat(xy[starts], counts, axis=0), out=local[:-1])
    x, y = local[:, 0], local[:, 1]
    cross = x[:-1] * y[1:] - x[1:] * y[:-1]
    signed = 0.5 * np.add.reduceat(cross, starts)
    swept = 0.5 * np.add.reduceat(np.abs(cross), starts)
    reach = np.add.reduceat(np.hypot(x[:-1], y[:-1]), starts)
    return signed, swept, reach


def _scatter(values: FloatArray, where: IntArray, n: int, fill: float) -> FloatArray:
    """`values` (one row per measured loop) spread over all n loops, `fill` elsewhere."""
    out = np.full((n, *values.shape[1:]), fill)
    out[where] = values
    return out


def _collinear(local: FloatArray, width: float) -> bool:
    """Whether all vertices (relative to the first) lie within `width` of one line.

    The line runs through the first vertex and the farthest one; rare, so per loop.
    """
    far = local[int(np.argmax(np.hypot(local[:, 0], local[:, 1])))]
    length = float(np.hypot(far[0], far[1]))
    if length <= width:
        return True
    distance = np.abs(local[:, 0] * far[1] - local[:, 1] * far[0]) / length
    return bool(distance.max() <= width)


def _polygons(
    xy: FloatArray, measured: IntArray, counts: IntArray, nested: IntArray
) -> npt.NDArray[np.object_]:
    """Shapely polygons of the nested loops (a subset of the measured ones), in one call."""
    if len(nested) == len(measured):
        coords, ring_counts = xy, counts
    else:
        keep = np.isin(measured, nested)
        coords, ring_counts = xy[np.repeat(keep, counts)], counts[keep]
    indices = np.repeat(np.arange(len(ring_counts)), ring_counts)
    # linearrings closes each ring itself (the format never repeats the first vertex).
    return shapely.polygons(shapely.linearrings(coords, indices=indices))


def _geos_reason(poly: shapely.Geometry) -> tuple[str, FloatArray]:
    """Our reason category and the GEOS location for one invalid polygon."""
    text = str(shapely.is_valid_reason(poly))
    reason = next((ours for geos, ours in _GEOS_REASONS if text.startswith(geos)), text.lower())
    match = _GEOS_POINT.search(text)
    point = np.array([float(match[1]), float(match[2])]) if match else np.full(2, np.nan)
    return reason, point


def _nest(
    polys: npt.NDArray[np.object_],
    area: FloatArray,
    bounds: FloatArray,
    loops: Sequence[LoopArray],
) -> tuple[IntArray, IntArray, IntArray]:
    """Depth, parent and duplicate_of (local indices) of m >= 2 nestable loops."""
    m = len(polys)
    inner, outer = _containment_pairs(polys, area, bounds)
    duplicate_of = np.full(m, -1, dtype=np.int64)
    depth = np.zeros(m, dtype=np.int64)
    parent = np.full(m, -1, dtype=np.int64)
    if not len(inner):
        return depth, parent, duplicate_of

    if m < STRTREE_MIN_LOOPS:
        contains = np.zeros((m, m), dtype=bool)
        contains[inner, outer] = True
        mutual = contains[outer, inner]
    else:
        mutual = np.isin(inner * m + outer, outer * m + inner)
    if mutual.any():
        duplicate_of = _duplicates(inner[mutual], outer[mutual], _content_rank(area, loops), m)
        dropped = duplicate_of >= 0
        keep = ~(dropped[inner] | dropped[outer])
        inner, outer = inner[keep], outer[keep]

    depth = np.bincount(inner, minlength=m).astype(np.int64)
    # Smallest container first: sort pairs by (inner, area of outer), keep the first. Two
    # containers of equal area (only possible when loops cross) are ordered by content.
    order = np.lexsort((area[outer], inner))
    si, so = inner[order], outer[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = si[1:] != si[:-1]
    tie = ~first[1:] & first[:-1] & (area[so[1:]] == area[so[:-1]])
    if tie.any():
        order = np.lexsort((_content_rank(area, loops)[outer], inner))
        si, so = inner[order], outer[order]
    parent[si[first]] = so[first]

    dup = np.flatnonzero(duplicate_of >= 0)
    depth[dup] = depth[duplicate_of[dup]]
    parent[dup] = parent[duplicate_of[dup]]
    return depth, parent, duplicate_of


def _containment_pairs(
    polys: npt.NDArray[np.object_], area: FloatArray, bounds: FloatArray
) -> tuple[IntArray, IntArray]:
    """All (inner, outer) pairs with `inner` inside `outer`, inner != outer.

    Loops of a valid layer do not cross, so a loop no larger than another lies inside it
    iff one point strictly interior to it lies strictly inside the other. GEOS'
    point_on_surface gives such a point (the middle of the widest horizontal section), so
    a child touching its parent's boundary, or sharing vertices or whole edges with it, is
    still decided correctly — testing its vertices would not be.
    """
    if len(polys) >= STRTREE_MIN_LOOPS:
        points = shapely.point_on_surface(polys)
        inner, outer = shapely.STRtree(polys).query(points, predicate="within")
        inner = inner.astype(np.int64)
        outer = outer.astype(np.int64)
        keep = (inner != outer) & (area[inner] <= area[outer] * (1.0 + DUPLICATE_AREA_RTOL))
        return inner[keep], outer[keep]

    x0, y0, x1, y1 = bounds.T
    candidate = (
        (x0[:, None] >= x0)
        & (y0[:, None] >= y0)
        & (x1[:, None] <= x1)
        & (y1[:, None] <= y1)
        & (area[:, None] <= area * (1.0 + DUPLICATE_AREA_RTOL))
    )
    np.fill_diagonal(candidate, False)
    inner, outer = (v.astype(np.int64, copy=False) for v in np.nonzero(candidate))
    if not len(inner):
        return inner, outer
    xy = shapely.get_coordinates(shapely.point_on_surface(polys[inner]))
    inside = shapely.contains_xy(polys[outer], xy[:, 0], xy[:, 1])
    return inner[inside], outer[inside]


def _content_rank(area: FloatArray, loops: Sequence[LoopArray]) -> IntArray:
    """Rank of each loop in the order (area, vertex count, vertex bytes)."""
    order = np.argsort(area, kind="stable")
    sorted_area = area[order]
    if np.any(sorted_area[1:] == sorted_area[:-1]):
        keys = [
            (float(area[i]), len(loops[i]), np.ascontiguousarray(loops[i]).tobytes())
            for i in range(len(loops))
        ]
        order = np.array(sorted(range(len(loops)), key=keys.__getitem__), dtype=np.int64)
    rank = np.empty(len(area), dtype=np.int64)
    rank[order] = np.arange(len(area))
    return rank


def _duplicates(inner: IntArray, outer: IntArray, rank: IntArray, m: int) -> IntArray:
    """For mutually containing pairs: the kept loop of each duplicate group, -1 if kept."""
    group = np.arange(m)

    def find(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = int(group[i])
        return i

    for a, b in zip(inner.tolist(), outer.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            # The root of each group is its first loop in content order.
            if rank[ra] < rank[rb]:
                group[rb] = ra
            else:
                group[ra] = rb
    roots = np.array([find(i) for i in range(m)], dtype=np.int64)
    return np.where(roots != np.arange(m), roots, -1)
