"""The `.abp` build package: discovery, safe member access, folder exclusions."""

from clf_analysis.build.archive import (
    ArchiveLimits,
    BuildArchive,
    BuildArchiveError,
    BuildError,
    PartFile,
    UnsafeArchiveError,
    open_archive,
)
from clf_analysis.build.discovery import (
    BuildNotFound,
    InvalidBuildId,
    find_build_package,
    validate_build_id,
)
from clf_analysis.build.exclusions import (
    Exclusions,
    ExclusionsError,
    load_exclusions,
    parse_exclusions,
)

__all__ = [
    "ArchiveLimits",
    "BuildArchive",
    "BuildArchiveError",
    "BuildError",
    "BuildNotFound",
    "Exclusions",
    "ExclusionsError",
    "InvalidBuildId",
    "PartFile",
    "UnsafeArchiveError",
    "find_build_package",
    "load_exclusions",
    "open_archive",
    "parse_exclusions",
    "validate_build_id",
]
