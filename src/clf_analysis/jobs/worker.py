"""Worker: claims jobs and runs each in a spawned child process under a lease.

The parent keeps one supervising thread per job (`_JobRun`). Its steps, in a loop: poll
the child (relay progress), maintain the heartbeat (renew the lease, notice a cancel
request), enforce the deadlines (JOB_TIMEOUT, the cancel grace); then stop the child and
record how the attempt ended with one guarded transition of the store.

How an attempt ends:
- the runner returns a dict → completed (even when a cancel arrived too late to matter:
  the work is done and was published atomically);
- the runner raises → failed with the exception's type and message (and `stage`, `file`,
  `layer`, `to_problem()` when the exception offers them) — or cancelled/released when a
  cancel/shutdown had been asked for, because raising is how runners honour is_cancelled;
- the child is killed by SIGKILL that the worker did not send (the kernel's OOM killer,
  most likely) → requeued like a lost worker, the attempt counted and the reason in the
  "requeued" event; once MAX_ATTEMPTS are used, failed "crash" with that reason;
- the child dies otherwise without an answer (os._exit, segfault) → failed "crash" with
  the exit code. We do not requeue: a deterministic crash would just crash again, and an
  expired lease already covers the case where the whole worker is lost;
- JOB_TIMEOUT exceeded → killed, failed "timeout";
- the lease was lost (the job was requeued elsewhere) → the child is killed, nothing written.

The worker runs whatever runner it is given ("module:function", see `child`); it knows
nothing of what the jobs compute.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clf_analysis.config import Settings
from clf_analysis.jobs.child import ChildMessage, ChildSpec, Failed, Progress, Succeeded, child_main
from clf_analysis.jobs.models import Job
from clf_analysis.jobs.store import JobStore

log = logging.getLogger(__name__)

# Progress is written at most this often; the lease is renewed at lease/3 regardless.
PROGRESS_WRITE_INTERVAL = 1.0
PRUNE_INTERVAL = 3600.0
_POLL_SECONDS = 0.2
_KILL_WAIT = 3.0
_FINISH_RETRIES = 3


class _Stop(StrEnum):
    """Why the supervisor ended an attempt before the child did."""

    CANCEL = "cancel"
    RELEASE = "release"
    TIMEOUT = "timeout"
    LEASE_LOST = "lease_lost"


class _JobProcess:
    """The spawned child of one job, seen from its supervisor."""

    def __init__(self, spec: ChildSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._reader, writer = ctx.Pipe(duplex=False)
        self._cancel = ctx.Event()
        self._proc = ctx.Process(
            target=child_main, args=(spec, writer, self._cancel), name=f"clf-job-{spec.job_id[:8]}"
        )
        self._proc.start()
        writer.close()  # so that the child's exit shows as EOF on our end

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def exitcode(self) -> int | None:
        return self._proc.exitcode

    def receive(self, timeout: float) -> ChildMessage | None:
        """The child's next message, None when none came within `timeout`.

        EOFError (or OSError) once the child has closed its end: it has ended.
        """
        if not self._reader.poll(timeout):
            return None
        message: ChildMessage = self._reader.recv()
        return message

    def has_ended(self) -> bool:
        """Dead, with nothing left to read."""
        return not self._proc.is_alive() and not self._reader.poll()

    def ask_to_stop(self) -> None:
        """Set the child's cancel flag: a runner that honours it raises soon."""
        self._cancel.set()

    def kill(self) -> None:
        """Stop the child and whatever it started: SIGTERM, then SIGKILL."""
        proc = self._proc
        if proc.is_alive():
            self._signal(signal.SIGTERM)
            proc.join(_KILL_WAIT)
        if proc.is_alive():
            self._signal(signal.SIGKILL)
            proc.join(_KILL_WAIT)
        # Whatever the runner started and left behind dies with the job.
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.killpg(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        self._reader.close()

    def _signal(self, sig: int) -> None:
        # The child's process group (the child and what it started), or the child alone
        # if it has not made its group yet.
        pid = self._proc.pid
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


@dataclass(frozen=True)
class _WorkerContext:
    """What the job runs of one worker share: their store, identity and settings."""

    store: JobStore
    worker_id: str
    runner: str
    settings: Settings
    cancel_grace: float
    # Set once the worker stops (possibly from a signal handler); read only here.
    shutting_down: threading.Event


@dataclass
class _Attempt:
    """One attempt as its supervisor sees it: its child, its clocks (monotonic), the
    progress the store has not been told yet, and how it ended or why it is stopped."""

    child: _JobProcess
    began: float
    last_beat: float
    last_ok: float
    percent: float = 0.0
    stage: str | None = None
    message: str | None = None
    unsaved: bool = False
    outcome: Succeeded | Failed | None = None
    stop: _Stop | None = None
    kill_at: float | None = None


class _JobRun(threading.Thread):
    """Supervises one claimed job from child start to the final transition."""

    def __init__(
        self, context: _WorkerContext, job: Job, on_done: Callable[[_JobRun], None]
    ) -> None:
        super().__init__(name=f"job-{job.id[:8]}", daemon=True)
        self.context = context
        self.job = job
        self.release_requested = threading.Event()
        self._on_done = on_done

    def run(self) -> None:
        try:
            self._supervise()
        except Exception:
            log.exception("supervising job %s failed", self.job.id, extra={"job_id": self.job.id})
            error = {"type": "worker_error", "message": "the worker failed to supervise the job"}
            self._transition(lambda: self.context.store.fail(self.job.id, self._worker_id, error))
        finally:
            self._on_done(self)

    @property
    def _worker_id(self) -> str:
        return self.context.worker_id

    def _supervise(self) -> None:
        settings, job = self.context.settings, self.job
        child = _JobProcess(
            ChildSpec(
                runner=self.context.runner,
                job_id=job.id,
                build_id=job.build_id,
                params=job.params,
                parent_pid=os.getpid(),
                niceness=settings.job_niceness,
                log_level=settings.log_level,
                log_format=settings.log_format,
            )
        )
        try:
            log.info(
                "job %s started (build %s, pid %s)",
                job.id,
                job.build_id,
                child.pid,
                extra={"job_id": job.id, "build_id": job.build_id, "child_pid": child.pid},
            )
            now = time.monotonic()
            attempt = _Attempt(child, began=now, last_beat=now, last_ok=now)
            while self._poll_child(attempt):
                now = time.monotonic()
                self._maintain_heartbeat(attempt, now)
                if attempt.stop == _Stop.LEASE_LOST or self._deadline_passed(attempt, now):
                    break
        finally:
            # Also when supervising itself fails: no child may outlive its supervisor.
            child.kill()
        self._record_end(attempt)

    # --- the steps of the loop -----------------------------------------------------------

    def _poll_child(self, attempt: _Attempt) -> bool:
        """Take the child's next message, if one comes; False once the child has ended."""
        try:
            message = attempt.child.receive(_POLL_SECONDS)
        except (EOFError, OSError):
            return False
        match message:
            case Progress(stage=stage, fraction=fraction, message=text):
                self._note_progress(attempt, stage, fraction, text)
            case Succeeded() | Failed():
                attempt.outcome = message
                return False
            case None:
                pass
        return not attempt.child.has_ended()

    def _note_progress(self, attempt: _Attempt, stage: str, fraction: float, text: str) -> None:
        attempt.percent = min(100.0, max(0.0, fraction * 100.0))
        attempt.message = text
        attempt.unsaved = True
        if stage != attempt.stage:
            attempt.stage = stage
            attempt.last_beat = float("-inf")  # write a stage change at once
            self._record_event("stage", {"stage": stage, "message": text})

    def _maintain_heartbeat(self, attempt: _Attempt, now: float) -> None:
        """Renew the lease (with the progress) when due; notice a lost lease or a cancel."""
        lease = self.context.settings.lease_seconds
        since = now - attempt.last_beat
        if since < lease / 3 and not (attempt.unsaved and since >= PROGRESS_WRITE_INTERVAL):
            return
        attempt.last_beat = now
        try:
            answer = self.context.store.heartbeat(
                self.job.id,
                self._worker_id,
                lease,
                progress=attempt.percent,
                stage=attempt.stage,
                message=attempt.message,
            )
        except Exception:
            log.exception("heartbeat of job %s failed", self.job.id)
            if now - attempt.last_ok > lease:
                # We cannot prove the lease is ours any more; someone may run it.
                attempt.stop = _Stop.LEASE_LOST
            return
        attempt.last_ok = now
        attempt.unsaved = False
        if not answer.ok:
            attempt.stop = _Stop.LEASE_LOST
        elif answer.cancel_requested and attempt.stop is None:
            log.info(
                "cancelling job %s (build %s)",
                self.job.id,
                self.job.build_id,
                extra={"job_id": self.job.id, "build_id": self.job.build_id},
            )
            self._ask_to_stop(attempt, _Stop.CANCEL, now)

    def _deadline_passed(self, attempt: _Attempt, now: float) -> bool:
        """JOB_TIMEOUT, or the grace of a cancel or release, is over (asks for a release)."""
        if now - attempt.began > self.context.settings.job_timeout:
            attempt.stop = _Stop.TIMEOUT
            return True
        if self.release_requested.is_set() and attempt.stop is None:
            self._ask_to_stop(attempt, _Stop.RELEASE, now)
        return attempt.kill_at is not None and now >= attempt.kill_at

    def _ask_to_stop(self, attempt: _Attempt, reason: _Stop, now: float) -> None:
        attempt.stop = reason
        attempt.child.ask_to_stop()
        attempt.kill_at = now + self.context.cancel_grace

    # --- the end of the attempt ------------------------------------------------------

    def _record_end(self, attempt: _Attempt) -> None:
        """The one transition that says how the attempt ended (see the module docstring)."""
        job, store, wid = self.job, self.context.store, self._worker_id
        exitcode = attempt.child.exitcode
        match attempt.stop, attempt.outcome:
            case _Stop.LEASE_LOST, _:
                log.warning("lease of job %s lost; child stopped", job.id, extra={"job_id": job.id})
                self._record_event("heartbeat_lost", {"worker": wid})
            case stop, Succeeded(result=result) if stop != _Stop.TIMEOUT:
                self._transition(lambda: store.complete(job.id, wid, result))
            case _Stop.TIMEOUT, _:
                limit = self.context.settings.job_timeout
                error = {
                    "type": "timeout",
                    "message": f"analysis exceeded JOB_TIMEOUT of {limit:g} s",
                }
                self._transition(lambda: store.fail(job.id, wid, error))
            case _Stop.CANCEL, _:
                self._transition(lambda: store.mark_cancelled(job.id, wid))
            case _Stop.RELEASE, _:
                self._transition(lambda: store.release(job.id, wid, "worker shutdown"))
            case _ if self.context.shutting_down.is_set() and _killed_by_shutdown(exitcode):
                self._transition(lambda: store.release(job.id, wid, "worker shutdown"))
            case _, Failed(error=error, traceback=trace):
                # A failure the runner described itself (`to_problem`: a missing build, a
                # damaged file) is news about the job, not about the code: its traceback
                # only at DEBUG (the runner logs its own faults with theirs).
                described = "problem" in error
                log.error(
                    "job %s failed (build %s): %s%s",
                    job.id,
                    job.build_id,
                    error.get("message"),
                    "" if described else f"\n{trace}",
                    extra={"job_id": job.id, "build_id": job.build_id},
                )
                if described:
                    log.debug("traceback of job %s:\n%s", job.id, trace)
                self._transition(lambda: store.fail(job.id, wid, error))
            case _ if exitcode == -signal.SIGKILL:
                # Nobody here sent it (our kills have a reason, handled above): the kernel's
                # OOM killer, most likely. A large build may fit next time, on another worker
                # or beside fewer jobs, so this attempt counts and the job goes back to the
                # queue.
                self._transition(lambda: store.retry(job.id, wid, _crash_error(exitcode)))
            case _:
                self._transition(lambda: store.fail(job.id, wid, _crash_error(exitcode)))

    def _transition(self, transition: Callable[[], bool]) -> bool:
        # A store blip at the very end would otherwise cost a whole re-run after the lease
        # expires; a few retries are cheap.
        for attempt in range(_FINISH_RETRIES):
            try:
                return transition()
            except Exception:
                log.exception("recording the end of job %s failed", self.job.id)
                time.sleep(1.0 + attempt)
        return False

    def _record_event(self, kind: str, detail: dict[str, Any]) -> None:
        # Events beside transitions are for reading back; losing one must not stop the job.
        try:
            self.context.store.add_event(self.job.id, kind, detail)
        except Exception:
            log.exception("recording event %s of job %s failed", kind, self.job.id)


def _killed_by_shutdown(exitcode: int | None) -> bool:
    # systemd and friends signal the whole group; a child killed that way is not a crash.
    return exitcode is not None and -exitcode in (signal.SIGTERM, signal.SIGINT)


def _crash_error(exitcode: int | None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "crash", "exit_code": exitcode}
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else "?"
        error["signal"] = name
        error["message"] = (
            "analysis process killed by SIGKILL (possibly out of memory)"
            if -exitcode == signal.SIGKILL
            else f"analysis process killed by signal {-exitcode} ({name})"
        )
    else:
        error["message"] = f"analysis process exited with code {exitcode} without a result"
    return error


class Worker:
    """Claims queued jobs and runs up to `concurrency` of them at once (different builds)."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        runner: str,
        worker_id: str | None = None,
        poll_interval: float = 0.5,
        cancel_grace: float = 10.0,
        concurrency: int | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.poll_interval = poll_interval
        self.concurrency = settings.worker_concurrency if concurrency is None else concurrency
        self.instance_id = instance_id
        self._runs: dict[str, _JobRun] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_timeout: float | None = None
        self._context = _WorkerContext(
            store=store,
            worker_id=self.worker_id,
            runner=runner,
            settings=settings,
            cancel_grace=cancel_grace,
            shutting_down=self._stopping,
        )

    # --- loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Claim and supervise jobs until `stop` is set; then drain and release the rest."""
        maintenance_every = max(0.5, min(self.settings.lease_seconds / 2, 15.0))
        last_maintenance = last_prune = float("-inf")
        log.info(
            "worker started",
            extra={"worker_id": self.worker_id, "concurrency": self.concurrency},
        )
        while not stop.is_set():
            now = time.monotonic()
            if now - last_maintenance >= maintenance_every:
                last_maintenance = now
                self._maintain()
            if now - last_prune >= PRUNE_INTERVAL:
                last_prune = now
                self._prune()
            self._fill_slots(stop)
            stop.wait(self.poll_interval)
        self._stopping.set()
        drain = self.settings.drain_timeout if self._drain_timeout is None else self._drain_timeout
        self._drain(drain)
        log.info("worker stopped", extra={"worker_id": self.worker_id})

    def begin_shutdown(self) -> None:
        """Mark the worker as stopping at once (from a signal handler).

        A shutdown signal sent to the whole process group kills job children at the same
        moment; with the mark set, a child found dead of that signal is released back to
        the queue instead of being recorded as a crash.
        """
        self._stopping.set()

    def start(self) -> None:
        """Run the loop in a background thread (workers embedded in `serve`)."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name=f"worker-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def shutdown(self, drain_timeout: float | None = None) -> None:
        """Stop claiming, let in-flight jobs finish for drain_timeout, release the rest."""
        self._drain_timeout = drain_timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def running_job_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def _fill_slots(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                if len(self._runs) >= self.concurrency:
                    return
                busy = {r.job.build_id for r in self._runs.values()}
            try:
                job = self.store.claim(
                    self.worker_id, self.settings.lease_seconds, exclude_builds=busy
                )
            except Exception:
                log.exception("claiming a job failed")
                return
            if job is None:
                return
            log.info(
                "job %s claimed (build %s, attempt %d)",
                job.id,
                job.build_id,
                job.attempts,
                extra={"job_id": job.id, "build_id": job.build_id, "attempt": job.attempts},
            )
            run = _JobRun(self._context, job, on_done=self._forget)
            with self._lock:
                self._runs[job.id] = run
            run.start()

    def _forget(self, run: _JobRun) -> None:
        with self._lock:
            self._runs.pop(run.job.id, None)

    def _maintain(self) -> None:
        try:
            requeued = self.store.requeue_expired()
            if requeued:
                log.warning("expired leases handled: %s", ", ".join(requeued))
            if self.instance_id is not None:
                self.store.touch_instance(self.instance_id)
        except Exception:
            log.exception("job store maintenance failed")

    def _prune(self) -> None:
        try:
            removed = self.store.prune(self.settings.job_retention_days)
            if removed:
                log.info("pruned %d finished jobs", removed)
        except Exception:
            log.exception("pruning the job store failed")

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            runs = list(self._runs.values())
        if runs:
            log.info("draining %d jobs for up to %.0f s", len(runs), timeout)
        for run in runs:
            run.join(max(0.0, deadline - time.monotonic()))
        left = [r for r in runs if r.is_alive()]
        for run in left:
            log.warning("releasing job %s at shutdown", run.job.id, extra={"job_id": run.job.id})
            run.release_requested.set()
        for run in left:
            run.join(self._context.cancel_grace + 4 * _KILL_WAIT + 5.0)
