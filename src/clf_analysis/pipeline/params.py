"""Parameters of one analysis run, validated once and shared by API, jobs and pipeline."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_HEIGHT_MM = 1000.0
MIN_HOLES_INTERVAL_MM = 0.5


class AnalysisParams(BaseModel):
    """What a client may choose for one analysis; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Each holes view is a figure: below 0.5 mm a tall build would ask for thousands.
    holes_interval: float = Field(default=10.0, ge=MIN_HOLES_INTERVAL_MM, le=MAX_HEIGHT_MM)
    create_composite_views: bool = False
    clean_platform_heights: tuple[float, ...] | None = None
    hole_heights: tuple[float, ...] | None = None
    pathdata: bool = True

    @field_validator("clean_platform_heights", "hole_heights")
    @classmethod
    def _heights_in_range(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is None:
            return None
        if len(v) > 1000:
            raise ValueError("at most 1000 heights")
        for h in v:
            if not (0 <= h <= MAX_HEIGHT_MM):
                raise ValueError(f"height {h} outside 0..{MAX_HEIGHT_MM} mm")
        return tuple(sorted(set(v)))

    def canonical(self) -> dict[str, object]:
        """Plain dict with a stable shape: the key used to deduplicate submissions."""
        return self.model_dump(mode="json")
