"""clf-abp-path-analysis: analysis of Arcam EBM build packages."""

__version__ = "1.0.0"
