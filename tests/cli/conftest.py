"""Fixtures of the command-line tests: the installed `clf-analysis` run as a user runs it,
and a real `clf-analysis serve` (gunicorn, embedded workers, the real pipeline) on a
share holding one small synthetic build."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from clf_analysis.synth import generate_build

CLI = Path(sys.executable).parent / "clf-analysis"
REPO = Path(__file__).resolve().parents[2]
BUILD_ID = "b-42"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the service's settings leak in from the
    test run (a CLF_ANALYSIS_URL or API_TOKEN there would change what the command does)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("CLF_ANALYSIS_URL", "API_TOKEN", "DATABASE_URL", "MIDAS_BASE_PATH", "STATE_DIR")
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    """`clf-analysis ARGS` as a subprocess: what the user reads, and the exit code."""
    return subprocess.run(
        [str(CLI), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=clean_env(**env),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_build(base: Path, build_id: str = BUILD_ID, parts: int = 1) -> Path:
    """A synthetic build of 20 layers: analysed in seconds."""
    return generate_build(
        base, build_id=build_id, parts=parts, height_mm=2.0, layer_mm=0.1, seed=5
    ).build_dir


@dataclass
class Served:
    url: str
    midas: Path
    store_url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def service(root: Path, *args: str, **env: str) -> Iterator[Served]:
    """`clf-analysis serve ARGS` on `root/midas` (one small build) until the block ends."""
    midas = root / "midas"
    small_build(midas)
    state = root / "state"
    port = free_port()
    store_url = f"sqlite:///{state / 'jobs.db'}"
    log = root / "serve.log"
    settings = clean_env(
        MIDAS_BASE_PATH=str(midas),
        STATE_DIR=str(state),
        DATABASE_URL=store_url,
        WORKER_CONCURRENCY="1",
        ANALYSIS_PROCESSES="1",
        # A --runner of the tests is imported by name, here and in the job's process.
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **env,
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             *args],
            env=settings,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"serve not ready:\n{log.read_text()}"
            try:
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        yield Served(url=url, midas=midas, store_url=store_url, proc=proc, log=log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real service with the real pipeline."""
    with service(tmp_path_factory.mktemp("served")) as running:
        yield running
