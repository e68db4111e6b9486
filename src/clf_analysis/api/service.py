"""What every request handler shares: settings, the job store, the draining flag."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app

from clf_analysis.config import Settings
from clf_analysis.jobs.store import JobStore

EXTENSION_KEY = "clf_analysis"


@dataclass
class Service:
    """The app's dependencies, created once by the app factory."""

    settings: Settings
    store: JobStore
    is_draining: Callable[[], bool]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def store_kind(self) -> str:
        """Engine name of the job store URL (sqlite, postgresql), never the credentials."""
        return self.settings.job_store_url.split(":", 1)[0].split("+", 1)[0]


def service() -> Service:
    """The Service of the app handling the current request."""
    return current_app.extensions[EXTENSION_KEY]
