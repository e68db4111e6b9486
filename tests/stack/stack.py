"""Driving the Compose stack as an operator does: `docker compose -p defect-detector-services`
with an env file made from .env.example, plus reading what the engine says about the
containers it made.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from clf_analysis.synth.build import generate_build

from .engine import CACHE, REPO, Engine, log

PROJECT = "defect-detector-services"
NETWORK = "defectdetect-database_default"
API = "clf-abp-path-analysis"
WORKER = "clf-analysis-worker"
POSTGRES = "clf-postgres"
FRONTEND = "defect-detect-fe"
COMPOSE_FILE = REPO / "docker-compose.yml"
FRONTEND_FILE = Path(__file__).resolve().parent / "frontend" / "compose.yml"
APP_UID = APP_GID = 10001  # the compose file's default APP_UID/APP_GID
# Every env file of a test run lives in a folder whose name starts with this; Compose
# records the env file in a label of each container, which tells a test run's leftovers
# from anybody else's containers of the same project name.
RUN_DIR_PREFIX = "clf-stack-test-"
# Volumes and the network a run created, written before it creates them: a run that
# died leaves this file behind, and the next run removes what it lists.
LEFTOVERS = CACHE / "leftovers.json"
EXAMPLE = REPO / ".env.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example_settings() -> dict[str, str]:
    """.env.example's assignments, in order (an operator's `cp .env.example .env`)."""
    out: dict[str, str] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


@dataclass
class Stack:
    engine: Engine
    images: Any  # standins.Images
    run_dir: Path
    port: int = field(default_factory=free_port)
    facts: dict[str, str] = field(default_factory=dict)
    created_network: bool = False

    # ------------------------------------------------------------------ configuration

    def env_file(self, name: str, **settings: str | None) -> Path:
        """.env.example with the test's images, port and share, plus `settings`
        (None removes a line, as an operator deleting it)."""
        values: dict[str, str | None] = dict(example_settings())
        values.update(
            CLF_IMAGE=self.images.project,
            CLF_POSTGRES_IMAGE=self.images.postgres,
            FRONTEND_IMAGE=self.images.runtime,
            CLF_HOST_PORT=str(self.port),
        )
        values.update(settings)
        path = self.run_dir / f"{name}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None))
        return path

    def share(self, name: str, owner: tuple[int, int] = (APP_UID, APP_GID)) -> Path:
        """An empty build share on the host, owned by `owner`."""
        path = self.run_dir / name
        path.mkdir()
        os.chown(path, *owner)
        return path

    def add_build(self, share: Path, build_id: str, *, big: bool = False) -> None:
        """A synthetic build on the share, owned like the share itself. `big` takes tens of
        seconds to analyse here (long enough to stop or kill a worker in the middle)."""
        if big:
            generate_build(share, build_id=build_id, parts=16, height_mm=60.0, vertices=(400, 1200))
        else:
            generate_build(share, build_id=build_id, parts=2, height_mm=1.0, vertices=(8, 24))
        owner = share.stat()
        for path in [share / build_id, *(share / build_id).rglob("*")]:
            os.chown(path, owner.st_uid, owner.st_gid)

    # ------------------------------------------------------------------------ compose

    def compose(
        self,
        env_file: Path,
        *args: str,
        file: Path = COMPOSE_FILE,
        check: bool = True,
        timeout: float = 600,
    ) -> Any:
        return self.engine.run(
            "compose",
            "-p",
            PROJECT,
            "-f",
            str(file),
            "--env-file",
            str(env_file),
            *args,
            check=check,
            timeout=timeout,
        )

    def up_wait(self, env_file: Path, *services: str, file: Path = COMPOSE_FILE) -> float:
        """`up --detach --wait`; returns how long it took."""
        started = time.monotonic()
        self.compose(env_file, "up", "--detach", "--wait", *services, file=file, timeout=900)
        took = time.monotonic() - started
        self.facts.setdefault("up --wait", "")
        self.facts["up --wait"] += f" {took:.0f}s"
        return took

    # ------------------------------------------------------------------------- engine

    def containers(self, service: str | None = None, *, every: bool = False) -> list[dict]:
        """`docker inspect` of the project's containers (running ones unless `every`)."""
        args = [
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
        ]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if every:
            args.append("--all")
        ids = self.engine.run(*args).stdout.split()
        if not ids:
            return []
        found = json.loads(self.engine.run("inspect", *ids).stdout)
        return sorted(found, key=lambda c: c["Name"])

    def container_named(self, name: str) -> dict:
        return json.loads(self.engine.run("inspect", name).stdout)[0]

    def logs(self, env_file: Path, *services: str) -> str:
        done = self.compose(env_file, "logs", "--no-color", *services, check=False)
        return done.stdout + done.stderr

    # ---------------------------------------------------------------------------- API

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=10, **kw)

    def submit(self, build_id: str, **params: Any) -> str:
        answer = self.post(f"/api/builds/{build_id}/analyze", json=params)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["job_id"])

    def job(self, job_id: str) -> dict:
        answer = self.get(f"/api/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["job"])

    def events(self, job_id: str) -> list[dict]:
        return list(self.get(f"/api/jobs/{job_id}/events").json()["events"])

    def wait_job(self, job_id: str, states: tuple[str, ...], timeout: float = 300) -> dict:
        def seen() -> dict | None:
            job = self.job(job_id)
            return job if job["status"] in states else None

        return wait_for(seen, timeout, f"job {job_id} to reach {states}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# ------------------------------------------------------------------ run set-up, clean-up


def _remember(**made: list[str]) -> None:
    known = json.loads(LEFTOVERS.read_text()) if LEFTOVERS.exists() else {}
    for key, names in made.items():
        known[key] = sorted(set(known.get(key, [])) | set(names))
    LEFTOVERS.parent.mkdir(parents=True, exist_ok=True)
    LEFTOVERS.write_text(json.dumps(known))


def _ours(container: dict) -> bool:
    env_file = container["Config"]["Labels"].get("com.docker.compose.project.environment_file")
    return bool(env_file) and f"/{RUN_DIR_PREFIX}" in env_file


def remove_leftovers(engine: Engine) -> list[str]:
    """Containers, volumes and the network that test runs made and did not remove
    (a run that was killed); returns what was removed."""
    removed = []
    ids = engine.run("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout
    for container in json.loads(engine.run("inspect", *ids.split()).stdout) if ids.split() else []:
        if _ours(container):
            engine.run("rm", "--force", "--volumes", container["Id"])
            removed.append(container["Name"].lstrip("/"))
    if LEFTOVERS.exists():
        known = json.loads(LEFTOVERS.read_text())
        for volume in known.get("volumes", []):
            if engine.run("volume", "rm", volume, check=False).returncode == 0:
                removed.append(volume)
        for network in known.get("networks", []):
            if engine.run("network", "rm", network, check=False).returncode == 0:
                removed.append(network)
        LEFTOVERS.unlink()
    return removed


def foreign_state(engine: Engine) -> list[str]:
    """The project's containers and volumes that are not a test run's: a real stack on
    this engine, which the tests would stop, replace and delete."""
    found = []
    ids = engine.run("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout
    for container in json.loads(engine.run("inspect", *ids.split()).stdout) if ids.split() else []:
        if not _ours(container):
            found.append(container["Name"].lstrip("/"))
    volumes = engine.run(
        "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}"
    )
    found += volumes.stdout.split()
    return found


def project_volumes(engine: Engine) -> list[str]:
    return [f"{PROJECT}_clf-state", f"{PROJECT}_clf-pgdata"]


@contextmanager
def stack_run(engine: Engine, images: Any) -> Iterator[Stack]:
    """A Stack for one test run: refuses to touch a real stack of the same name, creates
    the shared network when missing, and at the end removes every container, volume
    and network the run made."""
    if removed := remove_leftovers(engine):
        log(f"removed leftovers of an earlier run: {', '.join(removed)}")
    foreign = foreign_state(engine)
    assert not foreign, (
        f"this engine already has {PROJECT} containers or volumes that a stack test did not "
        f"make ({', '.join(foreign)}); the test would stop and delete them. Run it on another "
        "engine, or remove them first."
    )
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    run_dir.chmod(0o755)  # the containers' users traverse it to reach the shares
    stack = Stack(engine=engine, images=images, run_dir=run_dir)
    _remember(volumes=project_volumes(engine))
    if engine.run("network", "inspect", NETWORK, check=False).returncode != 0:
        _remember(networks=[NETWORK])
        # As `make network` does: labelled so that the database stack can adopt it.
        engine.run(
            "network",
            "create",
            "--label",
            "com.docker.compose.project=defectdetect-database",
            "--label",
            "com.docker.compose.network=default",
            NETWORK,
        )
        stack.created_network = True
    try:
        yield stack
    finally:
        clean_up(stack)


def clean_up(stack: Stack) -> None:
    engine = stack.engine
    everything = stack.env_file(
        "cleanup", COMPOSE_PROFILES="postgres,tools", MIDAS_HOST_PATH=str(stack.run_dir)
    )
    for file in (FRONTEND_FILE, COMPOSE_FILE):
        stack.compose(everything, "down", "--volumes", "--timeout", "10", file=file, check=False)
    remove_leftovers(engine)
    shutil.rmtree(stack.run_dir, ignore_errors=True)
    left = [c["Name"] for c in stack.containers(every=True)]
    left += [
        v
        for v in project_volumes(engine)
        if engine.run("volume", "inspect", v, check=False).returncode == 0
    ]
    if (
        stack.created_network
        and engine.run("network", "inspect", NETWORK, check=False).returncode == 0
    ):
        left.append(NETWORK)
    assert not left, f"the stack test left behind: {left}"
