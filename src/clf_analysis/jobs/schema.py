"""The job store's schema and engines: tables, column types, SQLite set-up, migration.

One schema serves SQLite (WAL) and PostgreSQL. A partial unique index allows at most one
queued-or-running job per build: that index, not application logic, is what makes "never
two analyses of one build" hold across processes.

Clocks: timestamps come from the clock of the process that writes them. Leases are tens of
seconds, so hosts sharing a PostgreSQL store only need ordinary NTP-level agreement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.pool import StaticPool

from clf_analysis.jobs.models import ACTIVE_STATES

SCHEMA_VERSION = 1
# Execution option that makes a SQLite transaction take the write lock up front.
_WRITE_OPTION = "clf_write"


def utcnow() -> datetime:
    return datetime.now(UTC)


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
job_is_active = jobs.c.state.in_(ACTIVE_STATES)
Index(
    "uq_clf_jobs_one_active_per_build",
    jobs.c.build_id,
    unique=True,
    sqlite_where=job_is_active,
    postgresql_where=job_is_active,
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


class Database:
    """An open job store database: its engine and the two kinds of transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})

    @classmethod
    def open(cls, url: str) -> Database:
        """Open the database at `url`, creating or migrating the schema.

        SQLite gets WAL, a busy timeout and foreign keys; write transactions use
        BEGIN IMMEDIATE so that concurrent writers queue instead of deadlocking.
        """
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
        database = cls(engine)
        database.migrate()
        return database

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes (on SQLite it holds the write lock from its start)."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    def migrate(self) -> None:
        """Create the tables that are missing; refuse a schema newer than this code."""
        with self.write() as conn:
            if self.is_postgres:
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


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ":memory:"
    memory = database == ":memory:"
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
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine
