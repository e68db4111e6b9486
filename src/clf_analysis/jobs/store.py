"""Durable job store on SQLAlchemy Core: SQLite (WAL) or PostgreSQL, same code.

Every state transition is one UPDATE guarded by the state it expects, written in the same
transaction as its event row, so two workers or API processes can never both win a race.
A partial unique index allows at most one queued-or-running job per build: that index, not
application logic, is what makes "never two analyses of one build" hold across processes.

Clocks: timestamps come from the clock of the process that writes them. Leases are tens of
seconds, so hosts sharing a PostgreSQL store only need ordinary NTP-level agreement.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    TypeDecorator,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from clf_analysis.jobs.models import (
    ACTIVE_STATES,
    FINISHED_STATES,
    JOB_STATES,
    HeartbeatAnswer,
    Job,
    JobEvent,
    ServiceInstance,
    ServiceState,
    SubmitOutcome,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# An instance that promised heartbeats (touch_instance) and stayed silent this long is dead.
INSTANCE_STALE_SECONDS = 600.0
_SUBMIT_RETRIES = 8


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_params(params: dict[str, Any]) -> str:
    """The text two submissions must share to count as the same request."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both engines.

    SQLite stores naive text; we store UTC there so that text order is time order and
    `lease_expires_at < now` compares correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()
_BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only

jobs = Table(
    "clf_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("build_id", String(128), nullable=False),
    Column("params", JSON, nullable=False),
    Column("params_key", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("progress", Float, nullable=False, default=0.0),
    Column("stage", String(200)),
    Column("message", Text),
    Column("result", JSON),
    Column("error", JSON),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(255), unique=True),
)
_active = jobs.c.state.in_(ACTIVE_STATES)
Index(
    "uq_clf_jobs_one_active_per_build",
    jobs.c.build_id,
    unique=True,
    sqlite_where=_active,
    postgresql_where=_active,
)
Index("ix_clf_jobs_state_created", jobs.c.state, jobs.c.created_at)
Index("ix_clf_jobs_build_created", jobs.c.build_id, jobs.c.created_at)
Index("ix_clf_jobs_created", jobs.c.created_at)

job_events = Table(
    "clf_job_events",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("clf_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
)
Index("ix_clf_job_events_job", job_events.c.job_id, job_events.c.id)

instances = Table(
    "clf_service_instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    Column("status", String(16), nullable=False),
)

schema_meta = Table(
    "clf_schema_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)


# Builds per query of `latest_for_builds`: well under every engine's bound-parameter limit.
LATEST_CHUNK = 500


def _row_to_job(row: Row[Any]) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        build_id=m["build_id"],
        params=dict(m["params"] or {}),
        state=m["state"],
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child not yet reaped by its parent still answers signal 0.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _sqlite_engine(url: Any) -> Engine:
    database = url.database
    memory = not database or database == ":memory:"
    if memory:
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite would defer it badly).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # upgrades can hit SQLITE_BUSY without waiting, busy_timeout notwithstanding.
        if conn.get_execution_options().get("clf_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


class JobStore:
    """The jobs, their events and the service history in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._is_pg = engine.dialect.name == "postgresql"
        self._writer = engine.execution_options(clf_write=True)

    @classmethod
    def connect(cls, url: str) -> JobStore:
        """Open the store at `url`, creating or migrating the schema.

        SQLite gets WAL, a busy timeout and foreign keys; write transactions use
        BEGIN IMMEDIATE so that concurrent writers queue instead of deadlocking.
        """
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
        store = cls(engine)
        store._migrate()
        return store

    def _migrate(self) -> None:
        with self._write() as conn:
            if self._is_pg:
                # Several processes start at once; the lock makes CREATE … race-free.
                conn.execute(text("SELECT pg_advisory_xact_lock(726300001)"))
            metadata.create_all(conn, checkfirst=True)
            found = conn.scalar(select(schema_meta.c.value).where(schema_meta.c.key == "version"))
            if found is None:
                conn.execute(insert(schema_meta).values(key="version", value=str(SCHEMA_VERSION)))
            elif int(found) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"job store schema version {found} is newer than this code ({SCHEMA_VERSION})"
                )
            # Future migrations run here, in order, from int(found) to SCHEMA_VERSION.

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @staticmethod
    def _event(
        conn: Connection, job_id: str, kind: str, detail: dict[str, Any], at: datetime
    ) -> None:
        conn.execute(insert(job_events).values(job_id=job_id, at=at, kind=kind, detail=detail))

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
                with self._write() as conn:
                    if idempotency_key is not None:
                        row = conn.execute(
                            select(jobs).where(jobs.c.idempotency_key == idempotency_key)
                        ).first()
                        if row is not None:
                            return SubmitOutcome(job=_row_to_job(row), created=False)
                    row = conn.execute(
                        select(jobs).where(jobs.c.build_id == build_id, _active)
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
                        state="queued",
                        attempts=0,
                        max_attempts=max_attempts,
                        created_at=now,
                        updated_at=now,
                        progress=0.0,
                        cancel_requested=False,
                        idempotency_key=idempotency_key,
                    )
                    row = conn.execute(insert(jobs).values(**values).returning(jobs)).one()
                    self._event(conn, values["id"], "submitted", {"params": params}, now)
                    job = _row_to_job(row)
                log.info("job submitted", extra={"job_id": job.id, "build_id": build_id})
                return SubmitOutcome(job=job, created=True)
            except IntegrityError:
                # Another process inserted the active job (or used the key) first.
                continue
        raise RuntimeError(f"could not submit a job for build {build_id!r}: constant contention")

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        with self._read() as conn:
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
        with self._read() as conn:
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
        with self._read() as conn:
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
            with self._write() as conn:
                if job.state == "queued":
                    res = conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, jobs.c.state == "queued")
                        .values(
                            state="cancelled",
                            cancel_requested=True,
                            finished_at=now,
                            updated_at=now,
                            message="cancelled before it started",
                        )
                    )
                    if res.rowcount == 1:
                        self._event(conn, job_id, "cancelled", {"while": "queued"}, now)
                        break
                else:
                    if job.cancel_requested:
                        return job
                    res = conn.execute(
                        update(jobs)
                        .where(
                            jobs.c.id == job_id,
                            jobs.c.state == "running",
                            jobs.c.cancel_requested.is_(False),
                        )
                        .values(cancel_requested=True, updated_at=now)
                    )
                    if res.rowcount == 1:
                        self._event(conn, job_id, "cancel_requested", {}, now)
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
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            JobEvent(id=int(r.id), job_id=r.job_id, at=r.at, kind=r.kind, detail=dict(r.detail))
            for r in rows
        ]

    def add_event(self, job_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Record an event that is not a state transition (e.g. a stage change)."""
        with self._write() as conn:
            self._event(conn, job_id, kind, detail or {}, utcnow())

    def counts_by_state(self) -> dict[str, int]:
        """Number of jobs in every state (all states present, zero included)."""
        counts: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
        with self._read() as conn:
            for state, n in conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)):
                counts[state] = int(n)
        return counts

    def oldest_queued_age_seconds(self) -> float | None:
        """Seconds since the oldest queued job was submitted; None when nothing waits."""
        with self._read() as conn:
            oldest = conn.scalar(
                select(jobs.c.created_at)
                .where(jobs.c.state == "queued")
                .order_by(jobs.c.created_at)
                .limit(1)
            )
        return None if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())

    def recent_durations(self, limit: int = 1000) -> list[float]:
        """Run times in seconds of the most recently completed jobs, newest first."""
        query = (
            select(jobs.c.started_at, jobs.c.finished_at)
            .where(jobs.c.state == "completed", jobs.c.started_at.is_not(None))
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [(f - s).total_seconds() for s, f in rows if f is not None]

    def ping(self) -> None:
        """Raise when the store cannot be reached (readiness check)."""
        with self._read() as conn:
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
                other.c.build_id == jobs.c.build_id, other.c.state == "running"
            )
        )
        pick = select(jobs.c.id).where(jobs.c.state == "queued", ~build_busy)
        if exclude_builds:
            pick = pick.where(jobs.c.build_id.not_in(list(exclude_builds)))
        pick = pick.order_by(jobs.c.created_at, jobs.c.id).limit(1)
        if self._is_pg:
            pick = pick.with_for_update(skip_locked=True, of=jobs)
        now = utcnow()
        with self._write() as conn:
            job_id = conn.scalar(pick)
            if job_id is None:
                return None
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == "queued")
                .values(
                    state="running",
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
            self._event(
                conn, job_id, "claimed", {"worker": worker_id, "attempt": job.attempts}, now
            )
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
        with self._write() as conn:
            row = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.state == "running", jobs.c.lease_owner == worker_id
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
        with self._write() as conn:
            res = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.state == "running", jobs.c.lease_owner == worker_id
                )
                .values(**values, updated_at=now, lease_owner=None, lease_expires_at=None)
            )
            if res.rowcount != 1:
                return False
            self._event(conn, job_id, kind, {"worker": worker_id, **detail}, now)
        log.info("job %s", kind, extra={"job_id": job_id, "worker_id": worker_id})
        return True

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        """running → completed; False when the job is not running under this worker."""
        values = dict(state="completed", result=result, finished_at=utcnow(), progress=100.0)
        return self._finish(job_id, worker_id, values, "completed", {})

    def fail(self, job_id: str, worker_id: str, error: dict[str, Any]) -> bool:
        """running → failed; False when the job is not running under this worker."""
        values = dict(
            state="failed", error=error, finished_at=utcnow(), message=error.get("message")
        )
        detail = {"type": error.get("type"), "message": error.get("message")}
        return self._finish(job_id, worker_id, values, "failed", detail)

    def mark_cancelled(self, job_id: str, worker_id: str) -> bool:
        """running → cancelled; False when the job is not running under this worker."""
        values = dict(state="cancelled", finished_at=utcnow(), message="cancelled")
        return self._finish(job_id, worker_id, values, "cancelled", {"while": "running"})

    def release(self, job_id: str, worker_id: str, reason: str) -> bool:
        """running → queued (graceful shutdown); the attempt is not counted.

        A job whose cancellation was requested meanwhile becomes cancelled instead.
        """
        now = utcnow()
        requested = jobs.c.cancel_requested.is_(True)
        values = dict(
            state=case((requested, "cancelled"), else_="queued"),
            finished_at=case((requested, now), else_=None),
            # The worker stopping is not the job's fault: give the attempt back.
            attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
            started_at=None,
            heartbeat_at=None,
            progress=0.0,
            stage=None,
            message=f"released: {reason}",
        )
        with self._write() as conn:
            row = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.state == "running", jobs.c.lease_owner == worker_id
                )
                .values(**values, updated_at=now, lease_owner=None, lease_expires_at=None)
                .returning(jobs.c.state)
            ).first()
            if row is None:
                return False
            kind = "released" if row[0] == "queued" else "cancelled"
            self._event(conn, job_id, kind, {"worker": worker_id, "reason": reason}, now)
        return True

    def retry(self, job_id: str, worker_id: str, error: dict[str, Any]) -> bool:
        """running → queued for another attempt (this one counted), or failed with `error`
        once max_attempts are used; False when the job is not running under this worker.

        For attempts that died of something another attempt may survive (the OOM killer's
        SIGKILL), as an expired lease is. A cancel requested meanwhile wins: cancelled.
        """
        now = utcnow()
        mine = (jobs.c.id == job_id, jobs.c.state == "running", jobs.c.lease_owner == worker_id)
        pick = select(jobs.c.attempts, jobs.c.max_attempts, jobs.c.cancel_requested).where(*mine)
        if self._is_pg:
            pick = pick.with_for_update()
        reason = str(error.get("message"))
        with self._write() as conn:
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
                    state="cancelled", finished_at=now, message="cancelled"
                )
            elif attempts < max_attempts:
                kind = "requeued"
                values = dict(
                    state="queued",
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
                    state="failed", finished_at=now, error=error, message=error["message"]
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
            self._event(conn, job_id, kind, detail, now)
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
        ).where(jobs.c.state == "running", jobs.c.lease_expires_at < now)
        if self._is_pg:
            pick = pick.with_for_update(skip_locked=True)
        touched: list[str] = []
        with self._write() as conn:
            for job_id, owner, attempts, max_attempts, cancel in conn.execute(pick).all():
                guard = update(jobs).where(
                    jobs.c.id == job_id,
                    jobs.c.state == "running",
                    jobs.c.lease_owner == owner,
                    jobs.c.lease_expires_at < now,
                )
                cleared = dict(updated_at=now, lease_owner=None, lease_expires_at=None)
                detail: dict[str, Any] = {"lost_worker": owner, "attempts": attempts}
                if cancel:
                    kind = "cancelled"
                    values: dict[str, Any] = dict(
                        state="cancelled", finished_at=now, message="cancelled (worker lost)"
                    )
                elif attempts < max_attempts:
                    kind = "requeued"
                    values = dict(
                        state="queued",
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
                        state="failed", finished_at=now, error=error, message=error["message"]
                    )
                    detail.update(error)
                if conn.execute(guard.values(**values, **cleared)).rowcount == 1:
                    self._event(conn, job_id, kind, detail, now)
                    touched.append(job_id)
                    log.warning("expired lease: job %s", kind, extra={"job_id": job_id})
        return touched

    def prune(self, older_than_days: float) -> int:
        """Delete finished jobs (and their events) older than this; how many were deleted."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        old = select(jobs.c.id).where(
            jobs.c.state.in_(FINISHED_STATES), jobs.c.finished_at < cutoff
        )
        with self._write() as conn:
            # Explicit, so that pruning does not depend on the engine enforcing ON DELETE.
            conn.execute(delete(job_events).where(job_events.c.job_id.in_(old)))
            removed = conn.execute(
                delete(jobs).where(jobs.c.state.in_(FINISHED_STATES), jobs.c.finished_at < cutoff)
            ).rowcount
        return int(removed)

    # --- service state ----------------------------------------------------------------

    @staticmethod
    def _looks_dead(m: Any, now: datetime, host: str, *, starting: bool) -> bool:
        """Whether an instance marked running is evidently gone.

        While starting, an earlier instance with our own pid on our host is dead (pid 1
        in a restarted container); afterwards that instance may be ourselves.
        """
        if m["status"] != "running":
            return False
        if m["host"] == host:
            if m["pid"] == os.getpid():
                return starting
            if not _pid_alive(m["pid"]):
                return True
        # Only instances that promised heartbeats (touched at least once) are judged by
        # silence; an API process that never touches would otherwise be declared dead.
        promised = m["last_seen_at"] > m["started_at"]
        silent = (now - m["last_seen_at"]).total_seconds() > INSTANCE_STALE_SECONDS
        return bool(promised and silent)

    def record_startup(self, instance_id: str, role: str) -> ServiceState:
        """Record that a process started; earlier instances found dead count as unclean."""
        now = utcnow()
        host = socket.gethostname()
        with self._write() as conn:
            running = conn.execute(select(instances).where(instances.c.status == "running")).all()
            dead = [
                r.instance_id
                for r in running
                if self._looks_dead(r._mapping, now, host, starting=True)
            ]
            if dead:
                conn.execute(
                    update(instances)
                    .where(instances.c.instance_id.in_(dead), instances.c.status == "running")
                    .values(status="unclean")
                )
                log.warning("unclean shutdown of earlier instances: %s", ", ".join(dead))
            conn.execute(
                insert(instances).values(
                    instance_id=instance_id,
                    role=role,
                    host=host,
                    pid=os.getpid(),
                    started_at=now,
                    last_seen_at=now,
                    status="running",
                )
            )
        return self.service_state()

    def touch_instance(self, instance_id: str) -> None:
        """Mark a running instance as alive (instances silent for long count as unclean)."""
        with self._write() as conn:
            conn.execute(
                update(instances)
                .where(instances.c.instance_id == instance_id, instances.c.status == "running")
                .values(last_seen_at=utcnow())
            )

    def record_clean_shutdown(self, instance_id: str) -> None:
        """Record that this instance stopped in an orderly way."""
        now = utcnow()
        with self._write() as conn:
            conn.execute(
                update(instances)
                .where(instances.c.instance_id == instance_id)
                .values(status="clean", stopped_at=now, last_seen_at=now)
            )

    def service_state(self, *, recent: int = 20) -> ServiceState:
        """Startup and shutdown counts and the recent instances.

        Instances still marked running that are evidently dead (same host, process gone)
        are counted as unclean already, so the report is right while the service is down.
        """
        now = utcnow()
        host = socket.gethostname()
        with self._read() as conn:
            counts: dict[str, int] = {
                status: int(n)
                for status, n in conn.execute(
                    select(instances.c.status, func.count()).group_by(instances.c.status)
                )
            }
            running = conn.execute(select(instances).where(instances.c.status == "running")).all()
            last = conn.scalar(select(func.max(instances.c.started_at)))
            rows = conn.execute(
                select(instances).order_by(instances.c.started_at.desc()).limit(recent)
            ).all()
        dead = {
            r.instance_id
            for r in running
            if self._looks_dead(r._mapping, now, host, starting=False)
        }
        recent_instances = tuple(
            ServiceInstance(
                instance_id=r.instance_id,
                role=r.role,
                host=r.host,
                pid=int(r.pid),
                started_at=r.started_at,
                last_seen_at=r.last_seen_at,
                stopped_at=r.stopped_at,
                status="unclean" if r.instance_id in dead else r.status,
            )
            for r in rows
        )
        return ServiceState(
            startup_count=int(sum(counts.values())),
            clean_shutdown_count=int(counts.get("clean", 0)),
            unclean_shutdown_count=int(counts.get("unclean", 0)) + len(dead),
            running_instance_ids=tuple(r.instance_id for r in running if r.instance_id not in dead),
            last_started_at=last,
            instances=recent_instances,
        )

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
