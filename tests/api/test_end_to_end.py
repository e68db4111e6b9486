"""The whole service on a synthetic build: real server, real workers, real analysis."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import requests

from clf_analysis.synth import generate_build, load_ground_truth

from .conftest import wait_for


def test_submit_poll_and_read_every_kind_of_result(tmp_path: Path, serve_factory) -> None:
    midas = tmp_path / "midas"
    build = generate_build(midas, build_id="e2e-1", parts=3, height_mm=4.0, seed=5)
    truth = load_ground_truth(build.ground_truth)
    served = serve_factory(midas, runner="pipeline", ANALYSIS_PROCESSES="1")
    api = served.url

    accepted = requests.post(f"{api}/api/builds/e2e-1/analyze", timeout=10)
    assert accepted.status_code == 202
    job_url = api + accepted.json()["check_status_url"]

    def finished():
        job = requests.get(job_url, timeout=10).json()["job"]
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    # Many clients poll while the analysis runs: every answer is a 200 (or 304).
    answers: list[int] = []
    failures: list[str] = []

    def poll(client: int) -> None:
        session = requests.Session()
        etag = None
        for _ in range(400):  # bounded; stops when the job is finished
            try:
                headers = {"If-None-Match": etag} if etag and client % 2 else {}
                r = session.get(job_url, headers=headers, timeout=10)
            except requests.RequestException as exc:
                failures.append(repr(exc))
                return
            answers.append(r.status_code)
            if r.status_code == 200:
                etag = r.headers.get("ETag")
                if r.json()["job"]["status"] in ("completed", "failed", "cancelled"):
                    return

    pollers = [threading.Thread(target=poll, args=(i,)) for i in range(24)]
    for t in pollers:
        t.start()
    job = wait_for(finished, timeout=180, interval=0.3)
    for t in pollers:
        t.join(timeout=120)
    assert failures == []
    assert len(answers) >= 24 and set(answers) <= {200, 304}
    assert job["status"] == "completed", job.get("error")
    assert job["progress"]["percent"] == 100.0
    result = job["result"]
    assert result["success"] is True and result["build_id"] == "e2e-1"
    assert result["parts"] == len(truth.parts)
    assert Path(result["summary_path"]) == build.build_dir / "clf_analysis" / "platform_info.json"

    results = requests.get(f"{api}/api/builds/e2e-1/results", timeout=10).json()
    info = results["platform_info"]
    assert info["job_id"] == job["job_id"]
    assert {(p["folder"], p["file"], p["model_id"]) for p in info["parts"]} == set(truth.parts)
    paths = {a["path"]: a["url"] for a in results["artifacts"]}
    clean = next(p for p in paths if p.startswith("clean_platforms/"))
    png = requests.get(api + paths[clean], timeout=10)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.shape == (2100, 2100, 4)

    layers = requests.get(f"{api}/api/builds/e2e-1/layers", timeout=10).json()
    assert layers["heights"] == list(truth.heights) and layers["count"] == len(truth.heights)
    records = requests.get(api + layers["urls"][10], timeout=10).json()
    assert records and {"identifier", "is_hole", "points"} <= set(records[0])

    log = json.loads((build.build_dir / "processes_run.json").read_text())
    assert log["clf_analysis"]["runs"][-1]["status"] == "completed"
    assert served.stop() == 0
