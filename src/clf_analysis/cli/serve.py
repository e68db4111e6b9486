"""`clf-analysis serve`: the HTTP API under gunicorn plus embedded job workers.

Process layout (single-machine default):

    serve (this process: supervisor + job Worker threads; jobs run in spawned children)
      └─ gunicorn master (spawned child) ─┬─ HTTP worker (gthread)
                                          └─ HTTP worker …

Why the job Worker does not live in the gunicorn master: the master reaps every child with
waitpid(-1), so it would steal the exit status of job processes, and it forks HTTP workers
at any time, which must not happen while Worker threads hold locks. Here the Worker runs
in a process that never forks (its job children are spawned), and gunicorn runs in a child
of its own.

SIGTERM/SIGINT: a shared flag turns /readyz to 503 at once; the Worker stops claiming and
drains for DRAIN_TIMEOUT (the rest is released to the queue); only then gunicorn is asked
to stop gracefully, so status polls keep being answered during the drain. Exit 0. A second
signal stops at once (leases of unfinished jobs expire and they are requeued).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any

from clf_analysis.cli.job_runner import log_startup_warnings, runner_of, startup_problem
from clf_analysis.cli.options import at_least
from clf_analysis.logs import JsonFormatter, configure_logging

if TYPE_CHECKING:
    from clf_analysis.config import Settings

log = logging.getLogger("clf_analysis.serve")

HTTP_STOP_GRACE = 15


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the HTTP API (gunicorn) with embedded job workers",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, help="port (default: PORT, 6300)")
    p.add_argument(
        "--workers", type=at_least(1), default=2, help="gunicorn HTTP worker processes (default 2)"
    )
    p.add_argument(
        "--threads", type=at_least(1), default=8, help="threads per HTTP worker (default 8)"
    )
    p.add_argument(
        "--no-embedded-workers",
        action="store_true",
        help="HTTP only; run `clf-analysis worker` elsewhere",
    )
    p.add_argument(
        "--runner",
        default=None,
        help="job runner 'module:function' (default: the pipeline; tests and benchmarks "
        "use their own)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.set_defaults(func=run)


def listen_problem(host: str, port: int, named_by: str | None) -> str | None:
    """Why the HTTP server could not listen on host:port (in use, not allowed, no such
    address), or None. Checked before anything starts: gunicorn would retry for seconds,
    while the job workers already claim jobs, and then stop."""
    import errno
    import socket

    where = f"port {port}" + (f" ({named_by})" if named_by else "")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As gunicorn binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"{where} is in use on {host}: stop what listens there, or choose "
                    "another port with --port N (or PORT)"
                )
            if exc.errno == errno.EACCES:
                return f"{where} on {host} needs privileges this user lacks; use a port >= 1024"
            return f"cannot listen on {host}, {where}: {(exc.strerror or str(exc)).lower()}"
    return None


def run(args: argparse.Namespace) -> int:
    from clf_analysis.config import ConfigError, load_settings

    try:
        overrides = {} if args.port is None else {"port": args.port}
        settings = load_settings(option_names={"port": "--port"}, **overrides)
    except ConfigError as exc:
        print(f"clf-analysis serve: {exc}", file=sys.stderr)
        return 2
    port_named = "--port" if args.port is not None else "PORT" if os.environ.get("PORT") else None
    problem = listen_problem(args.host, settings.port, port_named)
    if problem is not None:
        print(f"clf-analysis serve: {problem}", file=sys.stderr)
        return 2
    from clf_analysis.abp.share_check import check_share, log_share_status

    if not args.no_embedded_workers and settings.worker_concurrency > 0:
        problem = startup_problem(settings, runner_of(args.runner))
        if problem is not None:
            print(f"clf-analysis serve: {problem}", file=sys.stderr)
            return 2

    configure_logging(settings.log_level, settings.log_format)
    log_share_status(check_share(settings.midas_base_path), log)
    return Supervisor(settings, args).run()


class Supervisor:
    """Runs gunicorn in a child and the job Worker here; coordinates shutdown."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.stop = threading.Event()
        self.signals = 0
        self.worker: Any = None  # the embedded job workers, once started

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals += 1
        if self.signals > 1:
            # Second signal: the operator means it. Leases of unfinished jobs will expire
            # and the jobs will be requeued; job children notice our death and exit.
            log.warning("second signal %d: stopping without drain", signum)
            self._kill_http()
            os._exit(1)
        if self.worker is not None:
            self.worker.begin_shutdown()
        self.stop.set()

    def _kill_http(self) -> None:
        proc = getattr(self, "http", None)
        if proc is not None and proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGKILL)

    def run(self) -> int:
        import multiprocessing

        from clf_analysis.cli.job_store import StoreUnavailable, configured_store, open_store
        from clf_analysis.jobs import Worker

        settings, args = self.settings, self.args
        try:
            store = open_store(configured_store(settings))
        except StoreUnavailable as exc:
            print(f"clf-analysis serve: {exc}", file=sys.stderr)
            return 2
        instance_id = uuid.uuid4().hex
        store.record_startup(instance_id, "serve")

        ctx = multiprocessing.get_context("spawn")
        # Shared memory, inherited by gunicorn's forked HTTP workers: /readyz reads it.
        draining = ctx.RawValue("b", 0)
        self.http = ctx.Process(
            target=_run_gunicorn,
            args=(
                settings,
                args.host,
                settings.port,
                args.workers,
                args.threads,
                args.access_log,
                draining,
                os.getpid(),
            ),
            name="clf-http",
        )
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.http.start()

        worker = None
        concurrency = 0 if args.no_embedded_workers else settings.worker_concurrency
        if concurrency > 0:
            runner = runner_of(args.runner)
            log_startup_warnings(runner, log)
            worker = Worker(store, settings, runner=runner, instance_id=instance_id)
            self.worker = worker
            worker.start()
        log.info(
            "serving on %s:%d (http workers %d, job workers %d)",
            args.host,
            settings.port,
            args.workers,
            concurrency,
        )

        exit_code = 0
        while not self.stop.wait(1.0):
            if not self.http.is_alive():
                log.error("the HTTP server exited (code %s); stopping", self.http.exitcode)
                exit_code = 1
                break

        draining.value = 1
        log.info("shutting down: readiness off, draining job workers")
        if worker is not None:
            worker.shutdown(settings.drain_timeout)
        if self.http.is_alive() and self.http.pid is not None:
            os.kill(self.http.pid, signal.SIGTERM)
            self.http.join(HTTP_STOP_GRACE + 5)
            if self.http.is_alive():
                self._kill_http()
                self.http.join(5)
        try:
            store.record_clean_shutdown(instance_id)
        finally:
            store.close()
        log.info("stopped")
        return exit_code


def _run_gunicorn(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int,
    access_log: bool,
    draining: Any,
    supervisor_pid: int,
) -> None:
    """Entry of the spawned HTTP child: gunicorn's master loop until told to stop."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter
    from gunicorn.glogging import Logger

    from clf_analysis.api.gunicorn_worker import ApiThreadWorker

    # A fresh (spawned) interpreter: the app's own loggers (500 incidents, readiness
    # failures) need the same handler and format as the supervisor's.
    configure_logging(settings.log_level, settings.log_format)

    # Own process group: a terminal's Ctrl-C goes to the supervisor only, which drains the
    # job workers first and then stops this server (polls are answered meanwhile).
    os.setpgid(0, 0)

    class SupervisedArbiter(Arbiter):  # type: ignore[misc]
        def manage_workers(self) -> None:
            # Checked once a second by the master loop: an orphaned server (supervisor
            # killed with -9) would otherwise keep the port and accept jobs forever.
            if os.getppid() != supervisor_pid:
                raise StopIteration
            super().manage_workers()

    class JsonLogger(Logger):  # type: ignore[misc]
        """gunicorn's own lines (start, worker boots, access log) as JSON objects too, so
        that a log collector parses every line of the service under LOG_FORMAT=json."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(JsonFormatter())

    class HttpWorker(ApiThreadWorker):
        read_timeout = settings.request_read_timeout
        send_timeout = settings.response_send_timeout

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                # gthread, plus a read deadline per request and problem+json error pages.
                "worker_class": HttpWorker,
                "threads": threads,
                "timeout": 60,
                "graceful_timeout": HTTP_STOP_GRACE,
                "keepalive": 5,
                "errorlog": "-",
                "accesslog": "-" if access_log else None,
                "loglevel": settings.log_level.lower(),
                "proc_name": "clf-analysis-http",
                # One fixed control socket per user would clash between instances on a
                # host; the supervisor is the control interface here.
                "control_socket_disable": True,
            }
            if settings.log_format == "json":
                options["logger_class"] = JsonLogger
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Called in every HTTP worker after the fork: each opens its own store.
            from clf_analysis.api import create_app

            return create_app(settings, is_draining=lambda: bool(draining.value))

        def run(self) -> None:
            SupervisedArbiter(self).run()

    Application().run()
