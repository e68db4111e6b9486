"""Builds, results, artifacts and layers: what is served, and that nothing else is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from .conftest import assert_problem
from .runners import LAYER_HEIGHTS, LAYER_POINTS, write_fake_results


@pytest.fixture
def results(midas: Path) -> Path:
    """Build 271360 has results; the build folder also holds a file that is not one."""
    out = write_fake_results(midas / "271360", "job-1", {"holes_interval": 10})
    (midas / "271360" / "processes_run.json").write_text('{"secret": true}')
    (out / ".hidden.json").write_text("{}")
    return out


def test_builds_lists_folders_with_a_package(client: FlaskClient, results: Path) -> None:
    body = client.get("/api/builds").get_json()
    assert body["status"] == "success"
    builds = {b["build_id"]: b for b in body["builds"]}
    assert set(builds) == {"271360", "300001", "demo-build"}
    assert builds["271360"]["results_available"] is True
    assert builds["300001"]["results_available"] is False
    assert builds["271360"]["archive"] == "build_271360.abp"
    assert builds["271360"]["size_bytes"] == 22
    assert builds["271360"]["latest_job"] is None


def test_builds_show_the_latest_job(client: FlaskClient) -> None:
    job_id = client.post("/api/builds/300001/analyze").get_json()["job_id"]
    builds = {b["build_id"]: b for b in client.get("/api/builds").get_json()["builds"]}
    assert builds["300001"]["latest_job"]["job_id"] == job_id
    assert builds["300001"]["latest_job"]["status"] == "queued"


def test_results_give_platform_info_and_artifact_links(client: FlaskClient, results: Path) -> None:
    body = client.get("/api/builds/271360/results").get_json()
    assert body["platform_info"]["layers"] == len(LAYER_HEIGHTS)
    paths = {a["path"]: a for a in body["artifacts"]}
    assert "clean_platforms/clean_platform_1.0mm.png" in paths
    assert "platform_info.json" in paths
    assert not any(p.startswith(".") or "imagePathRawData-" in p for p in paths)
    png = paths["clean_platforms/clean_platform_1.0mm.png"]
    assert client.get(png["url"]).status_code == 200
    assert body["layer_count"] == len(LAYER_HEIGHTS)


def test_results_of_build_without_results_are_404(client: FlaskClient) -> None:
    assert_problem(client.get("/api/builds/300001/results"), 404)
    assert_problem(client.get("/api/builds/999999/results"), 404)
    assert_problem(client.get("/api/builds/..%2F271360/results"), 400)


def test_artifact_has_type_and_caching_headers_and_revalidates(
    client: FlaskClient, results: Path
) -> None:
    url = "/api/builds/271360/artifacts/clean_platforms/clean_platform_1.0mm.png"
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.get_data().startswith(b"\x89PNG")
    assert response.headers["ETag"]
    assert response.headers["Last-Modified"]
    assert "no-cache" in response.headers["Cache-Control"]
    again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    info = client.get("/api/builds/271360/artifacts/platform_info.json")
    assert info.mimetype == "application/json"
    assert json.loads(info.get_data())["layers"] == len(LAYER_HEIGHTS)


@pytest.mark.parametrize(
    "path",
    [
        "../processes_run.json",
        "..%2Fprocesses_run.json",
        "clean_platforms/../../processes_run.json",
        ".hidden.json",
        "%2Fetc%2Fpasswd",
        "clean_platforms//clean_platform_1.0mm.png",
        "clean_platforms\\clean_platform_1.0mm.png",
    ],
)
def test_artifact_path_tricks_are_refused(client: FlaskClient, results: Path, path: str) -> None:
    response = client.get(f"/api/builds/271360/artifacts/{path}")
    assert response.status_code in (400, 404)
    assert_problem(response, response.status_code)
    assert b"secret" not in response.get_data()


def test_symlink_leading_out_of_the_results_is_refused(
    client: FlaskClient, results: Path, midas: Path
) -> None:
    os.symlink(midas / "271360" / "processes_run.json", results / "link.json")
    os.symlink(midas / "271360", results / "up")
    assert_problem(client.get("/api/builds/271360/artifacts/link.json"), 404)
    assert_problem(client.get("/api/builds/271360/artifacts/up/processes_run.json"), 404)


def test_missing_artifact_is_404(client: FlaskClient, results: Path) -> None:
    assert_problem(client.get("/api/builds/271360/artifacts/nope.png"), 404)
    assert_problem(client.get("/api/builds/271360/artifacts/clean_platforms"), 404)


def test_layers_list_heights_and_serve_path_data(client: FlaskClient, results: Path) -> None:
    body = client.get("/api/builds/271360/layers").get_json()
    assert body["heights"] == sorted(LAYER_HEIGHTS)
    assert body["count"] == len(LAYER_HEIGHTS)
    layer = client.get(body["urls"][-1])
    assert layer.mimetype == "application/json"
    assert layer.get_json()[0]["points"] == LAYER_POINTS
    # The same height written differently finds the same file.
    assert client.get("/api/builds/271360/layers/1.0000").status_code == 200
    assert client.get("/api/builds/271360/layers/0.05mm").status_code == 200


def test_bad_or_missing_layers(client: FlaskClient, results: Path) -> None:
    assert_problem(client.get("/api/builds/271360/layers/abc"), 400)
    assert_problem(client.get("/api/builds/271360/layers/nan"), 400)
    assert_problem(client.get("/api/builds/271360/layers/7.5"), 404)
    assert_problem(client.get("/api/builds/300001/layers"), 404)
