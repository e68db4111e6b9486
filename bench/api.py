"""Benchmark of the HTTP service: job polling latency under load, and submit throughput.

Starts the real service (`clf-analysis serve`: gunicorn + embedded workers) on loopback,
with a temporary MIDAS folder and SQLite job store, and one analysis running: by default
a real analysis of a generated build of realistic size (46 part files x 3,500 layers,
about a minute on 2 cores, so it competes with the server for the CPU for the whole
measurement), or with --stand-in a runner that only waits --job-seconds. Then:

1. --clients (default 50) threads, each with its own requests.Session (keep-alive),
   poll GET /api/jobs/<id> for --duration seconds (default 30), pausing --interval
   seconds (default 0.25, with random phase and +-20 % jitter) between polls: 50 clients
   polling 4 times a second, 8 times faster than the Retry-After of 2 s asks for.
   --interval 0 makes every client poll back to back: a capacity test, in which the
   load generator itself takes about half of a 2-core machine.
2. Submit throughput: --submits new-job submissions (distinct builds) and as many
   deduplicated ones (same build, same params) from 8 threads.

Prints latency percentiles, requests/s and error counts; stops the server itself.
Goal (issue 4): p99 < 50 ms and zero errors with >= 50 pollers.

    .venv/bin/python bench/api.py [--duration 30] [--clients 50] [--interval 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "clf-analysis"


def bench_runner(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Callable[[str, float, str], None],
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Stand-in analysis: BENCH_JOB_SECONDS of waiting with progress (runs in a job child)."""
    seconds = float(os.environ.get("BENCH_JOB_SECONDS", "40"))
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if is_cancelled():
            raise RuntimeError("cancelled")
        # Progress keeps changing, so pollers see fresh bodies (no 304 shortcut).
        progress("layers", elapsed / seconds, f"{elapsed:.1f} s")
        time.sleep(0.1)
    return {"success": True, "build_id": build_id, "duration_seconds": seconds}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def poll_load(
    url: str, clients: int, duration: float, interval: float
) -> tuple[list[float], int, float]:
    """Latencies (s) of every successful poll, the error count, and the wall time."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    deadline_holder: list[float] = []

    def client(i: int) -> None:
        session = requests.Session()
        rng = random.Random(i)
        start_gate.wait()
        deadline = deadline_holder[0]
        mine = latencies[i]
        # Independent pollers are not in step: a random phase and +-20 % jitter. Without
        # them all clients fire in the same millisecond and the bench measures a burst.
        if interval:
            time.sleep(rng.uniform(0, interval))
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                response = session.get(url, timeout=10)
                ok = response.status_code == 200 and response.json()["status"] == "success"
            except (requests.RequestException, ValueError):
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                errors[i] += 1
            if interval:
                time.sleep(interval * rng.uniform(0.8, 1.2))
        session.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline_holder.append(time.monotonic() + duration)
    t_start = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join(duration + 30)
    wall = time.monotonic() - t_start
    return sorted(x for per in latencies for x in per), sum(errors), wall


def submit_load(base: str, build_ids: list[str], threads: int = 8) -> tuple[float, int, int]:
    """Submissions per second, number answered 202, number of other answers."""
    local = threading.local()

    def submit(build_id: str) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        try:
            response = local.session.post(
                f"{base}/api/builds/{build_id}/analyze", json={"holes_interval": 10}, timeout=10
            )
            return response.status_code
        except requests.RequestException:
            return -1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        codes = list(pool.map(submit, build_ids))
    elapsed = time.perf_counter() - t0
    accepted = sum(1 for c in codes if c == 202)
    return len(build_ids) / elapsed, accepted, len(codes) - accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=30.0, help="polling seconds (30)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent pollers (50)")
    parser.add_argument(
        "--interval", type=float, default=0.25, help="pause between one client's polls (0.25)"
    )
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="a waiting stand-in job instead of a real analysis (no CPU competition)",
    )
    parser.add_argument("--job-seconds", type=float, default=40.0, help="stand-in job length")
    parser.add_argument("--submits", type=int, default=200, help="submissions per phase")
    parser.add_argument("--http-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000 or not 0 < args.duration <= 3600:
        parser.error("--clients must be 1..1000 and --duration 0..3600")

    with tempfile.TemporaryDirectory(prefix="clf-bench-api-") as tmp:
        root = Path(tmp)
        midas = root / "midas"
        build_ids = ["bench-running"] + [f"bench-{i:04d}" for i in range(args.submits)]
        for build_id in build_ids[1:]:
            (midas / build_id).mkdir(parents=True)
            (midas / build_id / f"{build_id}.abp").write_bytes(b"")
        if args.stand_in:
            (midas / build_ids[0]).mkdir(parents=True)
            (midas / build_ids[0] / f"{build_ids[0]}.abp").write_bytes(b"")
        else:
            from clf_analysis.synth import generate_build

            print("generating the build analysed during the measurement ...", flush=True)
            generate_build(midas, build_id=build_ids[0], parts=40, height_mm=175.0)
        port = _free_port()
        env = dict(os.environ)
        env.update(
            MIDAS_BASE_PATH=str(midas),
            STATE_DIR=str(root / "state"),
            WORKER_CONCURRENCY="1",
            DRAIN_TIMEOUT="1",
            LOG_LEVEL="WARNING",
            BENCH_JOB_SECONDS=str(args.job_seconds),
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
        )
        env.pop("DATABASE_URL", None)
        env.pop("API_TOKEN", None)
        log = (root / "serve.log").open("wb")
        server = subprocess.Popen(
            [
                str(CLI),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.http_workers),
                "--threads",
                str(args.threads),
                *(["--runner", "bench.api:bench_runner"] if args.stand_in else []),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            return _run(args, base, server, build_ids)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
            log.close()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {what} did not happen within {timeout:.0f} s")


def _run(
    args: argparse.Namespace, base: str, server: subprocess.Popen[bytes], build_ids: list[str]
) -> int:
    _wait(lambda: requests.get(base + "/readyz", timeout=1).status_code == 200, 30, "ready")
    job_id = requests.post(f"{base}/api/builds/{build_ids[0]}/analyze", timeout=5).json()["job_id"]
    job_url = f"{base}/api/jobs/{job_id}"
    _wait(
        lambda: requests.get(job_url, timeout=2).json()["job"]["status"] == "running",
        30,
        "job start",
    )

    latencies, errors, wall = poll_load(job_url, args.clients, args.duration, args.interval)
    state = requests.get(job_url, timeout=5).json()["job"]
    new_rate, new_ok, new_bad = submit_load(base, build_ids[1:])
    dup_rate, dup_ok, dup_bad = submit_load(base, build_ids[1:])

    ms = [x * 1000 for x in latencies]
    rows = [
        (
            "pollers",
            f"{args.clients} threads (requests.Session), {args.duration:.0f} s, "
            f"interval {args.interval} s",
        ),
        (
            "job while polling",
            f"{'stand-in' if args.stand_in else 'real analysis'}, "
            f"{state['status']} at {state['progress']['percent']:.0f} % when polling ended",
        ),
        ("GET /api/jobs/<id> requests", f"{len(ms)}"),
        ("  requests/s", f"{len(ms) / wall:.0f}"),
        ("  latency p50", f"{_percentile(ms, 0.50):.1f} ms"),
        ("  latency p90", f"{_percentile(ms, 0.90):.1f} ms"),
        ("  latency p99", f"{_percentile(ms, 0.99):.1f} ms  (goal < 50 ms)"),
        ("  latency max", f"{max(ms) if ms else float('nan'):.1f} ms"),
        ("  latency mean", f"{statistics.fmean(ms) if ms else float('nan'):.1f} ms"),
        ("  errors", f"{errors}  (goal 0)"),
        ("submit, new jobs", f"{new_rate:.0f} /s  ({new_ok} x 202, {new_bad} other)"),
        ("submit, deduplicated", f"{dup_rate:.0f} /s  ({dup_ok} x 202, {dup_bad} other)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"bench/api.py — real service on loopback ({os.cpu_count()} cores, SQLite store)")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    p99 = _percentile(ms, 0.99)
    return 0 if errors == 0 and new_bad == 0 and dup_bad == 0 and p99 < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
