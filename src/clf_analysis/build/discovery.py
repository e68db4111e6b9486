"""Finding the build package of a build id under the MIDAS base path."""

from __future__ import annotations

import re
from pathlib import Path

from clf_analysis.build.archive import BuildError

_BUILD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class InvalidBuildId(BuildError, ValueError):
    """A build id that is not a plain folder name (it would escape the base path)."""


class BuildNotFound(BuildError):
    """The build folder or its `.abp` package does not exist."""


def validate_build_id(value: str | int) -> str:
    """The build id as text, or InvalidBuildId; numbers are accepted (ids are often numeric).

    Allowed: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with '.' (which rules out '.',
    '..' and hidden folders). Separators can never match, so the id is one path component.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidBuildId(f"build id must be text or a number, got {type(value).__name__}")
    text = str(value)
    if not _BUILD_ID.fullmatch(text):
        raise InvalidBuildId(
            f"invalid build id {text[:80]!r}: use 1-64 characters from A-Z a-z 0-9 . _ -"
        )
    if text.startswith("."):
        raise InvalidBuildId(f"invalid build id {text!r}: must not start with '.'")
    return text


def choose_package(names: list[str], build_id: str) -> str | None:
    """Spec rule: the first sorted name that contains the build id, else the first sorted."""
    ordered = sorted(names)
    for name in ordered:
        if build_id in name:
            return name
    return ordered[0] if ordered else None


def find_build_package(midas_base_path: Path, build_id: str) -> Path:
    """The `.abp` of `<base>/<build_id>/`; never creates anything.

    Raises BuildNotFound when the folder or the package is missing, or when either
    resolves (through a symlink) outside the base path.
    """
    build_id = validate_build_id(build_id)
    base = Path(midas_base_path).resolve()
    folder = base / build_id
    if not folder.is_dir():
        raise BuildNotFound(f"build {build_id!r}: no folder {folder}")
    names = [
        entry.name
        for entry in folder.iterdir()
        if entry.suffix.lower() == ".abp" and entry.is_file()
    ]
    chosen = choose_package(names, build_id)
    if chosen is None:
        raise BuildNotFound(f"build {build_id!r}: no .abp package in {folder}")
    package = (folder / chosen).resolve()
    if not package.is_relative_to(base):
        raise BuildNotFound(f"build {build_id!r}: package {chosen!r} resolves outside {base}")
    return package
