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


@browser
def test_older_results_draw_their_holes_and_a_warning_naming_a_height_jumps_there(
    app: Flask,
    midas: Path,
    tmp_path: Path,
    live_server_factory: Callable[[Flask], LiveServer],
) -> None:
    """Schema-2 path data has no nesting_depth or kind: is_hole decides, as it did then."""
    import cv2
    import numpy as np
    from playwright.sync_api import expect, sync_playwright

    out = write_fake_results(midas / "271360", "job-1", {"holes_interval": 10})
    (out / "imagePathRawData-" / "platform_layer_pathdata_1.0mm.json").write_text(json.dumps(LAYER))
    info = json.loads((out / "platform_info.json").read_text())
    info["warnings"] = [
        "Parts/Part.clf: 2 layers repeat the height of the layer before "
        "(first at z=0.1000 mm); only the first of each is analysed",
        "Parts/Part.clf: header has no file name (id 0)",
    ]
    (out / "platform_info.json").write_text(json.dumps(info))
    server = live_server_factory(app)

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_page(viewport={"width": 1000, "height": 1000})
            page.goto(f"{server.url}/ui/#build=271360&layer=1")
            canvas = page.locator("#layer-canvas")
            expect(canvas).to_have_attribute("data-height", "1")
            page.evaluate(
                "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
            )
            view = page.evaluate("() => ({...document.getElementById('layer-canvas').dataset})")
            shot = cv2.imdecode(np.frombuffer(canvas.screenshot(), np.uint8), cv2.IMREAD_COLOR)

            def colour(x: float, y: float) -> tuple[int, ...]:
                s = float(view["pxPerMm"])
                px = float(view["originX"]) + x * s
                py = float(view["originY"]) - y * s
                return tuple(int(c) for c in shot[int(py), int(px)][::-1])

            def css(name: str) -> tuple[int, ...]:
                value = page.evaluate(
                    "n => getComputedStyle(document.documentElement).getPropertyValue(n).trim()",
                    name,
                )
                return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))

            assert colour(-20, -5) == css("--hole")  # inside the hole of the first loop
            assert colour(-50, 20) == css("--metal")  # in the solid around it
            assert colour(7, 53) == css("--plate")  # nothing drawn there (nor a grid line)

            warnings = page.locator("ul.warnings li")
            expect(warnings).to_have_count(2)
            # Only the warning that names a height offers to go there.
            expect(warnings.nth(1).locator("button")).to_have_count(0)
            warnings.nth(0).locator("button.go-layer").click()
            expect(canvas).to_have_attribute("data-height", "0.1")
            assert page.evaluate("location.hash") == "#build=271360&layer=0.1"
        finally:
            chromium.close()
