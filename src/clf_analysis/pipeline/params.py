"""Parameters of one analysis run, validated once and shared by API, jobs and pipeline.

Types are strict: a boolean must be a JSON boolean and a number a JSON number ("yes", 1,
"off" or true in the wrong place is refused, not guessed at). The one exception is the
one the legacy contract names: `holes_interval` as a numeric string ("10").
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_HEIGHT_MM = 1000.0
MIN_HOLES_INTERVAL_MM = 0.5
# Each requested height is one more plate image (clean platform) or holes view: 100 + 100
# took about 19 s of image work, so each list stops there.
MAX_REQUESTED_HEIGHTS = 100

# A plain decimal number, as legacy clients wrote holes_interval; float() alone would also
# take "nan", "inf", " 10 " and "1_0".
_NUMERIC_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

Height = Annotated[float, Field(strict=True)]


class AnalysisParams(BaseModel):
    """What a client may choose for one analysis; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Each holes view is a figure: below 0.5 mm a tall build would ask for thousands.
    holes_interval: float = Field(
        default=10.0, ge=MIN_HOLES_INTERVAL_MM, le=MAX_HEIGHT_MM, strict=True
    )
    create_composite_views: bool = Field(default=False, strict=True)
    clean_platform_heights: tuple[Height, ...] | None = Field(
        default=None, json_schema_extra={"maxItems": MAX_REQUESTED_HEIGHTS}
    )
    hole_heights: tuple[Height, ...] | None = Field(
        default=None, json_schema_extra={"maxItems": MAX_REQUESTED_HEIGHTS}
    )
    pathdata: bool = Field(default=True, strict=True)

    @field_validator("holes_interval", mode="before")
    @classmethod
    def _legacy_numeric_text(cls, v: object) -> object:
        if isinstance(v, str) and _NUMERIC_TEXT.fullmatch(v):
            return float(v)
        return v

    @field_validator("clean_platform_heights", "hole_heights")
    @classmethod
    def _heights_in_range(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is None:
            return None
        if len(v) > MAX_REQUESTED_HEIGHTS:
            raise ValueError(f"at most {MAX_REQUESTED_HEIGHTS} heights, got {len(v)}")
        for h in v:
            if not (0 <= h <= MAX_HEIGHT_MM):
                raise ValueError(f"height {h} outside 0..{MAX_HEIGHT_MM} mm")
        return tuple(sorted(set(v)))

    def canonical(self) -> dict[str, object]:
        """Plain dict with a stable shape: the key used to deduplicate submissions."""
        return self.model_dump(mode="json")
