"""Job routes against a real store on both engines: dedupe, 409 races, ETag, cancel."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from clf_analysis.api import create_app
from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore

from .conftest import LiveServer, assert_problem


@pytest.fixture
def engine_app(make_settings: Callable[..., Settings], store_url: str) -> Any:
    store = JobStore.connect(store_url)
    yield create_app(make_settings(), store=store)
    store.close()


def _concurrent(n: int, call: Callable[[int], requests.Response]) -> list[requests.Response]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_identical_submits_yield_one_job(
    engine_app: Flask, live_server_factory: Callable[[Flask], LiveServer]
) -> None:
    server = live_server_factory(engine_app)
    url = server.url + "/api/builds/271360/analyze"
    answers = _concurrent(12, lambda _i: requests.post(url, json={"holes_interval": 10}))
    assert {r.status_code for r in answers} == {202}
    bodies = [r.json() for r in answers]
    assert len({b["job_id"] for b in bodies}) == 1
    assert Counter(b["deduplicated"] for b in bodies) == {False: 1, True: 11}
    listed = requests.get(server.url + "/api/jobs").json()
    assert listed["total"] == 1


def test_concurrent_different_submits_yield_one_job_and_409s(
    engine_app: Flask, live_server_factory: Callable[[Flask], LiveServer]
) -> None:
    server = live_server_factory(engine_app)
    url = server.url + "/api/analyze"
    answers = _concurrent(
        10, lambda i: requests.post(url, json={"build_id": "271360", "holes_interval": i + 1})
    )
    codes = Counter(r.status_code for r in answers)
    assert codes == {202: 1, 409: 9}
    winner = next(r.json() for r in answers if r.status_code == 202)
    for r in answers:
        if r.status_code == 409:
            assert r.headers["Content-Type"] == "application/problem+json"
            body = r.json()
            assert body["status"] == "error"
            assert body["active_job_id"] == winner["job_id"]
            assert body["check_status_url"] == f"/api/jobs/{winner['job_id']}"
    assert requests.get(server.url + "/api/jobs").json()["total"] == 1


def test_different_builds_are_independent(engine_app: Flask) -> None:
    client = engine_app.test_client()
    ids = {
        client.post(f"/api/builds/{b}/analyze").get_json()["job_id"]
        for b in ("271360", "300001", "demo-build")
    }
    assert len(ids) == 3


def test_idempotency_key_returns_the_same_job_even_after_it_finished(
    engine_app: Flask,
) -> None:
    client = engine_app.test_client()
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/api/builds/271360/analyze", headers=headers).get_json()
    store: JobStore = engine_app.extensions["clf_analysis"].store
    assert store.claim("w", 30) is not None
    assert store.complete(first["job_id"], "w", {"success": True})
    again = client.post("/api/builds/271360/analyze", headers=headers)
    assert again.status_code == 202
    assert again.get_json()["job_id"] == first["job_id"]
    assert again.get_json()["deduplicated"] is True
    # The same key for another request is a client bug, not a new job.
    other = client.post("/api/builds/300001/analyze", headers=headers)
    assert_problem(other, 422)


def test_etag_gives_304_until_the_job_changes(client: FlaskClient, store: JobStore) -> None:
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    first = client.get(f"/api/jobs/{job_id}")
    etag = first.headers["ETag"]
    assert first.headers["Retry-After"]
    again = client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["ETag"] == etag
    assert again.get_data() == b""
    assert store.claim("w", 30) is not None
    changed = client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["job"]["status"] == "running"


def test_finished_job_has_no_retry_after(client: FlaskClient, store: JobStore) -> None:
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    assert store.claim("w", 30) is not None
    store.complete(job_id, "w", {"success": True})
    response = client.get(f"/api/jobs/{job_id}")
    assert "Retry-After" not in response.headers


def test_cancel_queued_job_then_409_on_second_cancel(
    client: FlaskClient,
) -> None:
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 202
    assert response.get_json()["job"]["status"] == "cancelled"
    body = assert_problem(client.delete(f"/api/jobs/{job_id}"), 409)
    assert body["job_status"] == "cancelled"
    assert_problem(client.delete("/api/jobs/6f1c2f7e-0000-4000-8000-000000000000"), 404)
    # A cancelled build accepts a new analysis at once.
    assert client.post("/api/builds/271360/analyze").status_code == 202


def test_cancel_running_job_marks_the_request(client: FlaskClient, store: JobStore) -> None:
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    assert store.claim("w", 30) is not None
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 202
    job = response.get_json()["job"]
    assert job["status"] == "running"
    assert job["cancel_requested"] is True


def test_resubmitting_while_a_cancel_is_pending_is_a_409_not_the_dying_job(
    client: FlaskClient, store: JobStore
) -> None:
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    assert store.claim("w", 30) is not None
    assert client.delete(f"/api/jobs/{job_id}").status_code == 202
    again = client.post("/api/builds/271360/analyze")
    body = assert_problem(again, 409)
    assert body["type"].endswith("analysis-cancelling")
    assert body["active_job_id"] == job_id and "being cancelled" in body["message"]


def test_events_list_transitions_and_page_with_after(client: FlaskClient, store: JobStore) -> None:
    job_id = client.post("/api/builds/271360/analyze").get_json()["job_id"]
    assert store.claim("w", 30) is not None
    body = client.get(f"/api/jobs/{job_id}/events").get_json()
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[0] == "submitted"
    assert len(kinds) >= 2
    last = body["events"][-1]["id"]
    assert client.get(f"/api/jobs/{job_id}/events?after={last}").get_json()["events"] == []
    assert_problem(client.get("/api/jobs/6f1c2f7e-0000-4000-8000-000000000000/events"), 404)
