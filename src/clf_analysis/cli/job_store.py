"""The job store of the `serve`, `worker` and `report` roles: which one, and opening it.

Every role says the same thing when the store cannot be used: what the URL is, which
setting or flag it came from, and why (one line, the password never shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clf_analysis.config import Settings
    from clf_analysis.jobs import JobStore


class StoreUnavailable(Exception):
    """The job store could not be opened; the message says which store and why."""


@dataclass(frozen=True)
class StoreChoice:
    """A job store URL and how the user named it (`DATABASE_URL`, `--database-url`, or
    `STATE_DIR` for the default SQLite file)."""

    url: str
    named_by: str

    @property
    def shown(self) -> str:
        from clf_analysis.config import without_password

        return without_password(self.url)


def configured_store(settings: Settings) -> StoreChoice:
    """The store the settings name: DATABASE_URL, else SQLite in STATE_DIR."""
    return StoreChoice(
        settings.job_store_url, "DATABASE_URL" if settings.database_url else "STATE_DIR"
    )


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error and appends a link to its docs; the driver's own
    # first line is the reason ("connection refused", "password authentication failed").
    reason = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    return lines[0] if lines else type(reason).__name__


def open_store(choice: StoreChoice) -> JobStore:
    """Open (and create or migrate) the store; StoreUnavailable saying why not."""
    from clf_analysis.jobs import JobStore

    try:
        return JobStore.connect(choice.url)
    except Exception as exc:  # the driver's errors have no common base worth naming
        raise StoreUnavailable(
            f"cannot open the job store {choice.shown} ({choice.named_by}): {_first_line(exc)}"
        ) from None
