"""Runner functions for the job tests, executed in real spawned child processes.

The child imports this module by name (`runners`), so tests put tests/jobs on sys.path
(pytest does) and on PYTHONPATH for `clf-analysis worker` subprocesses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Progress = Callable[[str, float, str], None]


class AnalysisFailed(Exception):
    """Looks like a pipeline error: knows its stage, file and layer and its problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.stage = "geometry"
        self.file = "Models/part1.clf"
        self.layer = 17

    def to_problem(self) -> dict[str, Any]:
        return {"title": "Analysis failed", "detail": str(self), "code": "bad-loop"}


def _note_pid(params: dict[str, Any]) -> None:
    # Tests that kill a worker need to know which child processes ran the job.
    pid_dir = params.get("pid_dir")
    if pid_dir:
        Path(pid_dir, f"{os.getpid()}.pid").write_text(str(os.getpid()))


def sleepy(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Works `steps` × `delay` seconds in two stages, honouring cancellation."""
    _note_pid(params)
    steps = int(params.get("steps", 10))
    delay = float(params.get("delay", 0.05))
    for i in range(steps):
        if is_cancelled():
            raise RuntimeError("cancelled by request")
        stage = "parse" if i < steps // 2 else "render"
        progress(stage, (i + 1) / steps, f"step {i + 1} of {steps}")
        time.sleep(delay)
    return {"build_id": build_id, "steps": steps, "pid": os.getpid()}


def priorities(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Nice values of the job process and of a process it spawns (as the pipeline's pool)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool_niceness = pool.apply(os.nice, (0,))
    return {"job": os.nice(0), "pool": pool_niceness}


def crash(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Dies the way a segfaulting extension would: no exception, no result."""
    progress("parse", 0.1, "about to crash")
    os._exit(3)


def boom(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Raises a pipeline-like error."""
    progress("geometry", 0.5, "nesting holes")
    raise AnalysisFailed("self-intersecting loop in layer 17")


def hang(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Ignores cancellation and never ends: only a kill stops it."""
    _note_pid(params)
    progress("stuck", 0.01, "hanging")
    while True:
        time.sleep(0.1)


def _sleep_forever(pid_dir: str) -> None:
    Path(pid_dir, f"{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(600)


def pooled_hang(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """Starts a process pool (as the pipeline does) whose processes never finish."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_sleep_forever, [params["pid_dir"]] * 2)
    return {}


def not_a_number(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """A result PostgreSQL's json type would refuse."""
    return {"success": True, "ratio": float("nan")}


def killed(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """Dies of SIGKILL as under the OOM killer; with `survive_after`, only that many times
    (attempts are counted in marker files there), then completes."""
    import signal

    progress("images", 0.5, "rendering")
    marker_dir = params.get("survive_after")
    if marker_dir is not None:
        earlier = len(list(Path(marker_dir).glob("*.attempt")))
        if earlier >= int(params["kills"]):
            return {"build_id": build_id, "attempts_before": earlier}
        Path(marker_dir, f"{os.getpid()}.attempt").write_text("")
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached: the signal cannot be caught
    return {}
