""".env.example documents every setting of the service and every compose variable."""

from __future__ import annotations

import re

from clf_analysis.config import Settings, load_settings

from .deploylib import ENV_EXAMPLE, load_compose_raw, parse_env_file, variables_in, walk_strings

TEXT = ENV_EXAMPLE.read_text(encoding="utf-8")
ASSIGNED = parse_env_file()
SETTING_VARS = {name.upper() for name in Settings.model_fields}


def _comment_block_before(name: str) -> str:
    """The comment lines directly above `NAME=` (or the comment naming it)."""
    lines = TEXT.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{name}=") or re.match(rf"#\s*{name}\b", line):
            block = []
            j = i - 1 if line.startswith(f"{name}=") else i
            while j >= 0 and lines[j].startswith("#"):
                block.append(lines[j])
                j -= 1
            return "\n".join(reversed(block))
    return ""


def test_every_setting_is_documented():
    for name in sorted(SETTING_VARS):
        assert _comment_block_before(name).strip(), f"{name} is not documented in .env.example"


def test_no_stale_variables():
    compose_vars = set().union(*(variables_in(s) for s in walk_strings(load_compose_raw())))
    for name in ASSIGNED:
        assert name in SETTING_VARS or name in compose_vars or name.startswith("COMPOSE_"), (
            f"{name} is in .env.example but neither a setting nor used by docker-compose.yml"
        )


def test_ignore_orphans_is_on_and_explained():
    assert ASSIGNED["COMPOSE_IGNORE_ORPHANS"] == "true"
    why = _comment_block_before("COMPOSE_IGNORE_ORPHANS").lower()
    assert "orphan" in why and "remove-orphans" in why and "project name" in why


def test_settings_in_the_example_are_valid():
    env = {k: v for k, v in ASSIGNED.items() if k in SETTING_VARS}
    settings = load_settings(env)
    assert settings.log_format == "json"


def test_no_secrets_in_the_example():
    assert ASSIGNED["API_TOKEN"] == ""
    assert ASSIGNED["DATABASE_URL"] == ""


def test_share_path_is_an_absolute_placeholder():
    assert ASSIGNED["MIDAS_HOST_PATH"].startswith("/")
