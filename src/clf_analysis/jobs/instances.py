"""The service-instance registry: every start of an API or worker process, whether it
stopped cleanly, and which instances still run (the stateful-service pattern)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from clf_analysis.jobs.models import ServiceInstance, ServiceState
from clf_analysis.jobs.schema import Database, instances, utcnow

log = logging.getLogger(__name__)

# An instance that promised heartbeats (touch_instance) and stayed silent this long is dead.
INSTANCE_STALE_SECONDS = 600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child not yet reaped by its parent still answers signal 0.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _looks_dead(m: Any, now: datetime, host: str, *, starting: bool) -> bool:
    """Whether an instance marked running is evidently gone.

    While starting, an earlier instance with our own pid on our host is dead (pid 1
    in a restarted container); afterwards that instance may be ourselves.
    """
    if m["status"] != "running":
        return False
    if m["host"] == host:
        if m["pid"] == os.getpid():
            return starting
        if not _pid_alive(m["pid"]):
            return True
    # Only instances that promised heartbeats (touched at least once) are judged by
    # silence; an API process that never touches would otherwise be declared dead.
    promised = m["last_seen_at"] > m["started_at"]
    silent = (now - m["last_seen_at"]).total_seconds() > INSTANCE_STALE_SECONDS
    return bool(promised and silent)


class InstanceRegistry:
    """Starts, liveness and shutdowns of the service's processes, in the store's database."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def record_startup(self, instance_id: str, role: str) -> ServiceState:
        """Record that a process started; earlier instances found dead count as unclean."""
        now = utcnow()
        host = socket.gethostname()
        with self.db.write() as conn:
            running = conn.execute(select(instances).where(instances.c.status == "running")).all()
            dead = [
                r.instance_id for r in running if _looks_dead(r._mapping, now, host, starting=True)
            ]
            if dead:
                conn.execute(
                    update(instances)
                    .where(instances.c.instance_id.in_(dead), instances.c.status == "running")
                    .values(status="unclean")
                )
                log.warning("unclean shutdown of earlier instances: %s", ", ".join(dead))
            conn.execute(
                insert(instances).values(
                    instance_id=instance_id,
                    role=role,
                    host=host,
                    pid=os.getpid(),
                    started_at=now,
                    last_seen_at=now,
                    status="running",
                )
            )
        return self.service_state()

    def touch(self, instance_id: str) -> None:
        """Mark a running instance as alive (instances silent for long count as unclean)."""
        with self.db.write() as conn:
            conn.execute(
                update(instances)
                .where(instances.c.instance_id == instance_id, instances.c.status == "running")
                .values(last_seen_at=utcnow())
            )

    def record_clean_shutdown(self, instance_id: str) -> None:
        """Record that this instance stopped in an orderly way."""
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(
                update(instances)
                .where(instances.c.instance_id == instance_id)
                .values(status="clean", stopped_at=now, last_seen_at=now)
            )

    def service_state(self, *, recent: int = 20) -> ServiceState:
        """Startup and shutdown counts and the recent instances.

        Instances still marked running that are evidently dead (same host, process gone)
        are counted as unclean already, so the report is right while the service is down.
        """
        now = utcnow()
        host = socket.gethostname()
        with self.db.read() as conn:
            counts: dict[str, int] = {
                status: int(n)
                for status, n in conn.execute(
                    select(instances.c.status, func.count()).group_by(instances.c.status)
                )
            }
            running = conn.execute(select(instances).where(instances.c.status == "running")).all()
            last = conn.scalar(select(func.max(instances.c.started_at)))
            rows = conn.execute(
                select(instances).order_by(instances.c.started_at.desc()).limit(recent)
            ).all()
        dead = {
            r.instance_id for r in running if _looks_dead(r._mapping, now, host, starting=False)
        }
        recent_instances = tuple(
            ServiceInstance(
                instance_id=r.instance_id,
                role=r.role,
                host=r.host,
                pid=int(r.pid),
                started_at=r.started_at,
                last_seen_at=r.last_seen_at,
                stopped_at=r.stopped_at,
                status="unclean" if r.instance_id in dead else r.status,
            )
            for r in rows
        )
        return ServiceState(
            startup_count=int(sum(counts.values())),
            clean_shutdown_count=int(counts.get("clean", 0)),
            unclean_shutdown_count=int(counts.get("unclean", 0)) + len(dead),
            running_instance_ids=tuple(r.instance_id for r in running if r.instance_id not in dead),
            last_started_at=last,
            instances=recent_instances,
        )
