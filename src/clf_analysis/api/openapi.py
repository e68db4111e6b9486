"""/openapi.json (OpenAPI 3.1) and /docs, generated from the routes an app really has.

Paths come from the app's url_map and what each route takes and answers from the
declaration on its view function (`clf_analysis.api.contract`): the pydantic models
that validate bodies and shape answers, the parameters that read queries and paths, and
the refusals those declare. A route without a declaration is an error, not a gap.

The description depends on the app's settings where the server does: with API_TOKEN set,
POST and DELETE require the bearer token and list 401, without it they list the 403 of
a cross-site browser request; with ALLOWED_HOSTS set, every operation lists the 400 of
a Host that is not one of them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from clf_analysis import __version__
from clf_analysis.api import models as m
from clf_analysis.api.contract import (
    Header,
    Link,
    Operation,
    Parameter,
    ProblemKind,
    Refusal,
    Reply,
    declare,
    declared,
    problem,
)
from clf_analysis.api.errors import PROBLEM_BASE, PROBLEM_MIME
from clf_analysis.api.parsing import CROSS_SITE, HOST_NOT_ALLOWED, MUTATING_METHODS, UNAUTHORIZED
from clf_analysis.api.reference import render_reference
from clf_analysis.api.service import EXTENSION_KEY, Service

bp = Blueprint("openapi", __name__)

_CACHE_KEY = "clf_analysis.openapi"
# Tags are the blueprints, in the order a client meets them; each described by the first
# line of its module's docstring.
TAG_ORDER = ("jobs", "builds", "artifacts", "layers", "health", "ui", "openapi")
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
_REF = "#/components/schemas/"
# Files of the output folder that answers pass through unchanged: their schemas are the
# output contract the pipeline is held to (docs/OUTPUTS.md), published here as they are.
_FILE_SCHEMAS = {
    "PlatformInfo": "platform_info.legacy.schema.json",
    "PathDataRecord": "pathdata_record.schema.json",
}
# Members of answer models that carry such a file.
_FILE_MEMBERS = {("ResultsResponse", "platform_info"): "PlatformInfo"}

# What the routing and the HTTP server answer for any route taking such parameters.
UNROUTABLE = problem(
    404,
    description="A path parameter holding what no route can carry (a newline, a '/' where "
    'one cannot be) matches no route: "Endpoint not found".',
)
URI_TOO_LONG = problem(
    414,
    "uri-too-long",
    description="The request line is longer than the HTTP server takes (4094 bytes).",
)

DESCRIPTION = """\
Analyses of Arcam EBM build packages: submit an analysis (202 and a job to poll), follow
the job, then read the results, artifacts and per-layer path data of the build.

Errors are application/problem+json (RFC 9457) with the legacy members `status: "error"`
and `message`; the HTTP status number is in `http_status`, because the legacy contract
owns `status`. `type` is "/problems/<kind>" (the kinds each answer can carry are listed
with it) or "about:blank".

Routes marked legacy keep the request and response shapes existing clients use: members
are only ever added.

Every route, besides what it lists: a method the path does not list answers 405 with
`Allow`; an unknown path 404 "Endpoint not found"; what the HTTP server refuses before
the app sees it (a malformed request 400, a request that does not arrive in time 408, a
URI too long 414, headers too large 431, too many connections of one address waiting
503) and an unexpected fault (500, an incident id only) are problem+json too.
"""


def _problem_type(kind: ProblemKind) -> str:
    return PROBLEM_BASE + kind if kind else "about:blank"


def _openapi_header(header: Header) -> dict[str, Any]:
    return {
        "description": header.description,
        "required": header.required,
        "schema": dict(header.schema),
    }


def _parameter(param: Parameter) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": param.name,
        "in": param.location,
        "required": param.required or param.location == "path",
        "description": param.description,
        "schema": dict(param.schema),
    }
    if param.example is not None:
        spec["example"] = param.example
    if param.location == "query" and not param.required:
        spec["allowEmptyValue"] = True  # the server reads "?x=" as x left out
    return spec


def _refusal_reply(refusals: list[Refusal]) -> dict[str, Any]:
    kinds = list(dict.fromkeys(kind for r in refusals for kind in r.kinds))
    headers: dict[str, Header] = {}
    for r in refusals:
        headers.update(r.headers)
    types = [_problem_type(kind) for kind in kinds]
    schema = {
        "allOf": [
            {"$ref": _REF + "Problem"},
            {"properties": {"type": {"enum": types}}},
        ]
    }
    answer: dict[str, Any] = {
        "description": " ".join(dict.fromkeys(r.description for r in refusals))
        + " Problem types: "
        + ", ".join(f"`{t}`" for t in types)
        + ".",
        "content": {PROBLEM_MIME: {"schema": schema}},
    }
    if headers:
        answer["headers"] = {name: _openapi_header(h) for name, h in headers.items()}
    return answer


class _Document:
    """The parts of the description gathered while the routes are walked."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        svc: Service = app.extensions[EXTENSION_KEY]
        self.api_token = bool(svc.settings.api_token)
        self.hosts_checked = "*" not in svc.settings.allowed_hosts
        self.operation_ids = {
            rule.endpoint: _operation_id(rule, method) for rule, method in _operations(app)
        }
        self.models: dict[type[BaseModel], JsonSchemaMode] = {m.Problem: "serialization"}

    def link(self, link: Link) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "operationId": self.operation_ids[link.endpoint],
            "description": link.description,
        }
        if link.parameters:
            spec["parameters"] = dict(link.parameters)
        if link.request_body is not None:
            spec["requestBody"] = dict(link.request_body)
        return spec

    def reply(self, reply: Reply) -> dict[str, Any]:
        answer: dict[str, Any] = {"description": reply.description}
        if reply.model is not None:
            self.models[reply.model] = "serialization"
            answer["content"] = {
                "application/json": {"schema": {"$ref": _REF + reply.model.__name__}}
            }
        elif reply.media:
            # No schema at all for bytes, text and HTML: there is nothing to validate.
            media_type = {"schema": dict(reply.schema)} if reply.schema is not None else {}
            answer["content"] = {media: dict(media_type) for media in reply.media}
        if reply.headers:
            answer["headers"] = {name: _openapi_header(h) for name, h in reply.headers.items()}
        if reply.links:
            answer["links"] = {name: self.link(link) for name, link in reply.links.items()}
        return answer

    def operation(self, rule: Rule, method: str, op: Operation) -> dict[str, Any]:
        refusals: list[Refusal] = list(op.refusals)
        for param in op.parameters:
            refusals.extend(param.refusals)
        if any(p.location == "path" for p in op.parameters):
            refusals.append(UNROUTABLE)
        if any(p.location in ("path", "query") for p in op.parameters):
            refusals.append(URI_TOO_LONG)
        spec: dict[str, Any] = {
            "operationId": self.operation_ids[rule.endpoint],
            "tags": [rule.endpoint.split(".", 1)[0]],
            "summary": op.summary,
        }
        description = op.description
        if op.legacy:
            spec["x-legacy"] = True
            description = (description + "\n\n" if description else "") + (
                "Legacy route: existing clients depend on its shapes; members are only added."
            )
        if description:
            spec["description"] = description
        declared_path = {p.name for p in op.parameters if p.location == "path"}
        if declared_path != set(rule.arguments):
            raise LookupError(
                f"{rule.rule}: path parameters {sorted(rule.arguments)} declared as "
                f"{sorted(declared_path)}"
            )
        if op.parameters:
            spec["parameters"] = [_parameter(p) for p in op.parameters]
        if op.body is not None:
            self.models[op.body.model] = "validation"
            refusals.extend(op.body.refusals)
            spec["requestBody"] = {
                "description": op.body.description,
                "required": op.body.required,
                "content": {
                    "application/json": {"schema": {"$ref": _REF + op.body.model.__name__}}
                },
            }
        if method in MUTATING_METHODS and self.api_token:
            spec["security"] = [{"bearer": []}]
            refusals.append(UNAUTHORIZED)
        elif method in MUTATING_METHODS:
            refusals.append(CROSS_SITE)
        if self.hosts_checked:
            refusals.append(HOST_NOT_ALLOWED)
        answers: dict[int, dict[str, Any]] = {
            status: self.reply(reply) for status, reply in op.replies.items()
        }
        by_status: dict[int, list[Refusal]] = {}
        for refusal in refusals:
            by_status.setdefault(refusal.status, []).append(refusal)
        for status, group in by_status.items():
            if status in answers:
                raise LookupError(f"{rule.rule}: {status} declared as a reply and a refusal")
            answers[status] = _refusal_reply(group)
        spec["responses"] = {str(status): answers[status] for status in sorted(answers)}
        return spec

    def schemas(self) -> dict[str, Any]:
        _, defs = models_json_schema(list(self.models.items()), ref_template=_REF + "{model}")
        schemas: dict[str, Any] = dict(defs.get("$defs", {}))
        for name, filename in _FILE_SCHEMAS.items():
            schemas.update(_embedded(name, _output_schema(filename)))
        for (model, member), target in _FILE_MEMBERS.items():
            prop = schemas[model]["properties"][member]
            schemas[model]["properties"][member] = {
                "$ref": _REF + target,
                "description": prop.get("description", ""),
            }
        return dict(sorted(schemas.items()))


def _operations(app: Flask) -> Iterator[tuple[Rule, str]]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def _operation_id(rule: Rule, method: str) -> str:
    return rule.endpoint.replace(".", "_") + "_" + method.lower()


def _output_schema(filename: str) -> dict[str, Any]:
    text = resources.files("clf_analysis.pipeline").joinpath("schemas", filename).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _embedded(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as components: its $defs hoisted beside it as `<name>.<def>`, refs rewritten."""
    defs = schema.pop("$defs", {})
    schema.pop("$schema", None)
    schema.pop("$id", None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    _REF + name + "." + value.removeprefix("#/$defs/")
                    if key == "$ref" and isinstance(value, str)
                    else rewrite(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    out = {name: rewrite(schema)}
    for def_name, definition in defs.items():
        out[f"{name}.{def_name}"] = rewrite(definition)
    return out


def _blueprint_summary(app: Flask, name: str) -> str:
    module = sys.modules[app.blueprints[name].import_name]
    return (module.__doc__ or name).strip().split("\n", 1)[0]


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 description of `app`."""
    doc = _Document(app)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method in _operations(app):
        op = declared(app.view_functions[rule.endpoint])
        if op is None:
            raise LookupError(f"route {rule.rule} ({rule.endpoint}) has no declared operation")
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        paths.setdefault(path, {})[method.lower()] = doc.operation(rule, method, op)
    used = {op["tags"][0] for item in paths.values() for op in item.values()}
    tags = [name for name in TAG_ORDER if name in used] + sorted(used - set(TAG_ORDER))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CLF Analysis API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "tags": [{"name": name, "description": _blueprint_summary(app, name)} for name in tags],
        "paths": paths,
        "components": {
            "schemas": doc.schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API_TOKEN of the service, when it has one.",
                }
            },
        },
    }


def document(app: Flask) -> dict[str, Any]:
    """The description of `app`, built once (routes and settings are fixed by then)."""
    cached: dict[str, Any] | None = app.extensions.get(_CACHE_KEY)
    if cached is None:
        cached = app.extensions[_CACHE_KEY] = build_document(app)
    return cached


_JSON_DOCUMENT = Reply("This description.", media=("application/json",), schema={"type": "object"})


@bp.get("/openapi.json")
@declare(Operation("This description (OpenAPI 3.1)", replies={200: _JSON_DOCUMENT}))
def openapi() -> Response:
    return jsonify(document(current_app))


@bp.get("/docs")
@declare(
    Operation(
        "The API reference as a page, rendered from this description",
        replies={200: Reply("An HTML page (no script).", media=("text/html",))},
    )
)
def docs() -> Response:
    page, style_hash = render_reference(document(current_app))
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src '{style_hash}'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control.no_cache = True
    return response
