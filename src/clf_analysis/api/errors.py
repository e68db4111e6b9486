"""Every error answer of the API: RFC 9457 problem details plus the legacy members.

RFC 9457 says `status` is the HTTP status number, but legacy clients test
`body["status"] == "error"`. The legacy contract wins for `status`; the number is carried
in `http_status` (and, of course, in the response status line). Legacy clients also read
`message`, which repeats `detail`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"
PROBLEM_BASE = "/problems/"


class ClientTooSlow(Exception):
    """The client did not send its whole request within REQUEST_READ_TIMEOUT (answered 408).

    Raised by the HTTP server's socket reads (api.gunicorn_worker), so also from inside
    the app while it reads a body. Deliberately not an OSError: werkzeug would turn that
    into a "client disconnected" 400.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request was not received within {seconds:g} s")
        self.seconds = seconds


class ApiError(Exception):
    """An error the API answers on purpose; raised by handlers and request parsing."""

    def __init__(
        self,
        http_status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.http_status = http_status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    http_status: int,
    title: str,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response carrying both RFC 9457 and legacy members."""
    body = problem_body(
        http_status,
        title,
        detail,
        kind=kind,
        instance=request.path if request else None,
        **extra,
    )
    response = Response(
        json.dumps(body), status=http_status, mimetype=PROBLEM_MIME, headers=headers or {}
    )
    return response


def problem_body(
    http_status: int,
    title: str,
    detail: str,
    *,
    kind: str | None = None,
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The members of every error answer, also those the HTTP server sends itself."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title,
        "status": "error",
        "http_status": http_status,
        "detail": detail,
        "message": detail,
        "instance": instance,
    }
    # Extra members never override the mandatory ones: a caller cannot break the contract.
    for key, value in extra.items():
        body.setdefault(key, value)
    return body


def validation_problem(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> ApiError:
    """422 naming every offending field; never echoes the (possibly huge) input values."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = (*prefix, *err["loc"])
        field = ".".join(str(p) for p in loc) or "(body)"
        errors.append({"field": field, "message": err["msg"], "type": err["type"]})
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return ApiError(
        422,
        "Invalid request",
        f"invalid request fields: {fields}",
        kind="validation-error",
        errors=errors,
    )


def register_error_handlers(app: Flask) -> None:
    """Turn every error — ours, werkzeug's, and unexpected ones — into problem+json."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return problem_response(
            exc.http_status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            headers=exc.headers,
            **exc.extra,
        )

    @app.errorhandler(ClientTooSlow)
    def _too_slow(exc: ClientTooSlow) -> Response:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return problem_response(408, "Request Timeout", str(exc), kind="request-timeout")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code >= 500:
            return _internal_error(exc)
        headers: dict[str, str] = {}
        detail = exc.description or exc.name
        if code == 404 and request.url_rule is None:
            # The legacy service said exactly this for unknown routes; clients match on it.
            detail = "Endpoint not found"
        if code == 405:
            allowed = getattr(exc, "valid_methods", None) or []
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
            detail = f"method {request.method} not allowed on {request.path}"
        if code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] - 1
            detail = f"request body larger than {limit} bytes"
        return problem_response(code, exc.name, detail, headers=headers)

    @app.errorhandler(Exception)
    def _internal_error(exc: Exception) -> Response:
        # The traceback goes to the log under an id the client can quote; never to the client.
        incident = uuid.uuid4().hex
        log.error(
            "unhandled error %s on %s %s", incident, request.method, request.path, exc_info=exc
        )
        return problem_response(
            500,
            "Internal Server Error",
            f"internal error; quote incident {incident} when reporting it",
            incident=incident,
        )
