"""Schemathesis against a real `clf-analysis serve` on a synthetic share: zero failures.

Every check and every phase (examples, coverage, fuzzing, stateful) runs, with the
description's links driving the stateful walk submit -> poll -> results -> artifacts.
What is set apart, and why (see also schemathesis_hooks.py):

- `use_after_free` is off: DELETE /api/jobs/{id} cancels a job, it does not remove it.
  The job stays readable (state `cancelled`); legacy clients poll it to see that.
- Link inference is off: the legacy GET / lists URL templates such as
  "/api/builds/<build_id>/layers", which inference takes for URLs to call; the stateful
  phase follows the description's own links instead.
- 414 counts as refusing invalid data: a parameter far over its length bound makes a
  request line the HTTP server refuses before the app sees it (documented per operation).
- The hook drops the one failure the check cannot judge: a reused Idempotency-Key
  answered 422 (see schemathesis_hooks.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import run
from clf_analysis.synth import generate_build

from .conftest import REPO_ROOT, ServeProcess

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
TOKEN = "contract-test-token"
# The build id of the description's examples, so the examples phase meets a real build.
BUILD_ID = "271360"
# Fixed, so a failure replays; CLF_FUZZ_SEED explores others.
SEED = os.environ.get("CLF_FUZZ_SEED", "1")
MAX_EXAMPLES = "25"

CONFIG = """\
[generation]
# Nothing is written outside the run's folder.
database = "none"

[cache]
enabled = false

[checks.use_after_free]
enabled = false

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422",
                     "428", "429", "5xx"]

[phases.stateful.inference]
algorithms = []
"""


def _analysed_share(root: Path) -> Path:
    """A MIDAS folder with one small synthetic build, analysed once (results to read)."""
    midas = root / "midas"
    generate_build(midas, build_id=BUILD_ID, parts=1, height_mm=1.0, seed=1)
    run(BUILD_ID, AnalysisParams(), midas_base_path=midas)
    return midas


def _schemathesis(
    served: ServeProcess, workdir: Path
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    (workdir / "schemathesis.toml").write_text(CONFIG)
    junit, har = workdir / "junit.xml", workdir / "requests.har"
    env = dict(os.environ)
    env.update(
        SCHEMATHESIS_HOOKS="tests.api.schemathesis_hooks",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
        NO_COLOR="1",
    )
    proc = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(workdir / "schemathesis.toml"),
            "run",
            served.url + "/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "use_after_free",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--report",
            "junit,har",
            "--report-junit-path",
            str(junit),
            "--report-har-path",
            str(har),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return proc, junit, har


def _entries(har: Path) -> list[tuple[str, str, int, Any]]:
    """(method, path, status, JSON body or None) of every request made."""
    out = []
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        path = "/" + request["url"].split("/", 3)[3].split("?", 1)[0]
        text = response.get("content", {}).get("text") or ""
        try:
            body = json.loads(text) if "json" in response["content"].get("mimeType", "") else None
        except ValueError:
            body = None
        out.append((request["method"], path, response["status"], body))
    return out


def test_schemathesis_finds_no_failure_and_walks_submit_poll_results_artifacts(
    tmp_path: Path, serve_factory: Callable[..., ServeProcess]
) -> None:
    midas = _analysed_share(tmp_path)
    served = serve_factory(midas, runner="pipeline", API_TOKEN=TOKEN, WORKER_CONCURRENCY="1")
    workdir = tmp_path / "schemathesis"
    workdir.mkdir()

    proc, junit, har = _schemathesis(served, workdir)

    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, report
    suites = ET.parse(junit).getroot()
    assert int(suites.get("failures", "1")) == 0 and int(suites.get("errors", "1")) == 0, report
    assert int(suites.get("tests", "0")) >= 20, report
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}\b", proc.stdout), (phase, report)
    covered = re.search(r"API Links:\s+(\d+) covered", proc.stdout)
    assert covered and int(covered.group(1)) >= 5, report

    # The stateful phase followed the links: a job id a submission answered was polled,
    # and results, an artifact and a layer of the analysed build were read.
    requests_made = _entries(har)
    submitted = {
        body["job_id"]
        for method, path, status, body in requests_made
        if method == "POST" and status == 202 and isinstance(body, dict)
    }
    polled = {
        path.rsplit("/", 1)[1]
        for method, path, status, _ in requests_made
        if method == "GET" and status == 200 and re.fullmatch(r"/api/jobs/[0-9a-f-]{36}", path)
    }
    assert submitted & polled, "no submitted job was polled"
    read = {
        re.sub(r"/(artifacts|layers)/.+", r"/\1/*", path)
        for method, path, status, _ in requests_made
        if method == "GET" and status == 200
    }
    for path in ("results", "artifacts/*", "layers", "layers/*"):
        assert f"/api/builds/{BUILD_ID}/{path}" in read, path
