"""One pass over one part file: every layer parsed once, analysed, serialised, measured.

Runs inside a pool process (or inline for one process). Everything the later stages
need comes back in a `FilePassResult`; the per-layer path data goes to a spool file in
the run's temp directory, so the parent only joins bytes when it writes each height.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clf_analysis.build.archive import PartFile, open_archive
from clf_analysis.clf import CLFFormatError, Model, open_clf
from clf_analysis.clf.types import Box, LoopArray
from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError
from clf_analysis.pipeline.pathdata import (
    FileLayer,
    analyse_file_layer,
    file_color,
    fragment,
    layer_records,
)
from clf_analysis.render.plate import Plate
from clf_analysis.render.raster import PlateRaster

# Bounded so that a broken file with a defect on every layer cannot flood platform_info.
MAX_LISTED_INVALID = 2000
MAX_UNCLOSED_ITEMS = 5000
_MASK = (255, 255, 255, 255)


@dataclass(frozen=True)
class FilePassTask:
    archive_path: Path
    part: PartFile
    spool_path: Path
    snapshot_heights: tuple[float, ...]  # heights whose shapes the image stage needs
    plate: Plate


@dataclass(frozen=True)
class SnapshotShape:
    """A shape as the image stage draws it: loops with their hole flags."""

    model_id: int
    kind: str  # "model" or a line kind
    closed: bool
    loops: tuple[LoopArray, ...]
    holes: tuple[bool, ...]


@dataclass
class ModelSeries:
    """Per-layer measurements of one model (a part) in this file, aligned with file layers."""

    area: npt.NDArray[np.float64]  # net area: solids minus holes
    loops: npt.NDArray[np.int64]
    holes: npt.NDArray[np.int64]
    bbox: npt.NDArray[np.float64]  # min x, min y, max x, max y over all layers (NaN: none)
    footprint: npt.NDArray[np.uint8] | None = None  # packed bits of the plate mask


@dataclass
class FilePassResult:
    part: PartFile
    color: str
    name: str
    version: tuple[int, int]
    box: Box
    models: dict[int, Model]
    thickness: float
    zs: npt.NDArray[np.float32]
    warnings: list[str]
    spool_offsets: npt.NDArray[np.int64]
    spool_lengths: npt.NDArray[np.int64]
    loops: npt.NDArray[np.int64]  # per file layer, every listed loop (>= 3 vertices)
    holes: npt.NDArray[np.int64]
    area: npt.NDArray[np.float64]
    series: dict[int, ModelSeries]
    invalid_loops: list[dict[str, object]]
    invalid_count: int
    winding_mismatches: int
    closed_loops: dict[int, int]  # per model id
    total_loops: dict[int, int]
    unclosed: list[tuple[LoopArray, str, float]] = field(default_factory=list)
    snapshots: dict[float, list[SnapshotShape]] = field(default_factory=dict)
    seconds: float = 0.0


ProgressTick = Callable[[int], None]
IsCancelled = Callable[[], bool]


def _check(is_cancelled: IsCancelled) -> None:
    if is_cancelled():
        raise AnalysisCancelled()


def run_file_pass(
    task: FilePassTask, tick: ProgressTick, is_cancelled: IsCancelled
) -> FilePassResult:
    """Analyse every layer of one part file; raises AnalysisError naming file and layer."""
    import time

    started = time.perf_counter()
    part = task.part
    try:
        with open_archive(task.archive_path) as archive:
            data = archive.read(part)
        clf = open_clf(data, name=part.key)
    except CLFFormatError as exc:
        raise AnalysisError(str(exc), stage="parse", file=part.key, kind="clf_format") from exc
    n = len(clf)
    result = FilePassResult(
        part=part,
        color=file_color(part.name),
        name=clf.name,
        version=clf.version,
        box=clf.box,
        models=dict(clf.models),
        thickness=clf.thickness,
        zs=np.array(clf.zs),
        warnings=[],
        spool_offsets=np.zeros(n, dtype=np.int64),
        spool_lengths=np.zeros(n, dtype=np.int64),
        loops=np.zeros(n, dtype=np.int64),
        holes=np.zeros(n, dtype=np.int64),
        area=np.zeros(n),
        series={},
        invalid_loops=[],
        invalid_count=0,
        winding_mismatches=0,
        closed_loops={},
        total_loops={},
    )
    model_names = {m.id: m.name for m in clf.models.values()}
    rasters: dict[int, PlateRaster] = {}
    snapshot_index = _snapshot_layers(clf, task.snapshot_heights)
    position = 0
    z = float("nan")
    try:
        with open(task.spool_path, "wb") as spool:
            for i in range(n):
                _check(is_cancelled)
                layer = clf.layer(i)
                z = layer.z
                fl = analyse_file_layer(layer)
                records = layer_records(
                    fl, clf_name=part.name, clf_folder=part.folder, model_names=model_names
                )
                frag = fragment(records)
                spool.write(frag)
                result.spool_offsets[i] = position
                result.spool_lengths[i] = len(frag)
                position += len(frag)
                _measure(result, i, fl, records, rasters, task.plate)
                for h in snapshot_index.get(i, ()):
                    result.snapshots[h] = _snapshot(fl)
                tick(1)
    except (AnalysisCancelled, AnalysisError):
        raise
    except CLFFormatError as exc:
        raise AnalysisError(
            str(exc), stage="parse", file=part.key, layer=z, kind="clf_format"
        ) from exc
    except Exception as exc:  # any other failure still names where it happened
        raise AnalysisError(
            f"{type(exc).__name__}: {exc}", stage="geometry", file=part.key, layer=z
        ) from exc
    for model_id, raster in rasters.items():
        result.series[model_id].footprint = np.packbits(raster.rgba[..., 3] > 0)
    result.warnings = [f"{part.key}: {w}" for w in clf.warnings]
    result.seconds = time.perf_counter() - started
    return result


def _snapshot_layers(clf: object, heights: tuple[float, ...]) -> dict[int, list[float]]:
    """File layer index -> the requested heights that layer answers (find rules)."""
    out: dict[int, list[float]] = {}
    zs = clf.zs  # type: ignore[attr-defined]
    for h in heights:
        layer = clf.find(h)  # type: ignore[attr-defined]
        if layer.shapes:
            i = int(np.flatnonzero(zs == np.float32(layer.z))[0])
            out.setdefault(i, []).append(h)
    return out


def _snapshot(fl: FileLayer) -> list[SnapshotShape]:
    hole_of = {
        (r.shape_index, r.path_index): bool(fl.analysis.is_hole[k])
        for k, r in enumerate(fl.model_loops)
    }
    return [
        SnapshotShape(
            model_id=shape.model_id,
            kind=shape.kind,
            closed=shape.is_closed,
            loops=tuple(np.array(loop) for loop in shape.loops),
            holes=tuple(hole_of.get((s, p), False) for p in range(len(shape.loops))),
        )
        for s, shape in enumerate(fl.layer.shapes)
    ]


def _measure(
    result: FilePassResult,
    i: int,
    fl: FileLayer,
    records: list[dict[str, object]],
    rasters: dict[int, PlateRaster],
    plate: Plate,
) -> None:
    """Per-layer and per-model figures, invalid and unclosed loops, part footprints."""
    a = fl.analysis
    z = fl.layer.z
    n = len(result.zs)
    result.loops[i] = len(records)
    result.holes[i] = int(np.count_nonzero(a.is_hole & a.counted))
    net = a.signed_by_nesting
    result.area[i] = float(net.sum())
    shapes = fl.layer.shapes
    model_of = np.fromiter(
        (shapes[r.shape_index].model_id for r in fl.model_loops), dtype=np.int64, count=len(a)
    )
    for model_id in np.unique(model_of).tolist():
        sel = model_of == model_id
        series = result.series.get(model_id)
        if series is None:
            series = result.series[model_id] = ModelSeries(
                area=np.zeros(n),
                loops=np.zeros(n, dtype=np.int64),
                holes=np.zeros(n, dtype=np.int64),
                bbox=np.full(4, np.nan),
            )
        series.area[i] = float(net[sel].sum())
        series.loops[i] = int(np.count_nonzero(sel & a.in_nesting))
        series.holes[i] = int(np.count_nonzero(sel & a.is_hole & a.counted))
        b = a.bounds[sel & a.in_nesting]
        if len(b):
            box = np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
            series.bbox = np.array(
                [
                    np.fmin(series.bbox[0], box[0]),
                    np.fmin(series.bbox[1], box[1]),
                    np.fmax(series.bbox[2], box[2]),
                    np.fmax(series.bbox[3], box[3]),
                ]
            )
    # Footprints: one even-odd fill per MODEL shape, so holes through every layer stay open.
    for shape in shapes:
        if shape.kind == "model":
            raster = rasters.get(shape.model_id)
            if raster is None:
                raster = rasters[shape.model_id] = PlateRaster(plate)
            raster.fill_shape(shape.loops, _MASK)
    result.winding_mismatches += int(np.count_nonzero(a.winding_mismatch))
    for k in np.flatnonzero(~a.valid).tolist():
        result.invalid_count += 1
        ref = fl.model_loops[k]
        reason = a.invalid_reason[k] or "invalid"
        loop = shapes[ref.shape_index].loops[ref.path_index]
        if len(result.invalid_loops) < MAX_LISTED_INVALID:
            point = a.invalid_point[k]
            result.invalid_loops.append(
                {
                    "file": result.part.key,
                    "z": round(z, 4),
                    "model_id": shapes[ref.shape_index].model_id,
                    "shape_index": ref.shape_index,
                    "path_index": ref.path_index,
                    "vertices": int(a.vertex_count[k]),
                    "reason": reason,
                    "at": None if np.isnan(point).any() else [round(float(v), 4) for v in point],
                }
            )
        if len(result.unclosed) < MAX_UNCLOSED_ITEMS:
            result.unclosed.append((np.array(loop), reason, z))
    for shape in shapes:
        for loop in shape.loops:
            if len(loop) < 3:
                continue
            result.total_loops[shape.model_id] = result.total_loops.get(shape.model_id, 0) + 1
            if shape.is_closed:
                result.closed_loops[shape.model_id] = result.closed_loops.get(shape.model_id, 0) + 1
            elif len(result.unclosed) < MAX_UNCLOSED_ITEMS:
                result.unclosed.append((np.array(loop), f"{shape.kind} line", z))
