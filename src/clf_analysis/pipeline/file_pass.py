"""One pass over one part file: every layer parsed once, analysed, serialised, measured.

Runs inside a pool process (or inline for one process). Everything the later stages
need comes back in a `FilePassResult`; the per-layer path data goes to a spool file in
the run's temp directory, so the parent only joins bytes when it writes each height.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clf_analysis.build.archive import ArchiveLimits, BuildError, PartFile, open_archive
from clf_analysis.clf import CLFFile, CLFFormatError, Model, open_clf
from clf_analysis.clf.lookup import layer_indices
from clf_analysis.clf.types import Box, LoopArray
from clf_analysis.geometry.stats import BuildStats, PartKey
from clf_analysis.pipeline import heights as H
from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError
from clf_analysis.pipeline.part_keys import part_keys
from clf_analysis.pipeline.path_counts import LayerSample, PathCounts
from clf_analysis.pipeline.pathdata import (
    FileLayer,
    analyse_file_layer,
    file_color,
    fragment,
    layer_records,
)
from clf_analysis.render.figures import UnclosedItem
from clf_analysis.render.plate import Plate
from clf_analysis.render.raster import FootprintMask

# Bounded so that a broken file with a defect on every layer cannot flood platform_info.
MAX_LISTED_INVALID = 2000
MAX_UNCLOSED_ITEMS = 5000
LINES = -1  # key of the line-geometry mask beside the model ids (which are >= 0)
# Progress unit: each file counts TICKS_PER_FILE, spread over its layers, so that the
# parent knows the total before any file is opened.
TICKS_PER_FILE = 1000


@dataclass(frozen=True)
class FilePassTask:
    archive_path: Path
    archive_limits: ArchiveLimits
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
    dashed: bool
    loops: tuple[LoopArray, ...]
    holes: tuple[bool, ...]


@dataclass
class FilePassResult:
    part: PartFile
    color: str
    name: str
    version: tuple[int, int]
    declared_layers: int | None  # the header's layer count (informational, may be absent)
    box: Box
    models: dict[int, Model]
    thickness: float
    zs: npt.NDArray[np.float32]
    warnings: list[str]
    spool_offsets: npt.NDArray[np.int64]
    spool_lengths: npt.NDArray[np.int64]
    stats: BuildStats  # layers keyed by this file's own layer heights
    footprints: dict[int, npt.NDArray[np.uint8]]  # model id -> packed plate mask bits
    lines: npt.NDArray[np.uint8] | None  # packed mask of every line geometry, all layers
    invalid_loops: list[dict[str, object]]
    invalid_count: int
    winding_mismatches: int
    path_counts: dict[int, PathCounts]  # per model id, over all layers
    shape_kinds: dict[str, int]  # shapes per kind over all layers
    samples: list[LayerSample] = field(default_factory=list)  # legacy `layers[]`, by height
    unclosed: list[UnclosedItem] = field(default_factory=list)
    snapshots: dict[float, list[SnapshotShape]] = field(default_factory=dict)
    seconds: float = 0.0


def model_keys(results: list[FilePassResult]) -> dict[PartKey, str]:
    """The string key of every (folder, file, model id) with shapes in the analysed files."""
    return part_keys(
        (r.part.folder, r.part.name, model_id) for r in results for model_id in r.path_counts
    )


ProgressTick = Callable[[int], None]
IsCancelled = Callable[[], bool]


def _check(is_cancelled: IsCancelled) -> None:
    if is_cancelled():
        raise AnalysisCancelled()


def run_file_pass(
    task: FilePassTask, tick: ProgressTick, is_cancelled: IsCancelled
) -> FilePassResult:
    """Analyse every layer of one part file; raises AnalysisError naming file and layer."""
    started = time.perf_counter()
    part = task.part
    try:
        # The package is on the build share: a link put in its place is refused.
        with open_archive(task.archive_path, task.archive_limits, follow_symlinks=False) as archive:
            data = archive.read(part)
    except BuildError as exc:
        raise AnalysisError(str(exc), stage="parse", file=part.key, kind="bad_package") from exc
    try:
        clf = open_clf(data, name=part.key)
    except CLFFormatError as exc:
        raise AnalysisError(str(exc), stage="parse", file=part.key, kind="clf_format") from exc
    n = len(clf)
    result = FilePassResult(
        part=part,
        color=file_color(part.name),
        name=clf.name,
        version=clf.version,
        declared_layers=clf.declared_layer_count,
        box=clf.box,
        models=dict(clf.models),
        thickness=clf.thickness,
        zs=np.array(clf.zs),
        warnings=[],
        spool_offsets=np.zeros(n, dtype=np.int64),
        spool_lengths=np.zeros(n, dtype=np.int64),
        stats=BuildStats(),
        footprints={},
        lines=None,
        invalid_loops=[],
        invalid_count=0,
        winding_mismatches=0,
        path_counts={},
        shape_kinds={},
    )
    model_names = {m.id: m.name for m in clf.models.values()}
    masks: dict[int, FootprintMask] = {}
    snapshot_index = _snapshot_layers(clf, task.snapshot_heights)
    sample_index = _legacy_sample_layers(clf)
    position = 0
    ticked = 0
    duplicates: list[float] = []
    z = float("nan")
    try:
        with open(task.spool_path, "wb") as spool:
            for i in range(n):
                _check(is_cancelled)
                z = float(clf.zs[i])  # named in errors, also when the layer fails to parse
                if i and clf.zs[i] == clf.zs[i - 1]:
                    # The lookup (docs/FORMAT.md#finding-the-layer-at-a-height) answers a
                    # height with the first of equal layers; the others are never
                    # published, so they must not count either.
                    duplicates.append(z)
                    continue
                layer = clf.layer(i)
                fl = analyse_file_layer(layer)
                records = layer_records(
                    fl, clf_name=part.name, clf_folder=part.folder, model_names=model_names
                )
                frag = fragment(records)
                spool.write(frag)
                result.spool_offsets[i] = position
                result.spool_lengths[i] = len(frag)
                position += len(frag)
                _measure(result, fl, masks, task.plate, model_names)
                for h in snapshot_index.get(i, ()):
                    result.snapshots[h] = _snapshot(fl)
                for h in sample_index.get(i, ()):
                    result.samples.append(LayerSample.of(h, round(z, 4), layer.shapes))
                reached = (i + 1) * TICKS_PER_FILE // n
                tick(reached - ticked)
                ticked = reached
    except (AnalysisCancelled, AnalysisError):
        raise
    except CLFFormatError as exc:
        raise AnalysisError(
            str(exc), stage="parse", file=part.key, layer=z, kind="clf_format"
        ) from exc
    except Exception as exc:  # any other failure (geometry, disk full…) still names where
        raise AnalysisError(
            f"{type(exc).__name__}: {exc}", stage="layers", file=part.key, layer=z
        ) from exc
    for key, mask in masks.items():
        if key == LINES:
            result.lines = mask.packed()
        else:
            result.footprints[key] = mask.packed()
    tick(TICKS_PER_FILE - ticked)  # files without layers count as done too
    result.warnings = [f"{part.key}: {w}" for w in clf.warnings]
    if duplicates:
        result.warnings.append(
            f"{part.key}: {len(duplicates)} layers repeat the height of the layer before "
            f"(first at z={duplicates[0]:.4f} mm); only the first of each is analysed"
        )
    result.seconds = time.perf_counter() - started
    return result


def _snapshot_layers(clf: CLFFile, heights: tuple[float, ...]) -> dict[int, list[float]]:
    """File layer index -> the requested heights that layer answers (find rules)."""
    found = layer_indices(
        clf.zs, heights, min_z=clf.box.min_z, max_z=clf.box.max_z, thickness=clf.thickness
    )
    out: dict[int, list[float]] = {}
    for h, i in zip(heights, found.tolist(), strict=True):
        if i >= 0:
            out.setdefault(i, []).append(h)
    return out


def _legacy_sample_layers(clf: CLFFile) -> dict[int, list[float]]:
    """File layer index -> the legacy sample heights it answers (nearest within ±1 mm)."""
    if not len(clf):
        return {}
    zs = np.asarray(clf.zs, dtype=np.float64)
    heights = H.legacy_sample_candidates(zs).tolist()
    found = layer_indices(
        zs, heights, min_z=-np.inf, max_z=np.inf, thickness=H.LEGACY_SAMPLE_WINDOW_MM
    )
    # A repeated height is analysed at its first layer only (see run_file_pass).
    first_of_equal = np.searchsorted(zs, zs, side="left")
    out: dict[int, list[float]] = {}
    for h, i in zip(heights, found.tolist(), strict=True):
        if i >= 0:
            out.setdefault(int(first_of_equal[i]), []).append(h)
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
            dashed=shape.is_dashed,
            loops=tuple(np.array(loop) for loop in shape.loops),
            holes=tuple(hole_of.get((s, p), False) for p in range(len(shape.loops))),
        )
        for s, shape in enumerate(fl.layer.shapes)
    ]


def _measure(
    result: FilePassResult,
    fl: FileLayer,
    masks: dict[int, FootprintMask],
    plate: Plate,
    model_names: dict[int, str],
) -> None:
    """Statistics, invalid and unclosed loops and part footprints of one file layer."""
    a = fl.analysis
    z = fl.layer.z
    shapes = fl.layer.shapes
    owners = [shapes[r.shape_index].model_id for r in fl.model_loops]
    thickness = result.thickness
    result.stats.add_layer(
        result.part.folder, result.part.name, z, thickness, a, owners, model_names
    )
    # Footprints: all loops of a model in one even-odd fill (parity = nesting), so holes
    # through every layer stay open and islands in holes stay solid.
    by_model: dict[int, list[LoopArray]] = {}
    for shape in shapes:
        if shape.kind == "model":
            by_model.setdefault(shape.model_id, []).extend(shape.loops)
        else:
            lines = masks.get(LINES)
            if lines is None:
                lines = masks[LINES] = FootprintMask(plate)
            for loop in shape.loops:
                lines.stroke(loop, closed=shape.is_closed, dashed=shape.is_dashed)
    for model_id, loops in by_model.items():
        mask = masks.get(model_id)
        if mask is None:
            mask = masks[model_id] = FootprintMask(plate)
        mask.add(loops)
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
            result.unclosed.append(UnclosedItem(np.array(loop), reason, z, result.part.key, True))
    for shape in shapes:
        result.shape_kinds[shape.kind] = result.shape_kinds.get(shape.kind, 0) + 1
        counts = result.path_counts.get(shape.model_id)
        if counts is None:
            counts = result.path_counts[shape.model_id] = PathCounts()
        counts.add(shape)
        for loop in shape.loops:
            # Line geometry is unclosed by nature (a DASHED segment has two vertices);
            # MODEL loops were judged above by the nesting analysis.
            if shape.kind == "model" or len(result.unclosed) >= MAX_UNCLOSED_ITEMS:
                continue
            if not shape.is_closed:
                support = "support " if shape.kind == "support" else ""
                reason = f"{'dashed' if shape.is_dashed else 'open'} {support}line"
            elif len(loop) < 3:
                reason = "fewer than 3 vertices"
            else:
                continue
            if len(loop) >= 2:
                result.unclosed.append(
                    UnclosedItem(np.array(loop), reason, z, result.part.key, False, shape.is_dashed)
                )
