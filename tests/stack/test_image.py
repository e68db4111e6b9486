"""The image the project's Dockerfile builds, as the engine sees it."""

from __future__ import annotations

import json

from .conftest import FACTS
from .engine import Engine
from .standins import Images


def _inspect(engine: Engine, image: str) -> dict:
    return dict(json.loads(engine.run("image", "inspect", image).stdout)[0])


def test_labels_user_healthcheck_and_stop_signal(engine: Engine, images: Images) -> None:
    found = _inspect(engine, images.project)
    config = found["Config"]
    labels = config["Labels"]
    for key in ("title", "description", "version", "revision", "created", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    assert len(labels["org.opencontainers.image.revision"]) == 40  # the commit built
    # The label names the base really used (here the stand-in), not a hard-coded one.
    assert labels["org.opencontainers.image.base.name"] == images.runtime
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    check = config["Healthcheck"]
    assert check["Test"][0] == "CMD" and "/livez" in check["Test"][-1]
    assert check["Interval"] > 0 and check["Retries"] == 3
    assert config["Cmd"] == ["clf-analysis", "serve"]
    assert "6300/tcp" in config["ExposedPorts"]
    FACTS["image size"] = f"{found['Size'] / 1e6:.0f} MB ({images.project})"


def test_runs_as_numeric_non_root_user_with_the_compiled_walker(
    engine: Engine, images: Images
) -> None:
    probe = (
        "import os, clf_analysis.clf as clf, clf_analysis.clf._layerwalk as walker; "
        "print(os.getuid(), os.getgid(), clf.COMPILED_WALKER, walker.__file__)"
    )
    done = engine.run("run", "--rm", images.project, "python", "-c", probe)
    uid, gid, in_use, module = done.stdout.split()
    assert (uid, gid, in_use) == ("10001", "10001", "True"), done.stdout + done.stderr
    assert module.endswith(".so"), module  # the C extension, not a Python fallback


def test_version_command_answers(engine: Engine, images: Images) -> None:
    done = engine.run("run", "--rm", images.project, "clf-analysis", "--version")
    assert done.stdout.strip() == "clf-analysis 1.0.0", done.stdout + done.stderr
