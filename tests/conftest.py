"""Fixtures shared by the whole suite: the job store on each real engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
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


@pytest.fixture
def deep_tree() -> Iterator[Callable[[Path, int], Path]]:
    """Plants `folder/x/x/.../x` (`depth` folders), a file at each level: deeper than
    Python recurses, and a path longer than the kernel takes, so it is made through
    descriptors. Returns the first `x`. What a failed test leaves is deleted with rm(1):
    pytest's own clean-up of old temp folders recurses, and would fail on it."""
    planted: list[Path] = []

    def plant(folder: Path, depth: int) -> Path:
        planted.append(folder / "x")
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for level in range(depth):
                os.mkdir("x", dir_fd=fd)
                with open(os.open("file", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as fh:
                    fh.write(str(level))
                inner = os.open("x", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = inner
        finally:
            os.close(fd)
        return folder / "x"

    yield plant
    for top in planted:
        subprocess.run(["rm", "-rf", "--", str(top)], check=False)


@pytest.fixture(scope="session")
def without_root_file_access() -> list[str]:
    """A command prefix that runs a process without root's power to ignore file modes, so
    that a test run as root sees a mode-000 file as the service's user would (the service
    never runs as root). Empty when the tests do not run as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
