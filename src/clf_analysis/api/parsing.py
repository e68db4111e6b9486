"""Reading requests at the edge: JSON bodies, build ids, query numbers, the API token,
the Host a request names and the site a browser request comes from.

Each function either returns a clean value or raises ApiError — so that no malformed
input ever reaches a handler body, and none can turn into a 500.
"""

from __future__ import annotations

import hmac
import ipaddress
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
from clf_analysis.config import Settings

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
CROSS_SITE = problem(
    403,
    "cross-site-request",
    description="API_TOKEN is not set and a browser sent this request for a page of another "
    "site: an `Origin` that is neither in CORS_ORIGINS nor the service's own, or "
    "`Sec-Fetch-Site: cross-site` (or `same-site`) without an `Origin`.",
)
HOST_NOT_ALLOWED = problem(
    400,
    "host-not-allowed",
    description="The Host header names none of ALLOWED_HOSTS (nor an IP address or localhost).",
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

    A body needs a JSON Content-Type; only a request with neither body nor Content-Type
    is read as no body (legacy scripts post that way). Any other type is refused with
    415 whatever the body, an empty one included, and so is a body without a type: a web
    page can send text and form types cross-site without a preflight, and a Blob of no
    type without any Content-Type at all, so honouring them would let any page start
    analyses.
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
    if raw and not mimetype:
        raise ApiError(
            415,
            "Unsupported Media Type",
            "a request body needs Content-Type: application/json",
            kind="unsupported-content-type",
        )
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
                description="A Content-Type other than application/json or application/*+json, "
                "or a body without a Content-Type.",
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


def check_host(allowed: tuple[str, ...]) -> None:
    """The Host header must name the service: one of ALLOWED_HOSTS ("*": any), an IP
    address or localhost, else 400.

    A page whose own name was made to resolve to the service's address (DNS rebinding)
    is same-origin with it to the browser, which then sends that name as the Host: only
    a list of the service's names tells such a request apart. An IP address or localhost
    cannot be rebound, so they are always taken (health checks use them).
    """
    if "*" in allowed:
        return
    host = request.host
    name = _host_name(host)
    if name == "localhost" or _is_ip_address(name) or name in {h.lower() for h in allowed}:
        return
    raise ApiError(
        400,
        "Bad Request",
        f"Host {host[:100]!r} is not a name of this service (ALLOWED_HOSTS)",
        kind="host-not-allowed",
    )


def _host_name(host: str) -> str:
    """The name of a Host value, without port and trailing dot ("[::1]:6300" → "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_cross_site(settings: Settings) -> None:
    """Without API_TOKEN, refuse (403) a mutating request a browser sends for a page of
    another site; scripts and tools, which send neither Origin nor Sec-Fetch-Site, pass.

    A browser names the page's origin in `Origin` on every cross-origin POST or DELETE,
    and `Sec-Fetch-Site` says how it relates to the service; a page cannot set either. An
    origin in CORS_ORIGINS, or the service's own (`Sec-Fetch-Site: same-origin`, or an
    Origin naming the Host the request was sent to: the viewer at /ui/), is accepted. With
    API_TOKEN set the token protects these routes: a page cannot send it cross-site.
    """
    if settings.api_token or request.method not in MUTATING_METHODS:
        return
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if origin is None:
        if fetch_site in ("", "same-origin", "none"):
            return
        reason = f"Sec-Fetch-Site: {fetch_site[:40]} and no Origin"
    else:
        origin = origin.strip()
        if fetch_site == "same-origin" or _allowed_origin(origin, settings.cors_origins):
            return
        reason = f"Origin {origin[:100]!r}"
    raise ApiError(
        403,
        "Forbidden",
        f"cross-site request refused ({reason}): only pages of CORS_ORIGINS or of the "
        "service itself may submit or cancel analyses",
        kind="cross-site-request",
    )


def _allowed_origin(origin: str, allowed: tuple[str, ...]) -> bool:
    normalised = origin.lower().rstrip("/")
    if "*" in allowed or normalised in {o.lower().rstrip("/") for o in allowed}:
        return True
    # The service's own origin: the page was loaded from the Host this request went to.
    scheme, separator, authority = normalised.partition("://")
    own = request.host.strip().lower()
    return (
        bool(separator)
        and scheme in ("http", "https")
        and authority in (own, own.removesuffix(":80"), own.removesuffix(":443"))
    )


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
