"""The holes of a file layer measured and tracked, as the path data and the summary give them.

`measure_holes` runs once per analysed file layer (before its records are written, so a
hole record can name its track); `part_holes` turns a file's tracks into the per-part
`holes` summary of platform_info.json (docs/OUTPUTS.md, "Holes of a part").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from clf_analysis.geometry.holes import HoleMetrics, HoleTracker, HoleTracks, hole_metrics
from clf_analysis.layout import mm
from clf_analysis.pipeline.pathdata import FileLayer

# A part lists at most this many tracks (largest first); the counts cover all of them.
MAX_LISTED_TRACKS = 200
# A track this short (in layers) opens and closes again almost at once.
SHORT_TRACK_LAYERS = 3
METRIC_DECIMALS = 4


@dataclass(frozen=True, eq=False)
class LayerHoles:
    """The holes of one file layer: metrics, and the track of each (-1: not tracked)."""

    metrics: HoleMetrics
    tracks: npt.NDArray[np.int64]
    row_of: npt.NDArray[np.int64]  # analysed loop index -> row of `metrics`, -1 if not a hole

    def fields(self, loop: int) -> dict[str, object]:
        """The hole fields of the path-data record of analysed loop `loop` ({} if no hole)."""
        j = int(self.row_of[loop]) if loop < len(self.row_of) else -1
        if j < 0:
            return {}
        m = self.metrics
        track = int(self.tracks[j])
        return {
            "perimeter_mm": round(float(m.perimeter[j]), METRIC_DECIMALS),
            "equivalent_diameter_mm": round(float(m.equivalent_diameter[j]), METRIC_DECIMALS),
            "circularity": round(float(m.circularity[j]), METRIC_DECIMALS),
            "bounding_box": [mm(v) for v in m.bounds[j].tolist()],
            "centroid": [mm(v) for v in m.centroid[j].tolist()],
            "hole_track": track if track >= 0 else None,
        }


def measure_holes(fl: FileLayer, tracker: HoleTracker) -> LayerHoles:
    """Measure the holes of one file layer and follow them from the layer before."""
    a = fl.analysis
    shapes = fl.layer.shapes
    loops = [shapes[r.shape_index].loops[r.path_index] for r in fl.model_loops]
    metrics = hole_metrics(loops, a)
    groups = np.fromiter(
        (shapes[fl.model_loops[k].shape_index].model_id for k in metrics.index.tolist()),
        dtype=np.int64,
        count=len(metrics),
    )
    tracks = tracker.add(fl.layer.z, metrics, groups)
    row_of = np.full(len(a), -1, dtype=np.int64)
    row_of[metrics.index] = np.arange(len(metrics))
    return LayerHoles(metrics, tracks, row_of)


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
