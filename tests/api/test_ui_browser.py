"""The /ui viewer in a real headless Chromium against a real server on loopback."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from clf_analysis.jobs.store import JobStore

from .conftest import LiveServer
from .runners import write_fake_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser(fn: Callable[..., None]) -> Callable[..., None]:
    skip = pytest.mark.skipif(
        CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)"
    )
    return pytest.mark.browser(skip(fn))


LAYER = [
    {
        "type": "path",
        "shape_type": "exterior",
        "color": "blue",
        "is_hole": False,
        "points": [[-60, -40], [20, -40], [20, 30], [-60, 30]],
    },
    {
        "type": "path",
        "shape_type": "interior",
        "color": "blue",
        "is_hole": True,
        "points": [[-40, -20], [0, -20], [0, 10], [-40, 10]],
    },
    {
        "type": "path",
        "shape_type": "exterior",
        "color": "red",
        "is_hole": False,
        "points": [[40, 40], [90, 40], [65, 90]],
    },
]


def _chromium(url: str, *args: str, cwd: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={cwd / 'profile'}",
            "--virtual-time-budget=8000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_ui_files_are_served_with_a_strict_policy(client: FlaskClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    # No CDN, no inline code: everything comes from /ui itself.
    assert "http://" not in html and "https://" not in html
    assert client.get("/ui/app.js").mimetype in ("text/javascript", "application/javascript")
    assert client.get("/ui/style.css").mimetype == "text/css"
    assert client.get("/ui").status_code == 308
    assert client.get("/ui/../api/jobs").status_code in (400, 404)


@browser
def test_viewer_lists_builds_follows_a_job_and_draws_its_layer(
    app: Flask,
    store: JobStore,
    midas: Path,
    tmp_path: Path,
    live_server_factory: Callable[[Flask], LiveServer],
) -> None:
    out = write_fake_results(midas / "271360", "job-1", {"holes_interval": 10})
    (out / "imagePathRawData-" / "platform_layer_pathdata_1.0mm.json").write_text(json.dumps(LAYER))
    client = app.test_client()
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    assert store.claim("w", 30) is not None
    assert store.complete(job_id, "w", {"success": True})
    server = live_server_factory(app)

    dom = _chromium(f"{server.url}/ui/#job={job_id}&layer=1", "--dump-dom", cwd=tmp_path)
    for build_id in ("271360", "300001", "demo-build"):
        assert f'data-build-id="{build_id}"' in dom
    assert f'<code id="job-id">{job_id}</code>' in dom
    assert 'class="badge completed"' in dom
    # Completing the job opened its results: summary, plate image, and the drawn layer.
    assert 'id="results-build">271360<' in dom
    assert "clean_platforms/clean_platform_1.0mm.png" in dom
    assert 'data-paths="3"' in dom  # the three loops of the middle layer, 1.0 mm

    shot = tmp_path / "viewer.png"
    _chromium(
        f"{server.url}/ui/#build=271360&layer=1",
        "--window-size=1200,1600",
        f"--screenshot={shot}",
        cwd=tmp_path,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
