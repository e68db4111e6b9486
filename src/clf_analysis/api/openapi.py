"""/openapi.json: the route table of the running app plus the pydantic models' schemas.

Paths come from the app's url_map, so a route cannot exist undocumented; what each route
takes and returns is declared here next to the model it uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from clf_analysis import __version__
from clf_analysis.api import models as m

bp = Blueprint("openapi", __name__)

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    request: type[BaseModel] | None = None
    request_required: bool = True
    responses: dict[int, type[BaseModel] | str | None] = field(default_factory=dict)
    query: tuple[str, ...] = ()


ROUTES: dict[str, RouteDoc] = {
    "health.index": RouteDoc("Service info (legacy)", responses={200: m.ServiceInfo}),
    "health.health": RouteDoc("Health (legacy)", responses={200: m.HealthResponse}),
    "health.livez": RouteDoc("Liveness probe", responses={200: None}),
    "health.readyz": RouteDoc(
        "Readiness: job store reachable, not draining", responses={200: None, 503: m.Problem}
    ),
    "health.info": RouteDoc("Versions of the service and its libraries", responses={200: None}),
    "health.metrics": RouteDoc("Prometheus metrics", responses={200: "text/plain"}),
    "openapi.openapi": RouteDoc("This document", responses={200: None}),
    "jobs.analyze": RouteDoc(
        "Submit an analysis (legacy)",
        request=m.AnalyzeRequest,
        responses={
            202: m.AcceptedResponse,
            400: m.Problem,
            404: m.Problem,
            408: m.Problem,
            409: m.Problem,
            413: m.Problem,
            415: m.Problem,
            422: m.Problem,
        },
    ),
    "jobs.analyze_build": RouteDoc(
        "Submit an analysis of a build (legacy); body optional",
        request=m.BuildAnalyzeRequest,
        request_required=False,
        responses={
            202: m.AcceptedResponse,
            400: m.Problem,
            404: m.Problem,
            408: m.Problem,
            409: m.Problem,
            413: m.Problem,
            415: m.Problem,
            422: m.Problem,
        },
    ),
    "jobs.get_job": RouteDoc(
        "A job (legacy); ETag, Retry-After while unfinished",
        responses={200: m.JobResponse, 304: None, 404: m.Problem},
    ),
    "jobs.cancel_job": RouteDoc(
        "Cancel a job", responses={202: m.JobResponse, 404: m.Problem, 409: m.Problem}
    ),
    "jobs.list_jobs": RouteDoc(
        "Jobs, newest first (legacy)",
        responses={200: m.JobListResponse, 400: m.Problem},
        query=("state", "build_id", "limit", "offset"),
    ),
    "jobs.job_events": RouteDoc(
        "Events of a job", responses={200: m.EventListResponse, 404: m.Problem}, query=("after",)
    ),
    "builds.list_builds": RouteDoc(
        "Builds under MIDAS_BASE_PATH",
        responses={200: m.BuildListResponse},
        query=("limit", "offset"),
    ),
    "builds.build_results": RouteDoc(
        "platform_info.json and artifact links", responses={200: m.ResultsResponse, 404: m.Problem}
    ),
    "artifacts.get_artifact": RouteDoc(
        "A file of clf_analysis/ (ETag, Last-Modified, nosniff, sandboxing CSP; no link followed)",
        responses={200: "application/octet-stream", 304: None, 400: m.Problem, 404: m.Problem},
    ),
    "layers.list_layers": RouteDoc(
        "Heights with path data", responses={200: m.LayerListResponse, 404: m.Problem}
    ),
    "layers.get_layer": RouteDoc(
        "Path data of one layer", responses={200: "application/json", 404: m.Problem}
    ),
    "ui.ui_root": RouteDoc("Viewer (redirect)", responses={308: None}),
    "ui.ui_index": RouteDoc("Viewer", responses={200: "text/html"}),
    "ui.ui_file": RouteDoc("Viewer files", responses={200: "application/octet-stream"}),
}

_MODELS: tuple[type[BaseModel], ...] = (
    m.AnalyzeRequest,
    m.BuildAnalyzeRequest,
    m.AcceptedResponse,
    m.JobResponse,
    m.JobListResponse,
    m.EventListResponse,
    m.BuildListResponse,
    m.ResultsResponse,
    m.LayerListResponse,
    m.ServiceInfo,
    m.HealthResponse,
    m.Problem,
)
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


def _content(target: type[BaseModel] | str | None, code: int) -> dict[str, Any]:
    if target is None:
        return {"description": "see summary"}
    if isinstance(target, str):
        return {"description": target, "content": {target: {}}}
    mime = PROBLEM if target is m.Problem else "application/json"
    ref = {"$ref": f"#/components/schemas/{target.__name__}"}
    return {
        "description": target.__doc__.split("\n")[0] if target.__doc__ else str(code),
        "content": {mime: {"schema": ref}},
    }


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`."""
    mode: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (
            model,
            "serialization"
            if model.__name__.endswith(("Response", "Problem", "Info"))
            else "validation",
        )
        for model in _MODELS
    ]
    _, schemas = models_json_schema(mode, ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        doc = ROUTES.get(rule.endpoint, RouteDoc(rule.endpoint))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": rule.endpoint.replace(".", "_") + "_" + method.lower(),
                "summary": doc.summary,
                "parameters": [
                    {"name": arg, "in": "path", "required": True, "schema": {"type": "string"}}
                    for arg in sorted(rule.arguments)
                ]
                + [
                    {"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
                    for q in doc.query
                ],
                "responses": {
                    str(code): _content(target, code) for code, target in doc.responses.items()
                }
                or {"200": {"description": "OK"}},
            }
            if method in ("POST", "DELETE"):
                # Required only when API_TOKEN is set: "{}" makes the scheme optional.
                op["security"] = [{}, {"bearer": []}]
            if doc.request is not None and method == "POST":
                op["requestBody"] = {
                    "required": doc.request_required,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{doc.request.__name__}"}
                        }
                    },
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CLF Analysis API",
            "version": __version__,
            "description": (
                "Errors are application/problem+json (RFC 9457) with the legacy members "
                "status='error' and message; the HTTP status number is in http_status, "
                "because the legacy contract owns the `status` member."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_document(current_app))
