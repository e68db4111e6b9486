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
    # Open by design: OPEN or DASHED line geometry (lattice, net and support lines), whose
    # format says it never encloses anything. Everything else listed is a defect.
    by_design: bool = False


class PlateLoop(NamedTuple):
    """One loop of a layer as the plate figures draw it: by its nesting role.

    `depth` is the nesting depth of a MODEL loop among its file's loops (even: metal,
    odd: hole); None for loops that enclose nothing (line geometry, loops with fewer than
    3 vertices or zero area), which are stroked, never filled. `invalid` names the defect
    of an invalid loop, drawn in the alarm colour over everything else.
    """

    loop: LoopArray
    depth: int | None
    invalid: str | None = None
    closed: bool = True
    dashed: bool = False
    area: float = 0.0  # unsigned, mm² (holes are labelled with it)
    group: int = 0  # colour group where a figure colours by group (folders)

    @property
    def line(self) -> bool:
        """Line geometry or a loop that encloses nothing: stroked only."""
        return self.depth is None


class PartName(NamedTuple):
    """How a figure names a part: folder, file, model id and the model's own name."""

    folder: str
    file: str
    model_id: int
    model_name: str = ""

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.file}" if self.folder else self.file

    @property
    def label(self) -> str:
        """`<folder>/<file> #<model id>`, then the model's name when it has one."""
        name = f" {self.model_name}" if self.model_name else ""
        return f"{self.path} #{self.model_id}{name}"
