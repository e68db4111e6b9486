"""One analysis run of one build: `run(...)` is the pipeline's entry point.

Stages: prepare (find and open the package, exclusions) → layers (every included part
file parsed once, all its layers analysed, in parallel over files) → pathdata (one JSON
per layer height, joined from per-file fragments) → images → publish (atomic swap under
the build lock, run log). Nothing outside the run's temp directory changes before the
publish stage; a failed or cancelled run removes its temp directory.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from clf_analysis.abp.archive import ArchiveLimits, PartFile, open_archive
from clf_analysis.abp.discovery import (
    BuildPackage,
    build_folder,
    open_build_folder,
    package_in,
    resolve_package_link,
)
from clf_analysis.abp.errors import (
    BuildError,
    BuildNotFound,
    BuildRefused,
    ShareAccessDenied,
    UnsafeSharePath,
)
from clf_analysis.abp.exclusions import Exclusions, load_exclusions
from clf_analysis.abp.share import BuildFolder, ShareDir, share_relative
from clf_analysis.clf.lookup import layer_indices
from clf_analysis.geometry.stats import BuildStats
from clf_analysis.layout import (
    OUTPUT_DIR,
    PATHDATA_DIR,
    PLATFORM_INFO,
    RUN_LOCK_FILE,
    RUN_LOG,
    height_name,
    pathdata_name,
    spool_name,
    temp_output_name,
)
from clf_analysis.pipeline import heights as H
from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError, BuildLocked
from clf_analysis.pipeline.file_pass import TICKS_PER_FILE, FilePassResult, FilePassTask
from clf_analysis.pipeline.images import ImageInputs, render_images
from clf_analysis.pipeline.params import MAX_HEIGHT_MM, AnalysisParams
from clf_analysis.pipeline.pathdata import assemble
from clf_analysis.pipeline.platform_info import build_platform_info
from clf_analysis.pipeline.pool import RunPool
from clf_analysis.pipeline.progress import ProgressFn, ProgressTracker
from clf_analysis.pipeline.publish import (
    LockPolicy,
    check_output_dir,
    exclusive_build_lock,
    holder_hint,
    locked_file,
    record_run,
    recover_interrupted_swap,
    remove_stale_temp_dirs,
    swap_into_place,
)
from clf_analysis.pipeline.stages import LayerPass, Prepared, RunLabel
from clf_analysis.render.plate import Plate

log = logging.getLogger(__name__)

# Heights are named to 4 decimals: a thinner grid would give two heights one name.
MIN_LAYER_THICKNESS_MM = 0.001
# Bounds the grid and the per-file index arrays (1,000 mm of 1 µm layers).
MAX_LAYER_HEIGHTS = 1_000_000


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to compute — that is `AnalysisParams`)."""

    processes: int = 1
    exclusions: Exclusions | None = None
    plate: Plate = field(default_factory=Plate)
    archive_limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    lock_policy: LockPolicy = field(default_factory=LockPolicy)
    job_id: str | None = None


@dataclass(frozen=True)
class RunResult:
    """What a completed run reports (the job result is `to_legacy()`)."""

    build_id: str
    run_id: str
    output_dir: Path
    summary_path: Path
    params: AnalysisParams
    duration_seconds: float
    parts: int
    layers: int
    holes_max: int
    invalid_loops: int
    warnings: list[str]
    timings: dict[str, float]
    # Relative to the share's base (`271360/clf_analysis`): what clients may be shown.
    output_relpath: str = ""
    summary_relpath: str = ""

    def to_legacy(self) -> dict[str, Any]:
        return {
            "success": True,
            "build_id": self.build_id,
            "run_id": self.run_id,
            "duration_seconds": round(self.duration_seconds, 3),
            "summary_path": str(self.summary_path),
            "output_dir": str(self.output_dir),
            "summary_relpath": self.summary_relpath,
            "output_relpath": self.output_relpath,
            "holes_interval": self.params.holes_interval,
            "create_composite_views": self.params.create_composite_views,
            "parts": self.parts,
            "layers": self.layers,
            "invalid_loops": self.invalid_loops,
            "warnings": len(self.warnings),
            "timings": self.timings,
        }


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)


# Files named in one warning; the rest are counted.
MAX_FILES_NAMED = 10


def winding_warning(results: list[FilePassResult]) -> str | None:
    """The warning about loops wound against the convention, naming the files they are in
    (folder/name relative to Models/, most affected first), or None when there are none."""
    affected = sorted(
        ((r.winding_mismatches, r.part.key.lstrip("/")) for r in results if r.winding_mismatches),
        key=lambda item: (-item[0], item[1]),
    )
    if not affected:
        return None
    total = sum(n for n, _ in affected)
    named = ", ".join(f"{key} ({n})" for n, key in affected[:MAX_FILES_NAMED])
    if len(affected) > MAX_FILES_NAMED:
        named += f" and {len(affected) - MAX_FILES_NAMED} more files"
    return (
        f"{total} loops wound against the convention (counter-clockwise solid, clockwise "
        f"hole) in {named}; nesting decided their role"
    )


def _never() -> bool:
    return False


def _silent(stage: str, fraction: float, message: str) -> None:
    return None


@contextlib.contextmanager
def _run_lock(build: ShareDir, policy: LockPolicy) -> Iterator[None]:
    """One run per build folder at a time, also across CLI and service processes.

    Tried for a bounded time: a retried job may start while the process of its lost
    attempt is still stopping.
    """

    def busy() -> BuildLocked:
        return BuildLocked(
            f"another analysis of {build.relpath} is running", stage="prepare", kind="busy"
        )

    with locked_file(build, RUN_LOCK_FILE, policy, busy):
        yield


def locate_build(build: str | Path, midas_base_path: Path | None) -> tuple[BuildFolder, str | None]:
    """The build folder to analyse, and the package's name when `build` is a path to one.

    A build id names `<MIDAS_BASE_PATH>/<id>/`, whatever its package links to. A package
    path (`clf-analysis analyze PATH.abp`) names the folder the user typed, resolved: links
    in the user's own path are the user's choice. The package itself is held to the
    share's rules either way (that folder may well be on the share).
    """
    as_path = Path(build)
    if str(build).endswith(".abp") or as_path.is_file():
        folder = as_path.parent.resolve()
        if folder == folder.parent:
            raise AnalysisError(
                f"{as_path}: put the package in a folder of its own (the results go beside it)",
                stage="prepare",
                kind="not_found",
            )
        return BuildFolder(folder.parent, folder.name), as_path.name
    if midas_base_path is None:
        raise AnalysisError("MIDAS_BASE_PATH is not set", stage="prepare", kind="config")
    try:
        return build_folder(midas_base_path, str(build)), None
    except BuildError as exc:
        raise AnalysisError(str(exc), stage="prepare", kind="not_found") from exc


@contextlib.contextmanager
def _share_refusals(stage: str) -> Iterator[None]:
    """A missing or refused entry of the share as the run's error, naming it."""
    try:
        yield
    except (BuildRefused, UnsafeSharePath) as exc:
        raise AnalysisError(str(exc), stage=stage, kind="unsafe_share") from exc
    except ShareAccessDenied as exc:
        raise AnalysisError(str(exc), stage=stage, kind="share_access_denied") from exc
    except BuildNotFound as exc:
        raise AnalysisError(str(exc), stage=stage, kind="not_found") from exc


def _shown(exc: AnalysisError, places: dict[str, str]) -> AnalysisError:
    """`exc` with server paths in its message made relative to the share."""
    detail = share_relative(exc.detail, places)
    if detail == exc.detail:
        return exc
    return type(exc)(detail, stage=exc.stage, file=exc.file, layer=exc.layer, kind=exc.kind)


def run(
    build: str | Path,
    params: AnalysisParams,
    *,
    midas_base_path: Path | None = None,
    options: RunOptions | None = None,
    progress: ProgressFn = _silent,
    is_cancelled: Callable[[], bool] = _never,
) -> RunResult:
    """Analyse one build and publish its outputs; raises AnalysisError / AnalysisCancelled.

    Every path of the build is opened relative to the build folder without following a
    link (`clf_analysis.abp.share`); outputs go to `<folder>/clf_analysis` only.
    """
    tracker = ProgressTracker(progress)
    try:
        return _run(build, params, midas_base_path, options or RunOptions(), tracker, is_cancelled)
    except (AnalysisError, AnalysisCancelled):
        raise
    except Exception as exc:
        # Whatever nobody foresaw still fails the run with a problem naming the stage: a
        # bare exception reaches the job as its type name only.
        log.exception("analysis of %s failed", build)
        text = f"{type(exc).__name__}: {exc}"
        if midas_base_path is not None:
            for base in {str(midas_base_path), str(Path(midas_base_path).resolve())}:
                if base.rstrip("/"):  # never "/" itself: every path would lose its root
                    text = text.replace(base.rstrip("/") + "/", "")
        raise AnalysisError(text, stage=tracker.current_stage, kind="internal") from exc


def _run(
    build: str | Path,
    params: AnalysisParams,
    midas_base_path: Path | None,
    options: RunOptions,
    tracker: ProgressTracker,
    is_cancelled: Callable[[], bool],
) -> RunResult:
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    # Unique per attempt: a retried job must not share a temp directory with a lost one.
    run_id = uuid.uuid4().hex
    tracker.stage("prepare", "locating the build package")
    folder, package_name = locate_build(build, midas_base_path)
    build_id = folder.name
    context = {"build_id": build_id, "run_id": run_id, "job_id": options.job_id}
    with _share_refusals("prepare"):
        share = open_build_folder(folder)
    with share:
        with _share_refusals("prepare"):
            package = (
                package_in(share, folder)
                if package_name is None
                else resolve_package_link(share, folder, package_name)
            )
        log.info("analysis of %s started (%s)", build_id, package.name, extra=context)
        with _share_refusals("prepare"), _run_lock(share, options.lock_policy):
            check_output_dir(share)
            recover_interrupted_swap(share)
            remove_stale_temp_dirs(share)
            result = _run_locked(
                share, package, params, options, run_id, started, tracker, is_cancelled
            )
    duration = time.perf_counter() - t_start
    log.info(
        "analysis of %s completed in %.1f s",
        build_id,
        duration,
        extra={**context, "timings": result.timings, "parts": result.parts},
    )
    tracker.finish("completed")
    output_dir = folder.path / OUTPUT_DIR
    return replace(
        result,
        output_dir=output_dir,
        summary_path=output_dir / PLATFORM_INFO,
        output_relpath=folder.relpath(OUTPUT_DIR),
        summary_relpath=folder.relpath(OUTPUT_DIR, PLATFORM_INFO),
        duration_seconds=duration,
    )


def _run_locked(
    share: ShareDir,
    package: BuildPackage,
    params: AnalysisParams,
    options: RunOptions,
    run_id: str,
    started: datetime,
    tracker: ProgressTracker,
    is_cancelled: Callable[[], bool],
) -> RunResult:
    """Analyse into a private temp folder and swap it in; the caller holds the run lock."""
    build_id = package.folder.name
    context = {"build_id": build_id, "run_id": run_id, "job_id": options.job_id}
    tmp_name, spool = temp_output_name(run_id), spool_name(run_id)
    status = "failed"
    # Server paths the run writes through, for error messages that name none of them.
    places = share.places()
    try:
        # Private (0700) until published: another user of the share cannot swap a folder
        # inside for a link while we write. The writers get paths pinned to these very
        # folders (/proc/<pid>/fd/<n>), so no rename in the share redirects them either.
        share.mkdir(tmp_name, 0o700)
        share.mkdir(spool, 0o700)
        with share.subdir(tmp_name) as tmp, share.subdir(spool) as spool_dir:
            places.update(tmp.places())
            places.update(spool_dir.places())
            result = _Analysis(
                build_id=build_id,
                package=share.pinned_path() / package.name,
                package_name=package.name,
                out=tmp.pinned_path(),
                spool_dir=spool_dir.pinned_path(),
                params=params,
                options=options,
                run_id=run_id,
                tracker=tracker,
                is_cancelled=is_cancelled,
            ).execute()
            tracker.stage("publish", "publishing results")
            if is_cancelled():
                raise AnalysisCancelled()
            try:
                tmp.make_default_mode()
            except OSError as exc:  # shares that emulate modes ignored the 0700 as well
                log.warning("mode of %s left as it is: %s", tmp.relpath, exc, extra=context)
        hint = holder_hint(options.job_id or run_id, started)
        with exclusive_build_lock(share, hint, options.lock_policy):
            swap_into_place(share, tmp_name, run_id)
        status = "completed"
        return result
    except AnalysisCancelled:
        status = "cancelled"
        log.info("analysis of %s cancelled", build_id, extra=context)
        raise
    except AnalysisError as exc:
        log.warning("analysis of %s failed: %s", build_id, exc, extra=context)
        relative = _shown(exc, places)
        if relative is exc:
            raise
        raise relative from exc
    except (BuildRefused, UnsafeSharePath) as exc:
        log.warning("analysis of %s failed: %s", build_id, exc, extra=context)
        raise AnalysisError(str(exc), stage=tracker.current_stage, kind="unsafe_share") from exc
    except Exception as exc:  # disk full, permissions…: still one error naming the stage
        log.exception("analysis of %s failed", build_id, extra=context)
        raise AnalysisError(
            share_relative(f"{type(exc).__name__}: {exc}", places),
            stage=tracker.current_stage,
            kind="internal",
        ) from exc
    finally:
        for name in (tmp_name, spool):
            with contextlib.suppress(OSError, UnsafeSharePath):  # gone once published
                share.rmtree(name)
        try:
            record_run(
                share, run_id=run_id, start_time=started, end_time=datetime.now(UTC), status=status
            )
        except (OSError, BuildError, BuildLocked) as exc:
            shown = share.shown(str(exc))
            log.warning("run not recorded in %s: %s", share.rel(RUN_LOG), shown, extra=context)


@dataclass
class _Analysis:
    """The stages of one run between `prepare` and `publish`, writing into `out`."""

    build_id: str
    package: Path  # pinned to the build folder (see `ShareDir.pinned_path`)
    package_name: str
    out: Path
    spool_dir: Path
    params: AnalysisParams
    options: RunOptions
    run_id: str
    tracker: ProgressTracker
    is_cancelled: Callable[[], bool]
    timer: _Timer = field(default_factory=_Timer)
    tasks: list[FilePassTask] = field(default_factory=list)

    def execute(self) -> RunResult:
        with self.timer.stage("prepare"):
            prepared = self._prepare()
        with RunPool(min(self.options.processes, len(prepared.included))) as pool:
            layers = self._layers(prepared.included, pool)
            with self.timer.stage("pathdata"):
                layer_files = self._pathdata(layers)
            self.tracker.stage("images", "rendering plate images")
            with self.timer.stage("images"):
                images = render_images(
                    ImageInputs(
                        build_id=self.build_id,
                        out=self.out,
                        plate=self.options.plate,
                        params=self.params,
                        layers=layers,
                    ),
                    pool,
                    on_progress=lambda f: self.tracker.update(f, "rendering plate images"),
                    is_cancelled=self.is_cancelled,
                )
        with self.timer.stage("summary"):
            label = RunLabel(self.build_id, self.run_id, self.options.job_id, self.params)
            info = build_platform_info(
                label, prepared, layers, layer_files, images, self.timer.timings
            )
            (self.out / PLATFORM_INFO).write_bytes(
                orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
            )
        parts = layers.stats.parts.values()
        return RunResult(
            build_id=self.build_id,
            run_id=self.run_id,
            output_dir=self.out,
            summary_path=self.out / PLATFORM_INFO,
            params=self.params,
            duration_seconds=0.0,
            parts=len(parts),
            layers=len(layers.grid),
            holes_max=max((p.hole_count for p in parts), default=0),
            invalid_loops=sum(r.invalid_count for r in layers.results),
            warnings=layers.warnings,
            timings=self.timer.timings,
        )

    def _prepare(self) -> Prepared:
        """The package opened and checked, its part files split by the exclusions."""
        exclusions = self.options.exclusions or load_exclusions(None)
        try:
            with open_archive(
                self.package, self.options.archive_limits, follow_symlinks=False
            ) as archive:
                all_parts = archive.part_files()
                sha256 = archive.sha256()
                size = archive.size_bytes
        except BuildError as exc:
            raise AnalysisError(str(exc), stage="prepare", kind="bad_package") from exc
        included, excluded = exclusions.split(all_parts)
        if not included:
            raise AnalysisError(
                f"{self.package_name}: no CLF files left to analyse "
                f"({len(all_parts)} found, {len(excluded)} excluded by folder rules)",
                stage="prepare",
                kind="empty_build",
            )
        return Prepared(self.package.name, size, sha256, exclusions, included, excluded)

    def _layers(self, included: list[PartFile], pool: RunPool) -> LayerPass:
        """Every file parsed once; then the build's layer grid mapped onto each file."""
        self.tracker.stage("layers", f"analysing {len(included)} part files")
        snapshot_heights = _snapshot_heights(self.params)
        self.tasks = [
            FilePassTask(
                archive_path=self.package,
                archive_limits=self.options.archive_limits,
                part=part,
                spool_path=self.spool_dir / f"{i:04d}.frag",
                snapshot_heights=snapshot_heights,
                plate=self.options.plate,
            )
            for i, part in enumerate(included)
        ]
        total = TICKS_PER_FILE * len(self.tasks)
        with self.timer.stage("layers"):
            results = pool.file_passes(
                self.tasks,
                on_progress=lambda done: self.tracker.update(
                    done / total, f"{done * len(included) // total} of {len(included)} part files"
                ),
                is_cancelled=self.is_cancelled,
            )
        with_layers = [r for r in results if len(r.header.zs)]
        if not with_layers:
            raise AnalysisError(
                "the included CLF files hold no layers", stage="layers", kind="empty_build"
            )
        declared = [r.header.thickness for r in with_layers if r.header.thickness > 0]
        thickness = min(declared, default=0.0)
        if thickness <= 0:
            raise AnalysisError(
                "no model declares a layer thickness", stage="layers", kind="bad_package"
            )
        if thickness < MIN_LAYER_THICKNESS_MM:
            thinnest = min(
                with_layers, key=lambda r: r.header.thickness if r.header.thickness > 0 else 1e9
            )
            raise AnalysisError(
                f"a model declares a layer thickness of {thickness:g} mm, below "
                f"{MIN_LAYER_THICKNESS_MM} mm (heights are named to 4 decimals)",
                stage="layers",
                file=thinnest.part.key,
                kind="bad_package",
            )
        top = max(float(r.header.zs[-1]) for r in with_layers)
        if top / thickness > MAX_LAYER_HEIGHTS:
            raise AnalysisError(
                f"{top:g} mm at {thickness:g} mm per layer is more than {MAX_LAYER_HEIGHTS} "
                "layer heights",
                stage="layers",
                kind="bad_package",
            )
        grid = H.layer_grid(thickness, top)
        if len(grid):
            top = float(grid[-1])  # the top layer's height as named, free of float32 noise
        headers = [r.header for r in results]
        mapping = [
            layer_indices(h.zs, grid, min_z=h.box.min_z, max_z=h.box.max_z, thickness=h.thickness)
            for h in headers
        ]
        return LayerPass(
            results=results,
            grid=grid,
            mapping=mapping,
            top=top,
            thickness=thickness,
            stats=_build_stats(results),
            warnings=_warnings(results),
        )

    def _pathdata(self, layers: LayerPass) -> list[str]:
        """One JSON list per grid height: the fragments of every file, in file order."""
        grid = layers.grid
        self.tracker.stage("pathdata", f"writing {len(grid)} layer files")
        if not self.params.pathdata:
            return []
        folder = self.out / PATHDATA_DIR
        folder.mkdir()
        names: list[str] = []
        # pread, not mmap: mapped spool pages would count as this process's memory
        # (a tall build's path data is over a gigabyte), the page cache does not.
        with contextlib.ExitStack() as stack:
            spools = [
                stack.enter_context(open(task.spool_path, "rb")).fileno() for task in self.tasks
            ]
            for k, z in enumerate(grid.tolist()):
                if self.is_cancelled():
                    raise AnalysisCancelled()
                self.tracker.update(k / len(grid), f"layer {height_name(z)} mm")
                frags = [
                    r.spool.read(fd, int(idx[k]))
                    for r, idx, fd in zip(layers.results, layers.mapping, spools, strict=True)
                    if idx[k] >= 0
                ]
                name = pathdata_name(z)
                (folder / name).write_bytes(assemble(frags))
                names.append(name)
        # The folder itself is the caller's (pinned paths are links rmtree will not enter).
        for task in self.tasks:
            with contextlib.suppress(FileNotFoundError):
                task.spool_path.unlink()
        return names


def _build_stats(results: list[FilePassResult]) -> BuildStats:
    """The statistics of every part over all files (a part's layers may span files)."""
    stats = BuildStats()
    for r in results:
        for part in r.stats.parts.values():
            stats.merge(BuildStats(parts={part.key: part}))
    return stats


def _warnings(results: list[FilePassResult]) -> list[str]:
    """The warnings of every file, and one for loops wound against the convention."""
    warnings = [w for r in results for w in r.warnings]
    winding = winding_warning(results)
    if winding is not None:
        warnings.append(winding)
    return warnings


def _snapshot_heights(params: AnalysisParams) -> tuple[float, ...]:
    """Heights whose shapes the image stage may draw, before the build's top is known."""
    heights = set(H.clean_platform_heights(MAX_HEIGHT_MM, params.clean_platform_heights))
    heights.update(
        H.hole_view_heights(MAX_HEIGHT_MM, params.holes_interval, params.hole_heights, capped=False)
    )
    return tuple(sorted(heights))
