"""`exit_with_parent`: a process whose parent dies ends itself (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

WAIT = 30.0  # bound for two interpreters starting on busy cores; not a speed claim

# The middle process starts a guarded grandchild, reports its pid and exits at once.
_MIDDLE = textwrap.dedent(
    """
    import subprocess, sys
    grandchild = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
    print(grandchild.pid, flush=True)
    sys.stdin.readline()  # exit when the test says so
    """
)
_GRANDCHILD = textwrap.dedent(
    """
    import os, time
    from clf_analysis.process_guard import exit_with_parent
    exit_with_parent(os.getppid())
    time.sleep(600)
    """
)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_a_guarded_process_ends_itself_once_its_parent_is_gone() -> None:
    middle = subprocess.Popen(
        [sys.executable, "-c", _MIDDLE, _GRANDCHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert middle.stdout is not None and middle.stdin is not None
    grandchild = int(middle.stdout.readline())
    try:
        time.sleep(1.5)  # several checks of the watchdog with the parent alive
        assert _running(grandchild)  # a living parent keeps it running
        middle.stdin.write("\n")
        middle.stdin.flush()
        assert middle.wait(WAIT) == 0
        deadline = time.monotonic() + WAIT
        while _running(grandchild) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(grandchild)
    finally:
        if _running(grandchild):
            os.kill(grandchild, 9)
        middle.kill()
