"""Worker: claims jobs and runs each in a spawned child process under a lease.

The parent keeps one supervising thread per job. The thread relays progress from the child
over a pipe, renews the lease (heartbeat), turns a cancel request into the child's cancel
flag and, after a grace period, into a kill; it enforces JOB_TIMEOUT and records how the
attempt ended with one guarded transition of the store.

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
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from clf_analysis.config import Settings
from clf_analysis.jobs.models import Job
from clf_analysis.jobs.store import JobStore

log = logging.getLogger(__name__)

DEFAULT_RUNNER = "clf_analysis.pipeline.job:run_job"
ProgressFn = Callable[[str, float, str], None]
RunnerFn = Callable[[str, str, dict[str, Any], ProgressFn, Callable[[], bool]], dict[str, Any]]

# Progress is written at most this often; the lease is renewed at lease/3 regardless.
PROGRESS_WRITE_INTERVAL = 1.0
PRUNE_INTERVAL = 3600.0
_KILL_WAIT = 3.0
_FINISH_RETRIES = 3


def resolve_runner(spec: str) -> RunnerFn:
    """Import the runner named "package.module:function"."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"runner must look like 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"runner {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    """The stored error of a runner exception: type, message and what the exception knows."""
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
    to_problem = getattr(exc, "to_problem", None)
    if callable(to_problem):
        try:
            error["problem"] = _jsonable(to_problem())
        except Exception:  # a broken to_problem must not hide the original failure
            log.exception("to_problem() of %s failed", type(exc).__name__)
    for attr in ("stage", "file", "layer"):
        value = getattr(exc, attr, None)
        if value is not None:
            error[attr] = _jsonable(value)
    return error


def _watch_parent(parent_pid: int) -> None:
    # A worker killed with -9 cannot stop its children; an orphan would keep analysing
    # while the requeued job runs elsewhere, so the child ends itself instead.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(70)


def _child_main(
    runner: str,
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    conn: Connection,
    cancel: Any,
    parent_pid: int,
    niceness: int,
    log_level: str,
    log_format: str,
) -> None:
    """Entry point of the spawned child: run the runner, send back its result or error."""
    # A fresh interpreter: the pipeline's own log lines need the service's handler,
    # level and format (one JSON object per line under LOG_FORMAT=json) here too.
    from clf_analysis.cli.worker import configure_logging

    configure_logging(log_level, log_format)
    # A process group of its own: stopping the job reaches the processes the runner
    # starts (the pipeline's pool) too. Ctrl-C is for the worker; it decides how the
    # job ends.
    os.setpgid(0, 0)
    # Lower priority, inherited by the runner's pool: CPU-bound analyses must not slow the
    # API's answers or the heartbeats that keep this job's lease.
    os.nice(niceness)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()

    def progress(stage: str, fraction: float, message: str = "") -> None:
        conn.send(("progress", str(stage), float(fraction), str(message)))

    def is_cancelled() -> bool:
        return bool(cancel.is_set())

    try:
        result = resolve_runner(runner)(job_id, build_id, params, progress, is_cancelled)
        if not isinstance(result, dict):
            raise TypeError(f"runner returned {type(result).__name__}, not a dict")
        # Fail here, with a clear error, rather than in the store (PostgreSQL's json type
        # refuses NaN and Infinity, which Python's json writes by default).
        try:
            json.dumps(result, allow_nan=False)
        except ValueError as exc:
            raise ValueError(
                f"runner result is not storable JSON (NaN or infinity): {exc}"
            ) from None
        conn.send(("result", result))
    except Exception as exc:
        conn.send(("error", error_from_exception(exc), traceback.format_exc()))
    finally:
        conn.close()


def _signal_job(proc: BaseProcess, sig: int) -> None:
    """Signal the child's process group (the child and what it started), or the child
    alone if it has not made its group yet."""
    pid = proc.pid
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop_process(proc: BaseProcess) -> None:
    if proc.is_alive():
        _signal_job(proc, signal.SIGTERM)
        proc.join(_KILL_WAIT)
    if proc.is_alive():
        _signal_job(proc, signal.SIGKILL)
        proc.join(_KILL_WAIT)
    # Whatever the runner started and left behind dies with the job.
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.killpg(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]


class _JobRun(threading.Thread):
    """Supervises one claimed job from child start to the final transition."""

    def __init__(self, worker: Worker, job: Job) -> None:
        super().__init__(name=f"job-{job.id[:8]}", daemon=True)
        self.worker = worker
        self.job = job
        self.release_requested = threading.Event()

    def run(self) -> None:
        try:
            self._supervise()
        except Exception:
            log.exception("supervising job %s failed", self.job.id, extra={"job_id": self.job.id})
            self._finish(
                lambda: self.worker.store.fail(
                    self.job.id,
                    self.worker.worker_id,
                    {"type": "worker_error", "message": "the worker failed to supervise the job"},
                )
            )
        finally:
            self.worker._run_finished(self)

    def _finish(self, transition: Callable[[], bool]) -> bool:
        # A store blip at the very end would otherwise cost a whole re-run after the lease
        # expires; a few retries are cheap.
        for attempt in range(_FINISH_RETRIES):
            try:
                return transition()
            except Exception:
                log.exception("recording the end of job %s failed", self.job.id)
                time.sleep(1.0 + attempt)
        return False

    def _supervise(self) -> None:
        w = self.worker
        job = self.job
        ctx = multiprocessing.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        cancel = ctx.Event()
        proc = ctx.Process(
            target=_child_main,
            args=(
                w.runner,
                job.id,
                job.build_id,
                job.params,
                writer,
                cancel,
                os.getpid(),
                w.settings.job_niceness,
                w.settings.log_level,
                w.settings.log_format,
            ),
            name=f"clf-job-{job.id[:8]}",
        )
        proc.start()
        writer.close()  # so that the child's exit shows as EOF on our end
        try:
            log.info(
                "job started",
                extra={"job_id": job.id, "build_id": job.build_id, "child_pid": proc.pid},
            )

            lease = w.settings.lease_seconds
            beat_interval = lease / 3
            started = last_beat = last_ok = time.monotonic()
            percent, stage, message = 0.0, None, None
            dirty = False
            outcome: tuple[Any, ...] | None = None
            stop_reason: str | None = None  # "cancel" | "release" | "timeout" | "lease_lost"
            kill_at: float | None = None

            while True:
                if reader.poll(0.2):
                    try:
                        msg = reader.recv()
                    except (EOFError, OSError):
                        break
                    if msg[0] == "progress":
                        _, new_stage, fraction, new_message = msg
                        percent = min(100.0, max(0.0, fraction * 100.0))
                        message = new_message
                        dirty = True
                        if new_stage != stage:
                            stage = new_stage
                            last_beat = 0.0  # write a stage change at once
                            w._safe_event(job.id, "stage", {"stage": stage, "message": message})
                    else:
                        outcome = msg
                        break
                now = time.monotonic()
                if not proc.is_alive() and not reader.poll():
                    break

                due = now - last_beat >= beat_interval
                if due or (dirty and now - last_beat >= PROGRESS_WRITE_INTERVAL):
                    try:
                        answer = w.store.heartbeat(
                            job.id,
                            w.worker_id,
                            lease,
                            progress=percent,
                            stage=stage,
                            message=message,
                        )
                    except Exception:
                        log.exception("heartbeat of job %s failed", job.id)
                        answer = None
                        if now - last_ok > lease:
                            # We cannot prove the lease is ours any more; someone may run it.
                            stop_reason = "lease_lost"
                    last_beat = now
                    if answer is not None:
                        last_ok = now
                        dirty = False
                        if not answer.ok:
                            stop_reason = "lease_lost"
                        elif answer.cancel_requested and stop_reason is None:
                            stop_reason = "cancel"
                            cancel.set()
                            kill_at = now + w.cancel_grace
                            log.info("cancelling job", extra={"job_id": job.id})
                    if stop_reason == "lease_lost":
                        break

                if now - started > w.settings.job_timeout:
                    stop_reason = "timeout"
                    break
                if self.release_requested.is_set() and stop_reason is None:
                    stop_reason = "release"
                    cancel.set()
                    kill_at = now + w.cancel_grace
                if kill_at is not None and now >= kill_at:
                    break
        finally:
            # Also when supervising itself fails: no child may outlive its supervisor.
            _stop_process(proc)
            reader.close()
        self._record(proc, outcome, stop_reason)

    def _record(
        self, proc: BaseProcess, outcome: tuple[Any, ...] | None, reason: str | None
    ) -> None:
        w, job = self.worker, self.job
        store, wid = w.store, w.worker_id
        if reason == "lease_lost":
            log.warning("lease of job %s lost; child stopped", job.id, extra={"job_id": job.id})
            w._safe_event(job.id, "heartbeat_lost", {"worker": wid})
            return
        if outcome is not None and outcome[0] == "result" and reason != "timeout":
            self._finish(lambda: store.complete(job.id, wid, outcome[1]))
            return
        if reason == "timeout":
            error = {
                "type": "timeout",
                "message": f"analysis exceeded JOB_TIMEOUT of {w.settings.job_timeout:g} s",
            }
            self._finish(lambda: store.fail(job.id, wid, error))
            return
        if reason == "cancel":
            self._finish(lambda: store.mark_cancelled(job.id, wid))
            return
        if reason == "release" or (w._stopping.is_set() and _killed_by_shutdown(proc.exitcode)):
            self._finish(lambda: store.release(job.id, wid, "worker shutdown"))
            return
        if outcome is not None and outcome[0] == "error":
            log.error(
                "job failed: %s\n%s",
                outcome[1].get("message"),
                outcome[2],
                extra={"job_id": job.id},
            )
            self._finish(lambda: store.fail(job.id, wid, outcome[1]))
            return
        crash = _crash_error(proc.exitcode)
        if proc.exitcode == -signal.SIGKILL:
            # Nobody here sent it (our kills have a reason, handled above): the kernel's OOM
            # killer, most likely. A large build may fit next time, on another worker or
            # beside fewer jobs, so this attempt counts and the job goes back to the queue.
            self._finish(lambda: store.retry(job.id, wid, crash))
            return
        self._finish(lambda: store.fail(job.id, wid, crash))


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
        runner: str = DEFAULT_RUNNER,
        worker_id: str | None = None,
        poll_interval: float = 0.5,
        cancel_grace: float = 10.0,
        concurrency: int | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.runner = runner
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.poll_interval = poll_interval
        self.cancel_grace = cancel_grace
        self.concurrency = settings.worker_concurrency if concurrency is None else concurrency
        self.instance_id = instance_id
        self._runs: dict[str, _JobRun] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_timeout: float | None = None

    # --- loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Claim and supervise jobs until `stop` is set; then drain and release the rest."""
        maintenance_every = max(0.5, min(self.settings.lease_seconds / 2, 15.0))
        last_maintenance = last_prune = float("-inf")
        log.info(
            "worker started",
            extra={"worker_id": self.worker_id, "concurrency": self.concurrency},
        )
        from clf_analysis.clf import COMPILED_WALKER

        if not COMPILED_WALKER:
            log.warning(
                "the compiled CLF layer walker is not built (no C compiler at install): "
                "layers are decoded by the slower general Python code"
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
                "job claimed",
                extra={"job_id": job.id, "build_id": job.build_id, "attempt": job.attempts},
            )
            run = _JobRun(self, job)
            with self._lock:
                self._runs[job.id] = run
            run.start()

    def _run_finished(self, run: _JobRun) -> None:
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

    def _safe_event(self, job_id: str, kind: str, detail: dict[str, Any]) -> None:
        try:
            self.store.add_event(job_id, kind, detail)
        except Exception:
            log.exception("recording event %s of job %s failed", kind, job_id)

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
            run.join(self.cancel_grace + 4 * _KILL_WAIT + 5.0)
