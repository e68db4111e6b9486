"""Builds, results, artifacts and layers: what is served, and that nothing else is."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from clf_analysis.abp.share import ShareDir
from clf_analysis.api.artifacts import READ_ATTEMPTS, read_outputs
from clf_analysis.api.errors import ApiError

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


@pytest.mark.parametrize("content", [b"[1, 2]", b'"text"', b"null", b"{not json"])
def test_results_that_are_not_a_json_object_are_a_clear_problem(
    client: FlaskClient, results: Path, content: bytes
) -> None:
    (results / "platform_info.json").write_bytes(content)
    problem = assert_problem(client.get("/api/builds/271360/results"), 500)
    assert problem["type"] == "/problems/results-unreadable"
    assert "271360" in problem["detail"]


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


# Issue 16, defect 3: nothing is read through a link out of clf_analysis/.


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside the share, as an attacker would point at them."""
    folder = tmp_path / "outside"
    (folder / "layers").mkdir(parents=True)
    (folder / "passwd").write_text("root:x:0:0:SENTINEL:/root:/bin/bash\n")
    (folder / "info.json").write_text('{"layers": 1, "leak": "SENTINEL"}')
    for h in (*LAYER_HEIGHTS, 7.5):
        (folder / "layers" / f"platform_layer_pathdata_{h}mm.json").write_text('["SENTINEL"]')
    return folder


def _no_sentinel(response) -> None:
    assert b"SENTINEL" not in response.get_data()


def test_a_layer_file_linked_out_of_the_results_is_not_served(
    client: FlaskClient, results: Path, outside: Path
) -> None:
    layer = results / "imagePathRawData-" / "platform_layer_pathdata_1.0mm.json"
    layer.unlink()
    layer.symlink_to(outside / "passwd")
    response = client.get("/api/builds/271360/layers/1.0")
    body = assert_problem(response, 404)
    _no_sentinel(response)
    assert (
        "271360/clf_analysis/imagePathRawData-/platform_layer_pathdata_1.0mm.json"
        in (body["detail"])
    )
    assert str(results) not in body["detail"]
    listed = client.get("/api/builds/271360/layers").get_json()
    assert listed["heights"] == [0.05, 0.1]


def test_a_layer_folder_linked_out_of_the_results_is_neither_listed_nor_served(
    client: FlaskClient, results: Path, outside: Path
) -> None:
    shutil.rmtree(results / "imagePathRawData-")
    (results / "imagePathRawData-").symlink_to(outside / "layers")
    listed = client.get("/api/builds/271360/layers")
    assert listed.status_code == 200 and listed.get_json()["heights"] == []
    for h in ("1.0", "7.5"):
        response = client.get(f"/api/builds/271360/layers/{h}")
        assert_problem(response, 404)
        _no_sentinel(response)
    assert client.get("/api/builds/271360/results").get_json()["layer_count"] == 0


def test_a_linked_platform_info_is_not_embedded_in_the_results(
    client: FlaskClient, results: Path, outside: Path
) -> None:
    (results / "platform_info.json").unlink()
    (results / "platform_info.json").symlink_to(outside / "info.json")
    response = client.get("/api/builds/271360/results")
    body = assert_problem(response, 404)
    _no_sentinel(response)
    assert "271360/clf_analysis/platform_info.json is a symbolic link" in body["detail"]
    _no_sentinel(client.get("/api/builds/271360/artifacts/platform_info.json"))
    builds = {b["build_id"]: b for b in client.get("/api/builds").get_json()["builds"]}
    assert builds["271360"]["results_available"] is False


def test_linked_artifacts_and_folders_are_not_listed_in_the_results(
    client: FlaskClient, results: Path, outside: Path, midas: Path
) -> None:
    (results / "leak.json").symlink_to(outside / "info.json")
    (results / "other_build").symlink_to(midas / "300001")
    (results / "holes_views").symlink_to(outside)
    body = client.get("/api/builds/271360/results").get_json()
    paths = {a["path"] for a in body["artifacts"]}
    assert paths == {"clean_platforms/clean_platform_1.0mm.png", "platform_info.json"}
    for path in ("leak.json", "holes_views/info.json", "other_build/build_300001.abp"):
        response = client.get(f"/api/builds/271360/artifacts/{path}")
        assert_problem(response, 404)
        _no_sentinel(response)


def test_an_output_folder_linked_to_another_build_serves_nothing(
    client: FlaskClient, midas: Path, outside: Path
) -> None:
    write_fake_results(midas / "300001", "job-2", {"holes_interval": 10})
    (midas / "271360" / "clf_analysis").symlink_to(midas / "300001" / "clf_analysis")
    for route in ("results", "layers", "layers/1.0", "artifacts/platform_info.json"):
        body = assert_problem(client.get(f"/api/builds/271360/{route}"), 404)
        assert "271360/clf_analysis is a symbolic link" in body["detail"]
    builds = {b["build_id"]: b for b in client.get("/api/builds").get_json()["builds"]}
    assert builds["271360"]["results_available"] is False


def test_a_build_folder_that_is_a_link_is_no_build(
    client: FlaskClient, midas: Path, results: Path
) -> None:
    (midas / "alias").symlink_to(midas / "271360")
    builds = {b["build_id"] for b in client.get("/api/builds").get_json()["builds"]}
    assert "alias" not in builds
    assert_problem(client.get("/api/builds/alias/results"), 404)
    body = assert_problem(client.post("/api/builds/alias/analyze"), 404)
    assert body["detail"].startswith("build 'alias': alias is a symbolic link")


def test_a_package_link_out_of_the_build_is_refused_at_submit(
    client: FlaskClient, midas: Path
) -> None:
    package = midas / "300001" / "build_300001.abp"
    package.unlink()
    package.symlink_to(midas / "271360" / "build_271360.abp")
    body = assert_problem(client.post("/api/builds/300001/analyze"), 404)
    assert "package 300001/build_300001.abp is a symbolic link" in body["detail"]
    assert str(midas) not in body["detail"]
    builds = {b["build_id"] for b in client.get("/api/builds").get_json()["builds"]}
    assert "300001" not in builds


# Issue 16, defect 9: what is served cannot be run by a browser.


def test_artifacts_and_layers_forbid_sniffing_and_active_content(
    client: FlaskClient, results: Path
) -> None:
    for url in (
        "/api/builds/271360/artifacts/clean_platforms/clean_platform_1.0mm.png",
        "/api/builds/271360/artifacts/platform_info.json",
        "/api/builds/271360/layers/1.0",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "sandbox" in csp


def test_an_html_file_dropped_into_the_results_is_never_served_as_html(
    client: FlaskClient, results: Path
) -> None:
    (results / "report.html").write_text("<script>alert(document.cookie)</script>")
    (results / "clean_platforms" / "x.svg").write_text("<svg onload='alert(1)'/>")
    for name in ("report.html", "clean_platforms/x.svg"):
        response = client.get(f"/api/builds/271360/artifacts/{name}")
        assert response.status_code == 200
        assert response.mimetype == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]


def test_artifact_ranges_and_revalidation_still_work(client: FlaskClient, results: Path) -> None:
    url = "/api/builds/271360/artifacts/platform_info.json"
    full = client.get(url)
    part = client.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.get_data() == full.get_data()[:10]
    assert part.headers["Content-Range"] == f"bytes 0-9/{len(full.get_data())}"
    assert client.get(url, headers={"If-None-Match": full.headers["ETag"]}).status_code == 304


def _swap_in_new_results(build: Path, marker: str) -> None:
    """What a publish does: the new folder takes the live name, the old one is deleted."""
    new = build / "clf_analysis.tmp-new"
    shutil.copytree(build / "clf_analysis", new)
    (new / "platform_info.json").write_text(json.dumps({"run": marker}))
    os.rename(build / "clf_analysis", build / "clf_analysis.old-x")
    os.rename(new, build / "clf_analysis")
    shutil.rmtree(build / "clf_analysis.old-x")


def test_a_read_that_meets_a_publish_starts_over_on_the_new_results(
    app: Flask, results: Path
) -> None:
    seen: list[str] = []

    def read(outputs: ShareDir) -> str:
        if not seen:
            # The folder this attempt opened goes away under it, as in a publish.
            _swap_in_new_results(results.parent, "second")
        seen.append("attempt")
        return json.loads(outputs.read_bytes("platform_info.json"))["run"]

    with app.test_request_context():
        assert read_outputs("271360", read) == "second"
    assert len(seen) == 2


def test_a_read_that_keeps_meeting_publishes_is_a_results_changing_problem(
    app: Flask, results: Path
) -> None:
    attempts: list[int] = []

    def read(outputs: ShareDir) -> bytes:
        attempts.append(1)
        _swap_in_new_results(results.parent, f"run {len(attempts)}")
        return outputs.read_bytes("platform_info.json")

    with app.test_request_context(), pytest.raises(ApiError) as raised:
        read_outputs("271360", read)
    assert raised.value.kind == "results-changing"
    assert len(attempts) == READ_ATTEMPTS
