"""Every legacy route answers the shape docs/API.md#the-legacy-routes describes (new
members allowed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clf_analysis.jobs.store import JobStore

from .conftest import assert_problem


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    """The legacy shapes must hold on both engines (SQLite and PostgreSQL)."""
    s = JobStore.connect(store_url)
    yield s
    s.close()


def test_root_keeps_legacy_service_info(client: FlaskClient) -> None:
    body = client.get("/").get_json()
    assert body["service"] == "CLF Analysis API"
    assert body["version"] == "1.0.0"
    assert body["status"] == "running"
    assert body["endpoints"]["health"] == "/health"
    assert body["endpoints"]["analyze"] == "/api/analyze"
    assert body["endpoints"]["analyze_by_build"] == "/api/builds/<build_id>/analyze"


def test_health_keeps_legacy_body_with_iso_timestamp(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["service"] == "clf-abp-path-analysis"
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None


def test_analyze_answers_202_with_legacy_body_location_and_retry_after(
    client: FlaskClient,
) -> None:
    response = client.post(
        "/api/analyze",
        json={"build_id": "271360", "holes_interval": 10, "create_composite_views": False},
    )
    assert response.status_code == 202
    body = response.get_json()
    uuid.UUID(body["job_id"])
    assert body["status"] == "accepted"
    assert body["build_id"] == "271360"
    assert body["message"] == "Analysis started for build 271360"
    assert body["check_status_url"] == f"/api/jobs/{body['job_id']}"
    assert body["deduplicated"] is False
    assert response.headers["Location"] == f"/api/jobs/{body['job_id']}"
    assert int(response.headers["Retry-After"]) > 0


def test_analyze_by_build_accepts_no_body_and_no_content_type(client: FlaskClient) -> None:
    response = client.post("/api/builds/271360/analyze")
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted"
    assert body["build_id"] == "271360"
    assert body["message"] == "Analysis started for build 271360"
    job = client.get(body["check_status_url"]).get_json()["job"]
    assert job["holes_interval"] == 10
    assert job["create_composite_views"] is False


def test_analyze_by_build_takes_parameters_from_the_body(client: FlaskClient) -> None:
    response = client.post(
        "/api/builds/271360/analyze", json={"holes_interval": 15, "create_composite_views": True}
    )
    assert response.status_code == 202
    job = client.get(response.headers["Location"]).get_json()["job"]
    assert job["holes_interval"] == 15
    assert job["create_composite_views"] is True


def test_job_answer_has_legacy_members(client: FlaskClient) -> None:
    job_id = client.post("/api/analyze", json={"build_id": "271360"}).get_json()["job_id"]
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success"
    job = body["job"]
    for member in (
        "job_id",
        "build_id",
        "status",
        "started_at",
        "holes_interval",
        "create_composite_views",
    ):
        assert member in job
    assert job["job_id"] == job_id
    assert job["status"] == "queued"
    assert job["started_at"] is None
    # Legacy clients test for the presence of result/error: absent while not applicable.
    assert "result" not in job and "error" not in job
    assert job["progress"] == {"percent": 0.0, "stage": None, "message": None}
    assert job["params"]["holes_interval"] == 10


def test_completed_job_carries_result_and_failed_job_error(
    client: FlaskClient, store: JobStore
) -> None:
    done = client.post("/api/analyze", json={"build_id": "271360"}).get_json()["job_id"]
    bad = client.post("/api/analyze", json={"build_id": "300001"}).get_json()["job_id"]
    result = {"success": True, "build_id": "271360", "duration_seconds": 1.5}
    for job_id, finish in ((done, "complete"), (bad, "fail")):
        claimed = store.claim("w1", 30)
        assert claimed is not None and claimed.id == job_id
        if finish == "complete":
            assert store.complete(job_id, "w1", result)
        else:
            assert store.fail(job_id, "w1", {"type": "ValueError", "message": "corrupt"})
    job = client.get(f"/api/jobs/{done}").get_json()["job"]
    assert job["status"] == "completed"
    assert job["result"] == result
    assert "error" not in job
    failed = client.get(f"/api/jobs/{bad}").get_json()["job"]
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "corrupt"
    assert "result" not in failed


def test_unknown_job_is_legacy_404(client: FlaskClient) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid", "x" * 300):
        body = assert_problem(client.get(f"/api/jobs/{job_id}"), 404)
        assert body["message"] == "Job not found"


def test_job_list_has_legacy_members_and_pagination(client: FlaskClient) -> None:
    for build_id in ("271360", "300001", "demo-build"):
        assert client.post(f"/api/builds/{build_id}/analyze").status_code == 202
    body = client.get("/api/jobs").get_json()
    assert body["status"] == "success"
    assert body["count"] == len(body["jobs"]) == 3
    assert body["total"] == 3
    page = client.get("/api/jobs?limit=2&offset=2").get_json()
    assert page["count"] == 1 and page["total"] == 3 and page["limit"] == 2
    only = client.get("/api/jobs?build_id=300001").get_json()
    assert [j["build_id"] for j in only["jobs"]] == ["300001"]
    assert client.get("/api/jobs?state=completed").get_json()["count"] == 0


def test_unknown_route_is_legacy_endpoint_not_found(client: FlaskClient) -> None:
    for path in ("/nope", "/api/nope", "/api/jobs/x/y/z"):
        body = assert_problem(client.get(path), 404)
        assert body["message"] == "Endpoint not found"


def test_wrong_method_is_405_problem_with_allow(client: FlaskClient) -> None:
    response = client.put("/api/analyze")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_second_analysis_with_other_params_is_legacy_409(client: FlaskClient) -> None:
    first = client.post("/api/builds/271360/analyze", json={"holes_interval": 5}).get_json()
    response = client.post("/api/builds/271360/analyze", json={"holes_interval": 7})
    body = assert_problem(response, 409)
    assert body["active_job_id"] == first["job_id"]
    assert body["active_build_id"] == "271360"
    assert "active_started_at" in body  # null until a worker starts it
    assert body["check_status_url"] == f"/api/jobs/{first['job_id']}"


def test_unknown_build_is_404_and_creates_no_folder(client: FlaskClient, midas: Path) -> None:
    before = sorted(p.name for p in midas.iterdir())
    body = assert_problem(client.post("/api/analyze", json={"build_id": "999999"}), 404)
    assert "999999" in body["message"]
    assert_problem(client.post("/api/builds/no-package/analyze"), 404)
    assert sorted(p.name for p in midas.iterdir()) == before
    assert client.get("/api/jobs").get_json()["total"] == 0
