"""Progress of one run: named stages with weights, reported as one monotonic fraction."""

from __future__ import annotations

import time
from collections.abc import Callable

ProgressFn = Callable[[str, float, str], None]

# Weights measured on the benchmark build: the layer pass dominates.
STAGES: dict[str, float] = {
    "prepare": 0.02,
    "layers": 0.66,
    "pathdata": 0.14,
    "images": 0.15,
    "publish": 0.03,
}


class ProgressTracker:
    """Turns (stage, fraction within stage) into calls of `report(stage, overall, message)`.

    Overall progress never goes back, reaches exactly 1.0 at `finish`, and calls are
    throttled to one per `min_interval` seconds except at stage changes.
    """

    def __init__(self, report: ProgressFn, min_interval: float = 0.2) -> None:
        self._report = report
        self._min_interval = min_interval
        self._last_time = 0.0
        self._overall = 0.0
        self._stage = ""
        self._base = 0.0

    @property
    def overall(self) -> float:
        return self._overall

    @property
    def current_stage(self) -> str:
        return self._stage

    def stage(self, name: str, message: str = "") -> None:
        names = list(STAGES)
        self._base = sum(STAGES[n] for n in names[: names.index(name)])
        self._stage = name
        self._emit(self._base, message, force=True)

    def update(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        self._emit(self._base + STAGES[self._stage] * fraction, message, force=False)

    def finish(self, message: str = "done") -> None:
        self._overall = 1.0
        self._report(self._stage, 1.0, message)

    def _emit(self, value: float, message: str, *, force: bool) -> None:
        value = min(max(value, self._overall), 0.999)
        now = time.monotonic()
        if not force and now - self._last_time < self._min_interval:
            self._overall = value
            return
        self._overall = value
        self._last_time = now
        self._report(self._stage, value, message)
