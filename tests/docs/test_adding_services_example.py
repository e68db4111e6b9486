"""The worked example of ADDING_SERVICES.md runs, and the guide shows it as it is.

The runner in docs/examples/layer_alignment/ is served by a real `clf-analysis serve
--runner layer_alignment.job:run_job` with a real job store, and driven over HTTP on a
build the CLF analysis has analysed, as the guide's "Try it" does; its compose file is
checked against the Compose specification.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ruamel.yaml import YAML

from clf_analysis.synth import generate_build

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "ADDING_SERVICES.md"
EXAMPLES = ROOT / "docs" / "examples"
EXAMPLE = EXAMPLES / "layer_alignment"
RUNNER = "layer_alignment.job:run_job"
CLI = Path(sys.executable).parent / "clf-analysis"
INCLUDED = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.DOTALL)


def test_the_guide_shows_the_example_files_verbatim() -> None:
    shown = dict(INCLUDED.findall(GUIDE.read_text(encoding="utf-8")))
    assert set(shown) == {
        "docs/examples/layer_alignment/job.py",
        "docs/examples/layer_alignment/docker-compose.yml",
    }
    for name, text in shown.items():
        assert text == (ROOT / name).read_text(encoding="utf-8"), f"{name} differs from the guide"


def test_the_example_compose_file_follows_the_stack_conventions() -> None:
    path = EXAMPLE / "docker-compose.yml"
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    compose = YAML(typ="safe", pure=True).load(path.read_text())
    assert compose["name"] == "defect-detector-services"
    assert compose["networks"]["defectdetect"] == {
        "name": "defectdetect-database_default",
        "external": True,
    }
    service = compose["services"]["layer-alignment"]
    assert service["command"] == ["clf-analysis", "serve", "--runner", RUNNER]
    assert service["networks"] == ["defectdetect"]
    assert service["environment"]["PORT"] == "6400"
    assert "6400/readyz" in " ".join(service["healthcheck"]["test"])


@pytest.fixture(scope="module")
def midas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two builds: one the CLF analysis has analysed, one it has not."""
    base = tmp_path_factory.mktemp("align") / "midas"
    for build_id in ("b-aligned", "b-raw"):
        generate_build(base, build_id=build_id, parts=2, height_mm=2.0, layer_mm=0.1, seed=4)
    done = subprocess.run(
        [str(CLI), "analyze", "b-aligned", "--midas", str(base), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return base


@pytest.fixture(scope="module")
def service(midas: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`clf-analysis serve --runner layer_alignment.job:run_job` as the guide runs it."""
    state = tmp_path_factory.mktemp("align-state")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "DATABASE_URL")}
    env.update(
        PYTHONPATH=str(EXAMPLES),
        MIDAS_BASE_PATH=str(midas),
        STATE_DIR=str(state),
        WORKER_CONCURRENCY="1",
    )
    log = state / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--runner", RUNNER],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=state,  # the example is found through PYTHONPATH, not the working directory
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(url: str, build_id: str) -> dict[str, Any]:
    accepted = requests.post(f"{url}/api/builds/{build_id}/analyze", timeout=10)
    assert accepted.status_code == 202, accepted.text
    job_url = url + accepted.json()["check_status_url"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = requests.get(job_url, timeout=10).json()["job"]
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job of {build_id} did not finish: {job}")


def test_the_runner_aligns_every_layer_and_publishes_in_one_step(service: str, midas: Path) -> None:
    build = midas / "b-aligned"
    info = json.loads((build / "clf_analysis" / "platform_info.json").read_text())
    layer_files = {h["height"]: h["filename"] for h in info["heights"]}

    for _ in range(2):  # the second run replaces the first one's results
        job = _run(service, "b-aligned")
        assert job["status"] == "completed", job
        assert job["result"] == {
            "build_id": "b-aligned",
            "layers": len(layer_files),
            "output_relpath": "b-aligned/layer_alignment",
        }
        events = requests.get(f"{service}/api/jobs/{job['job_id']}/events", timeout=10).json()
        stages = [e["detail"]["stage"] for e in events["events"] if e["kind"] == "stage"]
        assert stages == ["align", "publish"]

        published = json.loads((build / "layer_alignment" / "alignment.json").read_text())
        assert published["job_id"] == job["job_id"]
        assert [layer["height_mm"] for layer in published["layers"]] == sorted(layer_files)
        for layer in published["layers"]:
            records = json.loads(
                (build / "clf_analysis" / layer_files[layer["height_mm"]]).read_text()
            )
            assert layer["paths"] == len(records)
            assert layer["centre_mm"] is not None
            assert all(-105 <= c <= 105 for c in layer["centre_mm"])  # on the plate
    # Nothing of either run is left beside the published folder.
    assert sorted(p.name for p in build.iterdir() if p.name.startswith("layer_alignment")) == [
        "layer_alignment"
    ]


def test_a_build_without_path_data_fails_saying_what_to_do_first(service: str) -> None:
    job = _run(service, "b-raw")
    assert job["status"] == "failed"
    assert job["error"]["type"] == "AlignmentError"
    assert job["error"]["message"] == (
        "build b-raw has no path data (b-raw/clf_analysis/imagePathRawData-): "
        "run the CLF analysis first"
    )
