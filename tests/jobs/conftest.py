"""Fixtures of the job tests: a store on each engine, settings with short leases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from clf_analysis.config import Settings, load_settings
from clf_analysis.jobs.store import JobStore

PG_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RUNNERS_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    engine = create_engine(PG_SERVER, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")
    yield engine
    engine.dispose()


def _pg_schema_url(pg_admin: Any) -> Iterator[str]:
    # One schema per test: parallel runs and leftovers of earlier runs never collide.
    schema = f"jobs_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with pg_admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty job store location on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"
    else:
        yield from _pg_schema_url(request.getfixturevalue("pg_admin"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    s = JobStore.connect(store_url)
    yield s
    s.close()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings as the service would read them, with leases short enough for tests."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            state_dir=tmp_path / "state",
            lease_seconds=2.0,
            drain_timeout=1.0,
            worker_concurrency=2,
        )
        values.update(overrides)
        return load_settings(environ={}, **values)

    return make
