"""Processes that end themselves when the process that started them dies.

A worker or run killed with SIGKILL cannot stop its children. An orphaned job child or
pool process would keep analysing while the requeued job runs elsewhere, and keep its
share of the cores, so each child watches its parent and exits instead. Both the job
layer and the pipeline's pool use this, so it sits below both.
"""

from __future__ import annotations

import os
import threading
import time

# The exit code of a process that ended because its parent was gone (EX_SOFTWARE).
ORPHAN_EXIT_CODE = 70
_CHECK_SECONDS = 0.5


def exit_with_parent(parent_pid: int) -> None:
    """Start a daemon thread that ends this process once `parent_pid` is no longer its
    parent (the parent died and the process was re-parented)."""
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="exit-with-parent", daemon=True
    ).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_CHECK_SECONDS)
        if os.getppid() != parent_pid:
            # os._exit: the process is abandoned; there is nobody to flush or clean for.
            os._exit(ORPHAN_EXIT_CODE)
