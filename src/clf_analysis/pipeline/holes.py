"""The holes of a file layer measured and tracked, as the path data and the summary give them.

`measure_holes` runs once per analysed file layer (before its records are written, so a
hole record can name its track); `part_holes` turns a file's tracks into the per-part
`holes` summary of platform_info.json (`parts[].holes` in docs/OUTPUTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from clf_analysis.geometry.holes import HoleMetrics, HoleTracker, HoleTracks, hole_metrics
from clf_analysis.geometry.loops import analyze_loops
from clf_analysis.layout import mm
from clf_analysis.pipeline.pathdata import FileLayer

# A part lists at most this many tracks (largest first); the counts cover all of them.
MAX_LISTED_TRACKS = 200
# A track this short (in layers) opens and closes again almost at once.
SHORT_TRACK_LAYERS = 3
METRIC_DECIMALS = 4


@dataclass(frozen=True, eq=False)
class LayerHoles:
    """The holes of one file layer: metrics, the track of each, their record fields."""

    metrics: HoleMetrics
    groups: npt.NDArray[np.int64]  # model id of each hole
    tracks: npt.NDArray[np.int64]  # -1: not followed
    by_loop: dict[int, dict[str, object]]  # analysed loop index -> its record's hole fields

    def fields(self, loop: int) -> dict[str, object]:
        """The hole fields of the path-data record of analysed loop `loop` ({} if no hole)."""
        return self.by_loop.get(loop, {})

    @classmethod
    def of(
        cls, metrics: HoleMetrics, groups: npt.NDArray[np.int64], tracks: npt.NDArray[np.int64]
    ) -> LayerHoles:
        rounded = [
            np.round(values, METRIC_DECIMALS).tolist()
            for values in (
                metrics.perimeter,
                metrics.equivalent_diameter,
                metrics.circularity,
                metrics.bounds,
                metrics.centroid,
            )
        ]
        by_loop = {
            loop: {
                "perimeter_mm": perimeter,
                "equivalent_diameter_mm": diameter,
                "circularity": circularity,
                "bounding_box": box,
                "centroid": centre,
                "hole_track": track if track >= 0 else None,
            }
            for loop, perimeter, diameter, circularity, box, centre, track in zip(
                metrics.index.tolist(), *rounded, tracks.tolist(), strict=True
            )
        }
        return cls(metrics, groups, tracks, by_loop)


NO_HOLES = LayerHoles.of(
    hole_metrics([], analyze_loops([])), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
)


@dataclass
class HoleFollower:
    """Follows the holes of one file through its layers (`measure_holes`)."""

    tracker: HoleTracker = field(default_factory=HoleTracker)
    previous: LayerHoles | None = None
    previous_key: bytes = b""


def measure_holes(fl: FileLayer, follower: HoleFollower) -> LayerHoles:
    """Measure the holes of one file layer and follow them from the layer before.

    A layer whose holes are those of the layer before (same loops, same places among the
    file's loops: a prismatic section, the common case) reuses its measures.
    """
    a = fl.analysis
    shapes = fl.layer.shapes
    index = np.flatnonzero(a.is_hole)
    if not len(index):
        follower.tracker.add(fl.layer.z, NO_HOLES.metrics, NO_HOLES.groups)
        follower.previous, follower.previous_key = None, b""
        return NO_HOLES
    refs = [fl.model_loops[k] for k in index.tolist()]
    groups = np.fromiter(
        (shapes[r.shape_index].model_id for r in refs), dtype=np.int64, count=len(refs)
    )
    loops = [shapes[r.shape_index].loops[r.path_index] for r in refs]
    key = b"".join(
        [groups.tobytes(), index.tobytes(), a.parent[index].tobytes(), a.counted[index].tobytes()]
        + [np.ascontiguousarray(loop).tobytes() for loop in loops]
    )
    previous = follower.previous
    if previous is not None and key == follower.previous_key:
        metrics = previous.metrics
    else:
        metrics = hole_metrics(
            [shapes[r.shape_index].loops[r.path_index] for r in fl.model_loops], a
        )
    tracks = follower.tracker.add(fl.layer.z, metrics, groups)
    if (
        previous is not None
        and metrics is previous.metrics
        and np.array_equal(tracks, previous.tracks)
    ):
        holes = previous
    else:
        holes = LayerHoles.of(metrics, groups, tracks)
    follower.previous, follower.previous_key = holes, key
    return holes


def part_holes(
    tracks: HoleTracks, model_id: int, z_range: tuple[float, float] | None
) -> dict[str, Any]:
    """The `holes` summary of one part from its file's tracks (those of its model id).

    A track "opens inside" the part when it starts above the part's first layer and
    "closes inside" when it ends below its last: a hole that is not open from bottom to
    top, the ones defect detection looks at.
    """
    mine = np.flatnonzero(tracks.group == model_id)
    z_lo, z_hi = z_range if z_range is not None else (np.inf, -np.inf)
    first = np.round(tracks.z_first[mine], METRIC_DECIMALS)
    last = np.round(tracks.z_last[mine], METRIC_DECIMALS)
    opens = first > z_lo
    closes = last < z_hi
    layers = tracks.layers[mine]
    # Largest first, then lowest: what a reader looks for first.
    order = np.lexsort((first, -tracks.area_max[mine]))
    listed = []
    for j in order[:MAX_LISTED_TRACKS].tolist():
        t = int(mine[j])
        listed.append(
            {
                "track": t,
                "z_range": [float(first[j]), float(last[j])],
                "layers": int(layers[j]),
                "area_mm2": _pair(tracks.area_min[t], tracks.area_max[t]),
                "equivalent_diameter_mm": _pair(
                    2.0 * np.sqrt(tracks.area_min[t] / np.pi),
                    2.0 * np.sqrt(tracks.area_max[t] / np.pi),
                ),
                "circularity": _pair(tracks.circularity_min[t], tracks.circularity_max[t]),
                "centroid": [mm(v) for v in tracks.centroid[t].tolist()],
                "bounding_box": [mm(v) for v in tracks.bounds[t].tolist()],
                "opens_inside": bool(opens[j]),
                "closes_inside": bool(closes[j]),
            }
        )
    return {
        "tracks": len(mine),
        "opening_inside": int(opens.sum()),
        "closing_inside": int(closes.sum()),
        "short_tracks": int((layers < SHORT_TRACK_LAYERS).sum()),
        "listed": listed,
    }


def _pair(lo: float, hi: float) -> list[float]:
    return [round(float(lo), METRIC_DECIMALS), round(float(hi), METRIC_DECIMALS)]
