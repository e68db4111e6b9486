"""What the stages of a run hand each other: prepare → layers → images → summary.

Each stage returns one of these values and the next ones read it by name; the summary
(`platform_info.build_platform_info`) takes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clf_analysis.abp.archive import PartFile
from clf_analysis.abp.exclusions import Exclusions
from clf_analysis.geometry.stats import BuildStats, PartKey
from clf_analysis.pipeline.file_pass import FilePassResult
from clf_analysis.pipeline.params import AnalysisParams


@dataclass(frozen=True)
class RunLabel:
    """Which run this is, as the summary names it."""

    build_id: str
    run_id: str
    job_id: str | None
    params: AnalysisParams


@dataclass(frozen=True)
class Prepared:
    """The package as opened by the prepare stage, and the part files chosen from it."""

    archive_name: str
    size_bytes: int
    sha256: str
    exclusions: Exclusions
    included: list[PartFile]
    excluded: list[tuple[PartFile, str]]  # each with the pattern that excluded it


@dataclass(frozen=True)
class LayerPass:
    """Every included file analysed, and the build's layer grid mapped onto each file."""

    results: list[FilePassResult]  # one per included file, in package order
    grid: np.ndarray  # every layer height of the build (float64, 4 decimals)
    mapping: list[np.ndarray]  # per file: grid index -> file layer index, -1 for none
    top: float  # the top layer's height
    thickness: float  # the build's layer thickness (the thinnest a model declares)
    stats: BuildStats  # per part over all files (the per-file `stats` merged)
    warnings: list[str]


@dataclass(frozen=True)
class IdentifierView:
    """One part's image and its platform_info.json entry (without its path counts)."""

    key: PartKey
    entry: dict[str, Any]


@dataclass(frozen=True)
class ImageEntries:
    """The platform_info.json entries describing the images, in their legacy shapes."""

    clean_platforms: list[dict[str, Any]]
    platform_composites: list[dict[str, Any]]
    holes_views: list[dict[str, Any]]
    identifier_views: list[IdentifierView]
    combined_identifier_view: dict[str, Any]
    all_pathdata: dict[str, str]
    unclosed_shapes_view: dict[str, Any]
