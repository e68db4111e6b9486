"""Values the figures draw, kept apart from matplotlib: the stages that collect them
(pool processes analysing layers) import this module, not the figure code."""

from __future__ import annotations

from typing import NamedTuple

from clf_analysis.clf.types import LoopArray


class UnclosedItem(NamedTuple):
    """One unclosed or invalid loop for `figures.unclosed_view`; a plain 4-tuple also works."""

    loop: LoopArray
    reason: str
    z: float
    file: str
    closed: bool = False  # draw the closing edge (invalid closed loops)
    dashed: bool = False  # DASHED line geometry: vertex pairs are separate segments
