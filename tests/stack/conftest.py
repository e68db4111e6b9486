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

import pytest

from . import engine as engine_module
from . import standins
from .engine import Engine, EngineUnavailable, provide
from .stack import Stack, stack_run

FACTS: dict[str, str] = {}
STARTED = time.monotonic()


@pytest.fixture(scope="session")
def engine(pytestconfig: pytest.Config) -> Iterator[Engine]:
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def shown(line: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    engine_module.progress = shown
    try:
        provided = provide()
    except EngineUnavailable as exc:
        message = f"no Docker engine for the stack tests: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    FACTS.update(provided.facts)
    try:
        yield provided
    finally:
        provided.stop_daemon()


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
