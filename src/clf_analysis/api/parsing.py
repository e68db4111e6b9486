"""Reading requests at the edge: JSON bodies, build ids, query numbers, the API token.

Each function either returns a clean value or raises ApiError — so that no malformed
input ever reaches a handler body, and none can turn into a 500.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from flask import request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from clf_analysis.abp.discovery import BUILD_ID_PATTERN, validate_build_id
from clf_analysis.abp.errors import InvalidBuildId
from clf_analysis.api.contract import Body, Header, Parameter, problem
from clf_analysis.api.errors import ApiError, ClientTooSlow
from clf_analysis.api.service import service

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_KEY_MAX = 200
# Visible ASCII with inner spaces (the header's value after the surrounding blanks that
# HTTP drops): what the IETF Idempotency-Key draft allows, and what the description says.
_IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]*[!-~])?")
# Plain ASCII digits: int() alone would also take "1_000", " 5" and other scripts' digits.
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,30}")

INVALID_QUERY = problem(400, "invalid-query", description="A query parameter is refused.")
INVALID_BUILD_ID = problem(
    400, "invalid-build-id", description="The build id is not a plain folder name."
)
UNAUTHORIZED = problem(
    401,
    "unauthorized",
    description="API_TOKEN is set and the request has no matching Bearer token.",
    headers={"WWW-Authenticate": Header('Bearer realm="clf-analysis"')},
)

BUILD_ID_SCHEMA = {"type": "string", "pattern": BUILD_ID_PATTERN, "maxLength": 64}
BUILD_ID = Parameter(
    "build_id",
    "path",
    BUILD_ID_SCHEMA,
    "Build folder name under MIDAS_BASE_PATH: 1-64 of A-Z a-z 0-9 . _ -, not starting with '.'.",
    example="271360",
    required=True,
    refusals=(INVALID_BUILD_ID,),
)
IDEMPOTENCY_KEY = Parameter(
    "Idempotency-Key",
    "header",
    {
        "type": "string",
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_MAX,
        "pattern": f"^{_IDEMPOTENCY_KEY.pattern}$",
    },
    "A key of the client's choosing: a later submission with the same key returns the job "
    "first created with it; the same key with a different request is 422.",
    example="3f0c9a52-2d1e-4c55-9a53-8c1f5f6f2b10",
    refusals=(
        problem(
            400,
            "invalid-idempotency-key",
            description="The key is not 1-200 visible ASCII characters.",
        ),
        problem(
            422, "idempotency-key-reused", description="The key was used for a different request."
        ),
    ),
)


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


@dataclass(frozen=True)
class IntegerQuery:
    """An integer query parameter within bounds: what the route reads and what the
    description publishes come from this one declaration. An empty value is the default."""

    name: str
    default: int
    minimum: int
    maximum: int
    description: str

    @property
    def parameter(self) -> Parameter:
        schema = {
            "type": "integer",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
        }
        return Parameter(
            self.name,
            "query",
            schema,
            self.description,
            example=self.default,
            refusals=(INVALID_QUERY,),
        )

    def read(self) -> int:
        """The value of the current request, or 400 naming the parameter."""
        raw = request.args.get(self.name)
        if raw is None or raw == "":
            return self.default
        if not _INTEGER_TEXT.fullmatch(raw):
            raise ApiError(
                400,
                "Bad Request",
                f"query parameter {self.name!r} must be an integer",
                kind="invalid-query",
            )
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise ApiError(
                400,
                "Bad Request",
                f"query parameter {self.name!r} must be within {self.minimum}..{self.maximum}",
                kind="invalid-query",
            )
        return value


def json_body(model: type[BaseModel], *, required: bool, description: str) -> Body:
    """The declaration of a JSON body read by `json_object_body` and validated by `model`."""
    malformed = ("malformed-json", "not-an-object", "unreadable-body")
    return Body(
        model,
        required,
        description,
        refusals=(
            problem(
                400,
                *(("body-required", *malformed) if required else malformed),
                description="The body is missing, not JSON, not an object, or unreadable.",
            ),
            problem(
                408,
                "request-timeout",
                description="The body did not arrive within REQUEST_READ_TIMEOUT.",
            ),
            problem(413, description="The body is larger than MAX_BODY_BYTES."),
            problem(
                415,
                "unsupported-content-type",
                description="A Content-Type other than application/json or application/*+json "
                "(none at all is read as JSON).",
            ),
            problem(
                422, "validation-error", description="Fields are refused; `errors` names each."
            ),
        ),
    )


def idempotency_key() -> str | None:
    """The Idempotency-Key header when present (see IDEMPOTENCY_KEY), else 400."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if len(key) > IDEMPOTENCY_KEY_MAX or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(
            400,
            "Bad Request",
            f"Idempotency-Key must be 1..{IDEMPOTENCY_KEY_MAX} visible ASCII characters "
            "(inner spaces allowed)",
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
