"""geometry layer: loops -> areas, validity, hole nesting; per-part and per-layer statistics.

Pure functions over numpy arrays; knows nothing of files (the layer rule under "Layout" in
README.md).
"""

from clf_analysis.geometry.loops import LoopAnalysis, analyze_loops, signed_area
from clf_analysis.geometry.stats import BuildStats, LayerStats, PartKey, PartStats

__all__ = [
    "BuildStats",
    "LayerStats",
    "LoopAnalysis",
    "PartKey",
    "PartStats",
    "analyze_loops",
    "signed_area",
]
