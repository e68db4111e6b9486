"""`clf-analysis worker`: run job workers alone (separate containers or hosts)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from clf_analysis.cli.job_runner import log_startup_warnings, runner_of, startup_problem
from clf_analysis.cli.options import at_least
from clf_analysis.logs import configure_logging


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run analysis workers against the job store",
        description="Claim queued analyses from the job store and run them until SIGTERM/SIGINT; "
        "then stop claiming, drain for DRAIN_TIMEOUT seconds, release the rest, exit 0.",
    )
    parser.add_argument(
        "--concurrency",
        type=at_least(1),
        default=None,
        help="jobs at once (default WORKER_CONCURRENCY)",
    )
    parser.add_argument(
        "--runner", default=None, help="module:function run for each job (default: the pipeline)"
    )
    parser.add_argument(
        "--cancel-grace",
        type=at_least(0, float),
        default=10.0,
        help="seconds a cancelled job may take to stop before it is killed (default 10)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading
    import uuid

    from clf_analysis.abp.share_check import check_share, log_share_status
    from clf_analysis.cli.job_store import StoreUnavailable, configured_store, open_store
    from clf_analysis.config import ConfigError, load_settings
    from clf_analysis.jobs import Worker

    try:
        overrides = {} if args.concurrency is None else {"worker_concurrency": args.concurrency}
        settings = load_settings(option_names={"worker_concurrency": "--concurrency"}, **overrides)
    except ConfigError as exc:
        print(f"clf-analysis worker: {exc}", file=sys.stderr)
        return 2
    if settings.worker_concurrency < 1:
        print(
            "clf-analysis worker: WORKER_CONCURRENCY is 0 (which means no embedded workers in "
            "`serve`): a worker needs at least 1; set it or pass --concurrency N",
            file=sys.stderr,
        )
        return 2
    runner = runner_of(args.runner)
    problem = startup_problem(settings, runner)
    if problem is not None:
        print(f"clf-analysis worker: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("clf_analysis.worker")
    log_startup_warnings(runner, log)
    log_share_status(check_share(settings.midas_base_path), log)

    try:
        store = open_store(configured_store(settings))
    except StoreUnavailable as exc:
        print(f"clf-analysis worker: {exc}", file=sys.stderr)
        return 2
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
        runner=runner,
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
