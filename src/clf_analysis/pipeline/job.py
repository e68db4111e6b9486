"""The job runner: what a worker's child process calls for one analysis job.

Signature fixed by `clf_analysis.jobs.worker` (runner "module:function"):
`run_job(job_id, build_id, params, progress, is_cancelled) -> dict`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from clf_analysis.build.archive import ArchiveLimits
from clf_analysis.build.exclusions import Exclusions, ExclusionsError, load_exclusions
from clf_analysis.config import Settings, load_settings
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.render.plate import Plate
from clf_analysis.share_check import build_folder_problem


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


def options_for(settings: Settings, job_id: str | None = None) -> RunOptions:
    try:
        exclusions = check_startup(settings)
    except ExclusionsError as exc:  # edited or removed since the worker started
        raise AnalysisError(f"EXCLUSIONS_FILE: {exc}", stage="prepare", kind="config") from exc
    return RunOptions(
        processes=processes_per_job(settings),
        exclusions=exclusions,
        plate=Plate(settings.plate_size_mm, settings.plate_px_per_mm),
        archive_limits=archive_limits(settings),
        job_id=job_id,
    )


def archive_limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(
        max_members=settings.archive_max_members,
        max_total_uncompressed=settings.archive_max_total_bytes,
        max_ratio=settings.archive_max_ratio,
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
