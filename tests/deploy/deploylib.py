"""Readers for the deployment files, shared by the tests in this folder.

Only the standard library plus ruamel.yaml (which check-jsonschema brings along) is used,
so the static checks need nothing beyond the dev requirements.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
STACK_MK = ROOT / "mk" / "stack.mk"

# --------------------------------------------------------------------------- compose


def load_compose_raw(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML data (anchors and merge keys resolved), uninterpolated."""
    yaml = YAML(typ="safe", pure=True)
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh)
    assert isinstance(data, dict), "compose file is not a mapping"
    return data


_VAR = re.compile(
    r"""\$(?:
        (?P<escaped>\$)
      | \{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}
      | (?P<plain>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class InterpolationError(ValueError):
    """A required variable (${VAR:?msg}) is missing."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style interpolation of one string: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt} and $$ for a literal dollar."""

    def repl(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op is None:
            return value or ""
        unset_or_empty = not value if op.startswith(":") else value is None
        if op.endswith("-"):
            return arg if unset_or_empty else value  # type: ignore[return-value]
        if op.endswith("?"):
            if unset_or_empty:
                raise InterpolationError(f"{name}: {arg}")
            return value  # type: ignore[return-value]
        return "" if unset_or_empty else arg  # "+": alternative value when set

    return _VAR.sub(repl, text)


def variables_in(text: str) -> set[str]:
    """Names of the variables a string interpolates."""
    return {
        m.group("braced") or m.group("plain") for m in _VAR.finditer(text) if not m.group("escaped")
    }


def walk_strings(node: Any):
    """Every string (keys excluded) in a YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    """The YAML tree with every string interpolated."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, env) for value in node]
    return node


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: str | int | float) -> float:
    """A compose duration ("1m30s", "45s", "500ms") in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment` as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# ------------------------------------------------------------------------- .env files


def parse_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """Assignments of a Compose .env file (NAME=value; comments and blanks ignored)."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        assert sep, f"{path.name}:{lineno}: not NAME=value: {line!r}"
        name = name.strip()
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f"{path.name}:{lineno}: {name!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name] = value
    return out


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        import json

        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^CMD\s+", "", text)
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """Stages of a Dockerfile with their instructions (continuations joined, comments
    dropped, leading --flags of an instruction split off)."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = lineno
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append((start, buf + stripped))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"

    stages: list[Stage] = []
    for lineno, text in logical:
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        flags: dict[str, str] = {}
        while rest.startswith("--"):
            token, _, rest = rest.partition(" ")
            key, _, value = token[2:].partition("=")
            flags[key] = value
            rest = rest.strip()
        ins = Instruction(keyword, rest, lineno, flags)
        if keyword == "FROM":
            words = shlex.split(rest)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, [ins]))
        else:
            assert stages or keyword == "ARG", f"line {lineno}: {keyword} before FROM"
            if stages:
                stages[-1].instructions.append(ins)
    return stages


def label_keys(stage: Stage) -> dict[str, str]:
    """LABEL key=value pairs of a stage."""
    out: dict[str, str] = {}
    for ins in stage.all("LABEL"):
        for word in shlex.split(ins.args):
            key, _, value = word.partition("=")
            out[key] = value
    return out


def env_keys(stage: Stage) -> dict[str, str]:
    """ENV key=value pairs of a stage (the key=value form only)."""
    out: dict[str, str] = {}
    for ins in stage.all("ENV"):
        for word in shlex.split(ins.args):
            key, sep, value = word.partition("=")
            assert sep, f"line {ins.line}: use ENV key=value"
            out[key] = value
    return out


# ------------------------------------------------------------------------ .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus **) as a regex on a relative path."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i)
            out += pattern[i : end + 1].replace("[!", "[^") if end > 0 else re.escape(c)
            i = end if end > 0 else i
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        pattern = re.sub(r"/+", "/", pattern).removeprefix("./")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def is_ignored(relpath: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context leaves `relpath` out: the last rule matching the path or
    one of its parent directories decides (Docker's semantics)."""
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            ignored = not negate
    return ignored
