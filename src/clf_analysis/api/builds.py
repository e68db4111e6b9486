"""Build routes: the builds found under MIDAS_BASE_PATH, the results of one build and its
PDF report."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from typing import Any

from flask import Blueprint, Response, jsonify, request

from clf_analysis.abp.discovery import (
    BuildPackage,
    open_build_folder,
    package_in,
    validate_build_id,
)
from clf_analysis.abp.errors import (
    BuildNotFound,
    InvalidBuildId,
    ShareAccessDenied,
    ShareFileTooLarge,
    UnsafeSharePath,
)
from clf_analysis.abp.share import BuildFolder, ShareDir, nests_deeper_than
from clf_analysis.api.artifacts import (
    ARTIFACT_PATH_PATTERN,
    CHANGING,
    FILE_HEADERS,
    IF_NONE_MATCH,
    MAX_ARTIFACT_PATH,
    NO_RESULTS,
    SHARE_DENIED,
    artifact_url,
    no_results,
    read_outputs,
    refused,
)
from clf_analysis.api.contract import Header, Link, Operation, Reply, declare, problem
from clf_analysis.api.errors import ApiError
from clf_analysis.api.layers import layer_files
from clf_analysis.api.models import (
    ArtifactLink,
    BuildListResponse,
    BuildSummary,
    JobView,
    ResultsResponse,
)
from clf_analysis.api.parsing import BUILD_ID, IntegerQuery, build_id_arg
from clf_analysis.api.service import service
from clf_analysis.jobs.models import Job
from clf_analysis.layout import OUTPUT_DIR, PATHDATA_DIR, PLATFORM_INFO
from clf_analysis.render.plate import Plate
from clf_analysis.render.report import ReportError, build_report

log = logging.getLogger(__name__)
bp = Blueprint("builds", __name__)

LISTED_SUFFIXES = (".png", ".json", ".csv", ".txt")
# Deeper folders are not listed: the service writes two levels, and a planted tree of
# thousands of nested folders must not cost a request more than this.
MAX_LISTED_DEPTH = 8
# A run writes a few hundred files at most; a folder someone filled with more costs a
# request no more than this (the answer says when the list was cut).
MAX_LISTED_ARTIFACTS = 5_000
MAX_EXAMINED_ENTRIES = 50_000
# A realistic platform_info.json is a few MB (1.6 MB for a tall build of many parts) and
# a handful of levels deep; a sparse file can claim any size, and nesting thousands of
# levels deep fails the JSON parser and serializer.
PLATFORM_INFO_MAX_BYTES = 64 * 1024 * 1024
PLATFORM_INFO_MAX_DEPTH = 64
# What the artifact route takes (so a listed file can be fetched), minus control
# characters: a name holding a newline or an escape is not listed.
_LISTABLE = re.compile(ARTIFACT_PATH_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

BUILDS_LIMIT = IntegerQuery("limit", 200, 1, 5000, "Builds per page.")
BUILDS_OFFSET = IntegerQuery("offset", 0, 0, 10**9, "Build folders to skip, sorted by name.")
_FIRST_BUILD = "$response.body#/builds/0/build_id"


def _job_view(job: Job | None) -> JobView | None:
    return JobView.of(job) if job is not None else None


def _package(build: ShareDir, folder: BuildFolder) -> tuple[BuildPackage, bool] | None:
    """The build's package and whether results are published; None when it is no build."""
    try:
        package = package_in(build, folder)
    except BuildNotFound:  # no package, or a package link the service refuses
        return None
    try:
        info = build.lstat(f"{OUTPUT_DIR}/{PLATFORM_INFO}")
    except (UnsafeSharePath, ShareAccessDenied):  # no results the service will serve
        info = None
    return package, info is not None and stat.S_ISREG(info.st_mode)


def _build_summary(
    build_id: str, package: BuildPackage, results: bool, latest_job: Job | None
) -> BuildSummary:
    return BuildSummary(
        build_id=build_id,
        archive=package.name,
        size_bytes=package.size_bytes,
        results_available=results,
        latest_job=_job_view(latest_job),
        links={
            "analyze": f"/api/builds/{build_id}/analyze",
            "results": f"/api/builds/{build_id}/results",
            "layers": f"/api/builds/{build_id}/layers",
            "report": f"/api/builds/{build_id}/report.pdf",
        },
    )


@bp.get("/api/builds")
@declare(
    Operation(
        "Builds under MIDAS_BASE_PATH, with their latest job",
        description="Folders holding an .abp package, sorted by name; links are not followed.",
        parameters=(BUILDS_LIMIT.parameter, BUILDS_OFFSET.parameter),
        replies={
            200: Reply(
                "A page of builds.",
                BuildListResponse,
                links={
                    "BuildResults": Link(
                        "builds.build_results",
                        "The first build's results.",
                        {"build_id": _FIRST_BUILD},
                    ),
                    "BuildLayers": Link(
                        "layers.list_layers",
                        "The first build's layers.",
                        {"build_id": _FIRST_BUILD},
                    ),
                    "AnalyzeBuild": Link(
                        "jobs.analyze_build",
                        "Analyse the first build.",
                        {"build_id": _FIRST_BUILD},
                    ),
                    "Analyze": Link(
                        "jobs.analyze",
                        "Analyse the first build (legacy route).",
                        request_body={"build_id": _FIRST_BUILD},
                    ),
                },
            )
        },
        refusals=(
            problem(503, "builds-unreadable", description="MIDAS_BASE_PATH cannot be read."),
        ),
    )
)
def list_builds() -> Response:
    base = service().settings.midas_base_path
    limit = BUILDS_LIMIT.read()
    offset = BUILDS_OFFSET.read()
    try:
        # A link in the base is not a build folder: the service never follows one.
        names = sorted(
            entry.name for entry in os.scandir(base) if entry.is_dir(follow_symlinks=False)
        )
    except OSError as exc:
        log.error("cannot list MIDAS_BASE_PATH %s: %s", base, exc)
        # The base path is the operator's setting, not something of the share: naming it
        # (and why it failed) is what makes a wrong or missing mount obvious.
        raise ApiError(
            503,
            "Service Unavailable",
            f"the builds folder {base} (MIDAS_BASE_PATH) cannot be read: "
            f"{(exc.strerror or type(exc).__name__).lower()}",
            kind="builds-unreadable",
            midas_base_path=str(base),
        ) from None
    valid = []
    for name in names:
        try:
            valid.append(validate_build_id(name))
        except InvalidBuildId:
            continue  # hidden folders, lost+found-like names: not builds
    found: dict[str, tuple[BuildPackage, bool]] = {}
    # Folders without a package are skipped, so the page is filled past `limit` folders.
    root = base.resolve()
    for name in valid[offset:]:
        folder = BuildFolder(root, name)
        try:
            with open_build_folder(folder) as build:
                entry = _package(build, folder)
        except (BuildNotFound, OSError):  # gone or replaced since the listing
            continue
        if entry is not None:
            found[name] = entry
            if len(found) >= limit:
                break
    latest = service().store.latest_for_builds(found)
    builds = [
        _build_summary(name, package, results, latest.get(name))
        for name, (package, results) in found.items()
    ]
    return jsonify(BuildListResponse(builds=builds, count=len(builds)).dump())


def _listable(relative: str) -> bool:
    """A path the artifact route serves and a JSON client reads: valid UTF-8 (names that
    are not were decoded with lone surrogates, which strict JSON parsers refuse), no
    control characters, within the route's pattern and length."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (
        len(relative) <= MAX_ARTIFACT_PATH
        and _CONTROL.search(relative) is None
        and _LISTABLE.fullmatch(relative) is not None
    )


class _Listing:
    """Every listed file of an output folder, walked breadth-first up to the caps."""

    def __init__(self, outputs: ShareDir) -> None:
        self.files: list[tuple[str, int]] = []
        self.truncated = False
        examined = 0
        pending = [""]
        while pending and not self.truncated:
            prefix = pending.pop(0)
            try:
                folder = outputs.subdir(prefix.rstrip("/")) if prefix else None
            except UnsafeSharePath:  # became a link since it was listed: not ours to enter
                continue
            current = folder or outputs
            try:
                entries = []
                for entry in current.entries():
                    examined += 1
                    if examined > MAX_EXAMINED_ENTRIES:
                        self.truncated = True
                        break
                    entries.append(entry)
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.name.startswith("."):
                        continue
                    relative = prefix + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        # Layer files are thousands per build; they have their own route.
                        if entry.name != PATHDATA_DIR and relative.count("/") < MAX_LISTED_DEPTH:
                            pending.append(relative + "/")
                    elif (
                        entry.is_file(follow_symlinks=False)
                        and entry.name.endswith(LISTED_SUFFIXES)
                        and _listable(relative)
                    ):
                        if len(self.files) == MAX_LISTED_ARTIFACTS:
                            self.truncated = True
                            break
                        self.files.append((relative, entry.stat(follow_symlinks=False).st_size))
            finally:
                if folder is not None:
                    folder.close()


def _platform_info(outputs: ShareDir, build_id: str) -> dict[str, Any]:
    """platform_info.json of the outputs, or the answer that says why it cannot be sent."""
    try:
        raw = outputs.read_bytes(PLATFORM_INFO, max_bytes=PLATFORM_INFO_MAX_BYTES)
    except FileNotFoundError:
        raise no_results(build_id) from None
    except UnsafeSharePath as exc:
        raise refused(build_id, exc) from None
    except ShareFileTooLarge as exc:
        raise _unreadable(build_id, str(exc)) from None
    name = outputs.rel(PLATFORM_INFO)
    too_deep = f"{name} nests more than {PLATFORM_INFO_MAX_DEPTH} levels deep"
    try:
        platform_info = json.loads(raw)
    except RecursionError:  # thousands of "[": deeper than the parser goes
        raise _unreadable(build_id, too_deep) from None
    except ValueError as exc:
        raise _unreadable(build_id, f"{name} is not JSON: {exc}") from None
    if not isinstance(platform_info, dict):
        raise _unreadable(
            build_id, f"{name} is a JSON {type(platform_info).__name__}, not an object"
        )
    if nests_deeper_than(platform_info, PLATFORM_INFO_MAX_DEPTH):
        raise _unreadable(build_id, too_deep)
    return platform_info


def _unreadable(build_id: str, reason: str) -> ApiError:
    log.error("results of build %s unreadable: %s", build_id, reason)
    return ApiError(
        500,
        "Internal Server Error",
        f"the results of build {build_id} cannot be read: {reason[:300]}",
        kind="results-unreadable",
        build_id=build_id,
    )


@bp.get("/api/builds/<path:build_id>/results")
@declare(
    Operation(
        "The build's published results: platform_info.json and links to every artifact",
        parameters=(BUILD_ID,),
        replies={
            200: Reply(
                "The results.",
                ResultsResponse,
                links={
                    "GetArtifact": Link(
                        "artifacts.get_artifact",
                        "The first artifact.",
                        {
                            "build_id": "$response.body#/build_id",
                            "path": "$response.body#/artifacts/0/path",
                        },
                    ),
                    "BuildLayers": Link(
                        "layers.list_layers",
                        "The layers.",
                        {"build_id": "$response.body#/build_id"},
                    ),
                },
            )
        },
        refusals=(
            NO_RESULTS,
            SHARE_DENIED,
            CHANGING,
            problem(
                500,
                "results-unreadable",
                description="platform_info.json is not a JSON object, is larger than 64 MiB or "
                "nests more than 64 levels deep; `detail` says which.",
            ),
        ),
    )
)
def build_results(build_id: str) -> Response:
    build_id = build_id_arg(build_id)

    def read(outputs: ShareDir) -> tuple[dict[str, Any], _Listing, int]:
        return _platform_info(outputs, build_id), _Listing(outputs), len(layer_files(outputs))

    platform_info, listing, layer_count = read_outputs(build_id, read)
    artifacts = [
        ArtifactLink(path=relative, url=artifact_url(build_id, relative), size_bytes=size)
        for relative, size in listing.files
    ]
    return jsonify(
        ResultsResponse(
            build_id=build_id,
            platform_info=platform_info,
            artifacts=artifacts,
            artifacts_truncated=listing.truncated,
            layers_url=f"/api/builds/{build_id}/layers",
            layer_count=layer_count,
            latest_job=_job_view(service().store.latest_for_build(build_id)),
        ).dump()
    )


@bp.get("/api/builds/<path:build_id>/report.pdf")
@declare(
    Operation(
        "The build report: one PDF drawn from the published results",
        description="Summary (build, package checksum, parameters, parts table), warnings "
        "and invalid loops, the plate at each holes-view height and a page per part; the "
        "same as `clf-analysis build-report`. Drawn on request (seconds for a large build); "
        "the ETag follows the results, so If-None-Match saves the drawing.",
        parameters=(BUILD_ID, IF_NONE_MATCH),
        replies={
            200: Reply(
                "The PDF.",
                media=("application/pdf",),
                headers={
                    "ETag": FILE_HEADERS["ETag"],
                    "Content-Disposition": Header("inline, named <build id>_build_report.pdf."),
                    "X-Content-Type-Options": FILE_HEADERS["X-Content-Type-Options"],
                },
            ),
            304: Reply(
                "The results, and so the report, are unchanged since the ETag sent.",
                headers={"ETag": FILE_HEADERS["ETag"]},
            ),
        },
        refusals=(
            NO_RESULTS,
            CHANGING,
            problem(
                500,
                "results-unreadable",
                description="platform_info.json is not an analysis summary (the log says why).",
            ),
        ),
    )
)
def build_report_pdf(build_id: str) -> Response:
    build_id = build_id_arg(build_id)
    settings = service().settings
    plate = Plate(settings.plate_size_mm, settings.plate_px_per_mm)

    def draw(outputs: ShareDir) -> tuple[str, bytes | None]:
        try:
            info = outputs.lstat(PLATFORM_INFO)
        except UnsafeSharePath as exc:
            raise refused(build_id, exc) from None
        if info is None:
            raise no_results(build_id)
        # The results' version: a new run publishes a new platform_info.json.
        etag = f"report-{info.st_mtime_ns:x}-{info.st_size:x}-{info.st_ino:x}"
        if request.if_none_match.contains(etag):
            return etag, None
        try:
            return etag, build_report(outputs.read_bytes, plate)
        except UnsafeSharePath as exc:
            raise refused(build_id, exc) from None
        except ReportError as exc:
            log.error("no report for %s: %s", outputs.rel(PLATFORM_INFO), exc)
            raise ApiError(
                500,
                "Internal Server Error",
                f"the results of build {build_id} cannot be read",
                kind="results-unreadable",
            ) from None

    etag, pdf = read_outputs(build_id, draw)
    if pdf is None:
        response = Response(status=304)
        response.set_etag(etag)
        return response
    response = Response(pdf, mimetype="application/pdf")
    response.set_etag(etag)
    response.headers["Content-Disposition"] = f'inline; filename="{build_id}_build_report.pdf"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
