"""Whether this process can use the MIDAS build share: exists, a directory, readable,
writable by the uid it runs as.

Containers run as a numeric user that the share's owner on the host often never heard
of; without this check the first sign of a wrong mount or wrong permissions is a job
failing deep in the pipeline with a bare `Permission denied`. The check only asks the
kernel (stat and access), so it writes nothing on the share and is cheap enough for
every readiness probe.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clf_analysis.abp.discovery import validate_build_id
from clf_analysis.abp.errors import InvalidBuildId

# Read needs listing and traversal; write needs creating entries and traversal.
_READ = os.R_OK | os.X_OK
_WRITE = os.W_OK | os.X_OK


@dataclass(frozen=True)
class ShareStatus:
    """What the check found; `problem` is None when the share is usable."""

    path: str
    uid: int
    gid: int
    exists: bool
    is_dir: bool
    readable: bool
    writable: bool
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _identity() -> str:
    return f"uid {os.geteuid()} (gid {os.getegid()})"


def _owner_and_mode(info: os.stat_result) -> str:
    return f"owner {info.st_uid}:{info.st_gid}, mode {stat.S_IMODE(info.st_mode):04o}"


def _can(path: Path, mode: int) -> bool:
    # The effective ids are the ones the kernel uses when the process writes.
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _status(path: Path, problem: str | None, **found: bool) -> ShareStatus:
    flags = dict(exists=False, is_dir=False, readable=False, writable=False) | found
    return ShareStatus(path=str(path), uid=os.geteuid(), gid=os.getegid(), problem=problem, **flags)


def check_share(path: Path) -> ShareStatus:
    """The state of the build share at `path` (MIDAS_BASE_PATH) for this process."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return _status(
            path, f"build share {path} does not exist (MIDAS_BASE_PATH; running as {_identity()})"
        )
    except OSError as exc:
        return _status(
            path, f"build share {path} cannot be examined by {_identity()}: {exc.strerror}"
        )
    if not stat.S_ISDIR(info.st_mode):
        return _status(
            path, f"build share {path} is not a directory (MIDAS_BASE_PATH)", exists=True
        )
    readable, writable = _can(path, _READ), _can(path, _WRITE)
    problem = None
    if not readable:
        problem = f"build share {path} is not readable by {_identity()}: {_owner_and_mode(info)}"
    elif not writable:
        problem = (
            f"build share {path} is not writable by {_identity()}: {_owner_and_mode(info)}; "
            "results cannot be published"
        )
    return _status(path, problem, exists=True, is_dir=True, readable=readable, writable=writable)


def build_folder_problem(base: Path, build_id: str) -> str | None:
    """Why results of `build_id` cannot be written into its folder, or None.

    Only a real directory is judged: a missing folder, or one that is a symlink, is left
    to the build lookup, which reports those in its own words (and never follows a link
    out of the share).
    """
    try:
        folder = base / validate_build_id(build_id)
        info = folder.lstat()
    except InvalidBuildId:
        return None  # the build lookup rejects it with the reason
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or _can(folder, _WRITE):
        return None
    return (
        f"build folder {folder} is not writable by {_identity()}: {_owner_and_mode(info)}; "
        "give that user write access to the share (docs/OPERATIONS.md, "
        "'Volumes and permissions') or set APP_UID/APP_GID to its owner"
    )


def log_share_status(status: ShareStatus, logger: logging.Logger) -> None:
    """One line at start-up: usable, or why not (the service starts either way)."""
    if status.ok:
        logger.info(
            "build share %s: readable and writable by uid %d (gid %d)",
            status.path,
            status.uid,
            status.gid,
        )
    else:
        logger.error("%s", status.problem)
