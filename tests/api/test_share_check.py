"""The build share check: /readyz and /info say whether MIDAS_BASE_PATH is usable (and
why not, with the path and the uid), a job on a share it cannot write fails saying so,
and `serve` and `worker` log the result at start.

A share "the container user cannot write" is made real: root is let through every
permission check, so under root the probe runs in a forked child that has dropped to
uid/gid 65534 (nobody), as a container's numeric user would be; a non-root run has the
same situation already once the folder is mode 0555.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clf_analysis.abp.share_check import build_folder_problem, check_share
from clf_analysis.api import create_app
from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.job import run_job

from .conftest import CLI, assert_problem, make_midas, serve_env, start_serve

NOBODY = 65534


def _unprivileged(fn: Callable[[], Any]) -> tuple[int, Any]:
    """fn() in a forked child running as a uid that does not own the test's folders;
    returns (that uid, fn's JSON-able result). Everything fn needs must be imported."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            payload = json.dumps([os.geteuid(), fn()]).encode()
            with os.fdopen(write, "wb") as out:
                out.write(payload)
        except BaseException as exc:  # report it to the parent instead of a silent exit
            os.write(write, json.dumps(["error", repr(exc)]).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    uid, result = json.loads(data)
    assert os.waitstatus_to_exitcode(status) == 0 and uid != "error", result
    return uid, result


def _read_only(folder: Path) -> Path:
    """The folder is owned by this test's user and nobody else may write it."""
    folder.chmod(0o555)
    return folder


@pytest.fixture
def open_midas() -> Iterator[Path]:
    """A MIDAS folder that other users can reach (pytest's tmp_path is private to its
    user, which would make every check fail at the first path component instead)."""
    root = Path(tempfile.mkdtemp(prefix="clf-share-check-"))
    root.chmod(0o755)
    try:
        yield make_midas(root)
    finally:
        for folder in [root, *root.rglob("*")]:
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o755)
        shutil.rmtree(root)


# ------------------------------------------------------------------------------ probes


def test_readyz_and_info_report_a_usable_share(
    make_settings: Callable[..., Settings], store: JobStore, midas: Path
) -> None:
    client = create_app(make_settings(), store=store).test_client()
    assert client.get("/readyz").status_code == 200
    share = client.get("/info").get_json()["share"]
    assert share["path"] == str(midas)
    assert share["uid"] == os.geteuid() and share["gid"] == os.getegid()
    assert share["exists"] and share["is_dir"] and share["readable"] and share["writable"]
    assert share["problem"] is None


def test_readyz_is_503_naming_a_missing_share_and_the_uid(
    make_settings: Callable[..., Settings], store: JobStore, tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted"
    client = create_app(make_settings(midas_base_path=missing), store=store).test_client()
    body = assert_problem(client.get("/readyz"), 503)
    assert body["type"].endswith("/share-unavailable")
    assert f"build share {missing} does not exist" in body["detail"]
    assert f"uid {os.geteuid()}" in body["detail"]
    assert body["share"]["exists"] is False
    assert client.get("/info").get_json()["share"]["problem"] == body["detail"]


def test_readyz_is_503_when_the_share_is_a_file(
    make_settings: Callable[..., Settings], store: JobStore, tmp_path: Path
) -> None:
    afile = tmp_path / "share.txt"
    afile.write_text("not a folder")
    client = create_app(make_settings(midas_base_path=afile), store=store).test_client()
    body = assert_problem(client.get("/readyz"), 503)
    assert f"build share {afile} is not a directory" in body["detail"]


def test_readyz_is_503_naming_path_and_uid_when_the_share_is_not_writable(
    make_settings: Callable[..., Settings], store: JobStore, open_midas: Path
) -> None:
    midas = open_midas
    client = create_app(make_settings(midas_base_path=midas), store=store).test_client()
    assert client.get("/readyz").status_code == 200  # also loads everything the probe uses
    _read_only(midas)

    def probe() -> dict[str, Any]:
        answer = client.get("/readyz")
        return {"status": answer.status_code, "body": answer.get_json(force=True)}

    uid, seen = _unprivileged(probe)
    assert seen["status"] == 503, seen
    detail = seen["body"]["detail"]
    assert f"build share {midas} is not writable by uid {uid}" in detail, detail
    assert f"owner {os.geteuid()}:{os.getegid()}, mode 0555" in detail
    assert seen["body"]["share"]["readable"] is True
    assert seen["body"]["share"]["writable"] is False


def test_unreadable_share_is_reported_as_such(open_midas: Path) -> None:
    share = open_midas
    share.chmod(0o300)  # write and traverse, but no listing: for the owner as for others
    uid, problem = _unprivileged(lambda: check_share(share).problem)
    assert problem is not None
    assert f"build share {share} is not readable by uid {uid}" in problem


# -------------------------------------------------------------------------------- jobs


def test_a_job_on_a_build_folder_it_cannot_write_fails_naming_path_and_uid(
    open_midas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    midas = open_midas
    monkeypatch.setenv("MIDAS_BASE_PATH", str(midas))
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    folder = _read_only(midas / "271360")

    def job() -> dict[str, Any]:
        try:
            run_job("job-1", "271360", {}, lambda *a: None, lambda: False)
        except AnalysisError as exc:
            return exc.to_problem()
        return {"type": "no error"}

    uid, problem = _unprivileged(job)
    assert problem["type"] == "share_not_writable", problem
    assert f"build folder {folder} is not writable by uid {uid}" in problem["message"]
    assert problem["stage"] == "prepare"
    # Nothing was written into the folder before the check refused.
    assert sorted(p.name for p in folder.iterdir()) == ["build_271360.abp"]


def test_the_folder_check_leaves_missing_and_linked_builds_to_the_lookup(
    midas: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (midas / "linked").symlink_to(elsewhere)
    assert build_folder_problem(midas, "no-such-build") is None
    assert build_folder_problem(midas, "linked") is None
    assert build_folder_problem(midas, "../etc") is None
    assert build_folder_problem(midas, "271360") is None  # writable


# ----------------------------------------------------------------------------- start-up


def test_worker_logs_the_share_problem_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "unmounted"
    env = serve_env(missing, tmp_path / "state", LOG_FORMAT="text")
    proc = subprocess.Popen(
        [str(CLI), "worker"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        # Up to "worker started": its signal handlers are installed by then.
        for line in proc.stderr:
            lines.append(line)
            if "worker started" in line or len(lines) > 20:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, lines
    # It still starts (and says why the share is unusable, first thing).
    assert "worker started" in lines[-1], lines
    assert "ERROR" in lines[0] and f"build share {missing} does not exist" in lines[0], lines


def test_serve_logs_a_usable_share_at_start(midas: Path, tmp_path: Path) -> None:
    env = serve_env(midas, tmp_path / "state", LOG_FORMAT="text")
    served = start_serve(env, tmp_path / "serve.log")
    try:
        log = served.log()
    finally:
        assert served.stop() == 0
    uid, gid = os.geteuid(), os.getegid()
    assert f"build share {midas}: readable and writable by uid {uid} (gid {gid})" in log, log
