"""Fixtures shared by the whole suite: the job store on each real engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

PG_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    """An engine on the PostgreSQL server. Unreachable: skipped locally, an error in CI."""
    engine = create_engine(PG_SERVER, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"PostgreSQL not reachable at {PG_SERVER}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run both engines; a skip would hide that
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty job store on each engine (PostgreSQL: a schema of its own per test, so
    parallel runs and leftovers of earlier runs never collide)."""
    if request.param == "sqlite":
        (tmp_path / "state").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
