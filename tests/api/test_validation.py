"""Bad input never reaches a handler body: always problem+json, never a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from clf_analysis.jobs.store import JobStore

from .conftest import LiveServer, assert_problem

JSON = "application/json"


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{bad json", JSON, 400),
        ('{"build_id": "271360"', JSON, 400),
        ("[1, 2]", JSON, 400),
        ('"271360"', JSON, 400),
        ("null", JSON, 400),
        ("", JSON, 400),
        ("", None, 400),
        ("\xff\xfe", JSON, 400),
        ("[" * 50_000, JSON, 400),  # nesting deeper than the parser's recursion limit
    ],
)
def test_malformed_bodies_of_analyze_are_400(
    client: FlaskClient, data: str, content_type: str | None, status: int
) -> None:
    kwargs: dict[str, Any] = {"data": data.encode("latin-1")}
    if content_type:
        kwargs["content_type"] = content_type
    assert_problem(client.post("/api/analyze", **kwargs), status)


@pytest.mark.parametrize("route", ["/api/analyze", "/api/builds/271360/analyze"])
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("", "application/x-www-form-urlencoded"),  # a plain HTML form posting nothing
        ("build_id=271360", "application/x-www-form-urlencoded"),
        ("", "text/plain"),
        ('{"build_id": "271360"}', "text/plain; charset=utf-8"),
        ("", "multipart/form-data; boundary=x"),
        ("{}", "application/x-json"),
        ("", "application/jsonp"),
    ],
)
def test_non_json_content_types_are_415_whatever_the_body_and_start_nothing(
    client: FlaskClient, store: JobStore, route: str, data: str, content_type: str
) -> None:
    # Text and form posts are "simple" cross-site requests: any web page can send them.
    problem = assert_problem(client.post(route, data=data, content_type=content_type), 415)
    assert problem["type"] == "/problems/unsupported-content-type"
    assert content_type.split(";")[0] in problem["message"]
    assert store.list_jobs(limit=10, offset=0)[1] == 0


@pytest.mark.parametrize("content_type", [None, JSON, "application/problem+json"])
def test_build_route_takes_an_empty_body_without_a_type_or_with_a_json_one(
    client: FlaskClient, content_type: str | None
) -> None:
    # Legacy clients post no body and no Content-Type.
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/builds/271360/analyze", headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"build_id": "271360", "create_composite_views": "yes"}, "create_composite_views"),
        ({"build_id": "271360", "create_composite_views": 1}, "create_composite_views"),
        ({"build_id": "271360", "create_composite_views": 0}, "create_composite_views"),
        ({"build_id": "271360", "pathdata": "off"}, "pathdata"),
        ({"build_id": "271360", "pathdata": 0}, "pathdata"),
        ({"build_id": "271360", "pathdata": "false"}, "pathdata"),
        ({"build_id": "271360", "holes_interval": True}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": "nan"}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": "1_0"}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": " 10"}, "holes_interval"),
        ({"build_id": "271360", "hole_heights": ["5"]}, "hole_heights"),
        ({"build_id": "271360", "clean_platform_heights": [1, True]}, "clean_platform_heights"),
        ({"build_id": 271360.5}, "build_id"),
    ],
)
def test_loose_types_are_422_naming_the_field(
    client: FlaskClient, store: JobStore, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post("/api/analyze", json=body), 422)
    assert field in problem["message"]
    assert any(e["field"].startswith(field) for e in problem["errors"])
    assert store.list_jobs(limit=10, offset=0)[1] == 0


@pytest.mark.parametrize("field", ["clean_platform_heights", "hole_heights"])
def test_more_than_100_heights_are_422_naming_field_and_limit(
    client: FlaskClient, field: str
) -> None:
    heights = [round(0.1 * i, 1) for i in range(101)]
    problem = assert_problem(
        client.post("/api/analyze", json={"build_id": "271360", field: heights}), 422
    )
    assert [e["field"] for e in problem["errors"]] == [field]
    message = problem["errors"][0]["message"]
    assert "at most 100 items" in message and "not 101" in message
    accepted = client.post("/api/analyze", json={"build_id": "271360", field: heights[:100]})
    assert accepted.status_code == 202
    assert len(accepted.get_json()["job"]["params"][field]) == 100


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"build_id": "271360", "unexpected": 1}, "unexpected"),
        ({"build_id": "271360", "holes_interval": "ten"}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": 0}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": -5}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": 1e9}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": [10]}, "holes_interval"),
        ({"build_id": "271360", "create_composite_views": "maybe"}, "create_composite_views"),
        ({"build_id": "271360", "hole_heights": [1, 2000]}, "hole_heights.1"),
        ({"build_id": "271360", "clean_platform_heights": [-0.5]}, "clean_platform_heights.0"),
        ({"build_id": "271360", "holes_interval": "0.4"}, "holes_interval"),
        ({"build_id": "271360", "holes_interval": "1e1"}, "holes_interval"),
        ({"build_id": "é"}, "build_id"),
        ({"build_id": ["271360"]}, "build_id"),
        ({"build_id": True}, "build_id"),
        ({"build_id": None}, "build_id"),
        ({"holes_interval": 10}, "build_id"),
        ({"build_id": "../../etc"}, "build_id"),
        ({"build_id": "a/b"}, "build_id"),
        ({"build_id": ".hidden"}, "build_id"),
        ({"build_id": "x" * 65}, "build_id"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post("/api/analyze", json=body), 422)
    assert field in problem["message"]
    assert field in {e["field"] for e in problem["errors"]}


def test_unknown_field_on_build_route_is_422(client: FlaskClient) -> None:
    problem = assert_problem(
        client.post("/api/builds/271360/analyze", json={"holes_intervall": 5}), 422
    )
    assert problem["errors"][0]["field"] == "holes_intervall"


def test_numeric_string_holes_interval_and_numeric_build_id_are_accepted(
    client: FlaskClient,
) -> None:
    response = client.post("/api/analyze", json={"build_id": 271360, "holes_interval": "12.5"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["build_id"] == "271360"
    assert body["job"]["holes_interval"] == 12.5


def test_a_whole_number_written_with_a_fraction_is_that_integer_build_id(
    client: FlaskClient,
) -> None:
    # JSON Schema's "integer" (what /openapi.json says a numeric build id is) takes 271360.0.
    response = client.post("/api/analyze", json={"build_id": 271360.0})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["build_id"] == "271360"


@pytest.mark.parametrize(
    "path",
    [
        "/api/builds/..%2F..%2Fetc/analyze",
        "/api/builds/../analyze",
        "/api/builds/a/b/analyze",
        "/api/builds/.hidden/analyze",
        "/api/builds/%00/analyze",
        "/api/builds/" + "x" * 65 + "/analyze",
    ],
)
def test_path_like_build_ids_in_urls_are_400(client: FlaskClient, path: str, midas: Path) -> None:
    before = sorted(p.name for p in midas.parent.rglob("*"))
    assert_problem(client.post(path), 400)
    assert sorted(p.name for p in midas.parent.rglob("*")) == before


def test_body_over_limit_is_413(client: FlaskClient) -> None:
    big = '{"build_id": "271360", "pad": "' + "x" * 70_000 + '"}'
    assert_problem(client.post("/api/analyze", data=big, content_type=JSON), 413)


def test_chunked_body_over_limit_is_413_on_a_real_server(
    app: Flask, live_server_factory: Callable[[Flask], LiveServer]
) -> None:
    # No Content-Length: the limit must hold while the stream is read.
    server = live_server_factory(app)

    def chunks() -> Iterator[bytes]:
        yield b'{"build_id": "271360", "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    response = requests.post(
        server.url + "/api/analyze", data=chunks(), headers={"Content-Type": JSON}, timeout=10
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == "error"


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=abc", "limit=100000", "offset=-1", "state=bogus", "build_id=..%2Fx"],
)
def test_bad_list_queries_are_400(client: FlaskClient, query: str) -> None:
    assert_problem(client.get(f"/api/jobs?{query}"), 400)


def test_bad_idempotency_key_is_400(client: FlaskClient) -> None:
    response = client.post("/api/builds/271360/analyze", headers={"Idempotency-Key": "k" * 300})
    assert_problem(response, 400)


def test_unexpected_failure_is_500_problem_without_traceback(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clf_analysis.jobs.store import JobStore

    def explode(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(JobStore, "get", explode)
    response = client.get("/api/jobs/6f1c2f7e-0000-4000-8000-000000000000")
    body = assert_problem(response, 500)
    assert "secret" not in response.get_data(as_text=True)
    assert body["incident"] in body["message"]
