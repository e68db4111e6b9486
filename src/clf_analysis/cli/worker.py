"""`clf-analysis worker`: run job workers alone (separate containers or hosts)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run analysis workers against the job store",
        description="Claim queued analyses from the job store and run them until SIGTERM/SIGINT; "
        "then stop claiming, drain for DRAIN_TIMEOUT seconds, release the rest, exit 0.",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default WORKER_CONCURRENCY)"
    )
    parser.add_argument(
        "--runner", default=None, help="module:function run for each job (default: the pipeline)"
    )
    parser.add_argument(
        "--cancel-grace",
        type=float,
        default=10.0,
        help="seconds a cancelled job may take to stop before it is killed (default 10)",
    )
    parser.set_defaults(func=run)


class JsonFormatter(logging.Formatter):
    # Fields passed with `extra=` (job_id, build_id, …) become JSON members.
    _standard = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def startup_problem(settings: Any, runner: str | None) -> str | None:
    """What would make every job of the default pipeline fail, found before any runs."""
    from clf_analysis.build.exclusions import ExclusionsError
    from clf_analysis.jobs.worker import DEFAULT_RUNNER
    from clf_analysis.pipeline.job import check_startup

    if (runner or DEFAULT_RUNNER) != DEFAULT_RUNNER:
        return None
    try:
        check_startup(settings)
    except ExclusionsError as exc:
        return f"EXCLUSIONS_FILE: {exc}"
    return None


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading
    import uuid

    from clf_analysis.config import ConfigError, load_settings
    from clf_analysis.jobs.store import JobStore
    from clf_analysis.jobs.worker import DEFAULT_RUNNER, Worker
    from clf_analysis.share_check import check_share, log_share_status

    try:
        if args.concurrency is None:
            settings = load_settings()
        else:
            settings = load_settings(worker_concurrency=args.concurrency)
    except ConfigError as exc:
        print(f"clf-analysis worker: {exc}", file=sys.stderr)
        return 2
    if settings.worker_concurrency < 1:
        print("clf-analysis worker: WORKER_CONCURRENCY must be at least 1 here", file=sys.stderr)
        return 2
    problem = startup_problem(settings, args.runner)
    if problem is not None:
        print(f"clf-analysis worker: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("clf_analysis.worker")
    log_share_status(check_share(settings.midas_base_path), log)

    store = JobStore.connect(settings.job_store_url)
    instance_id = f"worker-{uuid.uuid4().hex[:12]}"
    state = store.record_startup(instance_id, "worker")
    log.info(
        "worker instance %s started (startup %d, unclean shutdowns so far %d)",
        instance_id,
        state.startup_count,
        state.unclean_shutdown_count,
    )

    stop = threading.Event()
    worker = Worker(
        store,
        settings,
        runner=args.runner or DEFAULT_RUNNER,
        cancel_grace=args.cancel_grace,
        instance_id=instance_id,
    )

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("signal %d again: already draining", signum)
        else:
            log.info("signal %d: draining", signum)
        worker.begin_shutdown()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        worker.run(stop)
    finally:
        store.record_clean_shutdown(instance_id)
        store.close()
    return 0
