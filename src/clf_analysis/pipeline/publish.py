"""Atomic publication of a run's output directory and the shared run log.

The live `clf_analysis/` directory is never edited in place: a run writes into
`clf_analysis.tmp-<run>/` and swaps it in while holding the build's `.clf_analysis.lock`
exclusively, the lock that readers of other services hold shared.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from clf_analysis.pipeline.errors import BuildLocked

log = logging.getLogger(__name__)

OUTPUT_DIR = "clf_analysis"
LOCK_FILE = ".clf_analysis.lock"
RUN_LOG = "processes_run.json"
RUN_LOG_KEY = "clf_analysis"
RUN_LOG_DESCRIPTION = "CLF analysis and platform path processing"
TMP_PREFIX = f"{OUTPUT_DIR}.tmp-"
OLD_PREFIX = f"{OUTPUT_DIR}.old-"

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@dataclass(frozen=True)
class LockPolicy:
    """How long to try for the exclusive lock: readers hold it only briefly."""

    attempts: int = 50
    delay_seconds: float = 0.2


def temp_output_dir(build_dir: Path, run_id: str) -> Path:
    return build_dir / f"{TMP_PREFIX}{run_id}"


def remove_stale_temp_dirs(build_dir: Path, keep: str | None = None) -> list[Path]:
    """Delete temp/old output dirs of runs that died; returns what was removed."""
    removed = []
    for entry in build_dir.iterdir():
        if entry.name == keep or not entry.is_dir():
            continue
        if entry.name.startswith(TMP_PREFIX) or entry.name.startswith(OLD_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def recover_interrupted_swap(build_dir: Path) -> None:
    """Put back the previous results if a fallback swap died between its two renames."""
    live = build_dir / OUTPUT_DIR
    if live.exists():
        return
    olds = sorted(p for p in build_dir.glob(f"{OLD_PREFIX}*") if p.is_dir())
    if olds:
        os.rename(olds[-1], live)
        log.warning("restored previous results from %s after an interrupted swap", olds[-1])


def flock_exclusive(fd: int, policy: LockPolicy, failure: Callable[[], Exception]) -> None:
    """Lock `fd` exclusively by non-blocking tries; raises `failure()` after the last."""
    for attempt in range(policy.attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == policy.attempts - 1:
                raise failure() from None
            time.sleep(policy.delay_seconds)


@contextlib.contextmanager
def exclusive_build_lock(
    build_dir: Path, holder: str, policy: LockPolicy = LockPolicy()
) -> Iterator[None]:
    """Hold `<build>/.clf_analysis.lock` exclusively (non-blocking tries, bounded)."""
    path = build_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        flock_exclusive(
            fd,
            policy,
            lambda: BuildLocked(
                f"{path} stays locked by another reader or writer",
                stage="publish",
                kind="build_locked",
            ),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode("utf-8") + b"\n", 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one syscall (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_into_place(build_dir: Path, new_dir: Path, run_id: str) -> None:
    """Make `new_dir` the live output; the previous output is deleted afterwards.

    Caller holds the build lock. With RENAME_EXCHANGE the live name never disappears;
    where the filesystem lacks it (some network shares), two renames are used and an
    interruption between them is repaired by `recover_interrupted_swap`.
    """
    live = build_dir / OUTPUT_DIR
    old = build_dir / f"{OLD_PREFIX}{run_id}"
    if not live.exists():
        os.rename(new_dir, live)
        return
    if _rename_exchange(new_dir, live):
        os.rename(new_dir, old)  # new_dir now holds the previous results
    else:
        os.rename(live, old)
        os.rename(new_dir, live)
    shutil.rmtree(old, ignore_errors=True)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def record_run(
    build_dir: Path,
    *,
    run_id: str,
    start_time: datetime,
    end_time: datetime,
    status: str,
    timestamp_folder: str = OUTPUT_DIR,
    lock_timeout: float = 30.0,
) -> Path | None:
    """Append this run to `processes_run.json`, keeping other services' keys.

    Written to a temp file and renamed, under a file lock. An unreadable log is renamed
    aside (and returned) rather than reset: it may hold another service's history.
    """
    path = build_dir / RUN_LOG
    kept_aside: Path | None = None
    try:
        with FileLock(str(path) + ".lock", timeout=lock_timeout):
            data: dict[str, object] = {}
            if path.exists():
                try:
                    loaded = json.loads(path.read_text(encoding="utf-8"))
                    if not isinstance(loaded, dict):
                        raise ValueError("top level is not an object")
                    data = loaded
                except (ValueError, UnicodeDecodeError) as exc:
                    kept_aside = path.with_name(
                        f"{RUN_LOG}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{run_id}"
                    )
                    os.rename(path, kept_aside)
                    log.warning("%s was unreadable (%s); kept as %s", path, exc, kept_aside)
            section = data.get(RUN_LOG_KEY)
            if section is not None and (
                not isinstance(section, dict) or not isinstance(section.get("runs"), list)
            ):
                # Not ours to discard: our history in a shape we cannot extend is kept
                # beside the fresh section, under a key that says what happened.
                aside_key = f"{RUN_LOG_KEY}.malformed-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
                data[aside_key] = section
                log.warning("%s: malformed %r section kept as %r", path, RUN_LOG_KEY, aside_key)
                section = None
            if section is None:
                section = {"description": RUN_LOG_DESCRIPTION, "runs": []}
            section.setdefault("description", RUN_LOG_DESCRIPTION)
            runs = section["runs"]
            assert isinstance(runs, list)
            runs.append(
                {
                    "run_id": run_id,
                    "start_time": start_time.isoformat(),
                    "end_time": end_time.isoformat(),
                    "duration_seconds": round((end_time - start_time).total_seconds(), 3),
                    "status": status,
                    "timestamp_folder": timestamp_folder,
                }
            )
            data[RUN_LOG_KEY] = section
            tmp = path.with_name(f".{RUN_LOG}.tmp-{run_id}")
            tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
            os.replace(tmp, path)
    except Timeout:
        raise BuildLocked(
            f"{path}.lock held for more than {lock_timeout} s", stage="publish", kind="build_locked"
        ) from None
    return kept_aside


def holder_hint(job_id: str, started: datetime) -> str:
    return f"clf-analysis job {job_id} started {started.isoformat()}"
