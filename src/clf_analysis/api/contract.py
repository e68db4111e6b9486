"""What each route takes and answers, declared on the route itself: the source of /openapi.json.

A route declares its parameters with the objects that also read them (a query integer's
bounds, the build id's pattern), its body with the pydantic model that validates it, and
every answer it can give. `clf_analysis.api.openapi` turns the declarations of the routes
an app really has into the description, so the server and its description cannot part.

What parameters and bodies refuse is declared with them (`Parameter.refusals`,
`Body.refusals`): an operation gets those answers by taking the parameter, not by
listing them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

Location = Literal["path", "query", "header"]
# A problem type names the refusal exactly: "/problems/<kind>"; None is RFC 9457's
# "about:blank" (an error whose HTTP status says it all, e.g. werkzeug's own 413).
ProblemKind = str | None


@dataclass(frozen=True)
class Header:
    """A response header."""

    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = True


@dataclass(frozen=True)
class Refusal:
    """An error answer: its status, the problem types it can carry, its headers."""

    status: int
    kinds: tuple[ProblemKind, ...]
    description: str
    headers: Mapping[str, Header] = field(default_factory=dict)


@dataclass(frozen=True)
class Parameter:
    """A path, query or header parameter; `schema` is its JSON Schema."""

    name: str
    location: Location
    schema: Mapping[str, Any]
    description: str
    example: Any = None
    required: bool = False
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class Body:
    """A JSON request body validated by `model`."""

    model: type[BaseModel]
    required: bool
    description: str
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: `endpoint` (a Flask endpoint name) takes `parameters` (runtime
    expressions such as "$response.body#/job_id") from this answer."""

    endpoint: str
    description: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    request_body: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Reply:
    """A successful (or redirecting) answer.

    `model` is the pydantic model the body is built through (JSON), or `media` lists the
    types of a body that is not: bytes, text, HTML. `schema` overrides the body schema of
    `media` bodies (default: anything).
    """

    description: str
    model: type[BaseModel] | None = None
    media: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, Header] = field(default_factory=dict)
    links: Mapping[str, Link] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One route's method: its summary, what it takes, and every answer it can give."""

    summary: str
    description: str = ""
    tag: str = ""
    parameters: tuple[Parameter, ...] = ()
    body: Body | None = None
    replies: Mapping[int, Reply] = field(default_factory=dict)
    refusals: tuple[Refusal, ...] = ()
    legacy: bool = False


_DECLARED: dict[Callable[..., Any], Operation] = {}

F = TypeVar("F", bound=Callable[..., Any])


def declare(operation: Operation) -> Callable[[F], F]:
    """Attach `operation` to a view function (put it below the route decorator)."""

    def attach(view: F) -> F:
        _DECLARED[view] = operation
        return view

    return attach


def declared(view: Callable[..., Any]) -> Operation | None:
    """The operation declared on `view`, if any."""
    return _DECLARED.get(view)


def problem(
    status: int,
    *kinds: ProblemKind,
    description: str,
    headers: Mapping[str, Header] | None = None,
) -> Refusal:
    """A refusal answered as problem+json with one of `kinds` as its type."""
    return Refusal(status, kinds or (None,), description, headers or {})
