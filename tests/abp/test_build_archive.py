"""Opening `.abp` packages: member listing, direct reads and the safety checks."""

from __future__ import annotations

import hashlib
import random
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from clf_analysis.abp import (
    ArchiveLimits,
    BuildArchiveError,
    BuildError,
    PartFile,
    UnsafeArchiveError,
    open_archive,
)
from clf_analysis.abp.archive import GiB, MiB


def make_zip(path: Path, members: dict[str, bytes], *, compress: bool = True) -> Path:
    """A zip with members named exactly as given (backslashes, '..' and all)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def test_backslash_names_are_listed_as_parts(tmp_path: Path) -> None:
    abp = make_zip(
        tmp_path / "b.abp",
        {
            "Models\\Bracket A\\Part.clf": b"abc",
            "Models\\Bracket A\\WaferSupport.clf": b"de",
            "StartPlate\\plate.xml": b"<x/>",
        },
    )
    with open_archive(abp) as archive:
        parts = archive.part_files()
    assert parts == [
        PartFile("Models\\Bracket A\\Part.clf", "Bracket A", "Part.clf", 3),
        PartFile("Models\\Bracket A\\WaferSupport.clf", "Bracket A", "WaferSupport.clf", 2),
    ]
    assert parts[0].key == "Bracket A/Part.clf"


def test_nested_folders_with_spaces_sorted_by_folder_then_name(tmp_path: Path) -> None:
    abp = make_zip(
        tmp_path / "b.abp",
        {
            "Models/z part/Part.clf": b"1",
            "Models/a part/sub dir/Net.clf": b"2",
            "Models/a part/Part.clf": b"3",
            "models/a part/Net.CLF": b"4",
            "Models/Top.clf": b"5",
            "Models/a part/readme.txt": b"6",
            "Other/Models/x.clf": b"7",
            "Models/empty/": b"",
        },
    )
    with open_archive(abp) as archive:
        keys = [p.key for p in archive.part_files()]
    assert keys == [
        "/Top.clf",
        "a part/Net.CLF",
        "a part/Part.clf",
        "a part/sub dir/Net.clf",
        "z part/Part.clf",
    ]


def test_read_returns_member_bytes_without_extracting(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40
    abp = make_zip(tmp_path / "b.abp", {"Models\\P\\Part.clf": payload})
    before = sorted(tmp_path.rglob("*"))
    with open_archive(abp) as archive:
        (part,) = archive.part_files()
        assert archive.read(part) == payload
    assert sorted(tmp_path.rglob("*")) == before


def test_size_and_sha256_describe_the_package_file(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"x" * 100})
    with open_archive(abp) as archive:
        assert archive.size_bytes == abp.stat().st_size
        assert archive.sha256() == hashlib.sha256(abp.read_bytes()).hexdigest()
        assert archive.path == abp


def test_read_of_a_foreign_member_is_a_build_error(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"x"})
    with open_archive(abp) as archive, pytest.raises(BuildArchiveError, match="no member"):
        archive.read(PartFile("Models/Q/Part.clf", "Q", "Part.clf", 1))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("\\Models\\P\\Part.clf", "absolute"),
        ("C:\\Models\\Part.clf", "drive letter"),
        ("c:Models/Part.clf", "drive letter"),
        ("Models/../../evil.clf", "'..'"),
        ("Models\\..\\..\\evil.clf", "'..'"),
        ("..", "'..'"),
    ],
)
def test_unsafe_member_names_are_rejected_by_name(tmp_path: Path, name: str, reason: str) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"ok", name: b"bad"})
    with pytest.raises(UnsafeArchiveError) as info:
        open_archive(abp)
    assert repr(name) in str(info.value)
    assert reason in str(info.value)


def test_dots_inside_names_are_not_traversal(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/v1..2/Part..clf": b"ok"})
    with open_archive(abp) as archive:
        assert [p.folder for p in archive.part_files()] == ["v1..2"]


def test_duplicate_names_after_normalisation_are_rejected(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"a", "Models\\P\\Part.clf": b"b"})
    with pytest.raises(UnsafeArchiveError, match="duplicate"):
        open_archive(abp)


def test_too_many_members(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {f"Models/P{i}/Part.clf": b"x" for i in range(6)})
    with pytest.raises(UnsafeArchiveError, match=r"6 members, more than the limit of 5"):
        open_archive(abp, ArchiveLimits(max_members=5))
    with open_archive(abp, ArchiveLimits(max_members=6)) as archive:
        assert len(archive.part_files()) == 6


def test_compression_ratio_bomb(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": bytes(4 * 1024 * 1024)})
    with pytest.raises(UnsafeArchiveError, match=r"compression ratio \d+ .*limit of 200"):
        open_archive(abp)


def test_small_repetitive_members_are_not_treated_as_bombs(tmp_path: Path) -> None:
    # 64 KiB of zeros compresses > 200x, but stays below ratio_min_size.
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": bytes(64 * 1024)})
    with open_archive(abp) as archive:
        assert archive.read(archive.part_files()[0]) == bytes(64 * 1024)


def test_total_uncompressed_size_limit(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {f"Models/P{i}/Part.clf": b"x" * 400 for i in range(3)})
    with pytest.raises(UnsafeArchiveError, match=r"1200 bytes uncompressed .* limit of 1000"):
        open_archive(abp, ArchiveLimits(max_total_uncompressed=1000))


def test_member_size_limit(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"x" * 500})
    with pytest.raises(UnsafeArchiveError, match=r"declares 500 bytes"):
        open_archive(abp, ArchiveLimits(max_member_size=499))


def _patch_uncompressed_size(path: Path, declared: int) -> None:
    """Make both zip headers of the single member lie about its uncompressed size."""
    raw = bytearray(path.read_bytes())
    local = raw.index(b"PK\x03\x04")
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)
    struct.pack_into("<I", raw, central + 24, declared)
    path.write_bytes(bytes(raw))


def test_member_inflating_past_its_declared_size_is_an_error(tmp_path: Path) -> None:
    # The limits were checked against the declared 10 bytes; the real 5000 must never be
    # returned (zipfile stops at the declared size and fails the CRC; read() re-checks).
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"y" * 5000})
    _patch_uncompressed_size(abp, 10)
    with open_archive(abp) as archive:
        (part,) = archive.part_files()
        assert part.size == 10
        with pytest.raises(BuildArchiveError, match=r"Part\.clf"):
            archive.read(part)


def test_not_a_zip_names_the_path(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.abp"
    bogus.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(BuildArchiveError, match=r"bogus\.abp"):
        open_archive(bogus)


def test_truncated_zip_is_a_build_error(tmp_path: Path) -> None:
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": b"z" * 1000})
    abp.write_bytes(abp.read_bytes()[:-30])
    with pytest.raises(BuildArchiveError, match=r"b\.abp"):
        open_archive(abp)


def test_missing_package_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildArchiveError, match="not found"):
        open_archive(tmp_path / "nope.abp")


def test_every_error_is_a_build_error() -> None:
    assert issubclass(UnsafeArchiveError, BuildArchiveError)
    assert issubclass(BuildArchiveError, BuildError)


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_ratio"):
        ArchiveLimits(max_ratio=0)


# --- packages that cost the service more than their author: sparse gaps, huge directories


def _sparse_prefix(path: Path, zip_bytes: bytes, gap: int) -> Path:
    """`zip_bytes` behind `gap` bytes of a hole: no disk used, every byte reads as zero."""
    with path.open("wb") as fh:
        fh.seek(gap)
        fh.write(zip_bytes)
    return path


def test_a_zip_behind_a_sparse_gap_is_refused_before_a_byte_is_hashed(tmp_path: Path) -> None:
    # zipfile finds the archive from its end and skips the gap (a "self-extractor"
    # prefix): the package was valid and was hashed whole, 83 s for 20 GB.
    inner = make_zip(tmp_path / "inner.zip", {"Models/P/Part.clf": b"x" * 100}).read_bytes()
    abp = _sparse_prefix(tmp_path / "b.abp", inner, GiB)
    with pytest.raises(UnsafeArchiveError, match=r"the first member starts at byte 1073741824"):
        open_archive(abp)


def test_a_sparse_gap_before_the_central_directory_is_refused(tmp_path: Path) -> None:
    raw = make_zip(tmp_path / "inner.zip", {"Models/P/Part.clf": b"x" * 100}).read_bytes()
    directory = raw.index(b"PK\x01\x02")
    end = bytearray(raw[raw.index(b"PK\x05\x06") :])
    struct.pack_into("<I", end, 16, directory + GiB)  # where the directory now starts
    abp = tmp_path / "b.abp"
    with abp.open("wb") as fh:
        fh.write(raw[:directory])
        fh.seek(directory + GiB)
        fh.write(raw[directory : raw.index(b"PK\x05\x06")] + bytes(end))
    with pytest.raises(UnsafeArchiveError, match=r"\d+ bytes belong to no member"):
        open_archive(abp)


def test_a_few_bytes_before_the_first_member_are_accepted(tmp_path: Path) -> None:
    inner = make_zip(tmp_path / "inner.zip", {"Models/P/Part.clf": b"x" * 100}).read_bytes()
    abp = tmp_path / "b.abp"
    abp.write_bytes(b"#!stub\n" * 100 + inner)
    with open_archive(abp) as archive:
        assert archive.read(archive.part_files()[0]) == b"x" * 100


def test_a_package_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    content = random.Random(1).randbytes(2000)
    abp = make_zip(tmp_path / "b.abp", {"Models/P/Part.clf": content}, compress=False)
    size = abp.stat().st_size
    with pytest.raises(UnsafeArchiveError, match=rf"{size} bytes, more than the limit of 1000"):
        open_archive(abp, ArchiveLimits(max_package_size=1000))


def _many_members(path: Path, count: int, declared: int | None = None) -> Path:
    """A zip of `count` empty stored members, written record by record (zipfile takes
    minutes for 300,000); the end records declare `declared` entries (default: count),
    in the zip64 record when more than 65,535."""
    locals_, central = bytearray(), bytearray()
    for i in range(count):
        name = f"m/{i:06d}".encode()
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0,
            0, len(locals_),
        ) + name  # fmt: skip
        locals_ += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
        locals_ += name
    entries = count if declared is None else declared
    zip64 = b""
    if entries > 0xFFFF:
        record_at = len(locals_) + len(central)
        zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries,
                            len(central), len(locals_))  # fmt: skip
        zip64 += struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
        entries = 0xFFFF
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, len(central),
                      len(locals_), 0)  # fmt: skip
    path.write_bytes(bytes(locals_ + central + zip64 + end))
    return path


@pytest.mark.parametrize("declared", [None, 5], ids=["declared", "lying-end-record"])
def test_300000_members_are_refused_without_parsing_them(tmp_path: Path, declared) -> None:
    abp = _many_members(tmp_path / "b.abp", 300_000, declared)
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchiveError, match=r"more than .*20000"):
            open_archive(abp)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # zipfile builds an object per member: hundreds of MB. The end record is 22 bytes;
    # counting walks the 17 MB directory once.
    assert peak < 40 * MiB


def test_a_directory_larger_than_its_members_may_take_is_refused(tmp_path: Path) -> None:
    abp = _many_members(tmp_path / "b.abp", 30, declared=1)
    with pytest.raises(UnsafeArchiveError, match=r"central directory of \d+ bytes"):
        open_archive(abp, ArchiveLimits(max_members=1))
