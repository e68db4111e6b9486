"""Folder exclusions: which part files of a build are not analysed.

The list is site configuration, kept in a JSON file (setting `EXCLUSIONS_FILE`; without
it the packaged `default_exclusions.json` holds the list of docs/FORMAT.md#the-abp-build-package):

    {"folder_exclusions": ["_Support", "Coupon", "..."]}

`folder_exclusions` is a list of non-empty strings; an empty list excludes nothing.
A key starting with "_" (e.g. "_comment") is ignored; any other key is an error, so a
misspelt key cannot silently disable the exclusions. A part file is excluded when a
pattern is a case-sensitive substring of its folder path relative to `Models/`, with
spaces replaced by `_` ("Test Support 2" matches `_Support`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from clf_analysis.abp.archive import PartFile
from clf_analysis.abp.errors import ExclusionsError

_KEY = "folder_exclusions"


@dataclass(frozen=True)
class Exclusions:
    """An ordered list of folder patterns; the first match names the reason."""

    patterns: tuple[str, ...]
    source: str = "<inline>"

    def match(self, folder: str) -> str | None:
        """The first pattern found in `folder` (spaces read as `_`), or None."""
        normalised = folder.replace(" ", "_")
        for pattern in self.patterns:
            if pattern in normalised:
                return pattern
        return None

    def split(self, parts: Iterable[PartFile]) -> tuple[list[PartFile], list[tuple[PartFile, str]]]:
        """(included, excluded with the matching pattern), each in input order."""
        included: list[PartFile] = []
        excluded: list[tuple[PartFile, str]] = []
        for part in parts:
            pattern = self.match(part.folder)
            if pattern is None:
                included.append(part)
            else:
                excluded.append((part, pattern))
        return included, excluded


def parse_exclusions(data: object, source: str) -> Exclusions:
    """Exclusions from decoded JSON; `source` names the file in error messages."""
    if not isinstance(data, dict):
        raise ExclusionsError(f"{source}: expected a JSON object with {_KEY!r}")
    unknown = sorted(k for k in data if k != _KEY and not str(k).startswith("_"))
    if unknown:
        raise ExclusionsError(f"{source}: unknown key(s) {unknown}; expected only {_KEY!r}")
    if _KEY not in data:
        raise ExclusionsError(f"{source}: missing key {_KEY!r}")
    patterns = data[_KEY]
    if not isinstance(patterns, list):
        raise ExclusionsError(
            f"{source}: {_KEY!r} must be a list of strings, got {type(patterns).__name__}"
        )
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            raise ExclusionsError(
                f"{source}: {_KEY}[{index}] must be a non-empty string, got {pattern!r}"
            )
    return Exclusions(patterns=tuple(patterns), source=source)


def load_exclusions(path: Path | None) -> Exclusions:
    """Exclusions from a JSON file, or the packaged default list when `path` is None."""
    if path is None:
        resource = resources.files("clf_analysis.abp").joinpath("default_exclusions.json")
        text = resource.read_text(encoding="utf-8")
        source = "default_exclusions.json (packaged)"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ExclusionsError(f"{source}: exclusions file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ExclusionsError(f"{source}: cannot read exclusions file ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExclusionsError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    return parse_exclusions(data, source)
