"""Build routes: the builds found under MIDAS_BASE_PATH and the results of one build."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from flask import Blueprint, Response, jsonify

from clf_analysis.api.artifacts import (
    artifact_url,
    no_results,
    outputs_root,
    results_changing,
)
from clf_analysis.api.errors import ApiError
from clf_analysis.api.layers import LAYER_DIR_NAME, layer_files
from clf_analysis.api.models import (
    ArtifactLink,
    BuildListResponse,
    BuildSummary,
    JobView,
    ResultsResponse,
)
from clf_analysis.api.parsing import build_id_arg, int_query
from clf_analysis.api.service import service
from clf_analysis.build.discovery import (
    BuildNotFound,
    InvalidBuildId,
    find_build_package,
    validate_build_id,
)
from clf_analysis.jobs.models import Job

log = logging.getLogger(__name__)
bp = Blueprint("builds", __name__)

PLATFORM_INFO = "platform_info.json"
LISTED_SUFFIXES = (".png", ".json", ".csv", ".txt")


def _job_view(job: Job | None) -> JobView | None:
    return JobView.of(job) if job is not None else None


def _package(base: Path, build_id: str) -> Path | None:
    try:
        return find_build_package(base, build_id)
    except BuildNotFound:
        return None


def _build_summary(
    base: Path, build_id: str, package: Path, latest_job: Job | None
) -> BuildSummary:
    results = (base / build_id / "clf_analysis" / PLATFORM_INFO).is_file()
    return BuildSummary(
        build_id=build_id,
        archive=package.name,
        size_bytes=package.stat().st_size,
        results_available=results,
        latest_job=_job_view(latest_job),
        links={
            "analyze": f"/api/builds/{build_id}/analyze",
            "results": f"/api/builds/{build_id}/results",
            "layers": f"/api/builds/{build_id}/layers",
        },
    )


@bp.get("/api/builds")
def list_builds() -> Response:
    base = service().settings.midas_base_path
    limit = int_query("limit", 200, minimum=1, maximum=5000)
    offset = int_query("offset", 0, minimum=0, maximum=10**9)
    try:
        names = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
    except OSError as exc:
        log.error("cannot list MIDAS_BASE_PATH %s: %s", base, exc)
        raise ApiError(
            503,
            "Service Unavailable",
            "the builds folder cannot be read",
            kind="builds-unreadable",
        ) from None
    valid = []
    for name in names:
        try:
            valid.append(validate_build_id(name))
        except InvalidBuildId:
            continue  # hidden folders, lost+found-like names: not builds
    packages: dict[str, Path] = {}
    # Folders without a package are skipped, so the page is filled past `limit` folders.
    for name in valid[offset:]:
        package = _package(base, name)
        if package is not None:
            packages[name] = package
            if len(packages) >= limit:
                break
    latest = service().store.latest_for_builds(packages)
    builds = [
        _build_summary(base, name, package, latest.get(name)) for name, package in packages.items()
    ]
    return jsonify(BuildListResponse(builds=builds, count=len(builds)).dump())


@bp.get("/api/builds/<path:build_id>/results")
def build_results(build_id: str) -> Response:
    build_id = build_id_arg(build_id)
    root = outputs_root(build_id)
    info_path = root / PLATFORM_INFO
    if not info_path.is_file():
        raise no_results(build_id)
    try:
        platform_info = json.loads(info_path.read_bytes())
    except (OSError, ValueError) as exc:
        log.error("unreadable %s: %s", info_path, exc)
        raise ApiError(
            500,
            "Internal Server Error",
            f"the results of build {build_id} cannot be read",
            kind="results-unreadable",
        ) from None
    try:
        artifacts = []
        for dirpath, dirnames, filenames in os.walk(root):
            # Layer files are thousands per build; they have their own route.
            dirnames[:] = sorted(
                d for d in dirnames if d != LAYER_DIR_NAME and not d.startswith(".")
            )
            for filename in sorted(filenames):
                if filename.startswith(".") or not filename.endswith(LISTED_SUFFIXES):
                    continue
                path = Path(dirpath) / filename
                relative = path.relative_to(root).as_posix()
                artifacts.append(
                    ArtifactLink(
                        path=relative,
                        url=artifact_url(build_id, relative),
                        size_bytes=path.stat().st_size,
                    )
                )
        layer_count = len(layer_files(root))
    except FileNotFoundError:  # files swapped out by a publish while being listed
        raise results_changing(build_id) from None
    return jsonify(
        ResultsResponse(
            build_id=build_id,
            platform_info=platform_info,
            artifacts=artifacts,
            layers_url=f"/api/builds/{build_id}/layers",
            layer_count=layer_count,
            latest_job=_job_view(service().store.latest_for_build(build_id)),
        ).dump()
    )
