"""/openapi.json is the contract: valid OpenAPI 3.1, complete, and agreeing with the server.

The agreement tests ask the description and the server the same questions (is this body,
this build id, this artifact path, this height acceptable?) and compare the answers.
JSON Schema patterns are ECMA-262: '$' ends the text, so they are read here with `\\Z`
(Python's '$' would also take a trailing newline).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import ValidationError

from clf_analysis.abp.discovery import BUILD_ID_PATTERN, validate_build_id
from clf_analysis.abp.errors import InvalidBuildId
from clf_analysis.api import create_app
from clf_analysis.api.artifacts import artifact_path
from clf_analysis.api.errors import ApiError
from clf_analysis.api.models import AnalyzeRequest
from clf_analysis.api.openapi import build_document
from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore

from .conftest import assert_problem

PROBLEM = "application/problem+json"
# The fixtures these use hold no state the examples change.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _ecma(schema: Any) -> Any:
    """`schema` with every pattern anchored the ECMA-262 way for Python's `re`."""
    if isinstance(schema, dict):
        return {
            key: (
                value[:-1] + r"\Z"
                if key == "pattern" and isinstance(value, str) and value.endswith("$")
                else _ecma(value)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_ecma(item) for item in schema]
    return schema


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of `schema`, resolving the document's #/components refs."""
    root = _ecma({**schema, "components": doc["components"]})
    return jsonschema.Draft202012Validator(root)


def _operation(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path][method]
    return op


def _parameter(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"] == name)


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body: dict[str, Any] = json.loads(response.get_data())
    return body


@pytest.fixture
def token_app(make_settings: Callable[..., Settings], store: JobStore) -> Flask:
    return create_app(make_settings(api_token="s3cret"), store=store)


# --- the document itself ------------------------------------------------------------------


def test_the_description_is_valid_openapi_3_1(doc: dict[str, Any], token_app: Flask) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    with_token = json.loads(token_app.test_client().get("/openapi.json").get_data())
    validate(with_token, cls=OpenAPIV31SpecValidator)


def test_a_broken_description_is_caught_by_the_meta_schema_check(doc: dict[str, Any]) -> None:
    # The check above can fail: OpenAPI 3 has no body parameters.
    broken = json.loads(json.dumps(doc))
    broken["paths"]["/api/jobs"]["get"]["parameters"][0]["in"] = "body"
    with pytest.raises(Exception, match="body"):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_route_of_the_app_is_described(app: Flask, doc: dict[str, Any]) -> None:
    served = {
        (re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == described
    assert ("/docs", "get") in described


def test_a_route_without_a_declaration_cannot_be_described(app: Flask) -> None:
    app.add_url_rule("/undeclared", "undeclared", lambda: "x")
    with pytest.raises(LookupError, match="/undeclared"):
        build_document(app)


def test_every_ref_resolves_and_every_error_is_problem_json(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs and refs <= set(doc["components"]["schemas"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"][PROBLEM]["schema"]
                    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
                    types = schema["allOf"][1]["properties"]["type"]["enum"]
                    assert types and all(
                        t == "about:blank" or t.startswith("/problems/") for t in types
                    )


def test_legacy_routes_are_marked_and_keep_their_members(doc: dict[str, Any]) -> None:
    legacy = {
        (path, method)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if op.get("x-legacy")
    }
    assert legacy == {
        ("/", "get"),
        ("/health", "get"),
        ("/api/analyze", "post"),
        ("/api/builds/{build_id}/analyze", "post"),
        ("/api/jobs/{job_id}", "get"),
        ("/api/jobs", "get"),
    }
    schemas = doc["components"]["schemas"]
    accepted = schemas["AcceptedResponse"]["required"]
    for member in ("status", "job_id", "build_id", "message", "check_status_url"):
        assert member in accepted
    job = schemas["JobView"]["required"]
    for member in ("job_id", "build_id", "status", "started_at", "holes_interval"):
        assert member in job
    assert {"jobs", "count"} <= set(schemas["JobListResponse"]["required"])
    assert {"status", "message"} <= set(schemas["Problem"]["required"])
    conflict = json.dumps(schemas["Problem"]["properties"])
    for member in ("active_job_id", "active_build_id", "active_started_at", "check_status_url"):
        assert member in conflict


# --- parameters, bodies and answers as the issue asked -------------------------------------


def test_query_numbers_are_integers_with_their_bounds(doc: dict[str, Any]) -> None:
    jobs = _operation(doc, "/api/jobs", "get")
    builds = _operation(doc, "/api/builds", "get")
    events = _operation(doc, "/api/jobs/{job_id}/events", "get")
    assert _parameter(jobs, "limit")["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "default": 50,
    }
    assert _parameter(jobs, "offset")["schema"]["minimum"] == 0
    assert _parameter(builds, "limit")["schema"]["maximum"] == 5000
    assert _parameter(events, "after")["schema"]["type"] == "integer"
    assert "400" in builds["responses"] and "400" in events["responses"]


@pytest.mark.parametrize("value", ["500", "501", "1", "0", "", "1_0", "٥", " 5", "+5", "5.0"])
def test_the_server_reads_limit_as_the_description_says(
    client: FlaskClient, doc: dict[str, Any], value: str
) -> None:
    schema = _parameter(_operation(doc, "/api/jobs", "get"), "limit")["schema"]
    # An empty value is the parameter left out (allowEmptyValue); else an integer in bounds.
    described = value == "" or (
        re.fullmatch(r"[+-]?[0-9]+", value) is not None
        and schema["minimum"] <= int(value) <= schema["maximum"]
    )
    response = client.get("/api/jobs", query_string={"limit": value})
    assert response.status_code == (200 if described else 400), value


def test_heights_are_bounded_item_by_item_and_in_number(doc: dict[str, Any]) -> None:
    params = doc["components"]["schemas"]["AnalyzeRequest"]["properties"]
    for field in ("hole_heights", "clean_platform_heights"):
        array = next(s for s in params[field]["anyOf"] if s.get("type") == "array")
        assert array["maxItems"] == 100
        assert array["items"] == {"type": "number", "minimum": 0.0, "maximum": 1000.0}


def test_build_id_path_parameters_carry_the_pattern(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        if "{build_id}" in path:
            for op in item.values():
                schema = _parameter(op, "build_id")["schema"]
                assert schema["pattern"] == r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
                assert "400" in op["responses"], path


def test_a_submission_links_to_the_job_and_the_listing_to_the_builds(
    doc: dict[str, Any],
) -> None:
    ids = {
        op["operationId"]: (path, op) for path, item in doc["paths"].items() for op in item.values()
    }
    schemas = doc["components"]["schemas"]
    seen = set()
    for path, item in doc["paths"].items():
        for op in item.values():
            for status, answer in op["responses"].items():
                for link in answer.get("links", {}).values():
                    target_path, target = ids[link["operationId"]]
                    seen.add((path, target_path))
                    names = {p["name"] for p in target.get("parameters", [])}
                    assert set(link.get("parameters", {})) <= names
                    model = answer["content"]["application/json"]["schema"]["$ref"]
                    members = schemas[model.rsplit("/", 1)[1]]["properties"]
                    expressions = [
                        *link.get("parameters", {}).values(),
                        *(link.get("requestBody") or {}).values(),
                    ]
                    for expression in expressions:
                        first = expression.removeprefix("$response.body#/").split("/")[0]
                        assert first in members, (path, status, expression)
    assert ("/api/analyze", "/api/jobs/{job_id}") in seen
    assert ("/api/analyze", "/api/jobs/{job_id}/events") in seen
    assert ("/api/builds/{build_id}/analyze", "/api/jobs/{job_id}") in seen
    assert ("/api/builds", "/api/builds/{build_id}/results") in seen
    assert ("/api/builds", "/api/builds/{build_id}/layers") in seen
    assert ("/api/builds", "/api/analyze") in seen
    assert ("/api/builds/{build_id}/results", "/api/builds/{build_id}/artifacts/{path}") in seen


def test_the_api_token_adds_bearer_security_and_401_to_mutating_operations(
    doc: dict[str, Any], token_app: Flask
) -> None:
    with_token = json.loads(token_app.test_client().get("/openapi.json").get_data())
    for path, item in with_token["paths"].items():
        for method, op in item.items():
            mutating = method in ("post", "delete")
            assert ("401" in op["responses"]) == mutating, (path, method)
            assert (op.get("security") == [{"bearer": []}]) == mutating, (path, method)
            assert "401" not in _operation(doc, path, method)["responses"]
    answer = _operation(with_token, "/api/jobs/{job_id}", "delete")["responses"]["401"]
    assert "WWW-Authenticate" in answer["headers"]


# --- the description and the server agree --------------------------------------------------


def test_a_non_ascii_build_id_is_refused_by_the_description_and_the_server(
    client: FlaskClient, doc: dict[str, Any]
) -> None:
    body = {"build_id": "éclair"}
    assert not _validator(doc, {"$ref": "#/components/schemas/AnalyzeRequest"}).is_valid(body)
    problem = assert_problem(client.post("/api/analyze", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["build_id"]
    path_schema = _parameter(_operation(doc, "/api/builds/{build_id}/results", "get"), "build_id")
    assert not _validator(doc, path_schema["schema"]).is_valid("éclair")
    assert_problem(client.get("/api/builds/%C3%A9clair/results"), 400)


def _model_accepts(body: dict[str, Any]) -> bool:
    try:
        AnalyzeRequest.model_validate(body)
    except ValidationError:
        return False
    return True


_NUMBERS = st.one_of(
    st.integers(-5, 1200),
    st.floats(-10, 1200, allow_nan=False),
    st.sampled_from([0.5, 0.49, 1000.0, 1000.01, 271360.0, 1e300]),
)
_NUMERIC_TEXT = st.one_of(
    st.from_regex(r"[+-]?[0-9]{0,4}(\.[0-9]{0,3})?([eE][0-9])?", fullmatch=True),
    st.sampled_from(["10", "0.5", "0.4", "1000", "1000.0", "1000.5", "10\n", " 10", "1_0"]),
)
_VALUES = st.one_of(
    _NUMBERS,
    _NUMERIC_TEXT,
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.lists(_NUMBERS | st.booleans() | _NUMERIC_TEXT, max_size=4),
)
_BUILD_IDS = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "._-/é \n", max_size=70),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.booleans(),
)
_BODIES = st.fixed_dictionaries(
    {"build_id": _BUILD_IDS},
    optional={
        "holes_interval": _VALUES,
        "create_composite_views": _VALUES,
        "clean_platform_heights": _VALUES,
        "hole_heights": _VALUES | st.lists(_NUMBERS, min_size=99, max_size=102),
        "pathdata": _VALUES,
        "unknown": _VALUES,
    },
)


@FUZZ
@given(body=_BODIES)
def test_the_analyze_body_schema_and_the_model_agree(
    doc: dict[str, Any], body: dict[str, Any]
) -> None:
    # One client-side check (the published schema) and the server's own give one verdict.
    build_id = body["build_id"]
    if isinstance(build_id, int) and not isinstance(build_id, bool) and abs(build_id) >= 2**53:
        # Described up to what JSON clients hold exactly; larger numbers are text to them.
        return
    schema = _validator(doc, {"$ref": "#/components/schemas/AnalyzeRequest"})
    assert schema.is_valid(body) == _model_accepts(body), body


@FUZZ
@given(text=st.text(alphabet=string.ascii_letters + string.digits + "._-/é\n\\", max_size=70))
def test_the_build_id_pattern_and_validate_build_id_agree(text: str) -> None:
    try:
        validate_build_id(text)
        valid = True
    except InvalidBuildId:
        valid = False
    assert valid == bool(re.search(_ecma({"pattern": BUILD_ID_PATTERN})["pattern"], text)), text


@FUZZ
@given(text=st.text(alphabet="ab./\\\x00 é", max_size=12) | st.text(min_size=295, max_size=305))
def test_the_artifact_path_pattern_and_the_server_agree(text: str) -> None:
    from clf_analysis.api.artifacts import ARTIFACT_PATH

    schema = ARTIFACT_PATH.schema
    described = bool(re.search(_ecma(dict(schema))["pattern"], text)) and len(text) <= int(
        schema["maxLength"]
    )
    try:
        artifact_path(text)
        served = True
    except ApiError:
        served = False
    assert described == served, text


@FUZZ
@given(height=st.text(alphabet="0123456789.m+-e x_", min_size=1, max_size=34))
def test_the_height_pattern_and_the_server_agree(client: FlaskClient, height: str) -> None:
    from clf_analysis.api.layers import HEIGHT

    described = bool(re.search(_ecma(dict(HEIGHT.schema))["pattern"], height)) and len(
        height
    ) <= int(HEIGHT.schema["maxLength"])
    response = client.get(f"/api/builds/271360/layers/{height}")
    # 404 (no results for the build): the height itself was accepted.
    assert (response.status_code != 400) == described, (height, response.status_code)


@FUZZ
@given(
    key=st.text(alphabet="ab \t~é\x7f", min_size=0, max_size=6)
    | st.text(alphabet="ab ~", min_size=199, max_size=202)
)
def test_the_idempotency_key_pattern_and_the_server_agree(app: Flask, key: str) -> None:
    from clf_analysis.api.parsing import IDEMPOTENCY_KEY, idempotency_key

    schema = _ecma(dict(IDEMPOTENCY_KEY.schema))
    as_read = key.strip(" \t")  # HTTP drops the blanks around a header value
    described = (
        0 < len(as_read) <= schema["maxLength"]
        and re.search(schema["pattern"], as_read) is not None
    )
    with app.test_request_context(headers={"Idempotency-Key": key}):
        try:
            idempotency_key()
            served = True
        except ApiError:
            served = False
    assert described == served, repr(key)


def test_a_file_name_longer_than_the_file_system_holds_is_404_not_500(
    client: FlaskClient, midas: Path
) -> None:
    (midas / "271360" / "clf_analysis").mkdir()
    response = client.get("/api/builds/271360/artifacts/" + "a" * 256 + ".png")
    problem = assert_problem(response, 404)
    assert problem["type"] == "/problems/artifact-not-found"
