"""Synthetic build packages with known answers, for demos, tests and benchmarks.

`generate_build` writes an `.abp` (a ZIP of CLF files laid out like a real Arcam build)
and a ground-truth JSON file next to it; `load_ground_truth` reads that file back. The
ground-truth format is documented in `clf_analysis.synth.truth`.
"""

from clf_analysis.synth.build import GeneratedBuild, archive_name, generate_build
from clf_analysis.synth.truth import (
    FileTruth,
    GroundTruth,
    InvalidLoopTruth,
    LoopTruth,
    PartKey,
    PartTruth,
    SectionTruth,
    load_ground_truth,
    parse_ground_truth,
)

__all__ = [
    "FileTruth",
    "GeneratedBuild",
    "GroundTruth",
    "InvalidLoopTruth",
    "LoopTruth",
    "PartKey",
    "PartTruth",
    "SectionTruth",
    "archive_name",
    "generate_build",
    "load_ground_truth",
    "parse_ground_truth",
]
