"""Reading requests at the edge: JSON bodies, build ids, query numbers, the API token.

Each function either returns a clean value or raises ApiError — so that no malformed
input ever reaches a handler body, and none can turn into a 500.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import request
from werkzeug.exceptions import HTTPException

from clf_analysis.abp.discovery import validate_build_id
from clf_analysis.abp.errors import InvalidBuildId
from clf_analysis.api.errors import ApiError, ClientTooSlow
from clf_analysis.api.service import service

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_KEY_MAX = 200


def _is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def json_object_body(*, required: bool) -> dict[str, Any]:
    """The request body as a JSON object; {} for an empty optional body.

    A missing Content-Type is read as JSON (legacy scripts posted without one). An explicit
    non-JSON type is refused with 415 whatever the body, an empty one included: a web page
    can send text and form types cross-site without a preflight, so honouring them would
    let any page start analyses.
    """
    mimetype = request.mimetype
    if mimetype and not _is_json_mimetype(mimetype):
        raise ApiError(
            415,
            "Unsupported Media Type",
            f"unsupported Content-Type {mimetype!r}; send application/json (or no body)",
            kind="unsupported-content-type",
        )
    limit = service().settings.max_body_bytes
    too_large = ApiError(413, "Content Too Large", f"request body larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    # A chunked body is cut by werkzeug at MAX_CONTENT_LENGTH (limit + 1) without an error,
    # so a body that reached limit + 1 bytes is known to be too large.
    raw = _body_bytes()
    if len(raw) > limit:
        raise too_large
    if not raw.strip():
        if required:
            raise ApiError(
                400, "Bad Request", "a JSON object body is required", kind="body-required"
            )
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays fit easily in a small body.
        raise ApiError(
            400, "Bad Request", f"malformed JSON body: {str(exc)[:200]}", kind="malformed-json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "Bad Request",
            f"the body must be a JSON object, got {type(data).__name__}",
            kind="not-an-object",
        )
    return data


def _body_bytes() -> bytes:
    try:
        return request.get_data(cache=True)
    except (HTTPException, ClientTooSlow):
        raise  # 413, a client that went away (400), too slow (408): already answered right
    except Exception as exc:
        # Reading a body fails only on what the client sent: a malformed chunk size or
        # terminator (the HTTP server's own error type, unknown here) is a 400, not a 500.
        raise ApiError(
            400,
            "Bad Request",
            f"the request body cannot be read: {str(exc)[:200] or type(exc).__name__}",
            kind="unreadable-body",
        ) from None


def build_id_arg(value: str) -> str:
    """A build id from the URL, or 400 (a path-like id is never joined into a path)."""
    try:
        return validate_build_id(value)
    except InvalidBuildId as exc:
        raise ApiError(400, "Bad Request", str(exc), kind="invalid-build-id") from None


def int_query(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds, or 400 naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400,
            "Bad Request",
            f"query parameter {name!r} must be an integer",
            kind="invalid-query",
        ) from None
    if not minimum <= value <= maximum:
        raise ApiError(
            400,
            "Bad Request",
            f"query parameter {name!r} must be within {minimum}..{maximum}",
            kind="invalid-query",
        )
    return value


def idempotency_key() -> str | None:
    """The Idempotency-Key header when present; bounded and printable, else 400."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise ApiError(
            400,
            "Bad Request",
            f"Idempotency-Key must be 1..{IDEMPOTENCY_KEY_MAX} printable characters",
            kind="invalid-idempotency-key",
        )
    return key


def check_api_token(token: str | None) -> None:
    """When a token is configured, mutating requests must carry it as a Bearer token."""
    if not token or request.method not in MUTATING_METHODS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, supplied = header.partition(" ")
    # compare_digest on bytes: constant time regardless of where the strings differ.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        supplied.strip().encode(), token.encode()
    ):
        raise ApiError(
            401,
            "Unauthorized",
            "this request needs 'Authorization: Bearer <API_TOKEN>'",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="clf-analysis"'},
        )
