"""Fixtures of the API tests: a MIDAS folder with builds, apps, live servers, `serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from clf_analysis.api import create_app
from clf_analysis.config import Settings, load_settings
from clf_analysis.jobs.store import JobStore

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "clf-analysis"
BUILD_IDS = ("271360", "demo-build", "300001")
PROBLEM = "application/problem+json"


def make_midas(root: Path) -> Path:
    """A MIDAS base path with three builds (folder + .abp) and two non-builds."""
    base = root / "midas"
    for build_id in BUILD_IDS:
        (base / build_id).mkdir(parents=True)
        (base / build_id / f"build_{build_id}.abp").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (base / "no-package").mkdir()  # a folder without .abp is not a build
    (base / ".hidden").mkdir()
    return base


@pytest.fixture
def midas(tmp_path: Path) -> Path:
    return make_midas(tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    (tmp_path / "state").mkdir(exist_ok=True)
    return f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"


@pytest.fixture
def make_settings(tmp_path: Path, midas: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "midas_base_path": midas,
            "state_dir": tmp_path / "state",
            "worker_concurrency": 0,
        }
        values.update(overrides)
        return load_settings(environ={}, **values)

    return make


@pytest.fixture
def store(sqlite_url: str) -> Iterator[JobStore]:
    s = JobStore.connect(sqlite_url)
    yield s
    s.close()


@pytest.fixture
def app(make_settings: Callable[..., Settings], store: JobStore) -> Flask:
    return create_app(make_settings(), store=store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assert_problem(response: Any, http_status: int) -> dict[str, Any]:
    """The response is problem+json with both the RFC 9457 and the legacy members."""
    assert response.status_code == http_status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == "error"
    assert body["http_status"] == http_status
    assert isinstance(body["message"], str) and body["message"]
    assert body["detail"] == body["message"]
    for member in ("type", "title", "instance"):
        assert member in body
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@dataclass
class LiveServer:
    url: str
    app: Flask


@pytest.fixture
def live_server_factory() -> Iterator[Callable[[Flask], LiveServer]]:
    """Real threaded HTTP servers (werkzeug) on loopback, stopped after the test."""
    servers: list[Any] = []

    def start(app: Flask) -> LiveServer:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    """A real `clf-analysis serve` (gunicorn + embedded workers) in a subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def serve_env(midas: Path, state: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MIDAS_BASE_PATH=str(midas),
        STATE_DIR=str(state),
        WORKER_CONCURRENCY="2",
        LEASE_SECONDS="3",
        DRAIN_TIMEOUT="10",
        # The job children import tests.api.runners by name.
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
    )
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


def start_serve(
    env: dict[str, str],
    log_path: Path,
    *extra_args: str,
    runner: str = "quick",
    prefix: tuple[str, ...] = (),
) -> ServeProcess:
    """`clf-analysis serve` on a free port, ready; `prefix` is a command that runs it."""
    port = free_port()
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [
            *prefix,
            str(CLI),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--threads",
            "4",
            "--runner",
            f"tests.api.runners:{runner}",
            *extra_args,
        ],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    served = ServeProcess(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        deadline = time.monotonic() + 60  # cold start on two busy cores
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{served.log()}")
            try:
                if requests.get(served.url + "/readyz", timeout=1).status_code == 200:
                    return served
            except requests.RequestException:  # refused, or accepted but slow while starting
                pass
            time.sleep(0.2)
    except BaseException:
        proc.kill()  # never leave a server behind a failed start
        proc.wait()
        raise
    served.stop(signal.SIGKILL)
    raise AssertionError(f"serve did not become ready:\n{served.log()}")


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def factory(midas: Path, *extra_args: str, runner: str = "quick", **env: str) -> ServeProcess:
        served = start_serve(
            serve_env(midas, tmp_path / "state", **env),
            tmp_path / "serve.log",
            *extra_args,
            runner=runner,
        )
        started.append(served)
        return served

    yield factory
    for served in started:
        if served.proc.poll() is None:
            served.stop(signal.SIGKILL, timeout=10)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; returns its value (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")
