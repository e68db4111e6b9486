"""`clf-analysis serve` for real: gunicorn, embedded workers, spawned job children."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import requests

from .conftest import CLI, ServeProcess, free_port, serve_env, wait_for


def _job(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/api/jobs/{job_id}", timeout=5).json()["job"]


def test_submit_poll_complete_results_and_restart_keeps_jobs(
    serve_factory: Callable[..., ServeProcess], midas: Path
) -> None:
    served = serve_factory(midas)
    url = served.url
    accepted = requests.post(f"{url}/api/analyze", json={"build_id": 271360}, timeout=5)
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    job = wait_for(lambda: (j := _job(url, job_id))["status"] in ("completed", "failed") and j)
    assert job["status"] == "completed", job
    assert job["result"]["success"] is True
    assert job["progress"]["percent"] == 100.0

    results = requests.get(f"{url}/api/builds/271360/results", timeout=5).json()
    assert results["platform_info"]["analysis_summary"]["job_id"] == job_id
    png = next(a for a in results["artifacts"] if a["path"].endswith(".png"))
    image = requests.get(url + png["url"], timeout=5)
    assert image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    layers = requests.get(f"{url}/api/builds/271360/layers", timeout=5).json()
    assert requests.get(url + layers["urls"][0], timeout=5).json()[0]["type"] == "path"

    # The CLI talks to the same server: submit --wait exits 0 on completion.
    cli = subprocess.run(
        [str(CLI), "submit", "300001", "--url", url, "--holes-interval", "5", "--wait"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "completed" in cli.stdout
    assert "100.0%" in cli.stderr
    listing = subprocess.run(
        [str(CLI), "query", "--url", url], capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0 and job_id in listing.stdout
    one = subprocess.run(
        [str(CLI), "query", job_id, "--url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert one.returncode == 0
    assert json.loads(one.stdout)["job"]["result"]["build_id"] == "271360"

    assert served.stop(signal.SIGTERM) == 0
    again = serve_factory(midas)
    assert _job(again.url, job_id)["status"] == "completed"
    assert requests.get(f"{again.url}/api/jobs", timeout=5).json()["total"] == 2
    metrics = requests.get(f"{again.url}/metrics", timeout=5).text
    assert "clf_service_startups_total 2" in metrics
    assert 'clf_jobs{state="completed"} 2' in metrics
    assert "clf_job_duration_seconds_count 2" in metrics


def test_sigterm_turns_readiness_off_drains_the_running_job_and_exits_0(
    serve_factory: Callable[..., ServeProcess], midas: Path
) -> None:
    served = serve_factory(midas, runner="slow", CLF_TEST_RUNNER_SECONDS="5")
    url = served.url
    job_id = requests.post(f"{url}/api/builds/271360/analyze", timeout=5).json()["job_id"]
    wait_for(lambda: _job(url, job_id)["status"] == "running")
    served.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: requests.get(f"{url}/readyz", timeout=5).status_code == 503)
    # Still answering polls while the job drains.
    assert _job(url, job_id)["status"] == "running"
    assert served.proc.wait(30) == 0
    assert "draining" in served.log()
    again = serve_factory(midas)
    assert _job(again.url, job_id)["status"] == "completed"


def test_cli_failures_exit_nonzero(
    serve_factory: Callable[..., ServeProcess], midas: Path, tmp_path: Path
) -> None:
    served = serve_factory(midas, runner="failing")
    failed = subprocess.run(
        [str(CLI), "submit", "271360", "--url", served.url, "--wait"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "corrupt package" in failed.stderr
    unknown = subprocess.run(
        [str(CLI), "submit", "999999", "--url", served.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unknown.returncode == 1
    assert "404" in unknown.stderr
    assert not (midas / "999999").exists()


def test_bad_configuration_exits_2_naming_the_variable(midas: Path, tmp_path: Path) -> None:
    env = serve_env(midas, tmp_path / "state", WORKER_CONCURRENCY="lots")
    proc = subprocess.run(
        [str(CLI), "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "WORKER_CONCURRENCY" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plain_gunicorn_runs_the_app_factory_from_the_environment(
    midas: Path, tmp_path: Path
) -> None:
    # The documented production entry point, without `serve` (and without job workers).
    port = free_port()
    env = serve_env(midas, tmp_path / "state", WORKER_CONCURRENCY="0", REQUEST_READ_TIMEOUT="1")
    gunicorn = CLI.parent / "gunicorn"
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "clf_analysis.api.gunicorn_worker.ApiThreadWorker",
            "--threads",
            "2",
            "--no-control-socket",
            "clf_analysis.api:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url))
        accepted = requests.post(f"{url}/api/builds/271360/analyze", timeout=5)
        assert accepted.status_code == 202
        assert requests.get(url + accepted.headers["Location"], timeout=5).status_code == 200
        # The worker class read REQUEST_READ_TIMEOUT from the environment.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            slow.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")  # and no end of headers
            answer = b""
            while chunk := slow.recv(65536):  # until the server closes the connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"application/problem+json" in answer
        assert b"not received within 1 s" in answer
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:  # refused, or accepted but slow while starting
        return False


def test_json_log_format_makes_every_line_a_json_object(
    serve_factory: Callable[..., ServeProcess], midas: Path
) -> None:
    # gunicorn's own lines (start, worker boot, access log) included, not only ours.
    served = serve_factory(midas, "--access-log", LOG_FORMAT="json")
    assert requests.get(f"{served.url}/livez", timeout=5).status_code == 200
    # A job too: its child process logs through the same JSON handler.
    job_id = requests.post(f"{served.url}/api/builds/271360/analyze", timeout=5).json()["job_id"]
    wait_for(lambda: _job(served.url, job_id)["status"] == "completed")
    assert served.stop() == 0
    lines = [line for line in served.log().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    by_logger = {r["logger"] for r in records}
    assert {"gunicorn.error", "gunicorn.access", "clf_analysis.serve"} <= by_logger, by_logger
    access = [r["message"] for r in records if r["logger"] == "gunicorn.access"]
    assert any("GET /livez" in m for m in access), access
    from_job = [r for r in records if r.get("job_id") == job_id]
    assert {"analysis of 271360 started", "stand-in runner: no real analysis"} <= {
        r["message"] for r in from_job
    }, from_job
