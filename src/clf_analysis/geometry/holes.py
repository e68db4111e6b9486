"""Holes measured one by one, and followed from layer to layer.

`hole_metrics` measures every hole of one file layer (the loops `analyze_loops` found at
odd nesting depth) in one pass over their concatenated vertices: area, equivalent
diameter, perimeter, circularity, bounding box, centroid and parent loop.

`HoleTracker` follows the holes of one part file through its layers, in z order, and
gives each hole a track id: the same id on every consecutive layer the hole persists.

Tracking rule. A hole on a layer continues a hole of the file's previous layer when both
belong to the same group (the pipeline passes model ids) and

1. their vertices are identical (the common case of a prismatic section), or
2. the centroid of one lies inside the polygon of the other, or, failing that for every
   candidate,
3. their polygons overlap (intersection area > 0, computed only for the few pairs the
   cheaper tests leave undecided: crescent or C-shaped holes whose centroid lies outside).

When one hole qualifies with several, pairs are made by mutually nearest centroids; what
is left unpaired starts a new track (the hole opens) or ends one (it closed on the layer
before). A hole that splits keeps its track in one branch and opens a new track in the
other; two that merge close all but one. Only holes whose area counts (see
`LoopAnalysis.counted`) are tracked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from clf_analysis.clf.types import LoopArray
from clf_analysis.geometry.loops import LoopAnalysis

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Above this many candidate (new, old) pairs an R-tree finds the overlapping boxes
# instead of the dense n x m comparison.
DENSE_PAIRS_MAX = 250_000


def equivalent_diameter(area: npt.ArrayLike) -> FloatArray:
    """Diameter of the circle of the same area: 2 √(A / π)."""
    return np.asarray(2.0 * np.sqrt(np.asarray(area, dtype=np.float64) / math.pi))


@dataclass(frozen=True, eq=False)
class HoleMetrics:
    """Measures of the holes of one file layer; row j is loop `index[j]` of the analysis.

    `bounds` rows are (min x, min y, max x, max y); `parent` is the index of the smallest
    loop containing the hole (an index into the analysed loops, like `index`);
    `counted` says whether the hole's area counts (not a duplicate, not self-crossing).
    """

    index: IntArray
    area: FloatArray
    perimeter: FloatArray
    circularity: FloatArray
    bounds: FloatArray
    centroid: FloatArray
    parent: IntArray
    counted: BoolArray
    # The holes' vertices, concatenated (float64), and where each hole starts: the
    # tracker compares and tests polygons with them.
    xy: FloatArray
    starts: IntArray
    counts: IntArray

    def __len__(self) -> int:
        return len(self.index)

    @property
    def equivalent_diameter(self) -> FloatArray:
        return equivalent_diameter(self.area)


def hole_metrics(loops: Sequence[LoopArray], analysis: LoopAnalysis) -> HoleMetrics:
    """Area, perimeter, circularity 4πA/P², bounds, centroid and parent of every hole.

    `loops` are the loops `analysis` was computed from, in the same order. Holes have at
    least 3 finite vertices (anything less takes no part in nesting), so every measure
    is defined; circularity is 1 for a circle and smaller for any other shape.
    """
    index = np.flatnonzero(analysis.is_hole)
    if not len(index):
        return _NO_HOLES
    counts = analysis.vertex_count[index]
    xy = np.concatenate([loops[i] for i in index.tolist()], dtype=np.float64).reshape(-1, 2)
    starts = np.zeros(len(index), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    # Each vertex's successor in its own loop: the last vertex closes on the first.
    following = np.arange(1, len(xy) + 1)
    following[starts + counts - 1] = starts
    # Relative to each loop's first vertex, as the shoelace of `analyze_loops`: no digits
    # lost far from the origin, and the closing edge's cross product vanishes.
    local = xy - np.repeat(xy[starts], counts, axis=0)
    step = local[following] - local
    perimeter = np.add.reduceat(np.hypot(step[:, 0], step[:, 1]), starts)
    x, y = local[:, 0], local[:, 1]
    xn, yn = local[following, 0], local[following, 1]
    cross = x * yn - xn * y
    signed = 0.5 * np.add.reduceat(cross, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = np.add.reduceat((x + xn) * cross, starts) / (6.0 * signed)
        cy = np.add.reduceat((y + yn) * cross, starts) / (6.0 * signed)
    flat = signed == 0.0
    if flat.any():  # a self-crossing hole whose lobes cancel: the vertex mean will do
        cx[flat] = (np.add.reduceat(x, starts) / counts)[flat]
        cy[flat] = (np.add.reduceat(y, starts) / counts)[flat]
    centroid = np.column_stack((cx, cy)) + xy[starts]
    area = analysis.area[index]
    return HoleMetrics(
        index=index,
        area=area,
        perimeter=perimeter,
        circularity=4.0 * math.pi * area / (perimeter * perimeter),
        bounds=analysis.bounds[index],
        centroid=centroid,
        parent=analysis.parent[index],
        counted=analysis.counted[index],
        xy=xy,
        starts=starts,
        counts=counts,
    )


_NO_HOLES = HoleMetrics(
    index=np.zeros(0, dtype=np.int64),
    area=np.zeros(0),
    perimeter=np.zeros(0),
    circularity=np.zeros(0),
    bounds=np.zeros((0, 4)),
    centroid=np.zeros((0, 2)),
    parent=np.zeros(0, dtype=np.int64),
    counted=np.zeros(0, dtype=bool),
    xy=np.zeros((0, 2)),
    starts=np.zeros(0, dtype=np.int64),
    counts=np.zeros(0, dtype=np.int64),
)


@dataclass(frozen=True, eq=False)
class _Previous:
    """The tracked holes of the layer before: their groups, tracks and polygons."""

    groups: IntArray
    tracks: IntArray
    metrics: HoleMetrics
    rows: IntArray  # which rows of `metrics` were tracked (the counted holes)
    key: bytes  # groups and vertices, to recognise an identical layer at once


@dataclass
class HoleTracks:
    """Every track of one file: struct of arrays, row = track id.

    Per track: its group, first and last height, layer count, smallest and largest area
    and circularity, the centroid where it opened, and the union of its bounding boxes.
    """

    group: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    z_first: FloatArray = field(default_factory=lambda: np.zeros(0))
    z_last: FloatArray = field(default_factory=lambda: np.zeros(0))
    layers: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    area_min: FloatArray = field(default_factory=lambda: np.zeros(0))
    area_max: FloatArray = field(default_factory=lambda: np.zeros(0))
    circularity_min: FloatArray = field(default_factory=lambda: np.zeros(0))
    circularity_max: FloatArray = field(default_factory=lambda: np.zeros(0))
    centroid: FloatArray = field(default_factory=lambda: np.zeros((0, 2)))
    bounds: FloatArray = field(default_factory=lambda: np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.group)


class HoleTracker:
    """Gives the holes of one file's layers, fed in z order, their track ids.

    See the module docstring for the rule. `add` once per layer; `tracks` holds every
    track so far (ids are row numbers, in order of opening).
    """

    def __init__(self) -> None:
        self._size = 0
        self._store = HoleTracks()
        self._previous: _Previous | None = None

    @property
    def tracks(self) -> HoleTracks:
        s = self._store
        n = self._size
        return HoleTracks(
            s.group[:n].copy(),
            s.z_first[:n].copy(),
            s.z_last[:n].copy(),
            s.layers[:n].copy(),
            s.area_min[:n].copy(),
            s.area_max[:n].copy(),
            s.circularity_min[:n].copy(),
            s.circularity_max[:n].copy(),
            s.centroid[:n].copy(),
            s.bounds[:n].copy(),
        )

    def add(self, z: float, metrics: HoleMetrics, groups: npt.ArrayLike) -> IntArray:
        """Track ids of the holes of the layer at `z` (aligned with `metrics`; -1 for holes
        that are not counted). `groups[j]` is the group (model id) of hole j."""
        group_of = np.asarray(groups, dtype=np.int64).reshape(-1)
        rows = np.flatnonzero(metrics.counted)
        ids = np.full(len(metrics), -1, dtype=np.int64)
        if not len(rows):
            self._previous = None
            return ids
        groups_here = group_of[rows]
        key = _layer_key(groups_here, metrics, rows)
        previous = self._previous
        if previous is not None and previous.key == key:
            # The same holes as on the layer before: their extremes are already counted.
            tracks = previous.tracks
            self._store.z_last[tracks] = z
            self._store.layers[tracks] += 1
            ids[rows] = tracks
            return ids
        else:
            tracks = np.full(len(rows), -1, dtype=np.int64)
            if previous is not None:
                new_at, old_at = _match(metrics, rows, groups_here, previous)
                tracks[new_at] = previous.tracks[old_at]
            opening = np.flatnonzero(tracks < 0)
            if len(opening):
                tracks[opening] = self._open(z, groups_here[opening], metrics, rows[opening])
            self._extend(tracks, z, metrics, rows)
        ids[rows] = tracks
        self._previous = _Previous(groups_here, tracks, metrics, rows, key)
        return ids

    def _open(self, z: float, groups: IntArray, metrics: HoleMetrics, rows: IntArray) -> IntArray:
        n = len(rows)
        first = self._size
        self._reserve(first + n)
        s = self._store
        new = slice(first, first + n)
        s.group[new] = groups
        s.z_first[new] = z
        s.z_last[new] = z
        s.layers[new] = 0
        s.area_min[new] = np.inf
        s.area_max[new] = -np.inf
        s.circularity_min[new] = np.inf
        s.circularity_max[new] = -np.inf
        s.centroid[new] = metrics.centroid[rows]
        s.bounds[new] = [np.inf, np.inf, -np.inf, -np.inf]
        self._size += n
        return np.arange(first, first + n, dtype=np.int64)

    def _extend(self, tracks: IntArray, z: float, metrics: HoleMetrics, rows: IntArray) -> None:
        s = self._store
        s.z_last[tracks] = z
        s.layers[tracks] += 1
        s.area_min[tracks] = np.minimum(s.area_min[tracks], metrics.area[rows])
        s.area_max[tracks] = np.maximum(s.area_max[tracks], metrics.area[rows])
        c = metrics.circularity[rows]
        s.circularity_min[tracks] = np.minimum(s.circularity_min[tracks], c)
        s.circularity_max[tracks] = np.maximum(s.circularity_max[tracks], c)
        b = metrics.bounds[rows]
        s.bounds[tracks, :2] = np.minimum(s.bounds[tracks, :2], b[:, :2])
        s.bounds[tracks, 2:] = np.maximum(s.bounds[tracks, 2:], b[:, 2:])

    def _reserve(self, size: int) -> None:
        s = self._store
        if size <= len(s.group):
            return
        capacity = max(size, 2 * len(s.group), 16)

        def grown(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            out = np.zeros((capacity, *a.shape[1:]), dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._store = HoleTracks(**{f: grown(getattr(s, f)) for f in _TRACK_FIELDS})


_TRACK_FIELDS = tuple(HoleTracks.__dataclass_fields__)


def _layer_key(groups: IntArray, metrics: HoleMetrics, rows: IntArray) -> bytes:
    if len(rows) == len(metrics):
        xy = metrics.xy
    else:
        keep = np.repeat(metrics.counted, metrics.counts)
        xy = metrics.xy[keep]
    return groups.tobytes() + metrics.counts[rows].tobytes() + xy.tobytes()


def _match(
    metrics: HoleMetrics, rows: IntArray, groups: IntArray, previous: _Previous
) -> tuple[IntArray, IntArray]:
    """Pairs (position among `rows`, position among the previous tracked holes)."""
    old_m, old_rows = previous.metrics, previous.rows
    new_i, old_i = _box_pairs(metrics.bounds[rows], old_m.bounds[old_rows])
    same = groups[new_i] == previous.groups[old_i]
    new_i, old_i = new_i[same], old_i[same]
    if not len(new_i):
        return new_i, old_i
    new_c, old_c = metrics.centroid[rows], old_m.centroid[old_rows]
    linked = _contains(old_m, old_rows[old_i], new_c[new_i])
    other_way = np.flatnonzero(~linked)
    if len(other_way):
        linked[other_way] = _contains(metrics, rows[new_i[other_way]], old_c[old_i[other_way]])
    # Pairs whose centroids both miss: decide by overlap, for holes still unpaired.
    undecided = np.flatnonzero(~linked)
    if len(undecided):
        paired_new = np.zeros(len(rows), dtype=bool)
        paired_old = np.zeros(len(old_rows), dtype=bool)
        paired_new[new_i[linked]] = True
        paired_old[old_i[linked]] = True
        undecided = undecided[~paired_new[new_i[undecided]] & ~paired_old[old_i[undecided]]]
        if len(undecided):
            linked[undecided] = _overlap(
                metrics, rows[new_i[undecided]], old_m, old_rows[old_i[undecided]]
            )
    new_i, old_i = new_i[linked], old_i[linked]
    distance = np.hypot(*(new_c[new_i] - old_c[old_i]).T)
    return _mutually_nearest(new_i, old_i, distance)


def _box_pairs(a: FloatArray, b: FloatArray) -> tuple[IntArray, IntArray]:
    """All (i, j) with box a[i] meeting box b[j] (closed boxes)."""
    if len(a) * len(b) <= DENSE_PAIRS_MAX:
        meet = (
            (a[:, None, 0] <= b[None, :, 2])
            & (b[None, :, 0] <= a[:, None, 2])
            & (a[:, None, 1] <= b[None, :, 3])
            & (b[None, :, 1] <= a[:, None, 3])
        )
        i, j = np.nonzero(meet)
        return i.astype(np.int64), j.astype(np.int64)
    tree = shapely.STRtree(shapely.box(*b.T))
    i, j = tree.query(shapely.box(*a.T), predicate="intersects")
    return i.astype(np.int64), j.astype(np.int64)


def _contains(metrics: HoleMetrics, rows: IntArray, points: FloatArray) -> BoolArray:
    """Whether points[p] lies inside the hole rows[p] of `metrics` (even-odd rule).

    Every pair's polygon edges are laid end to end and tested against its point at once.
    """
    counts = metrics.counts[rows]
    pair_start = np.zeros(len(rows), dtype=np.int64)
    np.cumsum(counts[:-1], out=pair_start[1:])
    # Per edge: its pair, its first vertex and the one that follows in the same loop.
    pair = np.repeat(np.arange(len(rows)), counts)
    offset = np.arange(len(pair)) - pair_start[pair]
    first = metrics.starts[rows][pair]
    vertex = first + offset
    following = first + (offset + 1) % counts[pair]
    px, py = points[pair, 0], points[pair, 1]
    x0, y0 = metrics.xy[vertex, 0], metrics.xy[vertex, 1]
    x1, y1 = metrics.xy[following, 0], metrics.xy[following, 1]
    straddles = (y0 > py) != (y1 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    crossings = straddles & (px < at)
    return np.add.reduceat(crossings.astype(np.int64), pair_start) % 2 == 1


def _overlap(a: HoleMetrics, a_rows: IntArray, b: HoleMetrics, b_rows: IntArray) -> BoolArray:
    """Whether the polygons of holes a_rows[p] and b_rows[p] overlap (area > 0)."""
    pa, pb = _polygons(a, a_rows), _polygons(b, b_rows)
    # make_valid: a self-touching hole is still counted and must not make GEOS raise.
    shared = shapely.intersection(shapely.make_valid(pa), shapely.make_valid(pb))
    return np.asarray(shapely.area(shared) > 0.0)


def _polygons(m: HoleMetrics, rows: IntArray) -> npt.NDArray[np.object_]:
    parts = [m.xy[m.starts[r] : m.starts[r] + m.counts[r]] for r in rows.tolist()]
    return np.array([shapely.polygons(p) for p in parts], dtype=object)


def _mutually_nearest(
    new_i: IntArray, old_i: IntArray, distance: FloatArray
) -> tuple[IntArray, IntArray]:
    """One-to-one pairs: each other's nearest, in rounds over the holes still unpaired
    (a hole whose nearest candidate paired with another may pair with its next one)."""
    if not len(new_i) or (np.bincount(new_i).max() == 1 and np.bincount(old_i).max() == 1):
        return new_i, old_i  # one candidate each: nothing to choose
    # In (new, old) order, the globally nearest pair that comes first is kept by both of
    # its holes, so every round keeps one pair at least.
    order = np.lexsort((old_i, new_i))
    new_i, old_i, distance = new_i[order], old_i[order], distance[order]
    kept_new: list[IntArray] = []
    kept_old: list[IntArray] = []
    while len(new_i):
        keep = _nearest_of_each(new_i, distance) & _nearest_of_each(old_i, distance)
        kept_new.append(new_i[keep])
        kept_old.append(old_i[keep])
        free = ~np.isin(new_i, new_i[keep]) & ~np.isin(old_i, old_i[keep])
        new_i, old_i, distance = new_i[free], old_i[free], distance[free]
    if not kept_new:
        return new_i, old_i
    return np.concatenate(kept_new), np.concatenate(kept_old)


def _nearest_of_each(owner: IntArray, distance: FloatArray) -> BoolArray:
    """Marks, for each distinct owner, its pair of smallest distance (first on ties)."""
    order = np.lexsort((distance, owner))  # stable: equal distances keep their order
    first = np.ones(len(order), dtype=bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    best = np.zeros(len(owner), dtype=bool)
    best[order[first]] = True
    return best
