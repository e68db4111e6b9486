"""Local stand-ins for the registry images the project's files name, built from Debian's
packages because no container registry is reachable here.

- python:3.12-slim-bookworm (the Dockerfile's runtime stage) ->
  clf-stack-standin/python-runtime: debootstrap bookworm minbase with python3,
  python3-venv, python3-pip, python-is-python3 and ca-certificates, imported.
- python:3.12-bookworm (the builder stage) -> clf-stack-standin/python-builder: the
  runtime stand-in plus gcc, libc6-dev and python3-dev (standins/builder.Dockerfile).
- postgres:17 (the compose file's `postgres` profile) -> clf-stack-standin/postgres: the
  runtime stand-in plus Debian's postgresql and an entrypoint honouring POSTGRES_USER,
  POSTGRES_DB, POSTGRES_PASSWORD and the data directory (standins/postgres.Dockerfile).

They differ from the originals in ways the tests do not depend on: Debian's Python 3.11
instead of 3.12 (the project supports 3.11+), PostgreSQL 15 instead of 17. What the
project's image adds on top is the same. The runtime stand-in also carries this machine's
pip settings and CA bundle, so that `pip wheel` in the builder stage reaches PyPI the
way this machine does; nothing of that enters the project's Dockerfile.

They are tagged with a hash of their recipe and inputs and kept between runs: a second
run on the same machine builds none of them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .engine import HERE, REPO, Engine, log

STANDINS = HERE / "standins"
RUNTIME_REPO = "clf-stack-standin/python-runtime"
BUILDER_REPO = "clf-stack-standin/python-builder"
POSTGRES_REPO = "clf-stack-standin/postgres"
PROJECT_IMAGE = "clf-abp-path-analysis:stack-test"

SUITE = "bookworm"  # the Debian release both stages of the official images are built on
RUNTIME_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
)
# This machine's pip settings and CA bundle (when present), copied into the runtime
# stand-in only.
HOST_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pip.conf",
    "/etc/xdg/pip/pip.conf",
    "/etc/xdg/pip/constraints.txt",
)
RECIPE_VERSION = "1"


@dataclass(frozen=True)
class Images:
    runtime: str
    builder: str
    postgres: str
    project: str


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()[:12]


def _host_file_bytes() -> list[bytes]:
    out = []
    for name in HOST_FILES:
        path = Path(name)
        out.append(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return out


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (debootstrap takes the same one)."""
    if os.environ.get("STACK_DEBIAN_MIRROR"):
        return os.environ["STACK_DEBIAN_MIRROR"]
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                (key.strip(), value.strip())
                for key, sep, value in (line.partition(":") for line in stanza.splitlines())
                if sep and not key.startswith("#")
            )
            if (
                SUITE in fields.get("Suites", "").split()
                and "main" in fields.get("Components", "").split()
            ):
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                words = line.split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    raise AssertionError(
        f"no Debian {SUITE} archive in this machine's apt sources to debootstrap from; "
        "set STACK_DEBIAN_MIRROR"
    )


def _exists(engine: Engine, image: str) -> bool:
    return engine.run("image", "inspect", image, check=False, timeout=60).returncode == 0


def _drop_older(engine: Engine, repository: str, keep: str) -> None:
    """Earlier recipes' stand-ins: removed so the cache never grows past one of each."""
    listed = engine.run("image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}")
    for image in listed.stdout.split():
        if image != keep:
            engine.run("image", "rm", image, check=False)


def _debootstrap_runtime(engine: Engine, tag: str) -> None:
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="clf-standin-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap {SUITE} minbase + {' '.join(RUNTIME_PACKAGES)} (about a minute)")
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(RUNTIME_PACKAGES)}",
                SUITE,
                str(root),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise AssertionError(f"debootstrap failed:\n{done.stdout[-3000:]}{done.stderr}")
        # The official images' Python is not Debian-managed: pip installs into /usr/local.
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for name in HOST_FILES:
            if Path(name).is_file():
                target = root / name.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(name, target)
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftovers).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                engine.client,
                "import",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                "--change",
                "LABEL org.opencontainers.image.description="
                f'"test stand-in for python:3.12-slim-bookworm: Debian {SUITE} minbase + python3"',
                "-",
                tag,
            ],
            stdin=tar.stdout,
            env=engine.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(60)
        if imported.returncode != 0:
            raise AssertionError(f"docker import failed: {imported.stderr}")


def _build_from_runtime(engine: Engine, dockerfile: str, runtime: str, tag: str) -> None:
    # Host network: the engine here has no NAT for its bridge, and apt needs the archive.
    engine.run(
        "build",
        "--network",
        "host",
        "--quiet",
        "--file",
        str(STANDINS / dockerfile),
        "--build-arg",
        f"BASE={runtime}",
        "--tag",
        tag,
        str(STANDINS),
        timeout=1800,
    )


def standin_images(engine: Engine, timings: dict[str, float]) -> tuple[str, str, str]:
    """(runtime, builder, postgres) stand-ins, built only when their recipe changed."""
    recipe = (STANDINS / "builder.Dockerfile").read_bytes()
    runtime_key = _digest(
        RECIPE_VERSION.encode(),
        SUITE.encode(),
        " ".join(RUNTIME_PACKAGES).encode(),
        *_host_file_bytes(),
    )
    runtime = f"{RUNTIME_REPO}:{runtime_key}"
    builder = f"{BUILDER_REPO}:{_digest(runtime_key.encode(), recipe)}"
    postgres = f"{POSTGRES_REPO}:" + _digest(
        runtime_key.encode(),
        (STANDINS / "postgres.Dockerfile").read_bytes(),
        (STANDINS / "postgres-entrypoint.sh").read_bytes(),
    )
    started = time.monotonic()
    if not _exists(engine, runtime):
        _debootstrap_runtime(engine, runtime)
        _drop_older(engine, RUNTIME_REPO, runtime)
    for tag, dockerfile, repository in (
        (builder, "builder.Dockerfile", BUILDER_REPO),
        (postgres, "postgres.Dockerfile", POSTGRES_REPO),
    ):
        if not _exists(engine, tag):
            log(f"building {tag} from {dockerfile}")
            _build_from_runtime(engine, dockerfile, runtime, tag)
            _drop_older(engine, repository, tag)
    timings["stand-in base images"] = time.monotonic() - started
    return runtime, builder, postgres


def build_project_image(
    engine: Engine, runtime: str, builder: str, timings: dict[str, float]
) -> str:
    """The project's image from its own Dockerfile, on the stand-ins."""
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    ).stdout.strip()
    log(f"building {PROJECT_IMAGE} from the project's Dockerfile")
    started = time.monotonic()
    engine.run(
        "build",
        "--network",
        "host",
        "--quiet",
        "--build-arg",
        f"BUILDER_BASE_IMAGE={builder}",
        "--build-arg",
        f"RUNTIME_BASE_IMAGE={runtime}",
        "--build-arg",
        "VERSION=1.0.0",
        "--build-arg",
        f"VCS_REF={revision or 'unknown'}",
        "--build-arg",
        f"BUILD_DATE={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        "--tag",
        PROJECT_IMAGE,
        str(REPO),
        timeout=2400,
    )
    timings["project image build"] = time.monotonic() - started
    return PROJECT_IMAGE
