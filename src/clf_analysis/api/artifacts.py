"""Serving files of a build's `clf_analysis/` output folder, and nothing outside it.

Every file is opened through `clf_analysis.abp.share`: no link below the base path is
followed (a link is answered 404 like a missing file, with a detail that says why), and
what is sent is the file that was opened, not a name looked up again.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import TypeVar
from urllib.parse import quote

from flask import Blueprint, Response, request, send_file
from werkzeug.http import parse_range_header

from clf_analysis.abp.discovery import build_folder
from clf_analysis.abp.errors import ShareAccessDenied, UnsafeSharePath
from clf_analysis.abp.share import ShareDir
from clf_analysis.api.contract import Header, Operation, Parameter, Reply, declare, problem
from clf_analysis.api.errors import ApiError
from clf_analysis.api.parsing import BUILD_ID, build_id_arg
from clf_analysis.api.service import service
from clf_analysis.layout import OUTPUT_DIR

bp = Blueprint("artifacts", __name__)

# Short enough that any valid path fits the HTTP server's 4094-byte request line even with
# every character percent-encoded (up to 12 bytes each): a valid path is never a 414.
MAX_ARTIFACT_PATH = 300
# What the service writes; anything else found in the folder (an .html someone dropped
# there) is sent as an opaque download, never with a type a browser would render. Text
# types get "; charset=utf-8" from werkzeug.
_TYPES = {
    ".json": "application/json",
    ".png": "image/png",
    ".csv": "text/csv",
    ".txt": "text/plain",
}
OPAQUE_TYPE = "application/octet-stream"
# No script, no plugin, no form, no navigation from a served file; inline styles only
# because browsers style their own image and text viewers that way.
ARTIFACT_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
# Relative, '/'-separated, no empty segment, no segment starting with '.' (no '..', no
# hidden files), no backslash or NUL: the check and the published pattern are this one.
ARTIFACT_PATH_PATTERN = r"[^/\\\x00.][^/\\\x00]*(?:/[^/\\\x00.][^/\\\x00]*)*"
_ARTIFACT_PATH = re.compile(ARTIFACT_PATH_PATTERN)

# --- what the routes take and answer (published by /openapi.json) ------------------------

NO_RESULTS = problem(
    404,
    "results-not-found",
    "share-entry-refused",
    description="The build has no published results, or a link stands where they would be.",
)
SHARE_DENIED = problem(
    403,
    "share-permission-denied",
    description="The service's user may not read an entry of the build on the share (its "
    "owner or mode); `path` names it.",
)
CHANGING = problem(
    503,
    "results-changing",
    description="A new analysis is being published right now: retry shortly.",
    headers={"Retry-After": Header("Seconds to wait.", {"type": "integer", "minimum": 0})},
)
ARTIFACT_PATH = Parameter(
    "path",
    "path",
    {"type": "string", "pattern": f"^{ARTIFACT_PATH_PATTERN}$", "maxLength": MAX_ARTIFACT_PATH},
    "A file below clf_analysis/, as listed by the results' `artifacts`.",
    example="platform_info.json",
    required=True,
    refusals=(problem(400, "invalid-artifact-path", description="Not a plain relative path."),),
)
IF_NONE_MATCH = Parameter(
    "If-None-Match", "header", {"type": "string"}, "ETag of the copy the client holds."
)
FILE_HEADERS = {
    "ETag": Header("Validator of the file's version."),
    "Last-Modified": Header("When the file was written."),
    "Cache-Control": Header("no-cache, public: revalidate (a new run swaps the folder)."),
    "X-Content-Type-Options": Header("nosniff."),
    "Content-Security-Policy": Header("A sandbox: nothing in the file runs."),
}
FILE_TYPES = (*sorted(set(_TYPES.values())), OPAQUE_TYPE)


def file_replies(
    description: str, media: tuple[str, ...], schema: dict[str, object] | None = None
) -> dict[int, Reply]:
    """The answers of a route that sends a file of the output folder (a Range header, a
    standard HTTP feature, gets a part of it)."""
    return {
        200: Reply(description, media=media, schema=schema, headers=FILE_HEADERS),
        206: Reply(
            "The byte range asked for with Range, in the file's type.",
            headers={**FILE_HEADERS, "Content-Range": Header("The range sent.")},
        ),
        304: Reply(
            "Unchanged since the ETag or date sent.", headers={"ETag": FILE_HEADERS["ETag"]}
        ),
    }


UNSATISFIABLE = problem(416, description="The Range asked for is outside the file.")


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


def refused(build_id: str, exc: UnsafeSharePath) -> ApiError:
    """The 404 for an entry of the share that is a link or of the wrong kind."""
    return ApiError(
        404,
        "Not Found",
        f"build {build_id}: {exc}",
        kind="share-entry-refused",
        build_id=build_id,
        path=exc.relpath,
    )


def denied(build_id: str, exc: ShareAccessDenied) -> ApiError:
    """The 403 for an entry of the share the service's user may not read."""
    return ApiError(
        403,
        "Forbidden",
        f"build {build_id}: {exc}",
        kind="share-permission-denied",
        build_id=build_id,
        path=exc.relpath,
    )


@contextmanager
def open_outputs(build_id: str) -> Iterator[ShareDir]:
    """`<base>/<build_id>/clf_analysis`, opened without following a link; 404 otherwise,
    403 when the service's user may not read it or anything opened below it."""
    folder = build_folder(service().settings.midas_base_path, build_id)
    try:
        build = folder.open()
    except (FileNotFoundError, NotADirectoryError):
        raise no_results(build_id) from None
    except UnsafeSharePath as exc:
        raise refused(build_id, exc) from None
    except ShareAccessDenied as exc:
        raise denied(build_id, exc) from None
    try:
        try:
            outputs = build.subdir(OUTPUT_DIR)
        except FileNotFoundError:
            raise no_results(build_id) from None
        except UnsafeSharePath as exc:
            raise refused(build_id, exc) from None
        with outputs:
            yield outputs
    except ShareAccessDenied as exc:  # clf_analysis/, or anything the route opens below it
        raise denied(build_id, exc) from None
    finally:
        build.close()


# A publish replaces the whole folder with one rename, so a read that finds files of the
# folder it opened gone can start over on the new folder, which is complete. The third
# such miss in a row is reported (results-changing) rather than tried forever.
READ_ATTEMPTS = 3
_Read = TypeVar("_Read")


def read_outputs(build_id: str, read: Callable[[ShareDir], _Read]) -> _Read:
    """`read(outputs)` on the live results, started again when a publish swapped them."""
    for _ in range(READ_ATTEMPTS - 1):
        with open_outputs(build_id) as outputs:
            try:
                return read(outputs)
            except FileNotFoundError:
                continue
    with open_outputs(build_id) as outputs:
        try:
            return read(outputs)
        except FileNotFoundError:
            raise results_changing(build_id) from None


def artifact_path(relative: str) -> str:
    """`relative` when it is a plain path inside clf_analysis/; 400 for path tricks."""
    if len(relative) > MAX_ARTIFACT_PATH or not _ARTIFACT_PATH.fullmatch(relative):
        raise ApiError(
            400,
            "Bad Request",
            "invalid artifact path: use a relative path inside clf_analysis/",
            kind="invalid-artifact-path",
        )
    return relative


def content_type(name: str) -> str:
    """The type a file of the output folder is sent with (see `_TYPES`)."""
    return _TYPES.get(PurePosixPath(name).suffix.lower(), OPAQUE_TYPE)


def send_artifact(outputs: ShareDir, relative: str, missing: ApiError, build_id: str) -> Response:
    """The regular file `relative` below the outputs, with validators (ETag,
    Last-Modified), a revalidate-always policy and headers that stop a browser from
    sniffing or running it; `missing` when there is no such file.

    no-cache rather than a max-age: a new run swaps the whole folder in place under the
    same names, and the ETag keeps revalidation to a 304.
    """
    try:
        fd = outputs.open_file(relative)
    except (FileNotFoundError, NotADirectoryError):
        raise missing from None
    except UnsafeSharePath as exc:
        raise refused(build_id, exc) from None
    except OSError as exc:
        # A name longer than the file system holds (255 bytes) names no file: not a 500.
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise missing from None
    info = os.fstat(fd)
    mimetype = content_type(relative)
    response = send_file(
        os.fdopen(fd, "rb"),
        mimetype=mimetype,
        as_attachment=mimetype == OPAQUE_TYPE,
        download_name=PurePosixPath(relative).name,
        etag=f"{info.st_mtime_ns:x}-{info.st_size:x}-{info.st_ino:x}",
        last_modified=info.st_mtime,
        conditional=False,
        max_age=None,
    )
    response.content_length = info.st_size
    response.make_conditional(_servable_ranges(), accept_ranges=True, complete_length=info.st_size)
    response.cache_control.no_cache = True
    response.cache_control.public = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = ARTIFACT_CSP
    return response


@bp.get("/api/builds/<path:build_id>/artifacts/<path:path>")
@declare(
    Operation(
        "A file of the build's clf_analysis/ folder",
        description="Only .png, .json, .csv and .txt get their type; anything else is an "
        "application/octet-stream download. No link is followed.",
        parameters=(BUILD_ID, ARTIFACT_PATH, IF_NONE_MATCH),
        replies=file_replies("The file.", FILE_TYPES),
        refusals=(
            NO_RESULTS,
            problem(404, "artifact-not-found", description="No such file."),
            SHARE_DENIED,
            UNSATISFIABLE,
        ),
    )
)
def get_artifact(build_id: str, path: str) -> Response:
    build_id = build_id_arg(build_id)
    relative = artifact_path(path)
    missing = ApiError(404, "Not Found", f"no artifact {relative!r}", kind="artifact-not-found")
    with open_outputs(build_id) as outputs:
        return send_artifact(outputs, relative, missing, build_id)


def _servable_ranges() -> dict[str, object]:
    """The request's environment, without a Range header this route does not serve: one
    of another unit (`items=0-1`), an invalid one (`bytes=5-1`) or several ranges are
    ignored, and the whole file sent (RFC 9110, 14.2); only a single byte range outside
    the file is 416."""
    environ: dict[str, object] = request.environ
    value = environ.get("HTTP_RANGE")
    if not isinstance(value, str):
        return environ
    parsed = parse_range_header(value)
    if parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1:
        return environ
    return {name: v for name, v in environ.items() if name != "HTTP_RANGE"}


def artifact_url(build_id: str, relative: str) -> str:
    """The URL of a file below clf_analysis/, its name percent-encoded (`q?x#y.png` is
    a file name, not a query and a fragment)."""
    return f"{request.script_root}/api/builds/{build_id}/artifacts/{quote(relative, safe='/')}"
