"""The `.abp` build package: discovery, safe member access, folder exclusions, and the
build share itself, opened without following links (`share`)."""

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
    BuildPackage,
    BuildRefused,
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
from clf_analysis.build.share import BuildFolder, ShareDir, UnsafeSharePath

__all__ = [
    "ArchiveLimits",
    "BuildArchive",
    "BuildArchiveError",
    "BuildError",
    "BuildFolder",
    "BuildNotFound",
    "BuildPackage",
    "BuildRefused",
    "Exclusions",
    "ExclusionsError",
    "InvalidBuildId",
    "PartFile",
    "ShareDir",
    "UnsafeArchiveError",
    "UnsafeSharePath",
    "find_build_package",
    "load_exclusions",
    "open_archive",
    "parse_exclusions",
    "validate_build_id",
]
