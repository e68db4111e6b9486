"""One pass over one part file: every layer parsed once, analysed, serialised, measured.

Runs inside a pool process (or inline for one process). Everything the later stages
need comes back in a `FilePassResult`; the per-layer path data goes to a spool file in
the run's temp directory, so the parent only joins bytes when it writes each height.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clf_analysis.abp.archive import ArchiveLimits, PartFile, open_archive
from clf_analysis.abp.errors import BuildError
from clf_analysis.clf import CLFFile, CLFFormatError, Model, open_clf
from clf_analysis.clf.lookup import layer_indices
from clf_analysis.clf.types import Box, LoopArray
from clf_analysis.geometry.holes import HoleTracks
from clf_analysis.geometry.stats import BuildStats, PartKey
from clf_analysis.layout import mm
from clf_analysis.pipeline import heights as H
from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError
from clf_analysis.pipeline.holes import HoleFollower, measure_holes
from clf_analysis.pipeline.part_keys import part_keys
from clf_analysis.pipeline.path_counts import LayerSample, PathCounts
from clf_analysis.pipeline.pathdata import (
    FileLayer,
    analyse_file_layer,
    file_color,
    fragment,
    layer_records,
)
from clf_analysis.pipeline.snapshots import LayerSnapshot, layer_snapshot
from clf_analysis.render.items import UnclosedItem
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
class FileHeader:
    """What a part file says of itself: header fields, models and layer index."""

    version: tuple[int, int]
    declared_layers: int | None  # the header's layer count (informational, may be absent)
    box: Box
    models: dict[int, Model]
    thickness: float
    zs: npt.NDArray[np.float32]

    @classmethod
    def of(cls, clf: CLFFile) -> FileHeader:
        return cls(
            version=clf.version,
            declared_layers=clf.declared_layer_count,
            box=clf.box,
            models=dict(clf.models),
            thickness=clf.thickness,
            zs=np.array(clf.zs),
        )


@dataclass(frozen=True)
class SpoolIndex:
    """Where each layer's path-data fragment lies in the file's spool (length 0: none)."""

    offsets: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]

    def read(self, fd: int, layer: int) -> bytes:
        """The fragment of file layer `layer` from the open spool `fd` (b"" for none)."""
        length = int(self.lengths[layer])
        return os.pread(fd, length, int(self.offsets[layer])) if length else b""


@dataclass(frozen=True)
class FilePassResult:
    """Everything the later stages need of one part file, built once the pass is done."""

    part: PartFile
    color: str
    header: FileHeader
    spool: SpoolIndex
    stats: BuildStats  # layers keyed by this file's own layer heights
    footprints: dict[int, npt.NDArray[np.uint8]]  # model id -> packed plate mask bits
    lines: npt.NDArray[np.uint8] | None  # packed mask of every line geometry, all layers
    invalid_loops: list[dict[str, object]]  # the first MAX_LISTED_INVALID
    invalid_count: int
    winding_mismatches: int
    path_counts: dict[int, PathCounts]  # per model id, over all layers
    shape_kinds: dict[str, int]  # shapes per kind over all layers
    samples: list[LayerSample]  # legacy `layers[]`, by height
    unclosed: list[UnclosedItem]  # the first MAX_UNCLOSED_ITEMS
    snapshots: dict[float, LayerSnapshot]  # the file layer answering each snapshot height
    hole_tracks: HoleTracks  # every hole followed through the file's layers
    warnings: list[str]
    seconds: float


def model_keys(results: list[FilePassResult]) -> dict[PartKey, str]:
    """The string key of every (folder, file, model id) with shapes in the analysed files."""
    return part_keys(
        PartKey(r.part.folder, r.part.name, model_id) for r in results for model_id in r.path_counts
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
    spool_index = SpoolIndex(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    model_names = {m.id: m.name for m in clf.models.values()}
    tally = _Tally(part, clf.thickness, task.plate, model_names)
    snapshots: dict[float, LayerSnapshot] = {}
    samples: list[LayerSample] = []
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
                holes = measure_holes(fl, tally.holes)
                records = layer_records(
                    fl,
                    clf_name=part.name,
                    clf_folder=part.folder,
                    model_names=model_names,
                    hole_fields=holes.fields,
                )
                frag = fragment(records)
                spool.write(frag)
                spool_index.offsets[i] = position
                spool_index.lengths[i] = len(frag)
                position += len(frag)
                tally.add(fl)
                for h in snapshot_index.get(i, ()):
                    snapshots[h] = layer_snapshot(fl)
                for h in sample_index.get(i, ()):
                    samples.append(LayerSample.of(h, mm(z), layer.shapes))
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
    tick(TICKS_PER_FILE - ticked)  # files without layers count as done too
    warnings = [f"{part.key}: {w}" for w in clf.warnings]
    if duplicates:
        warnings.append(
            f"{part.key}: {len(duplicates)} layers repeat the height of the layer before "
            f"(first at z={duplicates[0]:.4f} mm); only the first of each is analysed"
        )
    footprints = {key: mask.packed() for key, mask in tally.masks.items() if key != LINES}
    lines = tally.masks.get(LINES)
    return FilePassResult(
        part=part,
        color=file_color(part.name),
        header=FileHeader.of(clf),
        spool=spool_index,
        stats=tally.stats,
        footprints=footprints,
        lines=None if lines is None else lines.packed(),
        invalid_loops=tally.invalid_loops,
        invalid_count=tally.invalid_count,
        winding_mismatches=tally.winding_mismatches,
        path_counts=tally.path_counts,
        shape_kinds=tally.shape_kinds,
        samples=samples,
        unclosed=tally.unclosed,
        snapshots=snapshots,
        hole_tracks=tally.holes.tracker.tracks,
        warnings=warnings,
        seconds=time.perf_counter() - started,
    )


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


@dataclass
class _Tally:
    """The running measures of one file pass, layer by layer (see `FilePassResult`)."""

    part: PartFile
    thickness: float
    plate: Plate
    model_names: dict[int, str]
    stats: BuildStats = field(default_factory=BuildStats)
    masks: dict[int, FootprintMask] = field(default_factory=dict)  # model id or LINES
    invalid_loops: list[dict[str, object]] = field(default_factory=list)
    invalid_count: int = 0
    winding_mismatches: int = 0
    path_counts: dict[int, PathCounts] = field(default_factory=dict)
    shape_kinds: dict[str, int] = field(default_factory=dict)
    unclosed: list[UnclosedItem] = field(default_factory=list)
    holes: HoleFollower = field(default_factory=HoleFollower)

    def _mask(self, key: int) -> FootprintMask:
        mask = self.masks.get(key)
        if mask is None:
            mask = self.masks[key] = FootprintMask(self.plate)
        return mask

    def add(self, fl: FileLayer) -> None:
        """Statistics, invalid and unclosed loops and part footprints of one file layer."""
        a = fl.analysis
        z = fl.layer.z
        shapes = fl.layer.shapes
        file_key = self.part.key
        owners = [shapes[r.shape_index].model_id for r in fl.model_loops]
        self.stats.add_layer(
            self.part.folder, self.part.name, z, self.thickness, a, owners, self.model_names
        )
        # Footprints: all loops of a model in one even-odd fill (parity = nesting), so
        # holes through every layer stay open and islands in holes stay solid.
        by_model: dict[int, list[LoopArray]] = {}
        for shape in shapes:
            if shape.kind == "model":
                by_model.setdefault(shape.model_id, []).extend(shape.loops)
            else:
                lines = self._mask(LINES)
                for loop in shape.loops:
                    lines.stroke(loop, closed=shape.is_closed, dashed=shape.is_dashed)
        for model_id, loops in by_model.items():
            self._mask(model_id).add(loops)
        self.winding_mismatches += int(np.count_nonzero(a.winding_mismatch))
        for k in np.flatnonzero(~a.valid).tolist():
            self.invalid_count += 1
            ref = fl.model_loops[k]
            reason = a.invalid_reason[k] or "invalid"
            loop = shapes[ref.shape_index].loops[ref.path_index]
            if len(self.invalid_loops) < MAX_LISTED_INVALID:
                point = a.invalid_point[k]
                self.invalid_loops.append(
                    {
                        "file": file_key,
                        "z": mm(z),
                        "model_id": shapes[ref.shape_index].model_id,
                        "shape_index": ref.shape_index,
                        "path_index": ref.path_index,
                        "vertices": int(a.vertex_count[k]),
                        "reason": reason,
                        "at": None if np.isnan(point).any() else [mm(v) for v in point],
                    }
                )
            if len(self.unclosed) < MAX_UNCLOSED_ITEMS:
                self.unclosed.append(UnclosedItem(np.array(loop), reason, z, file_key, True))
        for shape in shapes:
            self.shape_kinds[shape.kind] = self.shape_kinds.get(shape.kind, 0) + 1
            counts = self.path_counts.get(shape.model_id)
            if counts is None:
                counts = self.path_counts[shape.model_id] = PathCounts()
            counts.add(shape)
            for loop in shape.loops:
                # Line geometry is unclosed by nature (a DASHED segment has two vertices);
                # MODEL loops were judged above by the nesting analysis.
                if shape.kind == "model" or len(self.unclosed) >= MAX_UNCLOSED_ITEMS:
                    continue
                if not shape.is_closed:
                    support = "support " if shape.kind == "support" else ""
                    reason = f"{'dashed' if shape.is_dashed else 'open'} {support}line"
                elif len(loop) < 3:
                    reason = "fewer than 3 vertices"
                else:
                    continue
                if len(loop) >= 2:
                    self.unclosed.append(
                        UnclosedItem(
                            np.array(loop),
                            reason,
                            z,
                            file_key,
                            False,
                            shape.is_dashed,
                            by_design=not shape.is_closed,
                        )
                    )
