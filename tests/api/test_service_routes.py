"""Probes, info, metrics, OpenAPI, CORS and the API token."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from clf_analysis.api import create_app
from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore

from .conftest import LiveServer, assert_problem

FRONTEND = "http://localhost:6200"


def test_probes(client: FlaskClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_is_503_while_draining(
    make_settings: Callable[..., Settings], store: JobStore
) -> None:
    draining = [False]
    app = create_app(make_settings(), store=store, is_draining=lambda: draining[0])
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    draining[0] = True
    assert_problem(client.get("/readyz"), 503)
    assert client.get("/livez").status_code == 200


def test_readyz_is_503_when_the_store_is_unreachable(
    make_settings: Callable[..., Settings], store: JobStore
) -> None:
    client = create_app(make_settings(), store=store).test_client()

    def down() -> None:
        raise ConnectionError("database is down")

    store.ping = down  # type: ignore[method-assign]
    assert_problem(client.get("/readyz"), 503)


def test_info_lists_library_versions(client: FlaskClient) -> None:
    versions = client.get("/info").get_json()["versions"]
    for name in (
        "service",
        "python",
        "numpy",
        "shapely",
        "opencv",
        "matplotlib",
        "sqlalchemy",
        "flask",
    ):
        assert versions[name], name


def test_metrics_count_jobs_by_state(client: FlaskClient, store: JobStore) -> None:
    client.post("/api/builds/271360/analyze")
    job_id = client.post("/api/builds/300001/analyze").get_json()["job_id"]
    client.delete(f"/api/jobs/{job_id}")
    response = client.get("/metrics")
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'clf_jobs{state="queued"} 1' in text
    assert 'clf_jobs{state="cancelled"} 1' in text
    assert "# TYPE clf_job_duration_seconds histogram" in text
    assert 'clf_job_duration_seconds_bucket{le="+Inf"} 0' in text
    assert "clf_oldest_queued_job_age_seconds " in text
    assert "clf_service_startups_total " in text


def test_openapi_lists_every_route_with_schemas(client: FlaskClient) -> None:
    doc = json.loads(client.get("/openapi.json").get_data())
    assert doc["openapi"].startswith("3.")
    for path, method in [
        ("/api/analyze", "post"),
        ("/api/builds/{build_id}/analyze", "post"),
        ("/api/jobs/{job_id}", "get"),
        ("/api/jobs/{job_id}", "delete"),
        ("/api/jobs", "get"),
        ("/api/builds/{build_id}/artifacts/{path}", "get"),
        ("/health", "get"),
    ]:
        assert method in doc["paths"][path], (path, method)
    schemas = doc["components"]["schemas"]
    analyze = schemas["AnalyzeRequest"]
    assert "build_id" in analyze["required"]
    assert analyze["additionalProperties"] is False
    assert "holes_interval" in analyze["properties"]
    accepted = doc["paths"]["/api/analyze"]["post"]["responses"]["202"]
    assert accepted["content"]["application/json"]["schema"]["$ref"].endswith("AcceptedResponse")
    problem = doc["paths"]["/api/analyze"]["post"]["responses"]["409"]["content"]
    assert "application/problem+json" in problem
    # Every $ref points at a schema that exists.
    refs = {ref.rsplit("/", 1)[1] for ref in _walk_refs(doc)}
    assert refs <= set(schemas)


def _walk_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            out.extend(_walk_refs(value))
        return out
    if isinstance(node, list):
        return [r for item in node for r in _walk_refs(item)]
    return []


def test_cors_allows_configured_origin_and_exposes_headers(client: FlaskClient) -> None:
    response = client.post("/api/builds/271360/analyze", headers={"Origin": FRONTEND})
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"location", "retry-after", "etag"} <= exposed
    preflight = client.options(
        "/api/analyze",
        headers={
            "Origin": "http://127.0.0.1:5176",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5176"
    # Errors carry CORS headers too, or the browser would hide the problem from the app.
    missing = client.get("/api/jobs/nope", headers={"Origin": FRONTEND})
    assert missing.headers["Access-Control-Allow-Origin"] == FRONTEND


def test_cors_absent_for_other_origins_and_without_origin(client: FlaskClient) -> None:
    response = client.get("/api/jobs", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in client.get("/api/jobs").headers


def test_api_token_guards_mutating_routes_only(
    make_settings: Callable[..., Settings], store: JobStore
) -> None:
    client = create_app(make_settings(api_token="s3cret-token"), store=store).test_client()
    response = client.post("/api/builds/271360/analyze")
    body = assert_problem(response, 401)
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "s3cret" not in json.dumps(body)
    for header in ("Bearer wrong", "Basic s3cret-token", "s3cret-token", "Bearer "):
        assert_problem(
            client.post("/api/builds/271360/analyze", headers={"Authorization": header}), 401
        )
    ok = client.post("/api/builds/271360/analyze", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 202
    job_id = ok.get_json()["job_id"]
    assert client.get(f"/api/jobs/{job_id}").status_code == 200  # reads stay open
    assert_problem(client.delete(f"/api/jobs/{job_id}"), 401)
    cancelled = client.delete(
        f"/api/jobs/{job_id}", headers={"Authorization": "bearer s3cret-token"}
    )
    assert cancelled.status_code == 202
    # A CORS preflight carries no credentials and must not be refused.
    preflight = client.options(
        "/api/analyze",
        headers={"Origin": FRONTEND, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200


def test_with_an_api_token_a_cross_site_request_needs_only_the_token(
    make_settings: Callable[..., Settings], store: JobStore
) -> None:
    # A page cannot send the token cross-site (it needs a preflight CORS refuses).
    client = create_app(make_settings(api_token="s3cret-token"), store=store).test_client()
    headers = {"Origin": "http://evil.example", "Authorization": "Bearer s3cret-token"}
    assert client.post("/api/builds/271360/analyze", headers=headers).status_code == 202


def test_a_wildcard_cors_origin_accepts_every_origin(
    make_settings: Callable[..., Settings], store: JobStore
) -> None:
    client = create_app(make_settings(cors_origins="*"), store=store).test_client()
    response = client.post("/api/builds/271360/analyze", headers={"Origin": "http://x.example"})
    assert response.status_code == 202


def test_cross_site_refusals_are_declared_only_without_a_token(
    client: FlaskClient, make_settings: Callable[..., Settings], store: JobStore
) -> None:
    without = client.get("/openapi.json").get_json()
    with_token = (
        create_app(make_settings(api_token="t"), store=store)
        .test_client()
        .get("/openapi.json")
        .get_json()
    )
    for path, item in without["paths"].items():
        for method, op in item.items():
            mutating = method in ("post", "delete")
            refusal = op["responses"].get("403", {}).get("content", {})
            types = json.dumps(refusal)
            assert ("/problems/cross-site-request" in types) == mutating, (path, method)
            token_op = with_token["paths"][path][method]
            assert "/problems/cross-site-request" not in json.dumps(token_op["responses"])


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("clf-abp-path-analysis:6300", 200),  # the compose service name
        ("CLF.example.com.", 200),  # case and a trailing dot do not matter
        ("127.0.0.1:6300", 200),  # IP addresses cannot be rebound: health checks use them
        ("[::1]:6300", 200),
        ("localhost", 200),
        ("evil.example:6300", 400),  # a page whose name was rebound to the service
        ("clf-abp-path-analysis.evil.example", 400),
    ],
)
def test_allowed_hosts_refuse_other_names_on_a_real_server(
    make_settings: Callable[..., Settings],
    store: JobStore,
    live_server_factory: Callable[[Flask], LiveServer],
    host: str,
    status: int,
) -> None:
    settings = make_settings(allowed_hosts="clf-abp-path-analysis, clf.example.com")
    server = live_server_factory(create_app(settings, store=store))
    response = requests.get(server.url + "/api/jobs", headers={"Host": host}, timeout=10)
    if status == 200:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/host-not-allowed"
    assert "ALLOWED_HOSTS" in problem["detail"]
    declared = server.app.test_client().get("/openapi.json").get_json()
    assert "/problems/host-not-allowed" in json.dumps(declared["paths"]["/api/jobs"]["get"])


def test_any_host_is_taken_by_default(client: FlaskClient) -> None:
    assert client.get("/api/jobs", headers={"Host": "whatever.example"}).status_code == 200
    declared = json.dumps(client.get("/openapi.json").get_json())
    assert "/problems/host-not-allowed" not in declared
