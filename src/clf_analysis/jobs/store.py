"""Job operations on SQLAlchemy Core: SQLite (WAL) or PostgreSQL, same code.

Every state transition is one UPDATE guarded by the state it expects, written in the same
transaction as its event row, so two workers or API processes can never both win a race.
The tables and engines are in `schema`; the service-instance registry in `instances`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, case, delete, exists, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from clf_analysis.jobs.instances import InstanceRegistry
from clf_analysis.jobs.models import (
    FINISHED_STATES,
    JOB_STATES,
    HeartbeatAnswer,
    Job,
    JobEvent,
    JobState,
    ServiceState,
    SubmitOutcome,
)
from clf_analysis.jobs.schema import Database, job_events, job_is_active, jobs, schema_meta, utcnow

log = logging.getLogger(__name__)

_SUBMIT_RETRIES = 8
# Builds per query of `latest_for_builds`: well under every engine's bound-parameter limit.
LATEST_CHUNK = 500


def canonical_params(params: dict[str, Any]) -> str:
    """The text two submissions must share to count as the same request."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def _row_to_job(row: Row[Any]) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        build_id=m["build_id"],
        params=dict(m["params"] or {}),
        state=JobState(m["state"]),
        attempts=int(m["attempts"]),
        max_attempts=int(m["max_attempts"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        updated_at=m["updated_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        heartbeat_at=m["heartbeat_at"],
        progress=float(m["progress"]),
        stage=m["stage"],
        message=m["message"],
        result=m["result"],
        error=m["error"],
        cancel_requested=bool(m["cancel_requested"]),
        idempotency_key=m["idempotency_key"],
    )


def _event(conn: Connection, job_id: str, kind: str, detail: dict[str, Any], at: datetime) -> None:
    conn.execute(insert(job_events).values(job_id=job_id, at=at, kind=kind, detail=detail))


class JobStore:
    """The jobs, their events and the service history in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.db = Database(engine)
        self.engine = engine
        self.instances = InstanceRegistry(self.db)

    @classmethod
    def connect(cls, url: str) -> JobStore:
        """Open the store at `url`, creating or migrating the schema (see `Database.open`)."""
        return cls(Database.open(url).engine)

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

        Atomic across processes: a partial unique index allows one active job per build; a
        loser of the race retries and finds the winner's job. An idempotency key already
        used returns its job whatever the new request says (the key names the request).
        """
        key = canonical_params(params)
        for _ in range(_SUBMIT_RETRIES):
            try:
                with self.db.write() as conn:
                    if idempotency_key is not None:
                        row = conn.execute(
                            select(jobs).where(jobs.c.idempotency_key == idempotency_key)
                        ).first()
                        if row is not None:
                            return SubmitOutcome(job=_row_to_job(row), created=False)
                    row = conn.execute(
                        select(jobs).where(jobs.c.build_id == build_id, job_is_active)
                    ).first()
                    if row is not None:
                        active = _row_to_job(row)
                        # A job being cancelled is no answer to a new request: that caller
                        # must hear it conflicts (and retry), not get a job about to end.
                        same = row._mapping["params_key"] == key and not active.cancel_requested
                        return SubmitOutcome(
                            job=active, created=False, conflict=None if same else active
                        )
                    now = utcnow()
                    values: dict[str, Any] = dict(
                        id=str(uuid.uuid4()),
                        build_id=build_id,
                        params=params,
                        params_key=key,
                        state=JobState.QUEUED,
                        attempts=0,
                        max_attempts=max_attempts,
                        created_at=now,
                        updated_at=now,
                        progress=0.0,
                        cancel_requested=False,
                        idempotency_key=idempotency_key,
                    )
                    row = conn.execute(insert(jobs).values(**values).returning(jobs)).one()
                    _event(conn, values["id"], "submitted", {"params": params}, now)
                    job = _row_to_job(row)
                log.info("job submitted", extra={"job_id": job.id, "build_id": build_id})
                return SubmitOutcome(job=job, created=True)
            except IntegrityError:
                # Another process inserted the active job (or used the key) first.
                continue
        raise RuntimeError(f"could not submit a job for build {build_id!r}: constant contention")

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _row_to_job(row)

    def list_jobs(
        self,
        *,
        state: str | None = None,
        build_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        """One page of jobs, newest first, and the total number matching the filter."""
        conditions = []
        if state is not None:
            conditions.append(jobs.c.state == state)
        if build_id is not None:
            conditions.append(jobs.c.build_id == build_id)
        query = (
            select(jobs)
            .where(*conditions)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            total = conn.scalar(select(func.count()).select_from(jobs).where(*conditions))
        return [_row_to_job(r) for r in rows], int(total or 0)

    def latest_for_build(self, build_id: str) -> Job | None:
        """The newest job of a build, whatever its state."""
        return self.latest_for_builds([build_id]).get(build_id)

    def latest_for_builds(self, build_ids: Collection[str]) -> dict[str, Job]:
        """The newest job (as `list_jobs` orders them) of each build that has one.

        One query per LATEST_CHUNK builds rather than one per build: `/api/builds`
        lists up to thousands of builds per page.
        """
        ids = list(dict.fromkeys(build_ids))
        rank = (
            func.row_number()
            .over(
                partition_by=jobs.c.build_id, order_by=(jobs.c.created_at.desc(), jobs.c.id.desc())
            )
            .label("rank")
        )
        found: dict[str, Job] = {}
        with self.db.read() as conn:
            for start in range(0, len(ids), LATEST_CHUNK):
                chunk = ids[start : start + LATEST_CHUNK]
                ranked = select(jobs, rank).where(jobs.c.build_id.in_(chunk)).subquery()
                columns = [ranked.c[column.name] for column in jobs.c]
                for row in conn.execute(select(*columns).where(ranked.c.rank == 1)):
                    job = _row_to_job(row)
                    found[job.build_id] = job
        return found

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a job: queued → cancelled at once; running → cancel_requested=True.

        A finished job is returned unchanged; None when the id is unknown.
        """
        for _ in range(_SUBMIT_RETRIES):
            job = self.get(job_id)
            if job is None or job.state in FINISHED_STATES:
                return job
            now = utcnow()
            with self.db.write() as conn:
                if job.state == JobState.QUEUED:
                    res = conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED)
                        .values(
                            state=JobState.CANCELLED,
                            cancel_requested=True,
                            finished_at=now,
                            updated_at=now,
                            message="cancelled before it started",
                        )
                    )
                    if res.rowcount == 1:
                        _event(conn, job_id, "cancelled", {"while": JobState.QUEUED}, now)
                        break
                else:
                    if job.cancel_requested:
                        return job
                    res = conn.execute(
                        update(jobs)
                        .where(
                            jobs.c.id == job_id,
                            jobs.c.state == JobState.RUNNING,
                            jobs.c.cancel_requested.is_(False),
                        )
                        .values(cancel_requested=True, updated_at=now)
                    )
                    if res.rowcount == 1:
                        _event(conn, job_id, "cancel_requested", {}, now)
                        break
            # The job moved between our read and our update: look again.
        return self.get(job_id)

    def events(self, job_id: str, *, after_id: int = 0) -> list[JobEvent]:
        """Events of a job with id > after_id, oldest first."""
        query = (
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.id > after_id)
            .order_by(job_events.c.id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            JobEvent(id=int(r.id), job_id=r.job_id, at=r.at, kind=r.kind, detail=dict(r.detail))
            for r in rows
        ]

    def add_event(self, job_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Record an event that is not a state transition (e.g. a stage change)."""
        with self.db.write() as conn:
            _event(conn, job_id, kind, detail or {}, utcnow())

    def counts_by_state(self) -> dict[str, int]:
        """Number of jobs in every state (all states present, zero included)."""
        counts: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
        with self.db.read() as conn:
            for state, n in conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)):
                counts[state] = int(n)
        return counts

    def oldest_queued_age_seconds(self) -> float | None:
        """Seconds since the oldest queued job was submitted; None when nothing waits."""
        with self.db.read() as conn:
            oldest = conn.scalar(
                select(jobs.c.created_at)
                .where(jobs.c.state == JobState.QUEUED)
                .order_by(jobs.c.created_at)
                .limit(1)
            )
        return None if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())

    def recent_durations(self, limit: int = 1000) -> list[float]:
        """Run times in seconds of the most recently completed jobs, newest first."""
        query = (
            select(jobs.c.started_at, jobs.c.finished_at)
            .where(jobs.c.state == JobState.COMPLETED, jobs.c.started_at.is_not(None))
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [(f - s).total_seconds() for s, f in rows if f is not None]

    def ping(self) -> None:
        """Raise when the store cannot be reached (readiness check)."""
        with self.db.read() as conn:
            conn.execute(select(func.count()).select_from(schema_meta))

    # --- worker side ------------------------------------------------------------------

    def claim(
        self, worker_id: str, lease_seconds: float, *, exclude_builds: Collection[str] = ()
    ) -> Job | None:
        """Take the oldest queued job whose build has no running job; None when none.

        PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE.
        """
        other = jobs.alias("other")
        build_busy = exists(
            select(other.c.id).where(
                other.c.build_id == jobs.c.build_id, other.c.state == JobState.RUNNING
            )
        )
        pick = select(jobs.c.id).where(jobs.c.state == JobState.QUEUED, ~build_busy)
        if exclude_builds:
            pick = pick.where(jobs.c.build_id.not_in(list(exclude_builds)))
        pick = pick.order_by(jobs.c.created_at, jobs.c.id).limit(1)
        if self.db.is_postgres:
            pick = pick.with_for_update(skip_locked=True, of=jobs)
        now = utcnow()
        with self.db.write() as conn:
            job_id = conn.scalar(pick)
            if job_id is None:
                return None
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED)
                .values(
                    state=JobState.RUNNING,
                    attempts=jobs.c.attempts + 1,
                    lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    heartbeat_at=now,
                    started_at=now,
                    finished_at=None,
                    updated_at=now,
                    progress=0.0,
                    stage=None,
                    message=None,
                )
                .returning(jobs)
            ).first()
            if row is None:
                return None
            job = _row_to_job(row)
            _event(conn, job_id, "claimed", {"worker": worker_id, "attempt": job.attempts}, now)
        return job

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
        now = utcnow()
        values: dict[str, Any] = dict(
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            updated_at=now,
        )
        if progress is not None:
            values["progress"] = min(100.0, max(0.0, float(progress)))
        if stage is not None:
            values["stage"] = stage[:200]
        if message is not None:
            values["message"] = message
        with self.db.write() as conn:
            row = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.RUNNING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(**values)
                .returning(jobs.c.cancel_requested)
            ).first()
        if row is None:
            return HeartbeatAnswer(ok=False, cancel_requested=False)
        return HeartbeatAnswer(ok=True, cancel_requested=bool(row[0]))

    def _finish(
        self,
        job_id: str,
        worker_id: str,
        values: dict[str, Any],
        kind: str,
        detail: dict[str, Any],
    ) -> bool:
        now = utcnow()
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.RUNNING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(**values, updated_at=now, lease_owner=None, lease_expires_at=None)
            )
            if res.rowcount != 1:
                return False
            _event(conn, job_id, kind, {"worker": worker_id, **detail}, now)
        log.info("job %s", kind, extra={"job_id": job_id, "worker_id": worker_id})
        return True

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        """running → completed; False when the job is not running under this worker."""
        values = dict(state=JobState.COMPLETED, result=result, finished_at=utcnow(), progress=100.0)
        return self._finish(job_id, worker_id, values, "completed", {})

    def fail(self, job_id: str, worker_id: str, error: dict[str, Any]) -> bool:
        """running → failed; False when the job is not running under this worker."""
        values = dict(
            state=JobState.FAILED, error=error, finished_at=utcnow(), message=error.get("message")
        )
        detail = {"type": error.get("type"), "message": error.get("message")}
        return self._finish(job_id, worker_id, values, "failed", detail)

    def mark_cancelled(self, job_id: str, worker_id: str) -> bool:
        """running → cancelled; False when the job is not running under this worker."""
        values = dict(state=JobState.CANCELLED, finished_at=utcnow(), message="cancelled")
        return self._finish(job_id, worker_id, values, "cancelled", {"while": JobState.RUNNING})

    def release(self, job_id: str, worker_id: str, reason: str) -> bool:
        """running → queued (graceful shutdown); the attempt is not counted.

        A job whose cancellation was requested meanwhile becomes cancelled instead.
        """
        now = utcnow()
        requested = jobs.c.cancel_requested.is_(True)
        values = dict(
            state=case((requested, JobState.CANCELLED), else_=JobState.QUEUED),
            finished_at=case((requested, now), else_=None),
            # The worker stopping is not the job's fault: give the attempt back.
            attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
            started_at=None,
            heartbeat_at=None,
            progress=0.0,
            stage=None,
            message=f"released: {reason}",
        )
        with self.db.write() as conn:
            row = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.RUNNING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(**values, updated_at=now, lease_owner=None, lease_expires_at=None)
                .returning(jobs.c.state)
            ).first()
            if row is None:
                return False
            kind = "released" if row[0] == JobState.QUEUED else "cancelled"
            _event(conn, job_id, kind, {"worker": worker_id, "reason": reason}, now)
        return True

    def retry(self, job_id: str, worker_id: str, error: dict[str, Any]) -> bool:
        """running → queued for another attempt (this one counted), or failed with `error`
        once max_attempts are used; False when the job is not running under this worker.

        For attempts that died of something another attempt may survive (the OOM killer's
        SIGKILL), as an expired lease is. A cancel requested meanwhile wins: cancelled.
        """
        now = utcnow()
        mine = (
            jobs.c.id == job_id,
            jobs.c.state == JobState.RUNNING,
            jobs.c.lease_owner == worker_id,
        )
        pick = select(jobs.c.attempts, jobs.c.max_attempts, jobs.c.cancel_requested).where(*mine)
        if self.db.is_postgres:
            pick = pick.with_for_update()
        reason = str(error.get("message"))
        with self.db.write() as conn:
            row = conn.execute(pick).first()
            if row is None:
                return False
            attempts, max_attempts, cancel = row
            detail: dict[str, Any] = {
                "worker": worker_id,
                "reason": reason,
                "attempts": attempts,
                "max_attempts": max_attempts,
            }
            if cancel:
                kind = "cancelled"
                values: dict[str, Any] = dict(
                    state=JobState.CANCELLED, finished_at=now, message="cancelled"
                )
            elif attempts < max_attempts:
                kind = "requeued"
                values = dict(
                    state=JobState.QUEUED,
                    started_at=None,
                    heartbeat_at=None,
                    progress=0.0,
                    stage=None,
                    message=f"requeued: {reason}",
                )
            else:
                kind = "failed"
                error = {
                    **error,
                    "message": f"{reason}; {attempts} of {max_attempts} attempts used",
                    "attempts": attempts,
                }
                values = dict(
                    state=JobState.FAILED, finished_at=now, error=error, message=error["message"]
                )
                detail.update(type=error.get("type"), message=error["message"])
            # Guarded like every transition, though the row is already locked (PostgreSQL)
            # or the database is (SQLite's BEGIN IMMEDIATE).
            res = conn.execute(
                update(jobs)
                .where(*mine)
                .values(**values, updated_at=now, lease_owner=None, lease_expires_at=None)
            )
            if res.rowcount != 1:
                return False
            _event(conn, job_id, kind, detail, now)
        log.warning("job %s after: %s", kind, reason, extra={"job_id": job_id})
        return True

    def requeue_expired(self) -> list[str]:
        """Expired leases → queued, or failed "worker lost" after max_attempts; their ids.

        A job whose cancellation was requested before its worker vanished becomes cancelled.
        """
        now = utcnow()
        pick = select(
            jobs.c.id,
            jobs.c.lease_owner,
            jobs.c.attempts,
            jobs.c.max_attempts,
            jobs.c.cancel_requested,
        ).where(jobs.c.state == JobState.RUNNING, jobs.c.lease_expires_at < now)
        if self.db.is_postgres:
            pick = pick.with_for_update(skip_locked=True)
        touched: list[str] = []
        with self.db.write() as conn:
            for job_id, owner, attempts, max_attempts, cancel in conn.execute(pick).all():
                guard = update(jobs).where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.RUNNING,
                    jobs.c.lease_owner == owner,
                    jobs.c.lease_expires_at < now,
                )
                cleared = dict(updated_at=now, lease_owner=None, lease_expires_at=None)
                detail: dict[str, Any] = {"lost_worker": owner, "attempts": attempts}
                if cancel:
                    kind = "cancelled"
                    values: dict[str, Any] = dict(
                        state=JobState.CANCELLED, finished_at=now, message="cancelled (worker lost)"
                    )
                elif attempts < max_attempts:
                    kind = "requeued"
                    values = dict(
                        state=JobState.QUEUED,
                        started_at=None,
                        progress=0.0,
                        stage=None,
                        message=f"requeued: worker {owner} lost",
                    )
                else:
                    kind = "failed"
                    error = {
                        "type": "worker_lost",
                        "message": f"worker lost ({attempts} of {max_attempts} attempts used)",
                    }
                    values = dict(
                        state=JobState.FAILED,
                        finished_at=now,
                        error=error,
                        message=error["message"],
                    )
                    detail.update(error)
                if conn.execute(guard.values(**values, **cleared)).rowcount == 1:
                    _event(conn, job_id, kind, detail, now)
                    touched.append(job_id)
                    log.warning("expired lease: job %s", kind, extra={"job_id": job_id})
        return touched

    def prune(self, older_than_days: float) -> int:
        """Delete finished jobs (and their events) older than this; how many were deleted."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        old = select(jobs.c.id).where(
            jobs.c.state.in_(FINISHED_STATES), jobs.c.finished_at < cutoff
        )
        with self.db.write() as conn:
            # Explicit, so that pruning does not depend on the engine enforcing ON DELETE.
            conn.execute(delete(job_events).where(job_events.c.job_id.in_(old)))
            removed = conn.execute(
                delete(jobs).where(jobs.c.state.in_(FINISHED_STATES), jobs.c.finished_at < cutoff)
            ).rowcount
        return int(removed)

    # --- service instances (kept on the store: its callers hold one object) ------------

    def record_startup(self, instance_id: str, role: str) -> ServiceState:
        """Record that a process started; earlier instances found dead count as unclean."""
        return self.instances.record_startup(instance_id, role)

    def touch_instance(self, instance_id: str) -> None:
        """Mark a running instance as alive (instances silent for long count as unclean)."""
        self.instances.touch(instance_id)

    def record_clean_shutdown(self, instance_id: str) -> None:
        """Record that this instance stopped in an orderly way."""
        self.instances.record_clean_shutdown(instance_id)

    def service_state(self, *, recent: int = 20) -> ServiceState:
        """Startup and shutdown counts and the recent instances (see `InstanceRegistry`)."""
        return self.instances.service_state(recent=recent)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
