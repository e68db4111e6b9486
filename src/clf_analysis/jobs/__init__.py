"""The job system: a durable store of analysis jobs and the workers that run them.

- `models`: the values (`Job`, `JobEvent`, `JobState`, the store's answers);
- `schema`: tables, column types and engines (SQLite or PostgreSQL), migration;
- `store`: `JobStore`, every job operation as one guarded transition plus its event;
- `instances`: the registry of service processes (starts, liveness, clean shutdowns);
- `worker`: `Worker`, which claims jobs and supervises each in a spawned `child`.

The job layer runs any runner "module:function"; it knows nothing of what jobs compute.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clf_analysis.jobs.models import (
    ACTIVE_STATES,
    FINISHED_STATES,
    JOB_STATES,
    HeartbeatAnswer,
    Job,
    JobEvent,
    JobState,
    ServiceInstance,
    ServiceState,
    SubmitOutcome,
)

if TYPE_CHECKING:
    from clf_analysis.jobs.store import JobStore
    from clf_analysis.jobs.worker import Worker

# Loaded on first use: the command line's HTTP client needs the job states, not
# SQLAlchemy and pydantic (a quarter of a second of start-up for `clf-analysis query`).
_LAZY = {"JobStore": "clf_analysis.jobs.store", "Worker": "clf_analysis.jobs.worker"}

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "JOB_STATES",
    "HeartbeatAnswer",
    "Job",
    "JobEvent",
    "JobState",
    "JobStore",
    "ServiceInstance",
    "ServiceState",
    "SubmitOutcome",
    "Worker",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
