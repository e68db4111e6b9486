"""The job runner: what a worker's child process calls for one analysis job.

Signature fixed by `clf_analysis.jobs.child` (runner "module:function"):
`run_job(job_id, build_id, params, progress, is_cancelled) -> dict`. The `serve` and
`worker` roles run `check_startup` and `startup_warnings` before they take any job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from clf_analysis import clf
from clf_analysis.abp.archive import ArchiveLimits
from clf_analysis.abp.errors import ExclusionsError
from clf_analysis.abp.exclusions import Exclusions, load_exclusions
from clf_analysis.abp.share_check import build_folder_problem
from clf_analysis.config import Settings, load_settings
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.render.plate import Plate


def processes_per_job(settings: Settings, cpu_count: int | None = None) -> int:
    """Pool size of one analysis: ANALYSIS_PROCESSES when set, else the cores shared
    among WORKER_CONCURRENCY jobs (never more processes than cores in total)."""
    if settings.analysis_processes is not None:
        return settings.analysis_processes
    cores = cpu_count or os.cpu_count() or 1
    return max(1, cores // max(1, settings.worker_concurrency))


def check_startup(settings: Settings) -> Exclusions:
    """Everything a job would need from configuration, checked before any job runs."""
    return load_exclusions(settings.exclusions_file)


def startup_warnings() -> list[str]:
    """What would make every job slower than it should be, found before any runs (to log)."""
    warnings = []
    if not clf.COMPILED_WALKER:
        warnings.append(
            "the compiled CLF layer walker is not built (no C compiler at install): "
            "layers are decoded by the slower general Python code"
        )
    return warnings


def run_options(
    settings: Settings,
    exclusions: Exclusions,
    *,
    processes: int | None = None,
    job_id: str | None = None,
) -> RunOptions:
    """How to run one analysis under these settings; `processes` overrides the pool size."""
    return RunOptions(
        processes=processes or processes_per_job(settings),
        exclusions=exclusions,
        plate=Plate(settings.plate_size_mm, settings.plate_px_per_mm),
        archive_limits=archive_limits(settings),
        job_id=job_id,
    )


def options_for(settings: Settings, job_id: str | None = None) -> RunOptions:
    """`run_options` for a job, with the exclusions file read again."""
    try:
        exclusions = check_startup(settings)
    except ExclusionsError as exc:  # edited or removed since the worker started
        raise AnalysisError(f"EXCLUSIONS_FILE: {exc}", stage="prepare", kind="config") from exc
    return run_options(settings, exclusions, job_id=job_id)


def archive_limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(
        max_members=settings.archive_max_members,
        max_total_uncompressed=settings.archive_max_total_bytes,
        max_ratio=settings.archive_max_ratio,
        max_package_size=settings.archive_max_package_bytes,
    )


def run_job(
    job_id: str,
    build_id: str,
    params: Mapping[str, Any],
    progress: Callable[[str, float, str], None],
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Run one analysis job with the service's settings; returns the job result."""
    settings = load_settings()
    # Checked before anything is read: a share this uid cannot write would otherwise
    # fail at the first lock or temp file with a bare "Permission denied".
    problem = build_folder_problem(settings.midas_base_path, build_id)
    if problem is not None:
        raise AnalysisError(problem, stage="prepare", kind="share_not_writable")
    result = run(
        build_id,
        AnalysisParams.model_validate(dict(params)),
        midas_base_path=settings.midas_base_path,
        options=options_for(settings, job_id),
        progress=progress,
        is_cancelled=is_cancelled,
    )
    return result.to_legacy()
