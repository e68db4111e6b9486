"""Durable job store on SQLAlchemy Core: SQLite (WAL) or PostgreSQL, same code.

Every state transition is one UPDATE guarded by the state it expects, written in the same
transaction as its event row, so two workers or API processes can never both win a race.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from clf_analysis.jobs.models import (
    HeartbeatAnswer,
    Job,
    JobEvent,
    ServiceState,
    SubmitOutcome,
)


class JobStore:
    """The jobs, their events and the service history in one SQL database."""

    @classmethod
    def connect(cls, url: str) -> JobStore:
        """Open the store at `url`, creating or migrating the schema.

        SQLite gets WAL, a busy timeout and foreign keys; write transactions use
        BEGIN IMMEDIATE so that concurrent writers queue instead of deadlocking.
        """
        raise NotImplementedError

    # --- API side ---------------------------------------------------------------------

    def submit(
        self,
        build_id: str,
        params: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        max_attempts: int = 3,
    ) -> SubmitOutcome:
        """Queue an analysis unless an equivalent or conflicting active job exists.

        Atomic across processes: a partial unique index allows one active job per build.
        """
        raise NotImplementedError

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        raise NotImplementedError

    def list_jobs(
        self,
        *,
        state: str | None = None,
        build_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        """One page of jobs, newest first, and the total number matching the filter."""
        raise NotImplementedError

    def latest_for_build(self, build_id: str) -> Job | None:
        """The newest job of a build, whatever its state."""
        raise NotImplementedError

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a job: queued → cancelled at once; running → cancel_requested=True.

        A finished job is returned unchanged; None when the id is unknown.
        """
        raise NotImplementedError

    def events(self, job_id: str, *, after_id: int = 0) -> list[JobEvent]:
        """Events of a job with id > after_id, oldest first."""
        raise NotImplementedError

    def add_event(self, job_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Record an event that is not a state transition (e.g. a stage change)."""
        raise NotImplementedError

    def counts_by_state(self) -> dict[str, int]:
        """Number of jobs in every state (all states present, zero included)."""
        raise NotImplementedError

    def oldest_queued_age_seconds(self) -> float | None:
        """Seconds since the oldest queued job was submitted; None when nothing waits."""
        raise NotImplementedError

    def recent_durations(self, limit: int = 1000) -> list[float]:
        """Run times in seconds of the most recently completed jobs."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raise when the store cannot be reached (readiness check)."""
        raise NotImplementedError

    # --- worker side ------------------------------------------------------------------

    def claim(
        self, worker_id: str, lease_seconds: float, *, exclude_builds: Collection[str] = ()
    ) -> Job | None:
        """Take the oldest queued job whose build has no running job; None when none.

        PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE.
        """
        raise NotImplementedError

    def heartbeat(
        self,
        job_id: str,
        worker_id: str,
        lease_seconds: float,
        *,
        progress: float | None = None,
        stage: str | None = None,
        message: str | None = None,
    ) -> HeartbeatAnswer:
        """Renew the lease and store progress; ok=False when the lease is no longer ours."""
        raise NotImplementedError

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        """running → completed; False when the job is not running under this worker."""
        raise NotImplementedError

    def fail(self, job_id: str, worker_id: str, error: dict[str, Any]) -> bool:
        """running → failed; False when the job is not running under this worker."""
        raise NotImplementedError

    def mark_cancelled(self, job_id: str, worker_id: str) -> bool:
        """running → cancelled; False when the job is not running under this worker."""
        raise NotImplementedError

    def release(self, job_id: str, worker_id: str, reason: str) -> bool:
        """running → queued (graceful shutdown); the attempt is not counted."""
        raise NotImplementedError

    def requeue_expired(self) -> list[str]:
        """Expired leases → queued, or failed "worker lost" after max_attempts; their ids."""
        raise NotImplementedError

    def prune(self, older_than_days: float) -> int:
        """Delete finished jobs (and their events) older than this; how many were deleted."""
        raise NotImplementedError

    # --- service state ----------------------------------------------------------------

    def record_startup(self, instance_id: str, role: str) -> ServiceState:
        """Record that a process started; earlier instances found dead count as unclean."""
        raise NotImplementedError

    def touch_instance(self, instance_id: str) -> None:
        """Mark a running instance as alive (instances silent for long count as unclean)."""
        raise NotImplementedError

    def record_clean_shutdown(self, instance_id: str) -> None:
        """Record that this instance stopped in an orderly way."""
        raise NotImplementedError

    def service_state(self) -> ServiceState:
        """Startup and shutdown counts and the recent instances."""
        raise NotImplementedError

    def close(self) -> None:
        """Release every pooled connection."""
        raise NotImplementedError
