"""Fixtures of the stack tests: the engine, the images, one Compose stack per run.

Run with `make stack-test` (not part of `make test`). Without a Docker engine that can be
installed and started here, every test is skipped with one reason; under CI=true that is
a failure instead, so CI can never pass without having run the stack.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import engine as engine_module
from . import standins
from .engine import Engine, EngineUnavailable, provide
from .stack import Stack, stack_run

FACTS: dict[str, str] = {}
STARTED = time.monotonic()


PROVIDED: list[Engine] = []
UNAVAILABLE: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """Provide the engine before anything is collected. Without one the run is a single
    line: skipped (exit 0) locally, failed (exit 1) under CI=true."""
    config = session.config
    if config.option.collectonly:
        return
    capture = config.pluginmanager.getplugin("capturemanager")

    def shown(line: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    engine_module.progress = shown
    try:
        PROVIDED.append(provide())
    except EngineUnavailable as exc:
        reason = " ".join(f"no Docker engine for the stack tests: {exc}".split())
        UNAVAILABLE.append(reason)
        verdict = "FAILED (CI=true must run them)" if os.environ.get("CI") else "SKIPPED"
        shown(f"{verdict}: {reason}")
        return
    FACTS.update(PROVIDED[0].facts)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if UNAVAILABLE else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    for provided in PROVIDED:
        provided.stop_daemon()
    if UNAVAILABLE:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED if os.environ.get("CI") else 0


@pytest.fixture(scope="session")
def engine() -> Engine:
    if not PROVIDED:
        pytest.fail("no engine was provided at session start")
    return PROVIDED[0]


@pytest.fixture(scope="session")
def images(engine: Engine) -> standins.Images:
    timings: dict[str, float] = {}
    runtime, builder, postgres = standins.standin_images(engine, timings)
    project = standins.build_project_image(engine, runtime, builder, timings)
    FACTS.update({k: f"{v:.0f}s" for k, v in timings.items()})
    return standins.Images(runtime=runtime, builder=builder, postgres=postgres, project=project)


@pytest.fixture(scope="session")
def stack(engine: Engine, images: standins.Images) -> Iterator[Stack]:
    with stack_run(engine, images) as running:
        yield running
        FACTS.update(running.facts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FACTS:
        return
    terminalreporter.section("stack")
    for key, value in FACTS.items():
        terminalreporter.write_line(f"{key}: {value}")
    terminalreporter.write_line(f"wall time of the stack tests: {time.monotonic() - STARTED:.0f}s")
