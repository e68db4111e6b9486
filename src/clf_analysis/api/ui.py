"""The static viewer under /ui: plain files from clf_analysis/web/static, no build step."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

bp = Blueprint("ui", __name__)


@bp.get("/ui")
def ui_root() -> Response:
    # Relative URLs in index.html (app.js, style.css) resolve against /ui/, not /.
    return redirect("/ui/", code=308)  # type: ignore[return-value]


@bp.get("/ui/")
def ui_index() -> Response:
    return _static("index.html")


@bp.get("/ui/<path:filename>")
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
