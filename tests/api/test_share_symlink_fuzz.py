"""Links at every path component of a build, walked through the API, the job store and
the pipeline (issue 16, "done when").

One build ("victim") gets a symbolic link planted at one component at a time — the build
folder, its package, both lock files, `clf_analysis/`, its subfolders and files, the run
log and its lock, and names the stale-folder cleanup and the swap recovery look at — each
pointing once into a sentinel tree outside the share and once into another build. Every
share route is then requested and a job is submitted, claimed from the job store, run
through the real pipeline and read back. Nothing outside the victim's folder may be read
(sentinel atimes stay at 0, no sentinel bytes in any answer), written or deleted (bytes,
mtimes and entries of both trees, the sentinel's SQLite job store included, unchanged).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from clf_analysis.api import create_app
from clf_analysis.config import load_settings
from clf_analysis.jobs.child import error_from_exception
from clf_analysis.jobs.store import JobStore
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.render.plate import Plate
from clf_analysis.synth import generate_build

VICTIM = "victim"
OTHER = "zz-other"
BODY = {"holes_interval": 50, "clean_platform_heights": [1.0]}
OPTIONS = RunOptions(plate=Plate(210, 1))  # small images: this is about where files go
LAYER = "imagePathRawData-/platform_layer_pathdata_1.0mm.json"
IMAGE = "clean_platforms/clean_platform_1.0mm.png"
DEAD_RUN = uuid.uuid4().hex


@dataclass(frozen=True)
class Component:
    """Where a link is planted (relative to the victim folder; "" is the folder itself),
    where it points (relative to the sentinel tree / the other build), and what the run
    must then do: complete, or fail naming the link."""

    name: str
    where: str
    sentinel_target: str
    other_target: str
    refusal: str | None = None  # None: the run completes
    remove_live_output: bool = False


COMPONENTS = [
    Component("build folder", "", "build", "", refusal="victim is a symbolic link"),
    Component(
        "package",
        "preprocess build-victim.abp",
        "build/preprocess build-sentinel.abp",
        f"preprocess build-{OTHER}.abp",
        refusal="package victim/preprocess build-victim.abp is a symbolic link",
    ),
    Component(
        "build lock",
        ".clf_analysis.lock",
        "jobs.db",
        ".clf_analysis.lock",
        refusal="victim/.clf_analysis.lock is a symbolic link",
    ),
    Component(
        "run lock",
        ".clf_analysis.run.lock",
        "created-by-a-run.lock",  # dangling: following it would create a file
        ".clf_analysis.run.lock",
        refusal="victim/.clf_analysis.run.lock is a symbolic link",
    ),
    Component(
        "output folder",
        "clf_analysis",
        "outputs",
        "clf_analysis",
        refusal="victim/clf_analysis is a symbolic link",
    ),
    Component(
        "layer folder",
        "clf_analysis/imagePathRawData-",
        "outputs/imagePathRawData-",
        "clf_analysis/imagePathRawData-",
    ),
    Component(
        "image folder",
        "clf_analysis/clean_platforms",
        "outputs/clean_platforms",
        "clf_analysis/clean_platforms",
    ),
    Component(
        "summary",
        "clf_analysis/platform_info.json",
        "outputs/platform_info.json",
        "clf_analysis/platform_info.json",
    ),
    Component("layer file", f"clf_analysis/{LAYER}", f"outputs/{LAYER}", f"clf_analysis/{LAYER}"),
    Component("image file", f"clf_analysis/{IMAGE}", f"outputs/{IMAGE}", f"clf_analysis/{IMAGE}"),
    Component("run log", "processes_run.json", "secret.txt", "processes_run.json"),
    Component("run log lock", "processes_run.json.lock", "jobs.db", "processes_run.json.lock"),
    Component("dead run's temp folder", f"clf_analysis.tmp-{DEAD_RUN}", "outputs", "clf_analysis"),
    Component(
        "dead swap's old folder",
        f"clf_analysis.old-{DEAD_RUN}",
        "outputs",
        "clf_analysis",
        remove_live_output=True,
    ),
]


@dataclass
class Share:
    """The MIDAS base with the victim and the other build, and the sentinel tree."""

    root: Path
    base: Path
    victim: Path
    other: Path
    sentinel: Path
    parking: Path
    watched: list[Path] = field(default_factory=list)  # atime set to 0 before each case

    def protected(self) -> dict[str, tuple[Any, ...]]:
        """Every entry of the sentinel tree and the other build: kind, bytes, mtime."""
        found: dict[str, tuple[Any, ...]] = {}
        for top in (self.sentinel, self.other):
            for path in [top, *top.rglob("*")]:
                info = path.lstat()
                key = str(path.relative_to(self.root))
                if stat.S_ISLNK(info.st_mode):
                    found[key] = ("link", os.readlink(path))
                elif stat.S_ISDIR(info.st_mode):
                    found[key] = ("dir", info.st_mtime_ns, info.st_mode)
                else:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    found[key] = ("file", info.st_mtime_ns, info.st_size, info.st_mode, digest)
        found["base"] = ("names", *sorted(p.name for p in self.base.iterdir()))
        return found

    def reset_atimes(self) -> None:
        for path in self.watched:
            os.utime(path, ns=(0, path.lstat().st_mtime_ns), follow_symlinks=False)

    def read_since_reset(self) -> list[str]:
        return [str(p.relative_to(self.root)) for p in self.watched if p.lstat().st_atime_ns != 0]


def _atime_shows_reads(folder: Path) -> bool:
    """Whether this file system records reads (relatime does, after atime was set to 0)."""
    probe = folder / "atime-probe"
    probe.write_text("x")
    os.utime(probe, ns=(0, probe.stat().st_mtime_ns))
    probe.read_text()
    recorded = probe.stat().st_atime_ns != 0
    probe.unlink()
    return recorded


def _fake_outputs(folder: Path) -> None:
    """A results tree full of sentinel bytes, shaped like clf_analysis/."""
    for relative in ("platform_info.json", LAYER, IMAGE, "holes_views/x.png"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(b'{"SENTINEL": "' + relative.encode() + b'"}')


def _analyse(base: Path, build_id: str) -> None:
    run(build_id, AnalysisParams(**BODY), midas_base_path=base, options=OPTIONS)


@pytest.fixture
def share(tmp_path: Path) -> Share:
    base = tmp_path / "midas"
    generate_build(base, build_id=VICTIM, parts=1, height_mm=1.0, seed=1)
    generate_build(base, build_id=OTHER, parts=1, height_mm=1.0, seed=2)
    sentinel = tmp_path / "sentinel"
    generate_build(sentinel, build_id="build", parts=1, height_mm=1.0, seed=3)
    os.rename(
        sentinel / "build" / "preprocess build-build.abp",
        sentinel / "build" / "preprocess build-sentinel.abp",
    )
    _fake_outputs(sentinel / "build" / "clf_analysis")
    _fake_outputs(sentinel / "outputs")
    (sentinel / "secret.txt").write_text("SENTINEL secret\n")
    store = JobStore.connect(f"sqlite:///{sentinel / 'jobs.db'}")
    store.submit("SENTINEL", {"holes_interval": 10.0})
    store.close()
    _analyse(base, VICTIM)
    _analyse(base, OTHER)
    parking = tmp_path / "parking"
    parking.mkdir()
    result = Share(tmp_path, base, base / VICTIM, base / OTHER, sentinel, parking)
    if _atime_shows_reads(tmp_path):
        result.watched = [sentinel, *sentinel.rglob("*"), *(base / OTHER).rglob("*")]
    return result


@pytest.fixture
def client(share: Share, store_url: str) -> Iterator[tuple[FlaskClient, JobStore]]:
    store = JobStore.connect(store_url)
    settings = load_settings(
        environ={},
        midas_base_path=share.base,
        state_dir=share.root / "state",
        worker_concurrency=0,
    )
    yield create_app(settings, store=store).test_client(), store
    store.close()


@dataclass
class Plant:
    link: Path
    parked: Path | None


def _plant(share: Share, case: Component, target: Path) -> list[Plant]:
    """Put the link in place, parking what was there (outside the share)."""
    plants = []
    if case.remove_live_output:
        live = share.victim / "clf_analysis"
        parked = share.parking / uuid.uuid4().hex
        os.rename(live, parked)
        plants.append(Plant(live, parked))
    link = share.victim / case.where if case.where else share.victim
    parked = None
    if os.path.lexists(link):
        parked = share.parking / uuid.uuid4().hex
        os.rename(link, parked)
    link.symlink_to(target)
    plants.append(Plant(link, parked))
    return plants


def _unplant(plants: list[Plant]) -> None:
    """Remove links the case left; put back what was parked unless a run replaced it."""
    for plant in reversed(plants):
        if plant.link.is_symlink():
            plant.link.unlink()
        if plant.parked is not None:
            if os.path.lexists(plant.link):
                shutil.rmtree(plant.parked) if plant.parked.is_dir() else plant.parked.unlink()
            else:
                os.rename(plant.parked, plant.link)


def _clean(body: bytes, case: str, *, allow_other: bool = False) -> None:
    lowered = body.lower()
    assert b"sentinel" not in lowered, f"{case}: sentinel bytes served: {body[:300]!r}"
    if not allow_other:
        assert OTHER.encode() not in lowered, f"{case}: the other build served: {body[:300]!r}"


def _real_file(share: Share, relative: str) -> bytes | None:
    """The bytes of clf_analysis/<relative> when every component is real, else None."""
    path = share.victim
    for name in ("clf_analysis", *relative.split("/")):
        path = path / name
        if not os.path.lexists(path) or path.is_symlink():
            return None
    return path.read_bytes() if path.is_file() else None


def _walk_routes(client: FlaskClient, share: Share, case: Component, label: str) -> None:
    builds = client.get("/api/builds")
    assert builds.status_code == 200
    _clean(builds.get_data(), label, allow_other=True)
    listed = {b["build_id"]: b for b in builds.get_json()["builds"]}
    assert (VICTIM in listed) == (case.name not in ("build folder", "package")), label
    if VICTIM in listed:
        assert listed[VICTIM]["archive"] == "preprocess build-victim.abp", label

    results = client.get(f"/api/builds/{VICTIM}/results")
    _clean(results.get_data(), label)
    urls = [f"/api/builds/{VICTIM}/artifacts/{p}" for p in ("platform_info.json", LAYER, IMAGE)]
    if results.status_code == 200:
        artifacts = results.get_json()["artifacts"]
        for artifact in artifacts:
            assert _real_file(share, artifact["path"]) is not None, (label, artifact)
        urls += [a["url"] for a in artifacts]
    else:
        assert results.status_code == 404, label

    layers = client.get(f"/api/builds/{VICTIM}/layers")
    _clean(layers.get_data(), label)
    if layers.status_code == 200:
        for height in layers.get_json()["heights"]:
            name = f"imagePathRawData-/platform_layer_pathdata_{height}mm.json"
            assert _real_file(share, name) is not None, (label, height)
    urls.append(f"/api/builds/{VICTIM}/layers/1.0")
    if case.where.startswith("clf_analysis/"):
        urls.append(f"/api/builds/{VICTIM}/artifacts/{case.where.removeprefix('clf_analysis/')}")

    for url in urls:
        response = client.get(url)
        _clean(response.get_data(), label)
        if response.status_code == 200:
            relative = url.split("/artifacts/", 1)[-1] if "/artifacts/" in url else LAYER
            assert response.get_data() == _real_file(share, relative), (label, url)
        else:
            assert response.status_code == 404, (label, url, response.status_code)
            assert str(share.root) not in response.get_data(as_text=True), (label, url)


def _submit_and_run(
    client: FlaskClient, store: JobStore, share: Share, case: Component, label: str
) -> dict[str, Any]:
    """Submit through the API (or, when the API refuses, straight into the store, as a job
    queued before the link appeared), run it through the pipeline, read it back."""
    accepted = client.post(f"/api/builds/{VICTIM}/analyze", json=BODY)
    _clean(accepted.get_data(), label)
    if accepted.status_code == 202:
        job_id = accepted.get_json()["job_id"]
    else:
        assert accepted.status_code == 404, label
        detail = accepted.get_json()["detail"]
        assert case.refusal is not None and case.refusal in detail, (label, detail)
        assert str(share.root) not in detail, (label, detail)
        job_id = store.submit(VICTIM, AnalysisParams(**BODY).canonical()).job.id
    job = store.claim("fuzz-worker", 60)
    assert job is not None and job.id == job_id, label
    try:
        result = run(
            job.build_id,
            AnalysisParams.model_validate(dict(job.params)),
            midas_base_path=share.base,
            options=RunOptions(plate=OPTIONS.plate, job_id=job.id),
        )
    except AnalysisError as exc:
        assert store.fail(job.id, "fuzz-worker", error_from_exception(exc)), label
    else:
        assert store.complete(job.id, "fuzz-worker", result.to_legacy()), label
    answer = client.get(f"/api/jobs/{job_id}")
    _clean(answer.get_data(), label)
    return dict(answer.get_json()["job"])


def _check_outcome(share: Share, case: Component, job: dict[str, Any], label: str) -> None:
    if case.refusal is not None:
        assert job["status"] == "failed", (label, job)
        message = job["error"]["message"]
        assert case.refusal in message, (label, message)
        assert str(share.root) not in message and "/proc/" not in message, (label, message)
        return
    assert job["status"] == "completed", (label, job.get("error"))
    assert job["result"]["summary_relpath"] == f"{VICTIM}/clf_analysis/platform_info.json"
    live = share.victim / "clf_analysis"
    assert not live.is_symlink() and live.is_dir(), label
    links = [p for p in live.rglob("*") if p.is_symlink()]
    assert links == [], (label, links)
    assert b'"id": "victim"' in (live / "platform_info.json").read_bytes(), label


@pytest.mark.parametrize("target_tree", ["sentinel", "other build"])
def test_links_anywhere_in_a_build_never_reach_outside_it(
    share: Share, client: tuple[FlaskClient, JobStore], target_tree: str
) -> None:
    api, store = client
    before = share.protected()
    for case in COMPONENTS:
        label = f"{case.name} -> {target_tree}"
        relative = case.sentinel_target if target_tree == "sentinel" else case.other_target
        target = (share.sentinel if target_tree == "sentinel" else share.other) / relative
        share.reset_atimes()
        plants = _plant(share, case, target)
        try:
            _walk_routes(api, share, case, label)
            job = _submit_and_run(api, store, share, case, label)
            assert share.read_since_reset() == [], f"{label}: read outside the build"
            assert share.protected() == before, f"{label}: changed outside the build"
            _check_outcome(share, case, job, label)
        finally:
            _unplant(plants)
    # The sentinel job store is still a working job store.
    sentinel_store = JobStore.connect(f"sqlite:///{share.sentinel / 'jobs.db'}")
    try:
        jobs, total = sentinel_store.list_jobs()
        assert (total, jobs[0].build_id) == (1, "SENTINEL")
    finally:
        sentinel_store.close()
