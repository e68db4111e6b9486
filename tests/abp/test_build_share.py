"""The share module: nothing below the base is followed, created or written through a link."""

from __future__ import annotations

import os
import resource
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from clf_analysis.abp.errors import UnsafeSharePath
from clf_analysis.abp.share import BuildFolder, ShareDir, share_relative


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


@pytest.fixture
def build(tmp_path: Path) -> Iterator[ShareDir]:
    (tmp_path / "base" / "b-1" / "sub").mkdir(parents=True)
    (tmp_path / "base" / "b-1" / "sub" / "file.txt").write_text("inside")
    with BuildFolder(tmp_path / "base", "b-1").open() as share:
        yield share


def test_files_and_folders_below_the_build_are_read(build: ShareDir) -> None:
    assert build.read_bytes("sub/file.txt") == b"inside"
    with build.subdir("sub") as sub:
        assert sub.relpath == "b-1/sub"
        assert [e.name for e in sub.entries()] == ["file.txt"]


@pytest.mark.parametrize("where", ["sub/link.txt", "link.txt"])
def test_a_link_to_a_file_is_refused_when_read(build: ShareDir, outside: Path, where: str) -> None:
    (build.path / where).symlink_to(outside / "secret.txt")
    with pytest.raises(UnsafeSharePath, match=f"b-1/{where} is a symbolic link"):
        build.read_bytes(where)


def test_a_link_to_a_folder_is_refused_at_any_depth(build: ShareDir, outside: Path) -> None:
    (build.path / "sub" / "deeper").symlink_to(outside)
    with pytest.raises(UnsafeSharePath, match="b-1/sub/deeper is a symbolic link"):
        build.read_bytes("sub/deeper/secret.txt")
    with pytest.raises(UnsafeSharePath, match="b-1/sub/deeper is a symbolic link"):
        build.subdir("sub/deeper")


def test_the_build_folder_itself_may_not_be_a_link(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "b-2").symlink_to(outside)
    with pytest.raises(UnsafeSharePath, match="b-2 is a symbolic link, not a folder"):
        BuildFolder(tmp_path / "base", "b-2").open()


def test_creating_through_a_dangling_link_is_refused(build: ShareDir, outside: Path) -> None:
    (build.path / "new.lock").symlink_to(outside / "created")
    with pytest.raises(UnsafeSharePath):
        build.open_file("new.lock", os.O_RDWR | os.O_CREAT)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_fifo_is_refused_without_hanging(build: ShareDir) -> None:
    os.mkfifo(build.path / "pipe.json")
    with pytest.raises(UnsafeSharePath, match="special file"):
        build.read_bytes("pipe.json")


def test_a_hard_linked_file_is_never_opened_for_writing(build: ShareDir, outside: Path) -> None:
    os.link(outside / "secret.txt", build.path / "x.lock")
    with pytest.raises(UnsafeSharePath, match="has 2 hard links"):
        build.open_private_file("x.lock", os.O_RDWR)
    assert (outside / "secret.txt").read_text() == "secret"


def test_an_atomic_write_replaces_a_link_not_its_target(build: ShareDir, outside: Path) -> None:
    (build.path / "log.json").symlink_to(outside / "secret.txt")
    build.write_atomically("log.json", b"{}", ".log.json.tmp")
    assert (outside / "secret.txt").read_text() == "secret"
    assert stat.S_ISREG(os.lstat(build.path / "log.json").st_mode)
    assert (build.path / "log.json").read_bytes() == b"{}"


def test_an_atomic_write_through_a_planted_temp_link_fails(build: ShareDir, outside: Path) -> None:
    (build.path / ".log.json.tmp").symlink_to(outside / "secret.txt")
    with pytest.raises(FileExistsError):
        build.write_atomically("log.json", b"{}", ".log.json.tmp")
    assert (outside / "secret.txt").read_text() == "secret"


def test_rmtree_unlinks_links_inside_and_refuses_a_link_itself(
    build: ShareDir, outside: Path
) -> None:
    (build.path / "sub" / "out").symlink_to(outside)
    (build.path / "alias").symlink_to(outside)
    with pytest.raises(UnsafeSharePath, match="b-1/alias is a symbolic link"):
        build.rmtree("alias")
    build.rmtree("sub")
    assert not (build.path / "sub").exists()
    assert (outside / "secret.txt").read_text() == "secret"


def test_a_pinned_path_keeps_naming_the_folder_after_it_is_swapped_for_a_link(
    tmp_path: Path, outside: Path
) -> None:
    (tmp_path / "base" / "b-1").mkdir(parents=True)
    with BuildFolder(tmp_path / "base", "b-1").open() as share:
        pinned = share.pinned_path()
        os.rename(tmp_path / "base" / "b-1", tmp_path / "moved")
        (tmp_path / "base" / "b-1").symlink_to(outside)
        (pinned / "written.txt").write_text("here")
        assert share.shown(f"cannot write {pinned}/x.png") == "cannot write b-1/x.png"
    assert (tmp_path / "moved" / "written.txt").read_text() == "here"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_share_relative_replaces_whole_paths_only() -> None:
    places = {"/proc/1/fd/7": "b-1/clf_analysis.tmp-x", "/midas/b-1": "b-1"}
    text = "'/midas/b-1/a.abp' /midas/b-12 /proc/1/fd/7/holes_views /proc/1/fd/71"
    assert share_relative(text, places) == (
        "'b-1/a.abp' /midas/b-12 b-1/clf_analysis.tmp-x/holes_views /proc/1/fd/71"
    )


@pytest.mark.parametrize("relative", ["../x", "a//b", "/etc/passwd", ".", "a/./b"])
def test_path_tricks_are_programming_errors(build: ShareDir, relative: str) -> None:
    with pytest.raises(ValueError, match="not a plain relative path"):
        build.lstat(relative)


def test_rmtree_deletes_a_tree_deeper_than_python_recurses_with_few_descriptors(
    build: ShareDir, outside: Path, deep_tree
) -> None:
    (build.path / "old").mkdir()
    bottom = deep_tree(build.path / "old", 1200)
    (bottom / "link").symlink_to(outside)  # deleted, never followed
    open_now = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A descriptor per level would need 1200 more; the walk holds two at a time.
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 16, hard))
    try:
        build.rmtree("old")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not (build.path / "old").exists()
    assert (outside / "secret.txt").read_text() == "secret"
