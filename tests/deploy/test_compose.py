"""Static checks of docker-compose.yml: the Compose specification schema, then the
stack's own rules (issue 5). No Docker engine is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clf_analysis.config import Settings

from .deploylib import (
    COMPOSE_FILE,
    ROOT,
    duration_seconds,
    interpolate,
    load_compose_raw,
    parse_env_file,
    resolve,
    service_environment,
    variables_in,
    walk_strings,
)

PROJECT = "defect-detector-services"
NETWORK = "defectdetect-database_default"
API = "clf-abp-path-analysis"
WORKER = "clf-analysis-worker"
TOOLS = {"clf-submit": "submit", "clf-query": "query", "clf-report": "report"}
SETTING_VARS = {name.upper() for name in Settings.model_fields}

RAW = load_compose_raw()
# Two ways an operator runs the file: with nothing set but the one required variable,
# and with .env copied from .env.example.
ENVIRONMENTS = {
    "defaults": {"MIDAS_HOST_PATH": "/srv/midas"},
    "env-example": parse_env_file(),
}


@pytest.fixture(params=sorted(ENVIRONMENTS))
def compose(request) -> dict:
    return resolve(RAW, ENVIRONMENTS[request.param])


def _services(data: dict) -> dict:
    return data["services"]


def _uses_our_image(service: dict) -> bool:
    return "build" in service and service.get("build", {}).get("context") == "."


def _long_running(service: dict) -> bool:
    return "tools" not in (service.get("profiles") or [])


# ---------------------------------------------------------------- Compose specification


def test_validates_against_the_compose_spec_schema():
    exe = Path(sys.executable).with_name("check-jsonschema")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "check_jsonschema"]
    proc = subprocess.run(
        [*cmd, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_an_invalid_file(tmp_path):
    """Control: the schema run above really checks (an unknown service key fails)."""
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  x:\n    image: a\n    not_a_compose_key: 1\n")
    exe = Path(sys.executable).with_name("check-jsonschema")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "check_jsonschema"]
    proc = subprocess.run(
        [*cmd, "--builtin-schema", "vendor.compose-spec", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0


# ------------------------------------------------------------------------ project level


def test_project_name_and_no_version_key():
    assert RAW["name"] == PROJECT
    assert "version" not in RAW


def test_external_network_is_only_referenced():
    networks = RAW["networks"]
    externals = {k: v for k, v in networks.items() if (v or {}).get("external")}
    assert len(externals) == 1
    ((key, spec),) = externals.items()
    assert spec["external"] is True
    assert set(spec) <= {"external", "name"}, f"extra keys on external network: {spec}"
    assert spec.get("name", key) == NETWORK


def test_every_service_joins_only_the_stack_network():
    """No service falls back to the project's `default` network, which `down` in one
    repository would try to remove under the others' containers."""
    (net_key,) = [k for k, v in RAW["networks"].items() if (v or {}).get("external")]
    for name, service in _services(RAW).items():
        assert "network_mode" not in service, name
        networks = service.get("networks")
        assert networks, f"{name} has no networks: it would join the project default network"
        assert list(networks) == [net_key], f"{name}: {networks}"


def test_no_container_names():
    """Fixed names block `--scale` and collide across repositories sharing the project."""
    for name, service in _services(RAW).items():
        assert "container_name" not in service, name


def test_service_names_are_unique_to_this_repository():
    """The project name is shared: every name here is prefixed so it cannot clash with
    another repository's services or volumes."""
    for name in _services(RAW):
        assert name.startswith("clf-"), name
    for name in RAW.get("volumes", {}):
        assert name.startswith("clf-"), name


# ------------------------------------------------------------------- long-running roles


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in _services(compose).items():
        if not _long_running(service):
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), name
        test = check["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test}"
        assert service.get("restart") == "unless-stopped", name


def test_our_healthchecks_use_python_not_curl(compose):
    for name, service in _services(compose).items():
        if _uses_our_image(service) and _long_running(service):
            test = service["healthcheck"]["test"]
            assert test[:2] == ["CMD", "python"], f"{name}: {test}"
            assert "curl" not in " ".join(test) and "wget" not in " ".join(test)


def test_api_service(compose):
    api = _services(compose)[API]
    assert api["command"] == ["clf-analysis", "serve"]
    assert any(str(p).endswith(":6300") for p in api["ports"])
    probe = " ".join(api["healthcheck"]["test"])
    assert "127.0.0.1:6300/readyz" in probe


def test_worker_service(compose):
    worker = _services(compose)[WORKER]
    assert worker["command"] == ["clf-analysis", "worker"]
    assert "ports" not in worker
    replicas = worker["deploy"]["replicas"]
    assert int(replicas) >= 1
    assert variables_in(RAW["services"][WORKER]["deploy"]["replicas"]) == {"WORKER_REPLICAS"}


@pytest.mark.parametrize("name", [API, WORKER])
def test_stop_grace_period_covers_the_drain(compose, name):
    service = _services(compose)[name]
    grace = duration_seconds(service["stop_grace_period"])
    drain = service_environment(service).get("DRAIN_TIMEOUT") or Settings().drain_timeout
    assert grace >= float(drain) + 5, f"{name}: grace {grace}s vs drain {drain}s"


def test_depends_on_waits_for_health(compose):
    services = _services(compose)
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long form of depends_on"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert spec["condition"] == "service_healthy", f"{name} -> {target}"
            assert services[target].get("healthcheck"), target
    assert API in services[WORKER]["depends_on"]


# ------------------------------------------------------------------------------- tools


def test_tools_are_one_off_commands_under_the_tools_profile(compose):
    services = _services(compose)
    for name, role in TOOLS.items():
        tool = services[name]
        assert tool["profiles"] == ["tools"], name
        assert "restart" not in tool and "ports" not in tool, name
        assert tool["entrypoint"][:2] == ["clf-analysis", role], name
        if role in {"submit", "query"}:
            i = tool["entrypoint"].index("--url")
            assert tool["entrypoint"][i + 1] == f"http://{API}:6300"
            assert services[name]["depends_on"][API]["condition"] == "service_healthy"


def test_report_tool_sees_the_same_job_store(compose):
    services = _services(compose)
    report, api = services["clf-report"], services[API]
    assert report["volumes"] == api["volumes"]
    for key in ("STATE_DIR", "DATABASE_URL"):
        assert service_environment(report)[key] == service_environment(api)[key]


def test_compose_roles_exist_in_the_cli():
    """The commands the compose file runs parse with the real CLI."""
    from clf_analysis.cli import build_parser

    parser = build_parser()
    roles = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    wanted = {"serve", "worker", *TOOLS.values()}
    missing = wanted - set(roles)
    if missing:
        pytest.skip(f"CLI roles not implemented yet: {sorted(missing)}")
    compose = resolve(RAW, ENVIRONMENTS["defaults"])
    services = _services(compose)
    for name in (API, WORKER):
        parser.parse_args(services[name]["command"][1:])
    parser.parse_args([*services["clf-submit"]["entrypoint"][1:], "271360", "--wait"])
    parser.parse_args(services["clf-query"]["entrypoint"][1:])
    parser.parse_args([*services["clf-query"]["entrypoint"][1:], "some-job-id"])
    parser.parse_args(services["clf-report"]["entrypoint"][1:])


# --------------------------------------------------------------------- volumes and env


def test_state_is_a_named_volume_outside_the_share(compose):
    top_volumes = compose.get("volumes") or {}
    for name, service in _services(compose).items():
        if not _uses_our_image(service) or "volumes" not in service:
            continue
        env = service_environment(service)
        state, midas = env["STATE_DIR"], env["MIDAS_BASE_PATH"]
        mounts = {m["target"]: m for m in service["volumes"]}
        state_mount = mounts[state]
        assert state_mount["type"] == "volume", name
        assert state_mount["source"] in top_volumes, name
        spec = top_volumes[state_mount["source"]] or {}
        assert not spec.get("driver_opts"), "state volume must be a plain local volume"
        assert not spec.get("external"), "state volume is this repository's own"
        assert not Path(state).is_relative_to(midas), f"{name}: STATE_DIR under the share"
        share = mounts[midas]
        assert share["type"] == "bind" and not share.get("read_only"), name
        # A missing share is an error, never an empty folder made on the spot.
        assert share["bind"]["create_host_path"] is False, name
        assert (
            share["source"] == ENVIRONMENTS["defaults"]["MIDAS_HOST_PATH"]
            or share["source"] == ENVIRONMENTS["env-example"]["MIDAS_HOST_PATH"]
        )


def test_share_path_is_required_from_env():
    with pytest.raises(ValueError, match="MIDAS_HOST_PATH"):
        resolve(RAW, {})


def test_only_real_settings_are_passed_to_our_containers():
    for name, service in _services(RAW).items():
        if not _uses_our_image(service):
            continue
        unknown = set(service_environment(service)) - SETTING_VARS
        assert not unknown, f"{name} passes variables the service does not read: {unknown}"


def test_every_setting_reaches_the_long_running_roles():
    for name in (API, WORKER):
        env = service_environment(RAW["services"][name])
        missing = SETTING_VARS - set(env) - {"PORT"}
        assert not missing, f"{name} does not pass {sorted(missing)}"


def test_settings_from_env_example_are_valid(compose):
    from clf_analysis.config import load_settings

    for name in (API, WORKER):
        settings = load_settings(service_environment(_services(compose)[name]))
        assert settings.state_dir == Path("/var/lib/clf-analysis")
        assert settings.midas_base_path == Path("/midas")


def test_api_runs_no_jobs_itself_by_default(compose):
    from clf_analysis.config import load_settings

    api_env = service_environment(_services(compose)[API])
    assert load_settings(api_env).worker_concurrency == 0
    worker_env = service_environment(_services(compose)[WORKER])
    assert load_settings(worker_env).worker_concurrency >= 1


def test_every_interpolated_variable_is_documented_in_env_example():
    documented = set(parse_env_file())
    used = set().union(*(variables_in(s) for s in walk_strings(RAW)))
    assert used, "no interpolation found: the parser is broken"
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"


# ----------------------------------------------------------------------------- postgres


def test_postgres_profile_wiring():
    services = RAW["services"]
    pg = [n for n, s in services.items() if "postgres" in (s.get("profiles") or [])]
    assert pg == ["clf-postgres"]
    server = services["clf-postgres"]
    # The official image unless the operator names another one.
    assert interpolate(str(server["image"]), {}) == "postgres:17"
    assert interpolate(str(server["image"]), {"CLF_POSTGRES_IMAGE": "pg:x"}) == "pg:x"
    assert "ports" not in server, "the job store is not published on the host"
    assert server["volumes"][0]["type"] == "volume"
    dep = services[API]["depends_on"]["clf-postgres"]
    assert dep == {"condition": "service_healthy", "required": False}

    # The example DATABASE_URL in .env.example points at that server with its credentials.
    text = (ROOT / ".env.example").read_text()
    example = next(
        line.split("DATABASE_URL=", 1)[1].strip()
        for line in text.splitlines()
        if "DATABASE_URL=postgresql" in line
    )
    env = parse_env_file()
    url = interpolate(example, env)
    pg_env = resolve(server["environment"], env)
    assert url == (
        f"postgresql+psycopg://{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}"
        f"@clf-postgres:5432/{pg_env['POSTGRES_DB']}"
    )


# ------------------------------------------------------------------ interpolation tests


def test_interpolation_helper():
    env = {"A": "1", "E": ""}
    assert interpolate("${A}-${B:-x}-${E:-y}-${E-z}-$A-$$A", env) == "1-x-y--1-$A"
    assert interpolate("${A:+on}${B:+on}", env) == "on"
    with pytest.raises(ValueError):
        interpolate("${B:?need B}", env)
    assert variables_in("${A:-1} $B $$C") == {"A", "B"}
    assert duration_seconds("1m30s") == 90 and duration_seconds("45s") == 45
    with pytest.raises(ValueError):
        duration_seconds("45 seconds")


# ------------------------------------------------------------- healthchecks, executed


def _run_check(argv: list[str], env: dict[str, str]) -> int:
    assert argv[0] == "CMD" and argv[1] == "python"
    proc = subprocess.run(
        [sys.executable, *argv[2:]], env=env, capture_output=True, text=True, timeout=30
    )
    return proc.returncode


def test_worker_healthcheck_passes_with_a_reachable_store_and_fails_without(tmp_path):
    import os

    argv = resolve(RAW, ENVIRONMENTS["defaults"])["services"][WORKER]["healthcheck"]["test"]
    env = {"PATH": os.environ.get("PATH", ""), "STATE_DIR": str(tmp_path)}
    assert _run_check(argv, env) == 0
    env["STATE_DIR"] = str(tmp_path / "missing" / "dir")
    assert _run_check(argv, env) != 0
