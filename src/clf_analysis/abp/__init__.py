"""The `.abp` build package: discovery, safe member access, folder exclusions, and the
build share itself, opened without following links (`share`). Errors: `errors`."""

from clf_analysis.abp.archive import ArchiveLimits, BuildArchive, PartFile, open_archive
from clf_analysis.abp.discovery import BuildPackage, find_build_package, validate_build_id
from clf_analysis.abp.errors import (
    BuildArchiveError,
    BuildError,
    BuildNotFound,
    BuildRefused,
    ExclusionsError,
    InvalidBuildId,
    UnsafeArchiveError,
    UnsafeSharePath,
)
from clf_analysis.abp.exclusions import Exclusions, load_exclusions, parse_exclusions
from clf_analysis.abp.share import BuildFolder, ShareDir

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
