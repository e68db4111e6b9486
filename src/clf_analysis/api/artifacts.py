"""Serving files of a build's `clf_analysis/` output folder, and nothing outside it."""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath

from flask import Blueprint, Response, request, send_file

from clf_analysis.api.errors import ApiError
from clf_analysis.api.parsing import build_id_arg
from clf_analysis.api.service import service

bp = Blueprint("artifacts", __name__)

OUTPUT_DIR_NAME = "clf_analysis"
MAX_ARTIFACT_PATH = 1024
_EXTRA_TYPES = {".json": "application/json", ".png": "image/png", ".csv": "text/csv"}


def outputs_root(build_id: str) -> Path:
    """`<base>/<build_id>/clf_analysis` resolved; 404 when missing or escaping the base."""
    base = service().settings.midas_base_path.resolve()
    root = (base / build_id / OUTPUT_DIR_NAME).resolve()
    if not root.is_relative_to(base) or not root.is_dir():
        raise no_results(build_id)
    return root


def results_changing(build_id: str) -> ApiError:
    """The 503 for a read that met files vanishing under a publish (retry shortly)."""
    return ApiError(
        503,
        "Service Unavailable",
        f"the results of build {build_id} are being replaced; retry in a moment",
        kind="results-changing",
        headers={"Retry-After": "1"},
        build_id=build_id,
    )


def no_results(build_id: str) -> ApiError:
    """The 404 for a build that has no published analysis."""
    return ApiError(
        404,
        "Not Found",
        f"no analysis results for build {build_id}",
        kind="results-not-found",
        build_id=build_id,
    )


def safe_artifact(root: Path, relative: str) -> Path:
    """The file `relative` below `root`; 400 for path tricks, 404 when it is not a file.

    Checked twice on purpose: the words of the path (no absolute, dot or hidden parts),
    then the resolved target (a symlink inside the folder must not lead out of it).
    """
    parts = PurePosixPath(relative).parts
    bad = (
        not relative
        or len(relative) > MAX_ARTIFACT_PATH
        or relative.startswith("/")
        or "\\" in relative
        or "\x00" in relative
        or any(part.startswith(".") for part in parts)
        or "" in relative.split("/")
    )
    if bad:
        raise ApiError(
            400,
            "Bad Request",
            "invalid artifact path: use a relative path inside clf_analysis/",
            kind="invalid-artifact-path",
        )
    target = (root / Path(*parts)).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise ApiError(404, "Not Found", f"no artifact {relative!r}", kind="artifact-not-found")
    return target


def send_artifact(path: Path) -> Response:
    """The file with validators (ETag, Last-Modified) and a revalidate-always policy.

    no-cache rather than a max-age: a new run swaps the whole folder in place under the
    same names, and the ETag keeps revalidation to a 304.
    """
    mimetype = _EXTRA_TYPES.get(path.suffix.lower()) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    response = send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=None)
    response.cache_control.no_cache = True
    response.cache_control.public = True
    return response


@bp.get("/api/builds/<path:build_id>/artifacts/<path:path>")
def get_artifact(build_id: str, path: str) -> Response:
    build_id = build_id_arg(build_id)
    root = outputs_root(build_id)
    return send_artifact(safe_artifact(root, path))


def artifact_url(build_id: str, relative: str) -> str:
    return f"{request.script_root}/api/builds/{build_id}/artifacts/{relative}"
