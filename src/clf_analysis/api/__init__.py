"""The HTTP API: a Flask app factory and one blueprint per resource.

gunicorn entry point: `gunicorn -k clf_analysis.api.gunicorn_worker.ApiThreadWorker
--threads 8 'clf_analysis.api:create_app()'` (settings from the environment; the worker
class is what `clf-analysis serve` runs: a read deadline per request and problem+json
errors). Nothing happens at import time; every call builds an independent app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from clf_analysis.config import Settings
    from clf_analysis.jobs.store import JobStore

EXPOSED_HEADERS = ("Location", "Retry-After", "ETag")


def create_app(
    settings: Settings | None = None,
    *,
    store: JobStore | None = None,
    is_draining: Callable[[], bool] | None = None,
) -> Flask:
    """Build the app; `store` defaults to the one at settings.job_store_url.

    `is_draining` lets a supervising process (clf-analysis serve) turn /readyz to 503
    while it drains its job workers; standalone gunicorn never drains through it.
    """
    from flask import Flask
    from flask_cors import CORS

    from clf_analysis.api import artifacts, builds, health, jobs, layers, openapi, ui
    from clf_analysis.api.errors import register_error_handlers
    from clf_analysis.api.parsing import check_api_token, check_cross_site, check_host
    from clf_analysis.api.service import EXTENSION_KEY, Service
    from clf_analysis.config import load_settings
    from clf_analysis.jobs.store import JobStore

    if settings is None:
        settings = load_settings()
    if store is None:
        if settings.database_url is None:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
        store = JobStore.connect(settings.job_store_url)

    app = Flask(__name__, static_folder=None)
    # One byte over the limit: lets parsing tell a truncated chunked body from a full one.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]  # legacy member order reads better
    app.url_map.strict_slashes = False
    # Empty path segments must reach the artifact validator (400), not be redirected.
    app.url_map.merge_slashes = False
    app.extensions[EXTENSION_KEY] = Service(
        settings=settings, store=store, is_draining=is_draining or (lambda: False)
    )
    register_error_handlers(app)

    @app.before_request
    def _authorize() -> None:
        check_host(settings.allowed_hosts)
        check_api_token(settings.api_token)
        check_cross_site(settings)

    for blueprint in (health.bp, jobs.bp, builds.bp, artifacts.bp, layers.bp, ui.bp, openapi.bp):
        app.register_blueprint(blueprint)

    if settings.cors_origins:
        CORS(
            app,
            origins=list(settings.cors_origins),
            expose_headers=list(EXPOSED_HEADERS),
            allow_headers=["Content-Type", "Authorization", "Idempotency-Key", "If-None-Match"],
            methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            max_age=600,
            # Without an Origin header there is no CORS request: send no CORS headers
            # (flask-cors would otherwise advertise one of the allowed origins).
            always_send=False,
        )
    return app
