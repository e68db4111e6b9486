"""Finding the build package of a build id under the MIDAS base path."""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clf_analysis.abp.errors import BuildNotFound, BuildRefused, InvalidBuildId, UnsafeSharePath
from clf_analysis.abp.share import BuildFolder, ShareDir

log = logging.getLogger(__name__)

_BUILD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A build folder holds its package, the results and a few logs. One someone filled with
# hundreds of thousands of names would cost every listing and submission a scan of them
# all (1.2 s for 200,000): a folder with more entries than this is refused as a build.
MAX_BUILD_FOLDER_ENTRIES = 10_000
# The same rule as one JSON Schema pattern (ECMA-262 and Python read it alike), for the
# API description; tests hold it to validate_build_id's verdicts.
BUILD_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"


@dataclass(frozen=True)
class BuildPackage:
    """The `.abp` of a build: `name` is the regular file in `folder` that holds the bytes.

    `link` is the name that was chosen when that name is a link to `name` (see
    `resolve_package_link`).
    """

    folder: BuildFolder
    name: str
    size_bytes: int
    link: str | None = None

    @property
    def path(self) -> Path:
        return self.folder.path / self.name

    @property
    def relpath(self) -> str:
        return self.folder.relpath(self.name)


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
    """The rule of docs/FORMAT.md#the-abp-build-package: the first sorted name that
    contains the build id, else the first sorted."""
    ordered = sorted(names)
    for name in ordered:
        if build_id in name:
            return name
    return ordered[0] if ordered else None


class SharedBuildFolder(BuildFolder):
    """A build folder named by its id under MIDAS_BASE_PATH (not a path the user typed):
    its errors name that setting, so that a worker whose share is mounted elsewhere than
    the API's says where it looked."""


def build_folder(midas_base_path: Path, build_id: str) -> BuildFolder:
    """`<base>/<build_id>`: the only place a build's inputs and outputs may be."""
    return SharedBuildFolder(Path(midas_base_path).resolve(), validate_build_id(build_id))


def open_build_folder(folder: BuildFolder) -> ShareDir:
    """The build folder, opened without following a link; BuildNotFound / BuildRefused."""
    try:
        return folder.open()
    except (FileNotFoundError, NotADirectoryError):
        setting = " (MIDAS_BASE_PATH)" if isinstance(folder, SharedBuildFolder) else ""
        raise BuildNotFound(
            f"build {folder.name!r}: no folder {folder.name} under {folder.root}{setting}"
        ) from None
    except UnsafeSharePath as exc:
        raise BuildRefused(f"build {folder.name!r}: {exc}") from None


def resolve_package_link(share: ShareDir, folder: BuildFolder, name: str) -> BuildPackage:
    """The package `name` of an open build folder, following at most one sibling link.

    A link is accepted only when its text is the name of a regular file beside it in the
    same folder (`271360.abp -> 271360_v2.abp`): such a link cannot lead the service out
    of the build, and tools keep a stable name for a re-exported package that way.
    Anything else (another folder, a link to a link, a missing target) is refused.
    """
    info = share.lstat(name)
    if info is None:
        raise BuildNotFound(f"build {folder.name!r}: no package {folder.relpath(name)}")
    if stat.S_ISREG(info.st_mode):
        return BuildPackage(folder, name, info.st_size)
    if not stat.S_ISLNK(info.st_mode):
        raise BuildRefused(
            f"build {folder.name!r}: package {folder.relpath(name)} is not a regular file"
        )
    target = os.readlink(name, dir_fd=share.fd)
    sibling = PurePosixPath(os.path.normpath(target))
    target_info = (
        share.lstat(sibling.name)
        if len(sibling.parts) == 1 and sibling.name not in (".", "..")
        else None
    )
    if target_info is None or not stat.S_ISREG(target_info.st_mode):
        log.warning(
            "build %s: package link %s -> %s refused", folder.name, folder.relpath(name), target
        )
        raise BuildRefused(
            f"build {folder.name!r}: package {folder.relpath(name)} is a symbolic link that "
            "does not name a regular file beside it (outside the build folder, a folder, "
            "another link or nothing); refused"
        )
    return BuildPackage(folder, sibling.name, target_info.st_size, link=name)


def package_in(share: ShareDir, folder: BuildFolder) -> BuildPackage:
    """The package of an open build folder, chosen by `choose_package` among its `.abp` files
    and links (see `resolve_package_link`); folders and special files are not packages.

    BuildRefused when the folder holds more than MAX_BUILD_FOLDER_ENTRIES entries.
    """
    names = []
    for count, entry in enumerate(share.entries(), 1):
        if count > MAX_BUILD_FOLDER_ENTRIES:
            raise BuildRefused(
                f"build {folder.name!r}: {folder.name} holds more than "
                f"{MAX_BUILD_FOLDER_ENTRIES} entries; refused (the service examines no more)"
            )
        if Path(entry.name).suffix.lower() == ".abp" and (
            entry.is_file(follow_symlinks=False) or entry.is_symlink()
        ):
            names.append(entry.name)
    chosen = choose_package(names, folder.name)
    if chosen is None:
        raise BuildNotFound(f"build {folder.name!r}: no .abp package in {folder.name}")
    return resolve_package_link(share, folder, chosen)


def find_build_package(midas_base_path: Path, build_id: str) -> BuildPackage:
    """The `.abp` of `<base>/<build_id>/`; never creates anything.

    Raises BuildNotFound when the folder or the package is missing, BuildRefused when the
    folder is a link or the package a link out of the folder.
    """
    folder = build_folder(midas_base_path, build_id)
    with open_build_folder(folder) as share:
        return package_in(share, folder)
