"""Hostile content in the build share, against a real `clf-analysis serve`.

Files and folders the service may not open, files far larger or deeper than results are,
names no JSON client or URL survives, and folders filled with more than a run ever
writes: every route answers a declared problem or a bounded answer, never a bare 500.
When the tests run as root, the server runs without root's power to ignore file modes
(the service never runs as root), so that a mode-000 file is unreadable to it.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from clf_analysis.abp.discovery import MAX_BUILD_FOLDER_ENTRIES
from clf_analysis.api.builds import MAX_LISTED_ARTIFACTS, PLATFORM_INFO_MAX_BYTES

from .conftest import ServeProcess, make_midas, serve_env, start_serve
from .runners import write_fake_results

GiB = 1024**3
NOBODY = 65534
PNG = "clean_platforms/clean_platform_1.0mm.png"


def _build(midas: Path, build_id: str) -> Path:
    """A build with a package and the results the test runner writes; its outputs."""
    folder = midas / build_id
    folder.mkdir()
    (folder / f"{build_id}.abp").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return write_fake_results(folder, "job-1", {"holes_interval": 10})


def _unreadable(path: Path) -> None:
    """Not readable by the service's user: another owner's private folder (as root), or
    a mode that lets nobody in."""
    if os.geteuid() == 0 and path.is_dir():
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o700)
    else:
        path.chmod(0)


def _plant(midas: Path) -> list[Path]:
    """Every build of the module; returns what was made unreadable (to restore)."""
    outputs = _build(midas, "sparse")
    with (outputs / "platform_info.json").open("r+b") as fh:
        fh.truncate(GiB)  # a gigabyte of nothing: no disk, but read whole it was 1.4 GB
    outputs = _build(midas, "padded")
    head = b'{"layers": 3}'
    (outputs / "platform_info.json").write_bytes(
        head + b" " * (PLATFORM_INFO_MAX_BYTES + 1 - len(head))
    )
    outputs = _build(midas, "brackets")
    (outputs / "platform_info.json").write_text("[" * 200_000)
    outputs = _build(midas, "nested")
    (outputs / "platform_info.json").write_text('{"a":' * 950 + "1" + "}" * 950)

    locked = []
    _build(midas, "locked-build")
    locked.append(midas / "locked-build")
    locked.append(_build(midas, "locked-outputs"))
    outputs = _build(midas, "locked-files")
    locked += [
        outputs / "platform_info.json",
        outputs / "imagePathRawData-" / "platform_layer_pathdata_1.0mm.json",
        outputs / PNG,
    ]

    outputs = _build(midas, "names")
    fd = os.open(outputs, os.O_RDONLY)
    try:
        os.close(os.open(b"bad\xff.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)
    for name in ("q?x#y.png", "new\nline.png", "tab\there.png"):
        (outputs / name).write_bytes(b"png of " + name.encode())
    (outputs / "report.txt").write_text("text")
    (outputs / "table.csv").write_text("a,b\n1,2\n")

    outputs = _build(midas, "many")
    (outputs / "many").mkdir()
    for i in range(MAX_LISTED_ARTIFACTS + 1):
        (outputs / "many" / f"{i:05d}.png").touch()

    _build(midas, "crowded")
    for i in range(MAX_BUILD_FOLDER_ENTRIES + 1):
        (midas / "crowded" / f"note-{i:05d}.txt").touch()

    for path in locked:
        _unreadable(path)
    return locked


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, without_root_file_access: list[str]
) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("content")
    midas = make_midas(root)
    locked = _plant(midas)
    env = serve_env(midas, root / "state", WORKER_CONCURRENCY="0")
    server = start_serve(env, root / "serve.log", prefix=tuple(without_root_file_access))
    yield server
    server.stop(signal.SIGKILL, timeout=10)
    for path in locked:  # so that the temporary folder can be deleted
        path.chmod(0o755)


def _get(served: ServeProcess, path: str, **headers: str) -> requests.Response:
    return requests.get(served.url + path, headers=headers, timeout=60)


def _problem(response: requests.Response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"/problems/{kind}", problem
    assert problem["status"] == "error" and problem["http_status"] == status
    return problem


@pytest.mark.parametrize(
    ("build_id", "reason"),
    [
        ("sparse", f"is {GiB} bytes, more than the {PLATFORM_INFO_MAX_BYTES} bytes"),
        ("padded", f"is {PLATFORM_INFO_MAX_BYTES + 1} bytes, more than the"),
        ("brackets", "nests more than 64 levels deep"),
        ("nested", "nests more than 64 levels deep"),
    ],
)
def test_results_too_large_or_too_deep_are_a_declared_problem(
    served: ServeProcess, build_id: str, reason: str
) -> None:
    problem = _problem(_get(served, f"/api/builds/{build_id}/results"), 500, "results-unreadable")
    assert f"{build_id}/clf_analysis/platform_info.json {reason}" in problem["detail"]


@pytest.mark.parametrize(
    ("path", "entry"),
    [
        ("/api/builds/locked-build/results", "locked-build"),
        ("/api/builds/locked-build/layers", "locked-build"),
        ("/api/builds/locked-outputs/results", "locked-outputs/clf_analysis"),
        ("/api/builds/locked-outputs/layers", "locked-outputs/clf_analysis"),
        ("/api/builds/locked-files/results", "locked-files/clf_analysis/platform_info.json"),
        (
            "/api/builds/locked-files/layers/1.0",
            "locked-files/clf_analysis/imagePathRawData-/platform_layer_pathdata_1.0mm.json",
        ),
        (f"/api/builds/locked-files/artifacts/{PNG}", f"locked-files/clf_analysis/{PNG}"),
    ],
)
def test_what_the_service_may_not_read_is_403_naming_it(
    served: ServeProcess, path: str, entry: str
) -> None:
    problem = _problem(_get(served, path), 403, "share-permission-denied")
    assert problem["path"] == entry
    assert f"{entry}: permission denied" in problem["detail"]


def test_submitting_a_build_the_service_may_not_read_is_403_and_starts_nothing(
    served: ServeProcess,
) -> None:
    answer = requests.post(served.url + "/api/builds/locked-build/analyze", timeout=30)
    problem = _problem(answer, 403, "share-permission-denied")
    assert problem["path"] == "locked-build"
    jobs = _get(served, "/api/jobs?build_id=locked-build").json()
    assert jobs["total"] == 0


def test_these_refusals_are_declared_in_the_description(served: ServeProcess) -> None:
    paths = _get(served, "/openapi.json").json()["paths"]
    for path, method in [
        ("/api/builds/{build_id}/results", "get"),
        ("/api/builds/{build_id}/layers", "get"),
        ("/api/builds/{build_id}/layers/{height}", "get"),
        ("/api/builds/{build_id}/artifacts/{path}", "get"),
        ("/api/builds/{build_id}/analyze", "post"),
        ("/api/analyze", "post"),
    ]:
        declared = json.dumps(paths[path][method]["responses"]["403"])
        assert "/problems/share-permission-denied" in declared, (path, method)


def test_hostile_names_are_left_out_and_listed_urls_are_encoded(served: ServeProcess) -> None:
    answer = _get(served, "/api/builds/names/results")
    assert answer.status_code == 200
    assert b"\\udc" not in answer.content  # no lone surrogate for a strict JSON parser
    artifacts = {a["path"]: a for a in answer.json()["artifacts"]}
    assert "bad\udcff.png" not in artifacts
    assert "new\nline.png" not in artifacts and "tab\there.png" not in artifacts
    odd = artifacts["q?x#y.png"]
    assert odd["url"] == "/api/builds/names/artifacts/q%3Fx%23y.png"
    fetched = _get(served, odd["url"])
    assert fetched.status_code == 200 and fetched.content == b"png of q?x#y.png"
    assert answer.json()["artifacts_truncated"] is False


def test_text_artifacts_name_their_charset_once(served: ServeProcess) -> None:
    text = _get(served, "/api/builds/names/artifacts/report.txt")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    table = _get(served, "/api/builds/names/artifacts/table.csv")
    assert table.headers["Content-Type"] == "text/csv; charset=utf-8"


@pytest.mark.parametrize(
    ("header", "status"),
    [("bytes=5-1", 200), ("items=0-1", 200), ("bytes=0-1, 3-4", 200), ("bytes=0-1", 206)],
)
def test_ranges_the_route_cannot_serve_are_ignored(
    served: ServeProcess, header: str, status: int
) -> None:
    answer = _get(served, "/api/builds/names/artifacts/table.csv", Range=header)
    assert answer.status_code == status
    assert answer.content == (b"a,b\n1,2\n" if status == 200 else b"a,")


def test_a_range_outside_the_file_is_still_416(served: ServeProcess) -> None:
    answer = _get(served, "/api/builds/names/artifacts/table.csv", Range="bytes=999-")
    assert answer.status_code == 416


def test_a_folder_of_more_files_than_a_run_writes_is_listed_up_to_the_cap(
    served: ServeProcess,
) -> None:
    body = _get(served, "/api/builds/many/results").json()
    assert body["artifacts_truncated"] is True
    assert len(body["artifacts"]) == MAX_LISTED_ARTIFACTS


def test_builds_whose_results_cannot_be_read_are_listed_without_results(
    served: ServeProcess,
) -> None:
    builds = {b["build_id"]: b for b in _get(served, "/api/builds?limit=5000").json()["builds"]}
    assert builds["locked-outputs"]["results_available"] is False
    assert builds["names"]["results_available"] is True
    assert "locked-build" not in builds  # not even its package can be seen


def test_a_build_folder_of_too_many_entries_is_no_build(served: ServeProcess) -> None:
    listed = {b["build_id"] for b in _get(served, "/api/builds?limit=5000").json()["builds"]}
    assert "crowded" not in listed and "names" in listed
    answer = requests.post(served.url + "/api/builds/crowded/analyze", timeout=30)
    problem = _problem(answer, 404, "build-not-found")
    assert f"holds more than {MAX_BUILD_FOLDER_ENTRIES} entries" in problem["detail"]
