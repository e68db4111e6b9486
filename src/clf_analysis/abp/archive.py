"""Safe, read-only access to the members of an `.abp` build package (a ZIP archive).

Nothing is extracted to disk: CLF members are read straight from the archive, so runs
and builds never share an extraction folder. Every member name and size is checked when
the archive is opened, because an `.abp` comes from a network share we do not control.

Before zipfile parses anything, the package's size and its end-of-central-directory
record are checked, and the central directory's entries counted: zipfile would build an
object for each of 300,000 members before a count could be compared, and a package can
be a valid zip behind gigabytes of a sparse file's nothing, which costs its author no
disk and the service minutes of hashing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import struct
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

# The ZIP records read before zipfile (APPNOTE.TXT 4.3.12, 4.3.14-16): signature and the
# offsets of the fields used.
_EOCD = struct.Struct("<4s4H2LH")  # sig, disk, cd disk, entries here, entries, size, offset
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SEARCH = _EOCD.size + 0xFFFF  # the record and the longest comment
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # sig, size, versions, disks, entries x2, size, off
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_CENTRAL_ENTRY = struct.Struct("<4s6H3L5H2L")  # fixed part of a central directory entry
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # fixed part of a local file header
_LOCAL_SIGNATURE = b"PK\x03\x04"
# Central directory bytes allowed per allowed member: an entry is 46 bytes plus its name
# and extra fields, about 150 for an Arcam package.
CENTRAL_BYTES_PER_MEMBER = 1024
# Bytes of a package that belong to no member: a data descriptor after each member (at
# most 24 bytes), and this much in all (before the first member, between members, before
# the central directory). Writers of .abp packages leave none.
STRAY_BYTES = 64 * 1024
DESCRIPTOR_BYTES = 24


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
    max_package_size: int = 8 * GiB

    def __post_init__(self) -> None:
        for name in (
            "max_members",
            "max_total_uncompressed",
            "max_member_size",
            "max_package_size",
        ):
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


def _check_before_parsing(path: Path, fd: int, limits: ArchiveLimits) -> int | None:
    """The package's size, and the central directory's size and entry count, within the
    limits; read from the end records and by walking the entries' fixed parts. Returns
    where the central directory starts.

    A file without an end record is left to zipfile, which says what is wrong with it.
    """
    size = os.fstat(fd).st_size
    if size > limits.max_package_size:
        raise UnsafeArchiveError(
            f"{path}: {size} bytes, more than the limit of {limits.max_package_size} for a package"
        )
    tail_start = max(0, size - _EOCD_SEARCH)
    tail = os.pread(fd, size - tail_start, tail_start)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _, _, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, at)
    cd_end = tail_start + at
    locator_at = at - _ZIP64_LOCATOR_SIZE
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR_SIGNATURE:
        # The zip64 record sits right before its locator (the offset the locator gives
        # may count from a prefix): found by position, as the central directory is.
        record_at = cd_end - _ZIP64_LOCATOR_SIZE - _ZIP64_EOCD.size
        record = os.pread(fd, _ZIP64_EOCD.size, max(record_at, 0))
        if record_at >= 0 and record[:4] == _ZIP64_EOCD_SIGNATURE:
            fields = _ZIP64_EOCD.unpack(record)
            entries, cd_size = fields[7], fields[8]
            cd_end = record_at
    if entries > limits.max_members:
        raise UnsafeArchiveError(
            f"{path}: {entries} members, more than the limit of {limits.max_members}"
        )
    max_cd = limits.max_members * CENTRAL_BYTES_PER_MEMBER
    if cd_size > max_cd or cd_size > cd_end:
        raise UnsafeArchiveError(
            f"{path}: a central directory of {cd_size} bytes, more than the "
            f"{min(max_cd, cd_end)} its members may take"
        )
    directory = os.pread(fd, cd_size, cd_end - cd_size)
    counted = 0
    position = 0
    # Counted by walking, not taken from the record: zipfile parses every entry there is.
    while position + _CENTRAL_ENTRY.size <= len(directory):
        fields = _CENTRAL_ENTRY.unpack_from(directory, position)
        if fields[0] != _CENTRAL_SIGNATURE:
            break  # not an entry: zipfile says so
        counted += 1
        if counted > limits.max_members:
            raise UnsafeArchiveError(
                f"{path}: more than {limits.max_members} members in the central directory "
                f"(the limit), although its end record declares {entries}"
            )
        name_length, extra_length, comment_length = fields[10], fields[11], fields[12]
        position += _CENTRAL_ENTRY.size + name_length + extra_length + comment_length
    return cd_end - cd_size


def _check_stray_bytes(path: Path, fd: int, infos: list[zipfile.ZipInfo], cd_start: int) -> None:
    """Every byte before the central directory belongs to a member (its local header,
    data and descriptor), but for a small allowance: no member behind a sparse gap."""
    allowance = STRAY_BYTES + DESCRIPTOR_BYTES * len(infos)
    stray = 0
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset > position:
            stray += info.header_offset - position
        header = os.pread(fd, _LOCAL_HEADER.size, info.header_offset)
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise BuildArchiveError(
                f"{path}: member {info.filename!r} has no local header at byte {info.header_offset}"
            )
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[9:11]
        end = (
            info.header_offset
            + _LOCAL_HEADER.size
            + name_length
            + extra_length
            + info.compress_size
        )
        position = max(position, end)
        if stray > allowance:
            break
    stray += max(0, cd_start - position)
    if stray > allowance:
        first = min((i.header_offset for i in infos), default=cd_start)
        raise UnsafeArchiveError(
            f"{path}: {stray} bytes belong to no member (the first member starts at byte "
            f"{first}), more than the {allowance} allowed: a package padded with nothing"
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
            cd_start = _check_before_parsing(self.path, self._file.fileno(), limits)
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            self._file.close()
            raise BuildArchiveError(f"{self.path}: not a readable ZIP archive ({exc})") from exc
        except BaseException:
            self._file.close()
            raise
        try:
            infos = self._zip.infolist()
            _validate(self.path, infos, limits)
            if cd_start is not None:
                _check_stray_bytes(self.path, self._file.fileno(), infos, cd_start)
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
