"""The build share, opened without ever following a symbolic link below its base.

Anyone who can write into the MIDAS share can plant links, FIFOs or hard links in a
build folder. Every reader and writer of the share goes through this module: a path is
opened one component at a time relative to a directory descriptor with `O_NOFOLLOW`, so
a symbolic link anywhere below the base is refused rather than followed, and what has to
be a regular file (a package, a lock, a result) is checked with `fstat` on the very
descriptor that is then used. The base itself (`MIDAS_BASE_PATH`, or the folder a user
names on the command line) is configured by the operator and trusted.

Messages name paths relative to the base (`271360/clf_analysis/...`), never absolute
server paths: they end up in job errors that clients read.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from clf_analysis.abp.errors import ShareAccessDenied, ShareFileTooLarge, UnsafeSharePath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under a file's name must not hang the service.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_RENAME_EXCHANGE = 2
# What an open of an entry the service's user may not read fails with.
_DENIED = (errno.EACCES, errno.EPERM)


def _components(relative: str) -> list[str]:
    """The names of a '/'-separated relative path; dot, empty and absolute parts are bugs."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise ValueError(f"not a plain relative path below the share: {relative!r}")
    return parts


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISREG(mode):
        return "is a file"
    return "is a special file (FIFO, socket or device)"


@dataclass(frozen=True)
class BuildFolder:
    """`<root>/<name>`: one build folder below a trusted root."""

    root: Path
    name: str

    def __post_init__(self) -> None:
        _components(self.name)
        if "/" in self.name:
            raise ValueError(f"a build folder is one path component, got {self.name!r}")

    @property
    def path(self) -> Path:
        """The folder's path as configured: for the legacy job result, and the fallback
        of `ShareDir.pinned_path`; never opened as a whole."""
        return self.root / self.name

    def relpath(self, *names: str) -> str:
        """A path below the folder as shown to clients: relative to the share's base."""
        return "/".join((self.name, *names))

    def open(self) -> ShareDir:
        """The build folder, opened without following a link; close it (or use `with`).

        FileNotFoundError when it is missing; UnsafeSharePath when it is a link or no folder.
        """
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except PermissionError:
            raise ShareAccessDenied(".") from None
        try:
            fd = _open_dir_at(root_fd, self.name, self.name)
        finally:
            os.close(root_fd)
        return ShareDir(fd, self.name, self.path)


def _open_dir_at(dir_fd: int, name: str, relpath: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _DENIED:
            raise ShareAccessDenied(relpath) from None
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        # Linux answers ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW: say which.
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        raise UnsafeSharePath(relpath, f"{_kind(mode)}, not a folder") from None


class ShareDir:
    """An open folder below the share; every method takes names relative to it."""

    def __init__(self, fd: int, relpath: str, path: Path) -> None:
        self.fd = fd
        self.relpath = relpath
        self.path = path

    def __enter__(self) -> ShareDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def rel(self, relative: str) -> str:
        """`relative` as shown to clients (relative to the share's base)."""
        return f"{self.relpath}/{relative}"

    def lstat(self, relative: str) -> os.stat_result | None:
        """The entry itself (a link is not followed), None when it does not exist."""
        *folders, name = _components(relative)
        try:
            if folders:
                with self.subdir("/".join(folders)) as parent:
                    return os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def subdir(self, relative: str) -> ShareDir:
        """A folder below this one, each component opened without following a link."""
        fd = self.fd
        path = self.path
        walked: list[str] = []
        try:
            for name in _components(relative):
                walked.append(name)
                next_fd = _open_dir_at(fd, name, self.rel("/".join(walked)))
                if fd != self.fd:
                    os.close(fd)
                fd = next_fd
                path = path / name
        except BaseException:
            if fd != self.fd:
                os.close(fd)
            raise
        return ShareDir(fd, self.rel(relative), path)

    def open_file(self, relative: str, flags: int = os.O_RDONLY, mode: int = 0o664) -> int:
        """A descriptor of the regular file `relative`; refuses links and other kinds.

        With O_CREAT the file is created when missing, never through a dangling link.
        """
        *folders, name = _components(relative)
        if folders:
            with self.subdir("/".join(folders)) as parent:
                return parent.open_file(name, flags, mode)
        try:
            fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in _DENIED:
                raise ShareAccessDenied(self.rel(name)) from None
            if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise
            kind = _kind(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)
            raise UnsafeSharePath(self.rel(name), f"{kind}, not a regular file") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeSharePath(self.rel(name), f"{_kind(info.st_mode)}, not a regular file")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_private_file(self, relative: str, flags: int, mode: int = 0o664) -> int:
        """Like `open_file`, for a file the service writes in place (a lock's holder line).

        Also refuses a file with more than one hard link: its other name may be anywhere
        on the same file system, another build's package or a job store included.
        """
        fd = self.open_file(relative, flags, mode)
        links = os.fstat(fd).st_nlink
        if links != 1:
            os.close(fd)
            raise UnsafeSharePath(self.rel(relative), f"has {links} hard links")
        return fd

    def read_bytes(self, relative: str, max_bytes: int | None = None) -> bytes:
        """The content of the regular file `relative`; ShareFileTooLarge when it holds
        more than `max_bytes` (a sparse file can claim gigabytes at no cost)."""
        fd = self.open_file(relative)
        with os.fdopen(fd, "rb") as fh:
            if max_bytes is None:
                return fh.read()
            size = os.fstat(fd).st_size
            if size > max_bytes:
                raise ShareFileTooLarge(self.rel(relative), size, max_bytes)
            data = fh.read(max_bytes + 1)  # it may have grown since
            if len(data) > max_bytes:
                raise ShareFileTooLarge(self.rel(relative), os.fstat(fd).st_size, max_bytes)
            return data

    def entries(self) -> Iterator[os.DirEntry[str]]:
        """The entries of this folder; their `is_*`/`stat` calls must pass
        `follow_symlinks=False`."""
        with os.scandir(self.fd) as it:
            yield from it

    def mkdir(self, name: str, mode: int = 0o777) -> None:
        _components(name)
        os.mkdir(name, mode, dir_fd=self.fd)

    def rename(self, src: str, dst: str) -> None:
        """Rename within this folder; a link is renamed itself, never its target."""
        _components(src)
        _components(dst)
        os.rename(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def exchange(self, a: str, b: str) -> bool:
        """Swap two entries in one step (Linux renameat2); False where unsupported."""
        _components(a)
        _components(b)
        libc_name = ctypes.util.find_library("c")
        if libc_name is None:
            return False
        renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)
        if renameat2 is None:
            return False
        rc = renameat2(self.fd, os.fsencode(a), self.fd, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(err, os.strerror(err), self.rel(a))

    def rmtree(self, name: str) -> None:
        """Delete the real folder `name` and what it holds; links inside are unlinked,
        never followed. Refuses when `name` itself is a link or no folder.

        Iterative, with two descriptors open at a time whatever the depth: a planted tree
        thousands of folders deep must neither exhaust the stack (shutil.rmtree recurses)
        nor the descriptors. The walk climbs back through "..", checked to be the very
        folder it came from, so that moving a folder meanwhile cannot lead it elsewhere.
        """
        _components(name)
        info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeSharePath(self.rel(name), f"{_kind(info.st_mode)}, not a folder")
        _remove_tree(self.fd, name, self.rel(name))

    def unlink(self, name: str) -> None:
        _components(name)
        os.unlink(name, dir_fd=self.fd)

    def write_atomically(self, name: str, data: bytes, temp_name: str) -> None:
        """Replace `name` by a new file with `data` (written aside, then renamed over it).

        The temporary file is created exclusively, so a link planted under its name fails
        the write instead of redirecting it; the rename replaces a link, not its target.
        """
        fd = self.open_file(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o664)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self.rename(temp_name, name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                self.unlink(temp_name)
            raise

    def make_default_mode(self) -> None:
        """Give this folder the mode a plain mkdir would have (after a private mkdir)."""
        os.fchmod(self.fd, 0o777 & ~current_umask())

    def places(self) -> dict[str, str]:
        """This folder's server paths (configured and pinned), each with its share-relative
        name: what `share_relative` replaces in messages."""
        return {str(self.path): self.relpath, str(self.pinned_path()): self.relpath}

    def shown(self, text: str) -> str:
        """`text` (an error message) with this folder's server paths made share-relative."""
        return share_relative(text, self.places())

    def pinned_path(self) -> Path:
        """A path to this very folder that no rename or link in the share can redirect.

        `/proc/<pid>/fd/<fd>` names the open folder itself, so writers that need a path
        (image encoders, pool processes) keep writing here even if someone swaps a parent
        folder for a link meanwhile. Where /proc is missing: the configured path.
        """
        pinned = Path(f"/proc/{os.getpid()}/fd/{self.fd}")
        try:
            same = os.path.samestat(os.stat(pinned), os.fstat(self.fd))
        except OSError:
            same = False
        return pinned if same else self.path


@dataclass
class _Level:
    """A folder being emptied: its name in its parent, its identity, its subfolders left."""

    name: str
    identity: os.stat_result
    subfolders: list[str]


def _empty_files_of(fd: int) -> list[str]:
    """Unlink every entry of the folder `fd` but its real subfolders; returns those."""
    subfolders = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)  # a link is unlinked, never followed
    return subfolders


def _remove_tree(parent_fd: int, name: str, relpath: str) -> None:
    """Delete the folder `name` of `parent_fd` and everything below it (see `rmtree`)."""
    fd = _open_dir_at(parent_fd, name, relpath)
    try:
        levels = [_Level(name, os.fstat(fd), _empty_files_of(fd))]
        while levels:
            level = levels[-1]
            if level.subfolders:
                sub = level.subfolders.pop()
                try:
                    child = _open_dir_at(fd, sub, relpath)
                except FileNotFoundError:
                    continue
                except UnsafeSharePath:  # turned into a link or file since it was listed
                    os.unlink(sub, dir_fd=fd)
                    continue
                os.close(fd)
                fd = child
                levels.append(_Level(sub, os.fstat(fd), _empty_files_of(fd)))
                continue
            levels.pop()
            if not levels:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if not os.path.samestat(os.fstat(fd), levels[-1].identity):
                raise UnsafeSharePath(relpath, "was moved while it was being deleted")
            os.rmdir(level.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def nests_deeper_than(value: object, limit: int) -> bool:
    """Whether JSON data read from the share nests more than `limit` arrays and objects
    deep. Walked without recursion: Python's own encoders recurse, and fail (or the
    pydantic serializer refuses) on what a small file can nest."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children)
    return False


def current_umask() -> int:
    """The process's umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_relative(text: str, places: Mapping[str, str]) -> str:
    """`text` with each server path of `places` replaced by its share-relative name.

    A path is replaced only as a whole (`/proc/1/fd/7` is no prefix of `/proc/1/fd/71`).
    """
    if not places:
        return text
    longest_first = "|".join(re.escape(p) for p in sorted(places, key=len, reverse=True))
    return re.sub(rf"(?:{longest_first})(?![\w.-])", lambda m: places[m.group(0)], text)
