"""mk/stack.mk: the make targets for the stack, checked with `make -n` (no Docker)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .deploylib import ROOT, STACK_MK

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(STACK_MK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd or ROOT,
    )


@pytest.fixture
def stack_dir(tmp_path):
    """A directory with a .env, like an operator's checkout after `cp .env.example .env`."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    return tmp_path


def _dry(target: str, stack_dir, *extra: str) -> str:
    proc = _make("-n", target, *extra, cwd=stack_dir)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_network_creates_the_external_network_only_when_missing(stack_dir):
    out = _dry("network", stack_dir)
    assert "docker network inspect defectdetect-database_default" in out
    assert re.search(r"\|\|\s*docker network create .*defectdetect-database_default", out)


def test_up_builds_and_waits_for_health(stack_dir):
    out = _dry("up", stack_dir)
    assert "docker network" in out  # depends on `network`
    line = next(ln for ln in out.splitlines() if "compose up" in ln)
    assert "--wait" in line and "--build" in line and "--remove-orphans" not in line
    assert "--scale clf-analysis-worker=4" in _dry("up", stack_dir, "WORKERS=4")


def test_down_keeps_other_repositories_and_data(stack_dir):
    out = _dry("down", stack_dir)
    assert "docker compose down" in out
    assert "--remove-orphans" not in out and "-v" not in out.split() and "--volumes" not in out


def test_tools(stack_dir):
    assert "docker compose run --rm clf-submit 271360 --wait" in _dry(
        "submit", stack_dir, "BUILD=271360"
    )
    assert "docker compose run --rm clf-query abc" in _dry("query", stack_dir, "JOB=abc")
    assert "docker compose run --rm clf-report" in _dry("report", stack_dir)
    assert "docker compose logs" in _dry("logs", stack_dir)


def test_submit_needs_a_build(stack_dir):
    proc = _make("submit", "COMPOSE=false", cwd=stack_dir)
    assert proc.returncode != 0 and "BUILD=" in proc.stdout


def test_targets_refuse_to_run_without_env(tmp_path):
    proc = _make("up", "COMPOSE=false", "DOCKER=false", cwd=tmp_path)
    assert proc.returncode != 0 and ".env.example" in proc.stdout


def test_includable_from_the_makefile_without_clashes():
    """The lead includes mk/stack.mk from the Makefile: no target may be defined twice."""
    makefile = ROOT / "Makefile"
    files = ["-f", str(makefile)]
    if "mk/stack.mk" not in makefile.read_text():
        files += ["-f", str(STACK_MK)]  # not included yet: check as if it were
    proc = subprocess.run(
        ["make", "-n", *files, "report"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "overriding recipe" not in proc.stderr, proc.stderr
    assert "docker compose run --rm clf-report" in proc.stdout
