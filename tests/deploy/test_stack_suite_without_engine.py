"""`make stack-test` where no Docker engine can be had: one clear skip line locally, and
a failure under CI=true (a CI run must never pass without having run the stack)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .deploylib import ROOT


def _stack_tests_without_an_engine(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    # A PATH with neither docker, dockerd nor debootstrap, and an apt-get that fails the
    # way it does without a network; the cache goes to a fresh HOME.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    apt = stubs / "apt-get"
    apt.write_text("#!/bin/sh\necho 'E: Unable to fetch some archives' >&2\nexit 100\n")
    apt.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DOCKER_HOST", "STACK_DOCKER")}
    env.update(PATH=str(stubs), HOME=str(tmp_path))
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/stack", "-p", "no:cacheprovider", "-rs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_an_engine_the_stack_tests_skip_with_one_line(tmp_path: Path) -> None:
    done = _stack_tests_without_an_engine(tmp_path, ci=False)
    assert done.returncode == 0, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if not line.startswith("[stack] ")]
    why = (
        "apt-get install docker.io debootstrap failed: E: Unable to fetch some archives"
        if os.geteuid() == 0  # root tries to install them
        else "docker.io, debootstrap not installed and this user cannot apt-get install them"
    )
    assert said == [f"SKIPPED: no Docker engine for the stack tests: {why}"], done.stderr
    assert "no tests ran" in done.stdout, done.stdout


def test_without_an_engine_the_stack_tests_fail_under_ci(tmp_path: Path) -> None:
    done = _stack_tests_without_an_engine(tmp_path, ci=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED (CI=true must run them): no Docker engine for the stack tests" in done.stderr
