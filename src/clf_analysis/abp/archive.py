"""Safe, read-only access to the members of an `.abp` build package (a ZIP archive).

Nothing is extracted to disk: CLF members are read straight from the archive, so runs
and builds never share an extraction folder. Every member name and size is checked when
the archive is opened, because an `.abp` comes from a network share we do not control.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from clf_analysis.abp.errors import BuildArchiveError, UnsafeArchiveError

GiB = 1 << 30
MiB = 1 << 20

# "C:" or "c:foo" — a Windows drive prefix would escape any destination folder.
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds an archive must respect before any member is read.

    `max_ratio` applies only to members of at least `ratio_min_size` uncompressed bytes:
    small members of repetitive CLF layers legitimately compress very well and cannot
    hurt, while a bomb has to be large to matter.
    """

    max_members: int = 20_000
    max_total_uncompressed: int = 8 * GiB
    max_ratio: float = 200.0
    max_member_size: int = 2 * GiB
    ratio_min_size: int = 1 * MiB

    def __post_init__(self) -> None:
        for name in ("max_members", "max_total_uncompressed", "max_member_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ArchiveLimits.{name} must be > 0, got {getattr(self, name)}")
        if not self.max_ratio > 0:
            raise ValueError(f"ArchiveLimits.max_ratio must be > 0, got {self.max_ratio}")
        if self.ratio_min_size < 0:
            raise ValueError(
                f"ArchiveLimits.ratio_min_size must be >= 0, got {self.ratio_min_size}"
            )


@dataclass(frozen=True)
class PartFile:
    """One CLF file of a build: `Models/<folder>/<name>` inside the package."""

    member: str  # the name exactly as stored in the zip (may contain backslashes)
    folder: str  # relative to Models/, '/'-separated, '' directly under Models/
    name: str  # file name, e.g. 'Part.clf'
    size: int  # declared uncompressed size in bytes

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.name}"


def normalise_member_name(name: str) -> str:
    """The member name with `/` separators; Arcam tools write `\\`, which is not unsafe."""
    return name.replace("\\", "/")


def _unsafe_reason(normalised: str) -> str | None:
    if not normalised:
        return "empty name"
    if "\x00" in normalised:
        return "NUL character in name"
    if normalised.startswith("/"):
        return "absolute path"
    if _DRIVE.match(normalised):
        return "drive letter"
    if ".." in normalised.split("/"):
        return "'..' component"
    return None


def _validate(path: Path, infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(
            f"{path}: {len(infos)} members, more than the limit of {limits.max_members}"
        )
    total = 0
    seen: set[str] = set()
    for info in infos:
        normalised = normalise_member_name(info.filename)
        reason = _unsafe_reason(normalised)
        if reason is not None:
            raise UnsafeArchiveError(f"{path}: unsafe member name {info.filename!r} ({reason})")
        if normalised in seen:
            # Two entries that normalise alike would make "the" member ambiguous.
            raise UnsafeArchiveError(f"{path}: duplicate member name {info.filename!r}")
        seen.add(normalised)
        if info.flag_bits & 0x1:
            raise BuildArchiveError(f"{path}: member {info.filename!r} is encrypted")
        if info.file_size > limits.max_member_size:
            raise UnsafeArchiveError(
                f"{path}: member {info.filename!r} declares {info.file_size} bytes, more than "
                f"the limit of {limits.max_member_size}"
            )
        if info.file_size >= limits.ratio_min_size and info.file_size > 0:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UnsafeArchiveError(
                    f"{path}: member {info.filename!r} has compression ratio {ratio:.0f} "
                    f"({info.compress_size} -> {info.file_size} bytes), above the limit of "
                    f"{limits.max_ratio:g}"
                )
        total += info.file_size
    if total > limits.max_total_uncompressed:
        raise UnsafeArchiveError(
            f"{path}: {total} bytes uncompressed in total, more than the limit of "
            f"{limits.max_total_uncompressed}"
        )


def _part_file(info: zipfile.ZipInfo) -> PartFile | None:
    if info.is_dir():
        return None
    components = normalise_member_name(info.filename).split("/")
    if len(components) < 2 or components[0].lower() != "models":
        return None
    name = components[-1]
    if not name.lower().endswith(".clf"):
        return None
    folder = "/".join(c for c in components[1:-1] if c not in ("", "."))
    return PartFile(member=info.filename, folder=folder, name=name, size=info.file_size)


class BuildArchive:
    """An open, validated `.abp` package; use `open_archive` to get one."""

    def __init__(
        self, path: Path, limits: ArchiveLimits = ArchiveLimits(), *, follow_symlinks: bool = True
    ) -> None:
        self.path = Path(path)
        self.limits = limits
        try:
            self._file = _open_package(self.path, follow_symlinks)
        except FileNotFoundError as exc:
            raise BuildArchiveError(f"{self.path}: build package not found") from exc
        except OSError as exc:
            reason = "a symbolic link, not followed" if exc.errno == errno.ELOOP else exc.strerror
            raise BuildArchiveError(f"{self.path}: cannot be opened ({reason})") from exc
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            self._file.close()
            raise BuildArchiveError(f"{self.path}: not a readable ZIP archive ({exc})") from exc
        try:
            infos = self._zip.infolist()
            _validate(self.path, infos, limits)
        except BaseException:
            self.close()
            raise
        self._infos = {info.filename: info for info in infos}

    def __enter__(self) -> BuildArchive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    @property
    def size_bytes(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def sha256(self) -> str:
        """Hex SHA-256 of the package file, read in chunks (of the file opened, by its
        own descriptor: the name may meanwhile lead elsewhere)."""
        digest = hashlib.sha256()
        offset = 0
        while chunk := os.pread(self._file.fileno(), 1 << 20, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    def part_files(self) -> list[PartFile]:
        """Every `.clf` member under `Models/`, sorted by (folder, name)."""
        parts = (_part_file(info) for info in self._infos.values())
        return sorted((p for p in parts if p is not None), key=lambda p: (p.folder, p.name))

    def read(self, part: PartFile) -> bytes:
        """The bytes of one member, never more than its declared size."""
        info = self._infos.get(part.member)
        if info is None:
            raise BuildArchiveError(f"{self.path}: no member {part.member!r}")
        try:
            with self._zip.open(info) as fh:
                # A forged header can declare a small size and inflate to much more, so
                # read one byte past the declared size to notice.
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
            raise BuildArchiveError(
                f"{self.path}: member {part.member!r} cannot be read ({exc})"
            ) from exc
        if len(data) > info.file_size:
            raise UnsafeArchiveError(
                f"{self.path}: member {part.member!r} inflates past its declared size of "
                f"{info.file_size} bytes"
            )
        return data


def _open_package(path: Path, follow_symlinks: bool) -> BinaryIO:
    """The package file; without `follow_symlinks` a link in its place is refused (ELOOP),
    and in any case only a regular file is read (a FIFO would hang the reader)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def open_archive(
    path: Path, limits: ArchiveLimits = ArchiveLimits(), *, follow_symlinks: bool = True
) -> BuildArchive:
    """Open and validate a build package; use it as a context manager.

    Packages on the build share are opened with `follow_symlinks=False`.
    """
    return BuildArchive(path, limits, follow_symlinks=follow_symlinks)
