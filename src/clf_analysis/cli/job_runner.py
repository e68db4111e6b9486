"""The job runner of the `serve` and `worker` roles, and its checks before any job runs.

The job layer runs whatever "module:function" it is given; choosing the analysis pipeline
(and knowing what it needs) is the command line's business.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clf_analysis.config import Settings

PIPELINE_RUNNER = "clf_analysis.pipeline.job:run_job"


def runner_of(option: str | None) -> str:
    """The runner a `--runner` option names: the pipeline unless another is given."""
    return option or PIPELINE_RUNNER


def startup_problem(settings: Settings, runner: str) -> str | None:
    """What would make every job of the pipeline fail, found before any runs."""
    if runner != PIPELINE_RUNNER:
        return None
    from clf_analysis.abp.errors import ExclusionsError
    from clf_analysis.pipeline.job import check_startup

    try:
        check_startup(settings)
    except ExclusionsError as exc:
        return f"EXCLUSIONS_FILE: {exc}"
    return None


def log_startup_warnings(runner: str, log: logging.Logger) -> None:
    """Log what would make every job of the pipeline slower than it should be."""
    if runner != PIPELINE_RUNNER:
        return
    from clf_analysis.pipeline.job import startup_warnings

    for warning in startup_warnings():
        log.warning(warning)
