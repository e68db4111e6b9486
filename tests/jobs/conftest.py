"""Fixtures of the job tests: a store on each engine, settings with short leases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clf_analysis.config import Settings, load_settings
from clf_analysis.jobs.store import JobStore

RUNNERS_DIR = Path(__file__).parent


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
