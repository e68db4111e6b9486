"""Every error the build package layer raises, in one place.

Exception
 └── BuildError                 any error about a build: id, folder, package, exclusions
      ├── InvalidBuildId         (also a ValueError) the id is not a plain folder name
      ├── BuildNotFound          the build folder or its package does not exist
      │    └── BuildRefused      … or is a link or an entry of the wrong kind
      ├── BuildArchiveError      the package cannot be read as a ZIP archive
      │    └── UnsafeArchiveError   readable, but not to be trusted (names, zip bomb)
      ├── ExclusionsError        the exclusions file is missing or invalid
      ├── UnsafeSharePath        an entry below the share is a link or the wrong kind
      ├── ShareAccessDenied      (also a PermissionError) the service may not open an entry
      └── ShareFileTooLarge      a file below the share is larger than the service reads
"""

from __future__ import annotations

import errno


class BuildError(Exception):
    """Base of every error about a build: its id, folder, package or exclusions."""


class InvalidBuildId(BuildError, ValueError):
    """A build id that is not a plain folder name (it would escape the base path)."""


class BuildNotFound(BuildError):
    """The build folder or its `.abp` package does not exist."""


class BuildRefused(BuildNotFound):
    """The build folder or its package is a link or an entry of the wrong kind."""


class BuildArchiveError(BuildError):
    """The package cannot be read as a ZIP archive (corrupt, truncated, encrypted)."""


class UnsafeArchiveError(BuildArchiveError):
    """The package is readable but must not be trusted (unsafe names, zip bomb)."""


class ExclusionsError(BuildError):
    """The exclusions file is missing or invalid; the message names the file."""


class UnsafeSharePath(BuildError):
    """An entry below the share base is a symbolic link, or not the kind of entry needed."""

    def __init__(self, relpath: str, problem: str) -> None:
        super().__init__(
            f"{relpath} {problem}: refused (the service follows no links and opens only "
            "regular files and folders below the build share)"
        )
        self.relpath = relpath
        self.problem = problem


class ShareAccessDenied(BuildError, PermissionError):
    """The service's user may not open (or create) an entry below the share: its owner
    or mode, or its folder's.

    Still a PermissionError, so that whatever handled the bare one handles it; it adds
    the entry's path relative to the share, which a bare one does not know.
    """

    def __init__(self, relpath: str) -> None:
        super().__init__(errno.EACCES, "permission denied", relpath)
        self.relpath = relpath

    def __str__(self) -> str:
        return f"{self.relpath}: permission denied to the service's user"


class ShareFileTooLarge(BuildError):
    """A file below the share is larger than the service reads into memory."""

    def __init__(self, relpath: str, size: int, limit: int) -> None:
        super().__init__(
            f"{relpath} is {size} bytes, more than the {limit} bytes the service reads"
        )
        self.relpath = relpath
        self.size = size
        self.limit = limit
