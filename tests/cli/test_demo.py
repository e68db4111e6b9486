"""`clf-analysis demo` ends with the one command that opens its results in the viewer, and
that command serves them: the /ui/ page and the build's results answer."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from .conftest import CLI, clean_env, free_port, run_cli

REPO = Path(__file__).resolve().parents[2]


def test_demo_ends_with_the_viewer_command_and_that_command_serves_the_results(
    tmp_path: Path,
) -> None:
    done = run_cli(
        "demo", "--out", "out", "--parts", "1", "--height", "2", "--layer", "0.1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"open the results in the viewer: {CLI} demo --out out --view"
    # Nothing points at the demo's own service, which is stopped by now.
    assert "/api/builds/demo-0001/artifacts" not in done.stdout
    assert "http://127.0.0.1" not in done.stdout.split("service stopped")[-1]
    # Where README says the demo's job store is, and how to read it again.
    again = run_cli("report", cwd=tmp_path, STATE_DIR="out/.state")
    assert again.returncode == 0, again.stderr
    assert "completed 1," in again.stdout.splitlines()[0]

    command = shlex.split(last.split(": ", 1)[1])
    port = free_port()
    viewer = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert viewer.stdout is not None
        first = viewer.stdout.readline()  # printed once the service answers /readyz
        url = f"http://127.0.0.1:{port}"
        assert first == f"viewer: {url}/ui/#build=demo-0001\n", viewer.stderr
        page = requests.get(f"{url}/ui/", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        results = requests.get(f"{url}/api/builds/demo-0001/results", timeout=10)
        assert results.status_code == 200
        assert results.json()["platform_info"]["build"]["id"] == "demo-0001"
        # The demo's job is in the job store the viewer reads.
        assert results.json()["latest_job"]["status"] == "completed"
        viewer.send_signal(signal.SIGTERM)
        assert viewer.wait(90) == 0
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/livez", timeout=5)  # the service went with it


def test_view_without_a_demo_says_what_to_run_first(tmp_path: Path) -> None:
    done = run_cli("demo", "--out", "out", "--view", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        f"clf-analysis demo: no demo results in out/demo-0001; run first: {CLI} demo --out out\n"
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_ui_runs_the_viewer_command() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "demo-ui"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ".venv/bin/clf-analysis demo --out demo-out --view --port 6300"
