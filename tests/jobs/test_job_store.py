"""The job store on SQLite and PostgreSQL: transitions, guards, races, retention."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from clf_analysis.jobs.schema import jobs, utcnow
from clf_analysis.jobs.store import JobStore

PARAMS = {"holes_interval": 10.0, "create_composite_views": False}


def test_submit_creates_a_queued_job_with_an_event(store: JobStore) -> None:
    outcome = store.submit("271360", PARAMS)
    assert outcome.created and outcome.conflict is None
    job = store.get(outcome.job.id)
    assert job is not None
    assert (job.state, job.attempts, job.params) == ("queued", 0, PARAMS)
    assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
    assert [e.kind for e in store.events(job.id)] == ["submitted"]


def test_same_request_while_active_returns_the_existing_job(store: JobStore) -> None:
    first = store.submit("b1", {"a": 1, "b": 2})
    again = store.submit("b1", {"b": 2, "a": 1})  # key order must not matter
    assert not again.created and again.conflict is None
    assert again.job.id == first.job.id


def test_different_request_while_active_is_a_conflict(store: JobStore) -> None:
    first = store.submit("b1", {"a": 1})
    other = store.submit("b1", {"a": 2})
    assert not other.created
    assert other.conflict is not None and other.conflict.id == first.job.id


def test_finished_build_accepts_a_new_job(store: JobStore) -> None:
    first = store.submit("b1", PARAMS).job
    job = store.claim("w", 30)
    assert job is not None and store.complete(job.id, "w", {"ok": True})
    second = store.submit("b1", PARAMS)
    assert second.created and second.job.id != first.id


def test_idempotency_key_returns_the_same_job_even_after_it_finished(store: JobStore) -> None:
    first = store.submit("b1", PARAMS, idempotency_key="k-1")
    job = store.claim("w", 30)
    assert job is not None and store.complete(job.id, "w", {})
    again = store.submit("b1", PARAMS, idempotency_key="k-1")
    assert not again.created and again.job.id == first.job.id
    assert again.job.state == "completed"


def test_concurrent_submits_create_one_job_per_build(store: JobStore, store_url: str) -> None:
    # Separate JobStore objects: separate connection pools, as separate API processes.
    stores = [JobStore.connect(store_url) for _ in range(4)]
    outcomes: list = []
    barrier = threading.Barrier(12)

    def submit(i: int) -> None:
        s = stores[i % len(stores)]
        barrier.wait()
        params = PARAMS if i % 3 else {"holes_interval": 5.0}
        key = "same-key" if i % 4 == 0 else None
        outcomes.append(s.submit("b-race", params, idempotency_key=key))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()

    created = [o for o in outcomes if o.created]
    assert len(outcomes) == 12 and len(created) == 1
    winner = created[0].job
    assert {o.job.id for o in outcomes} == {winner.id}
    same = [o for o in outcomes if not o.created and o.conflict is None]
    conflicts = [o for o in outcomes if o.conflict is not None]
    assert len(same) + len(conflicts) == 11
    assert store.list_jobs(build_id="b-race")[1] == 1


def test_claim_takes_the_oldest_and_never_twice(store: JobStore) -> None:
    a = store.submit("b1", PARAMS).job
    b = store.submit("b2", PARAMS).job
    first = store.claim("w1", 30)
    second = store.claim("w2", 30)
    assert first is not None and second is not None
    assert (first.id, second.id) == (a.id, b.id)
    assert first.state == "running" and first.lease_owner == "w1" and first.attempts == 1
    assert store.claim("w3", 30) is None


def test_claim_skips_excluded_builds(store: JobStore) -> None:
    store.submit("b1", PARAMS)
    b2 = store.submit("b2", PARAMS).job
    job = store.claim("w", 30, exclude_builds=["b1"])
    assert job is not None and job.id == b2.id


def test_transitions_are_guarded_by_state_and_owner(store: JobStore) -> None:
    store.submit("b1", PARAMS)
    job = store.claim("w1", 30)
    assert job is not None
    assert not store.complete(job.id, "intruder", {})
    assert store.request_cancel(job.id).cancel_requested  # type: ignore[union-attr]
    assert store.mark_cancelled(job.id, "w1")
    # Once cancelled, nothing else may finish it.
    assert not store.complete(job.id, "w1", {"late": True})
    assert not store.fail(job.id, "w1", {"message": "late"})
    assert not store.release(job.id, "w1", "late")
    assert not store.heartbeat(job.id, "w1", 30).ok
    final = store.get(job.id)
    assert final is not None and final.state == "cancelled" and final.result is None
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds == ["submitted", "claimed", "cancel_requested", "cancelled"]


def test_cancel_queued_is_immediate_and_finished_is_unchanged(store: JobStore) -> None:
    job = store.submit("b1", PARAMS).job
    cancelled = store.request_cancel(job.id)
    assert cancelled is not None and cancelled.state == "cancelled"
    assert cancelled.finished_at is not None
    assert store.claim("w", 30) is None
    assert store.request_cancel(job.id) == store.get(job.id)
    assert store.request_cancel("no-such-job") is None


def test_heartbeat_stores_progress_and_reports_cancel(store: JobStore) -> None:
    store.submit("b1", PARAMS)
    job = store.claim("w", 5)
    assert job is not None
    answer = store.heartbeat(job.id, "w", 60, progress=42.5, stage="parse", message="layer 3")
    assert answer.ok and not answer.cancel_requested
    seen = store.get(job.id)
    assert seen is not None
    assert (seen.progress, seen.stage, seen.message) == (42.5, "parse", "layer 3")
    assert seen.lease_expires_at is not None and seen.lease_expires_at > job.lease_expires_at  # type: ignore[operator]
    store.request_cancel(job.id)
    assert store.heartbeat(job.id, "w", 60).cancel_requested


def test_release_requeues_without_counting_the_attempt(store: JobStore) -> None:
    store.submit("b1", PARAMS)
    job = store.claim("w", 30)
    assert job is not None and store.release(job.id, "w", "shutdown")
    back = store.get(job.id)
    assert back is not None
    assert (back.state, back.attempts, back.lease_owner) == ("queued", 0, None)
    again = store.claim("w2", 30)
    assert again is not None and again.id == job.id and again.attempts == 1


def _expire(store: JobStore, job_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_expired_lease_requeues_until_attempts_run_out(store: JobStore) -> None:
    job = store.submit("b1", PARAMS, max_attempts=2).job
    for attempt in (1, 2):
        claimed = store.claim(f"w{attempt}", 30)
        assert claimed is not None and claimed.attempts == attempt
        assert store.requeue_expired() == []  # lease still valid
        _expire(store, job.id)
        assert store.requeue_expired() == [job.id]
    final = store.get(job.id)
    assert final is not None and final.state == "failed"
    assert final.error is not None and final.error["type"] == "worker_lost"
    # The lost worker coming back cannot overwrite the verdict.
    assert not store.complete(job.id, "w2", {})
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds == ["submitted", "claimed", "requeued", "claimed", "failed"]


def test_expired_lease_of_a_cancel_requested_job_cancels_it(store: JobStore) -> None:
    job = store.submit("b1", PARAMS).job
    store.claim("w", 30)
    store.request_cancel(job.id)
    _expire(store, job.id)
    store.requeue_expired()
    final = store.get(job.id)
    assert final is not None and final.state == "cancelled"


def test_list_is_newest_first_with_total_and_filters(store: JobStore) -> None:
    ids = [store.submit(f"b{i}", PARAMS).job.id for i in range(5)]
    page, total = store.list_jobs(limit=2, offset=1)
    assert total == 5 and [j.id for j in page] == [ids[3], ids[2]]
    store.request_cancel(ids[0])
    cancelled, n = store.list_jobs(state="cancelled")
    assert n == 1 and cancelled[0].id == ids[0]
    assert store.latest_for_build("b4").id == ids[4]  # type: ignore[union-attr]
    assert store.latest_for_build("nope") is None
    counts = store.counts_by_state()
    assert counts == {"queued": 4, "running": 0, "completed": 0, "failed": 0, "cancelled": 1}
    age = store.oldest_queued_age_seconds()
    assert age is not None and age >= 0


def test_durations_come_from_completed_jobs(store: JobStore) -> None:
    assert store.recent_durations() == [] and store.oldest_queued_age_seconds() is None
    store.submit("b1", PARAMS)
    job = store.claim("w", 30)
    assert job is not None
    time.sleep(0.05)
    store.complete(job.id, "w", {})
    (duration,) = store.recent_durations()
    assert duration >= 0.05


def test_prune_removes_only_old_finished_jobs(store: JobStore) -> None:
    old = store.submit("b1", PARAMS).job
    store.request_cancel(old.id)
    fresh = store.submit("b2", PARAMS).job
    store.request_cancel(fresh.id)
    waiting = store.submit("b3", PARAMS).job
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_([old.id, waiting.id]))
            .values(finished_at=utcnow() - timedelta(days=40))
        )
    assert store.prune(30) == 1
    assert store.get(old.id) is None and store.events(old.id) == []
    assert store.get(fresh.id) is not None and store.get(waiting.id) is not None


def test_restart_keeps_every_job(store_url: str) -> None:
    first = JobStore.connect(store_url)
    ids = {first.submit(f"b{i}", PARAMS).job.id for i in range(3)}
    running = first.claim("w", 30)
    first.close()
    second = JobStore.connect(store_url)  # schema creation must be a no-op now
    page, total = second.list_jobs()
    assert total == 3 and {j.id for j in page} == ids
    assert running is not None and second.get(running.id).state == "running"  # type: ignore[union-attr]
    second.close()


def test_service_state_counts_starts_and_shutdowns(store: JobStore) -> None:
    state = store.record_startup("api-1", "api")
    assert state.startup_count == 1 and state.running_instance_ids == ("api-1",)
    store.record_clean_shutdown("api-1")
    # An instance of this very process still marked running was not shut down cleanly:
    # that is what a restarted container (same host, pid 1) looks like.
    store.record_startup("worker-1", "worker")
    state = store.record_startup("worker-2", "worker")
    assert state.startup_count == 3
    assert state.clean_shutdown_count == 1 and state.unclean_shutdown_count == 1
    assert state.running_instance_ids == ("worker-2",)
    assert state.instances[0].instance_id == "worker-2"


def test_ping_raises_when_the_store_is_unreachable(store: JobStore) -> None:
    store.ping()
    broken = JobStore(
        __import__("sqlalchemy").create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"
        )
    )
    with pytest.raises(Exception):  # noqa: B017 - any driver error means "not ready"
        broken.ping()


def _claim_all(url: str, worker: str, out: multiprocessing.Queue) -> None:
    s = JobStore.connect(url)
    got = []
    while (job := s.claim(worker, 30)) is not None:
        got.append((job.id, job.build_id))
        s.complete(job.id, worker, {"by": worker})
    s.close()
    out.put(got)


def test_concurrent_claims_from_processes_never_share_a_job(
    store: JobStore, store_url: str
) -> None:
    submitted = {store.submit(f"b{i}", PARAMS).job.id for i in range(24)}
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(store_url, f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    claimed = [job_id for got in results for job_id, _ in got]
    assert sorted(claimed) == sorted(submitted)  # each exactly once
    assert store.counts_by_state()["completed"] == 24


def test_concurrent_claims_from_threads_never_run_two_jobs_of_one_build(
    store: JobStore, store_url: str
) -> None:
    builds = [f"b{i}" for i in range(4)]
    for b in builds:
        store.submit(b, PARAMS)
    running: dict[str, str] = {}
    violations: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    total = [0]

    def work(name: str) -> None:
        s = JobStore.connect(store_url)
        while not done.is_set():
            job = s.claim(name, 30)
            if job is None:
                time.sleep(0.01)
                continue
            with lock:
                if job.build_id in running:
                    violations.append(job.build_id)
                running[job.build_id] = job.id
            time.sleep(0.01)
            with lock:
                del running[job.build_id]
            s.complete(job.id, name, {})
            with lock:
                total[0] += 1
                if total[0] >= 12:
                    done.set()
            # Resubmit so that the build keeps having work while others claim.
            s.submit(job.build_id, {"round": total[0]})
        s.close()

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert total[0] >= 12 and violations == []


def test_database_itself_refuses_a_second_active_job_for_a_build(store: JobStore) -> None:
    # The guarantee must hold even for a writer that bypasses submit().
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    first = store.submit("b1", PARAMS).job
    now = utcnow()
    row = dict(
        build_id="b1",
        params={},
        params_key="{}",
        state="queued",
        attempts=0,
        max_attempts=3,
        created_at=now,
        updated_at=now,
        progress=0.0,
        cancel_requested=False,
    )
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(jobs).values(id="second", **row))
    store.request_cancel(first.id)
    with store.engine.begin() as conn:  # once the first is finished, a new one is fine
        conn.execute(insert(jobs).values(id="third", **row))


def test_latest_for_builds_answers_many_builds_in_a_few_queries(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clf_analysis.jobs.store as store_module

    monkeypatch.setattr(store_module, "LATEST_CHUNK", 2)  # several chunks for 5 builds
    expected = {}
    for i in range(5):
        for _ in range(i % 3 + 1):  # 1-3 jobs per build, each finished before the next
            job = store.submit(f"b{i}", PARAMS).job
            store.request_cancel(job.id)
        expected[f"b{i}"] = job.id
    # Two jobs created at the same instant: the tie goes to the greater id, as in list_jobs.
    with store.engine.begin() as conn:
        same = conn.execute(update(jobs).where(jobs.c.build_id == "b1").values(created_at=utcnow()))
        assert same.rowcount == 2
    tied = [j.id for j in store.list_jobs(build_id="b1")[0]]
    expected["b1"] = max(tied)

    found = store.latest_for_builds(["b0", "b1", "b2", "b3", "b4", "b1", "absent"])
    assert {b: j.id for b, j in found.items()} == expected
    for build_id, job_id in expected.items():
        latest = store.latest_for_build(build_id)
        assert latest is not None and latest.id == job_id and latest.build_id == build_id
    assert store.latest_for_builds([]) == {}
