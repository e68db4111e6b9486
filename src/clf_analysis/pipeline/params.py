"""Parameters of one analysis run, validated once and shared by API, jobs and pipeline.

Types are strict: a boolean must be a JSON boolean and a number a JSON number ("yes", 1,
"off" or true in the wrong place is refused, not guessed at). The one exception is the
one the legacy contract names: `holes_interval` as a numeric string ("10").

The JSON Schema of the model is the published description of the API's bodies: every
bound is declared as a constraint pydantic enforces, not only checked in a validator.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

MAX_HEIGHT_MM = 1000.0
MIN_HOLES_INTERVAL_MM = 0.5
# Each requested height is one more plate image (clean platform) or holes view: 100 + 100
# took about 19 s of image work, so each list stops there.
MAX_REQUESTED_HEIGHTS = 100

# holes_interval as legacy clients wrote it ("10", "12.5"): a plain decimal from 0.5 to
# 1000, the same range as the number. One pattern is both the check and the published
# schema, so a string the description allows is never refused by its value.
HOLES_INTERVAL_TEXT = r"1000(?:\.0+)?|[1-9][0-9]{0,2}(?:\.[0-9]+)?|0\.[5-9][0-9]*"
_HOLES_INTERVAL_TEXT = re.compile(HOLES_INTERVAL_TEXT)

Height = Annotated[float, Field(strict=True, ge=0.0, le=MAX_HEIGHT_MM)]
HeightList = Annotated[tuple[Height, ...], Field(max_length=MAX_REQUESTED_HEIGHTS)]
HolesInterval = Annotated[
    float,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": MIN_HOLES_INTERVAL_MM, "maximum": MAX_HEIGHT_MM},
                {"type": "string", "pattern": f"^(?:{HOLES_INTERVAL_TEXT})$"},
            ]
        }
    ),
]


class AnalysisParams(BaseModel):
    """What a client may choose for one analysis; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Each holes view is a figure: below 0.5 mm a tall build would ask for thousands.
    holes_interval: HolesInterval = Field(
        default=10.0,
        ge=MIN_HOLES_INTERVAL_MM,
        le=MAX_HEIGHT_MM,
        strict=True,
        description="Height step of the holes views, mm; a numeric string is taken too.",
        examples=[10],
    )
    create_composite_views: bool = Field(
        default=False, strict=True, description="Also render the composite views."
    )
    clean_platform_heights: HeightList | None = Field(
        default=None,
        description="Heights (mm) of extra clean-platform images; at most "
        f"{MAX_REQUESTED_HEIGHTS}, each 0-{MAX_HEIGHT_MM:g} mm.",
        examples=[[1.0, 12.35]],
    )
    hole_heights: HeightList | None = Field(
        default=None,
        description=f"Heights (mm) of extra holes views; at most {MAX_REQUESTED_HEIGHTS}, "
        f"each 0-{MAX_HEIGHT_MM:g} mm.",
        examples=[[5.0]],
    )
    pathdata: bool = Field(
        default=True, strict=True, description="Write the per-layer path data files."
    )

    @field_validator("holes_interval", mode="before")
    @classmethod
    def _legacy_numeric_text(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        if not _HOLES_INTERVAL_TEXT.fullmatch(v):
            raise ValueError(
                f"as text, a plain decimal from {MIN_HOLES_INTERVAL_MM:g} to "
                f'{MAX_HEIGHT_MM:g} such as "10" or "12.5"'
            )
        return float(v)

    @field_validator("clean_platform_heights", "hole_heights")
    @classmethod
    def _sorted_once(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        # Each height is one image: a repeated one would be rendered twice.
        return None if v is None else tuple(sorted(set(v)))

    def canonical(self) -> dict[str, object]:
        """Plain dict with a stable shape: the key used to deduplicate submissions."""
        return self.model_dump(mode="json")
