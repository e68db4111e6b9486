"""The static viewer under /ui: plain files from clf_analysis/web/static, no build step."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory

from clf_analysis.api.contract import Header, Operation, Parameter, Reply, declare, problem

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

bp = Blueprint("ui", __name__)

# The viewer's files have short names; the bound keeps a valid name within the HTTP
# server's request line however it is percent-encoded.
FILENAME = Parameter(
    "filename",
    "path",
    {"type": "string", "maxLength": 255},
    "A file of the viewer.",
    example="app.js",
    required=True,
)


@bp.get("/ui")
@declare(
    Operation(
        "The viewer (redirect to /ui/)",
        replies={308: Reply("To /ui/.", headers={"Location": Header("/ui/")})},
    )
)
def ui_root() -> Response:
    # Relative URLs in index.html (app.js, style.css) resolve against /ui/, not /.
    return redirect("/ui/", code=308)  # type: ignore[return-value]


@bp.get("/ui/")
@declare(
    Operation(
        "The viewer: builds, submit, progress, plate images, a layer's path data",
        replies={200: Reply("The viewer's page.", media=("text/html",))},
    )
)
def ui_index() -> Response:
    return _static("index.html")


@bp.get("/ui/<path:filename>")
@declare(
    Operation(
        "A file of the viewer",
        parameters=(FILENAME,),
        replies={200: Reply("The file.", media=("text/html", "text/css", "text/javascript"))},
        refusals=(problem(404, description="No such file."),),
    )
)
def ui_file(filename: str) -> Response:
    return _static(filename)


def _static(filename: str) -> Response:
    # send_from_directory refuses paths leaving STATIC_DIR (werkzeug safe_join).
    response = send_from_directory(STATIC_DIR, filename, max_age=0)
    response.cache_control.no_cache = True
    # The viewer only talks to its own origin and loads nothing from elsewhere.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
