"""/docs: the OpenAPI description rendered as one static HTML page, without any script.

Everything on the page is read from the description, so it says what /openapi.json says.
Each operation lists its parameters with their constraints, its body, and every answer
with its schema, problem types, headers and links; each schema is a table of members.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

STYLE = Path(__file__).resolve().parent.parent / "web" / "static" / "docs.css"
_REF = "#/components/schemas/"
_CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches <code>{}</code>"),
    ("format", "format {}"),
    ("default", "default <code>{}</code>"),
)


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _json(value: Any) -> str:
    return escape(json.dumps(value, ensure_ascii=False))


def schema_type(schema: Mapping[str, Any] | bool) -> str:
    """A short, linked reading of a schema's type: "string", "array of Job", "A or null"."""
    if not isinstance(schema, Mapping):
        return "anything" if schema else "nothing"
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(_REF)
        return f'<a href="#schema-{_anchor(name)}">{escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(schema_type(s) for s in schema[key])
    if "allOf" in schema:
        # A narrowing part (say, the problem types an answer carries) is listed beside it.
        named = [schema_type(s) for s in schema["allOf"] if _names_a_type(s)]
        return " and ".join(named) or "anything"
    if "const" in schema:
        return f"<code>{_json(schema['const'])}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_json(v)}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array" and "prefixItems" in schema:
        return "[" + ", ".join(schema_type(s) for s in schema["prefixItems"]) + "]"
    if kind == "array":
        items = schema.get("items")
        return "array of " + (schema_type(items) if items is not None else "anything")
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return "object of " + schema_type(schema["additionalProperties"])
    if isinstance(kind, list):
        return " or ".join(escape(str(k)) for k in kind)
    return escape(str(kind)) if kind else "anything"


def _names_a_type(schema: Mapping[str, Any] | bool) -> bool:
    return isinstance(schema, Mapping) and any(
        key in schema for key in ("$ref", "type", "anyOf", "oneOf", "allOf", "const", "enum")
    )


def constraints(schema: Mapping[str, Any] | bool) -> str:
    """Bounds, patterns and defaults of a schema; of each alternative, labelled with its
    type; of the items of an array."""
    if not isinstance(schema, Mapping):
        return ""
    found = [
        template.format(escape(str(schema[key])) if key != "default" else _json(schema[key]))
        for key, template in _CONSTRAINTS
        if key in schema
    ]
    for key in ("anyOf", "oneOf"):
        for alternative in schema.get(key, ()):
            inner = constraints(alternative)
            if inner:
                found.append(f"{schema_type(alternative)}: {inner}")
    if isinstance(schema.get("items"), Mapping) and schema.get("type") == "array":
        inner = constraints(schema["items"])
        if inner:
            found.append("each item " + inner)
    return "; ".join(found)


def _rows(rows: Iterable[Iterable[str]], head: Iterable[str]) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _inline(text: str) -> str:
    """Escaped text with `backquoted` spans as code."""
    parts = escape(" ".join(text.split()), quote=False).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def _text(text: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{_inline(p)}</p>" for p in paragraphs)


def _parameters(params: list[Mapping[str, Any]]) -> str:
    rows = [
        (
            f"<code>{escape(p['name'])}</code>",
            escape(p["in"]),
            schema_type(p.get("schema", {})),
            constraints(p.get("schema", {})),
            "yes" if p.get("required") else "no",
            _inline(p.get("description", "")),
            f"<code>{_json(p['example'])}</code>" if "example" in p else "",
        )
        for p in params
    ]
    return "<h4>Parameters</h4>" + _rows(
        rows, ("name", "in", "type", "constraints", "required", "description", "example")
    )


def _links(links: Mapping[str, Any], operations: Mapping[str, tuple[str, str]]) -> str:
    items = []
    for name, link in links.items():
        method, path = operations[link["operationId"]]
        target = f'<a href="#op-{_anchor(link["operationId"])}">{method} {escape(path)}</a>'
        values = {**link.get("parameters", {})}
        if "requestBody" in link:
            values["body"] = link["requestBody"]
        # Runtime expressions are shown as written; a body template as JSON.
        shown = {k: escape(v) if isinstance(v, str) else _json(v) for k, v in values.items()}
        given = ", ".join(f"<code>{escape(k)}</code> = <code>{v}</code>" for k, v in shown.items())
        items.append(f"<li>{escape(name)}: {target} with {given}</li>")
    return f"<ul class=links>{''.join(items)}</ul>"


def _responses(responses: Mapping[str, Any], operations: Mapping[str, tuple[str, str]]) -> str:
    rows = []
    for status, answer in responses.items():
        bodies = [
            f"<code>{escape(media)}</code>"
            + (f" {schema_type(spec['schema'])}" if spec.get("schema") else "")
            for media, spec in answer.get("content", {}).items()
        ]
        headers = ", ".join(f"<code>{escape(name)}</code>" for name in answer.get("headers", {}))
        links = _links(answer["links"], operations) if "links" in answer else ""
        rows.append(
            (
                f"<span class=status data-status={escape(status)}>{escape(status)}</span>",
                _inline(answer.get("description", "")) + links,
                "<br>".join(bodies),
                headers,
            )
        )
    return "<h4>Responses</h4>" + _rows(rows, ("status", "meaning", "body", "headers"))


def _operation(
    method: str, path: str, op: Mapping[str, Any], operations: Mapping[str, tuple[str, str]]
) -> str:
    anchor = _anchor(op["operationId"])
    legacy = " <span class=legacy>legacy</span>" if op.get("x-legacy") else ""
    auth = " <span class=auth>bearer token</span>" if op.get("security") else ""
    parts = [
        f'<section class=operation id="op-{anchor}">',
        f"<h3><span class='method {method}'>{method.upper()}</span> <code>{escape(path)}</code>"
        f"{legacy}{auth}</h3>",
        f"<p class=summary>{escape(op.get('summary', ''))}</p>",
        _text(op.get("description", "")),
    ]
    if op.get("parameters"):
        parts.append(_parameters(op["parameters"]))
    body = op.get("requestBody")
    if body:
        media = ", ".join(
            f"<code>{escape(k)}</code> {schema_type(v.get('schema', {}))}"
            for k, v in body.get("content", {}).items()
        )
        need = "required" if body.get("required") else "optional"
        parts.append(f"<h4>Body ({need})</h4><p>{escape(body.get('description', ''))} {media}</p>")
    parts.append(_responses(op.get("responses", {}), operations))
    parts.append("</section>")
    return "".join(parts)


def _schema(name: str, schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", ()))
    props = schema.get("properties", {})
    parts = [f'<section class=schema id="schema-{_anchor(name)}"><h3>{escape(name)}</h3>']
    if schema.get("description"):
        parts.append(_text(schema["description"]))
    if props:
        rows = [
            (
                f"<code>{escape(prop)}</code>",
                schema_type(spec),
                constraints(spec),
                "yes" if prop in required else "no",
                _inline(spec.get("description", "")) if isinstance(spec, Mapping) else "",
            )
            for prop, spec in props.items()
        ]
        parts.append(_rows(rows, ("member", "type", "constraints", "required", "description")))
        if schema.get("additionalProperties") is False:
            parts.append("<p class=note>No other members are accepted.</p>")
    else:
        parts.append(f"<p>{schema_type(schema)} {constraints(schema)}</p>")
    for example in schema.get("examples", ()):
        parts.append(f"<h4>Example</h4><pre>{escape(json.dumps(example, indent=2))}</pre>")
    parts.append("</section>")
    return "".join(parts)


def render_reference(document: Mapping[str, Any]) -> tuple[str, str]:
    """The page and the CSP source of its one inline stylesheet ('sha256-…')."""
    style = STYLE.read_text()
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    info = document["info"]
    operations: dict[str, tuple[str, str]] = {}
    # Tags in the document's order, with their descriptions.
    tags = {t["name"]: t.get("description", "") for t in document.get("tags", ())}
    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {name: [] for name in tags}
    for path, item in document["paths"].items():
        for method, op in item.items():
            operations[op["operationId"]] = (method.upper(), path)
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method, path, op))
    toc = "".join(
        f"<li><strong>{escape(tag)}</strong><ul>"
        + "".join(
            f'<li><a href="#op-{_anchor(op["operationId"])}">'
            f"<span class='method {method}'>{method.upper()}</span> {escape(path)}</a></li>"
            for method, path, op in ops
        )
        + "</ul></li>"
        for tag, ops in by_tag.items()
    )
    sections = "".join(
        f"<h2 id='tag-{_anchor(tag)}'>{escape(tag)}</h2>{_text(tags.get(tag, ''))}"
        + "".join(_operation(method, path, op, operations) for method, path, op in ops)
        for tag, ops in by_tag.items()
    )
    schemas = "".join(
        _schema(name, schema) for name, schema in document["components"]["schemas"].items()
    )
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{escape(info['title'])} {escape(info['version'])}</title>"
        f"<style>{style}</style></head><body>"
        f"<nav><p><a href='#top'>{escape(info['title'])}</a></p><ul>{toc}</ul>"
        "<p><a href='#schemas'>Schemas</a></p></nav>"
        f"<main id=top><h1>{escape(info['title'])} <small>{escape(info['version'])}</small></h1>"
        f"{_text(info.get('description', ''))}"
        "<p>The machine-readable description: <a href='openapi.json'>/openapi.json</a> "
        f"(OpenAPI {escape(document['openapi'])}).</p>"
        f"{sections}<h2 id=schemas>Schemas</h2>{schemas}</main></body></html>"
    )
    return page, f"sha256-{digest}"
