"""Waiting for jobs and processes, shared by the job tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from clf_analysis.jobs.models import FINISHED_STATES, Job
from clf_analysis.jobs.store import JobStore

WAIT = 40.0  # upper bound for process start-up on two busy cores; not a speed claim


def wait_for(store: JobStore, job_id: str, check: Callable[[Job], bool]) -> Job:
    """Poll the store until `check(job)` holds; fails the test after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job is not None and check(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the expected state: {store.get(job_id)}")


def finished(job: Job) -> bool:
    return job.state in FINISHED_STATES


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")
