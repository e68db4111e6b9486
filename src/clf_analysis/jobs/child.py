"""The spawned process that runs one job, and the messages it sends its supervisor.

The child imports the runner named "package.module:function", calls it with a progress
callback and a cancel check, and sends back over a pipe, in order: any number of
`Progress` records, then one `Succeeded` or `Failed` (or nothing, if it dies first).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from clf_analysis.logs import configure_logging
from clf_analysis.process_guard import exit_with_parent

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float, str], None]
RunnerFn = Callable[[str, str, dict[str, Any], ProgressFn, Callable[[], bool]], dict[str, Any]]


@dataclass(frozen=True)
class Progress:
    """The runner reached `fraction` (0…1) of its work, in `stage`."""

    stage: str
    fraction: float
    message: str


@dataclass(frozen=True)
class Succeeded:
    """The runner returned this result (a dict the store can keep as JSON)."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """The runner raised: the error as stored, and the traceback for the log only."""

    error: dict[str, Any]
    traceback: str


ChildMessage = Progress | Succeeded | Failed


@dataclass(frozen=True)
class ChildSpec:
    """What the child needs to run one job, sent to it at spawn."""

    runner: str
    job_id: str
    build_id: str
    params: dict[str, Any]
    parent_pid: int
    niceness: int
    log_level: str
    log_format: str


def resolve_runner(spec: str) -> RunnerFn:
    """Import the runner named "package.module:function"."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"runner must look like 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"runner {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    """The stored error of a runner exception: type, message and what the exception knows."""
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
    to_problem = getattr(exc, "to_problem", None)
    if callable(to_problem):
        try:
            error["problem"] = _jsonable(to_problem())
        except Exception:  # a broken to_problem must not hide the original failure
            log.exception("to_problem() of %s failed", type(exc).__name__)
    for attr in ("stage", "file", "layer"):
        value = getattr(exc, attr, None)
        if value is not None:
            error[attr] = _jsonable(value)
    return error


def child_main(spec: ChildSpec, conn: Connection, cancel: Any) -> None:
    """Entry point of the spawned child: run the runner, send back its result or error."""
    # A fresh interpreter: the runner's own log lines need the service's handler,
    # level and format (one JSON object per line under LOG_FORMAT=json) here too.
    configure_logging(spec.log_level, spec.log_format)
    # A process group of its own: stopping the job reaches the processes the runner
    # starts (the pipeline's pool) too. Ctrl-C is for the worker; it decides how the
    # job ends.
    os.setpgid(0, 0)
    # Lower priority, inherited by the runner's pool: CPU-bound analyses must not slow the
    # API's answers or the heartbeats that keep this job's lease.
    os.nice(spec.niceness)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An orphan would keep analysing while the requeued job runs elsewhere.
    exit_with_parent(spec.parent_pid)

    def progress(stage: str, fraction: float, message: str = "") -> None:
        conn.send(Progress(str(stage), float(fraction), str(message)))

    def is_cancelled() -> bool:
        return bool(cancel.is_set())

    try:
        result = resolve_runner(spec.runner)(
            spec.job_id, spec.build_id, spec.params, progress, is_cancelled
        )
        if not isinstance(result, dict):
            raise TypeError(f"runner returned {type(result).__name__}, not a dict")
        # Fail here, with a clear error, rather than in the store (PostgreSQL's json type
        # refuses NaN and Infinity, which Python's json writes by default).
        try:
            json.dumps(result, allow_nan=False)
        except ValueError as exc:
            raise ValueError(
                f"runner result is not storable JSON (NaN or infinity): {exc}"
            ) from None
        conn.send(Succeeded(result))
    except Exception as exc:
        conn.send(Failed(error_from_exception(exc), traceback.format_exc()))
    finally:
        conn.close()
