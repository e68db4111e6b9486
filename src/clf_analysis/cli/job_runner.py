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


def runner_problem(runner: str) -> str | None:
    """Why the `--runner` cannot run a job (no 'module:function', no such module or
    function), or None: found at start rather than by every job failing."""
    from clf_analysis.jobs.child import resolve_runner

    module, _, function = runner.partition(":")
    try:
        resolve_runner(runner)
    except ValueError:
        return f"--runner {runner!r}: write 'module:function', e.g. '{PIPELINE_RUNNER}'"
    except ModuleNotFoundError as exc:
        return f"--runner {runner!r}: no module named {exc.name!r} (is it on PYTHONPATH?)"
    except AttributeError:
        return f"--runner {runner!r}: module {module} has no {function!r}"
    except TypeError:
        return f"--runner {runner!r}: {module}.{function} is not a function"
    except Exception as exc:  # the module's own import failed: say how
        return f"--runner {runner!r}: importing {module} failed: {type(exc).__name__}: {exc}"
    return None


def startup_problem(settings: Settings, runner: str) -> str | None:
    """What would make every job fail, found before any runs: a runner that cannot be
    imported, and what the pipeline needs."""
    problem = runner_problem(runner)
    if problem is not None or runner != PIPELINE_RUNNER:
        return problem
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
