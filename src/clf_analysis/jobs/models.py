"""Values of the job system: a job, one of its events, the answers of the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class JobState(StrEnum):
    """Where a job is in its life; the value is what the store and the API say.

    queued → running → completed | failed | cancelled; running → queued again when its
    worker is lost or stops (released, requeued); queued → cancelled.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_STATES: tuple[JobState, ...] = tuple(JobState)
ACTIVE_STATES: tuple[JobState, ...] = (JobState.QUEUED, JobState.RUNNING)
FINISHED_STATES: tuple[JobState, ...] = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Job:
    """One analysis request and everything known about its execution (datetimes in UTC)."""

    id: str
    build_id: str
    params: dict[str, Any]
    state: JobState
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    progress: float
    stage: str | None
    message: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    cancel_requested: bool
    idempotency_key: str | None

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration_seconds(self) -> float | None:
        """Run time of the last attempt; None until it has both started and finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class JobEvent:
    """One transition or notable moment of a job, in the order it was recorded."""

    id: int
    job_id: str
    at: datetime
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class SubmitOutcome:
    """Answer to a submission.

    created=True: a new job. created=False and conflict None: an equivalent job (same build
    and params while active, or the same idempotency key) is returned as `job`. conflict set:
    a different request for a build that already has an active job (`job` is that job too).
    """

    job: Job
    created: bool
    conflict: Job | None = None


@dataclass(frozen=True)
class HeartbeatAnswer:
    """ok: the lease is still ours; cancel_requested: somebody asked the job to stop."""

    ok: bool
    cancel_requested: bool


@dataclass(frozen=True)
class ServiceInstance:
    """One start of a service process (API or worker) as recorded in the store."""

    instance_id: str
    role: str
    host: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    status: Literal["running", "clean", "unclean"]


@dataclass(frozen=True)
class ServiceState:
    """Persisted history of service starts (the stateful-service pattern)."""

    startup_count: int
    clean_shutdown_count: int
    unclean_shutdown_count: int
    running_instance_ids: tuple[str, ...]
    last_started_at: datetime | None
    instances: tuple[ServiceInstance, ...] = field(default=())
