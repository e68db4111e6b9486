"""Atomic publication of a run's output directory and the shared run log.

The live `clf_analysis/` directory is never edited in place: a run writes into
`clf_analysis.tmp-<run>/` and swaps it in while holding the build's `.clf_analysis.lock`
exclusively, the lock that readers of other services hold shared. Everything here works
on an open build folder (`ShareDir`): no link in the share is ever followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from clf_analysis.abp.errors import ShareFileTooLarge, UnsafeSharePath
from clf_analysis.abp.share import ShareDir, nests_deeper_than
from clf_analysis.layout import (
    LOCK_FILE,
    OLD_PREFIX,
    OUTPUT_DIR,
    RUN_LOG,
    SPOOL_SUFFIX,
    TMP_PREFIX,
    old_output_name,
)
from clf_analysis.pipeline.errors import BuildLocked

log = logging.getLogger(__name__)

RUN_LOG_LOCK = f"{RUN_LOG}.lock"
RUN_LOG_KEY = "clf_analysis"
RUN_LOG_DESCRIPTION = "CLF analysis and platform path processing"
# The run log grows by a few hundred bytes a run of each service; a larger one (a sparse
# file can claim gigabytes) is kept aside like an unreadable one rather than read.
RUN_LOG_MAX_BYTES = 64 * 1024 * 1024
# Deeper than a run log is (four levels), and shallow enough to write back: json.dumps
# recurses, and fails on a log nested a thousand levels deep.
RUN_LOG_MAX_DEPTH = 64
# Run ids are uuid4 hex: only folders named like this can be a dead run's leftovers.
_LEFTOVER = re.compile(
    rf"^(?:{re.escape(TMP_PREFIX)}[0-9a-f]{{32}}(?:{re.escape(SPOOL_SUFFIX)})?"
    rf"|{re.escape(OLD_PREFIX)}[0-9a-f]{{32}})$"
)


@dataclass(frozen=True)
class LockPolicy:
    """How long to try for the exclusive lock: readers hold it only briefly."""

    attempts: int = 50
    delay_seconds: float = 0.2


def check_output_dir(build: ShareDir) -> None:
    """The live output must be a real folder when present: a link in its place is refused
    (the swap would move the link, and readers would follow it)."""
    info = build.lstat(OUTPUT_DIR)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise UnsafeSharePath(build.rel(OUTPUT_DIR), f"is {kind}")


def _leftovers(build: ShareDir, prefix: str) -> list[str]:
    """Real folders, owned by this user, named as this service names a run's folders.

    Anything else (a link, someone else's folder, a folder named by hand) is never ours
    to delete or to restore.
    """
    found = []
    for entry in build.entries():
        if not (entry.name.startswith(prefix) and _LEFTOVER.match(entry.name)):
            continue
        own = entry.is_dir(follow_symlinks=False)
        if own and entry.stat(follow_symlinks=False).st_uid == os.geteuid():
            found.append(entry.name)
            continue
        log.warning("left alone: %s is not a folder this service created", build.rel(entry.name))
    return sorted(found)


def remove_stale_temp_dirs(build: ShareDir, keep: str | None = None) -> list[str]:
    """Delete temp/old output folders of runs that died; returns the names removed.

    Best effort: a leftover that cannot be deleted now is left for a later run and
    never fails this one (whatever is in it: someone may have filled it meanwhile).
    """
    removed = []
    for name in _leftovers(build, TMP_PREFIX) + _leftovers(build, OLD_PREFIX):
        if name == keep:
            continue
        try:
            build.rmtree(name)
        except Exception as exc:
            log.warning("leftover %s not removed: %s", build.rel(name), build.shown(str(exc)))
            continue
        removed.append(name)
    return removed


def recover_interrupted_swap(build: ShareDir) -> None:
    """Put back the previous results if a fallback swap died between its two renames."""
    if build.lstat(OUTPUT_DIR) is not None:
        return
    olds = _leftovers(build, OLD_PREFIX)
    if olds:
        build.rename(olds[-1], OUTPUT_DIR)
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
def locked_file(
    build: ShareDir, name: str, policy: LockPolicy, failure: Callable[[], Exception]
) -> Iterator[int]:
    """Hold `<build>/<name>` exclusively (flock); created when missing.

    Opened without following a link and only when it is a regular file with a single
    link: a planted lock file must not make the service create, truncate or write a file
    anywhere else (another build's package, the job store).
    """
    fd = build.open_private_file(name, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        flock_exclusive(fd, policy, failure)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_build_lock(
    build: ShareDir, holder: str, policy: LockPolicy = LockPolicy()
) -> Iterator[None]:
    """Hold `<build>/.clf_analysis.lock` exclusively (non-blocking tries, bounded)."""

    def busy() -> BuildLocked:
        return BuildLocked(
            f"{build.rel(LOCK_FILE)} stays locked by another reader or writer",
            stage="publish",
            kind="build_locked",
        )

    with locked_file(build, LOCK_FILE, policy, busy) as fd:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode("utf-8") + b"\n", 0)
        yield


def swap_into_place(build: ShareDir, new_name: str, run_id: str) -> None:
    """Make the folder `new_name` the live output; the previous output is deleted afterwards.

    Caller holds the build lock. With RENAME_EXCHANGE the live name never disappears;
    where the filesystem lacks it (some network shares), two renames are used and an
    interruption between them is repaired by `recover_interrupted_swap`.
    """
    check_output_dir(build)
    old = old_output_name(run_id)
    if build.lstat(OUTPUT_DIR) is None:
        build.rename(new_name, OUTPUT_DIR)
        return
    if build.exchange(new_name, OUTPUT_DIR):
        build.rename(new_name, old)  # new_name now holds the previous results
    else:
        build.rename(OUTPUT_DIR, old)
        build.rename(new_name, OUTPUT_DIR)
    # The new results are live: nothing from here on may fail the run. What cannot be
    # deleted now is a leftover the next run's cleanup deletes.
    try:
        build.rmtree(old)
    except Exception as exc:
        log.warning("previous results %s not removed: %s", build.rel(old), build.shown(str(exc)))


def record_run(
    build: ShareDir,
    *,
    run_id: str,
    start_time: datetime,
    end_time: datetime,
    status: str,
    timestamp_folder: str = OUTPUT_DIR,
    lock_timeout: float = 30.0,
) -> str | None:
    """Append this run to `processes_run.json`, keeping other services' keys.

    Written to a temp file and renamed, under `processes_run.json.lock`: an flock, the
    same lock the `filelock` package takes on Unix, so writers using it still exclude us.
    A log that cannot be read — not JSON, nested too deep to parse, larger than
    RUN_LOG_MAX_BYTES, or not a regular file (a link, a folder) — is renamed aside (its
    new name is returned) rather than reset or followed: it may hold another service's
    history.
    """

    def busy() -> BuildLocked:
        return BuildLocked(
            f"{build.rel(RUN_LOG_LOCK)} held for more than {lock_timeout} s",
            stage="publish",
            kind="build_locked",
        )

    delay = 0.05
    policy = LockPolicy(attempts=max(1, int(lock_timeout / delay) + 1), delay_seconds=delay)
    kept_aside: str | None = None
    with locked_file(build, RUN_LOG_LOCK, policy, busy):
        data: dict[str, object] = {}
        try:
            loaded = json.loads(build.read_bytes(RUN_LOG, max_bytes=RUN_LOG_MAX_BYTES))
            if not isinstance(loaded, dict):
                raise ValueError("top level is not an object")
            if nests_deeper_than(loaded, RUN_LOG_MAX_DEPTH):
                raise ValueError(f"nested more than {RUN_LOG_MAX_DEPTH} levels deep")
            data = loaded
        except FileNotFoundError:
            pass
        except (ValueError, RecursionError, UnsafeSharePath, ShareFileTooLarge) as exc:
            kept_aside = f"{RUN_LOG}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{run_id}"
            build.rename(RUN_LOG, kept_aside)
            log.warning("%s was unreadable (%s); kept as %s", build.rel(RUN_LOG), exc, kept_aside)
        section = data.get(RUN_LOG_KEY)
        if section is not None and (
            not isinstance(section, dict) or not isinstance(section.get("runs"), list)
        ):
            # Not ours to discard: our history in a shape we cannot extend is kept
            # beside the fresh section, under a key that says what happened.
            aside_key = f"{RUN_LOG_KEY}.malformed-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
            data[aside_key] = section
            log.warning(
                "%s: malformed %r section kept as %r", build.rel(RUN_LOG), RUN_LOG_KEY, aside_key
            )
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
        build.write_atomically(
            RUN_LOG, json.dumps(data, indent=2).encode("utf-8"), f".{RUN_LOG}.tmp-{run_id}"
        )
    return kept_aside


def holder_hint(job_id: str, started: datetime) -> str:
    return f"clf-analysis job {job_id} started {started.isoformat()}"
