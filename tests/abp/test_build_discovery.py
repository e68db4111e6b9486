"""Build ids and finding the package of a build under the MIDAS base path."""

from __future__ import annotations

from pathlib import Path

import pytest

from clf_analysis.abp import BuildNotFound, InvalidBuildId, find_build_package, validate_build_id
from clf_analysis.abp.errors import BuildRefused


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("14", "14"),
        (14, "14"),
        ("build-14_v2.1", "build-14_v2.1"),
        ("a" * 64, "a" * 64),
        ("x.", "x."),
    ],
)
def test_valid_build_ids(value: str | int, expected: str) -> None:
    assert validate_build_id(value) == expected


@pytest.mark.parametrize(
    "value",
    ["../x", "a/b", "a\\b", "..", ".", ".hidden", "a" * 65, "", "bäd", "١٢", "a b", "14\n", True],
)
def test_invalid_build_ids(value: object) -> None:
    with pytest.raises(InvalidBuildId):
        validate_build_id(value)  # type: ignore[arg-type]


def test_invalid_build_id_is_a_value_error_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"invalid build id '\.\./x'"):
        validate_build_id("../x")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK")
    return path


def test_missing_folder_is_not_found_and_never_created(tmp_path: Path) -> None:
    with pytest.raises(BuildNotFound, match="no folder"):
        find_build_package(tmp_path, "77")
    assert not (tmp_path / "77").exists()


def test_folder_without_package_has_its_own_message(tmp_path: Path) -> None:
    (tmp_path / "77").mkdir()
    _touch(tmp_path / "77" / "notes.txt")
    with pytest.raises(BuildNotFound, match=r"no \.abp package"):
        find_build_package(tmp_path, "77")


def test_single_package_is_found(tmp_path: Path) -> None:
    abp = _touch(tmp_path / "77" / "preprocess build-77.abp")
    assert find_build_package(tmp_path, "77").path == abp


def test_package_whose_name_contains_the_id_is_preferred(tmp_path: Path) -> None:
    _touch(tmp_path / "77" / "a-other.abp")
    wanted = _touch(tmp_path / "77" / "preprocess build-77.abp")
    _touch(tmp_path / "77" / "z build-77 copy.abp")
    assert find_build_package(tmp_path, "77").path == wanted


def test_without_id_in_any_name_the_first_sorted_wins(tmp_path: Path) -> None:
    _touch(tmp_path / "77" / "b.abp")
    first = _touch(tmp_path / "77" / "a.abp")
    assert find_build_package(tmp_path, "77").path == first


def test_traversal_id_is_rejected_before_touching_the_disk(tmp_path: Path) -> None:
    with pytest.raises(InvalidBuildId):
        find_build_package(tmp_path / "base", "../outside")


def test_symlinked_package_outside_base_is_refused(tmp_path: Path) -> None:
    outside = _touch(tmp_path / "elsewhere" / "secret.abp")
    (tmp_path / "base" / "77").mkdir(parents=True)
    (tmp_path / "base" / "77" / "build-77.abp").symlink_to(outside)
    with pytest.raises(BuildRefused, match=r"77/build-77\.abp is a symbolic link") as caught:
        find_build_package(tmp_path / "base", "77")
    assert str(tmp_path) not in str(caught.value)  # named relative to the share


def test_package_link_to_a_regular_file_beside_it_reads_that_file(tmp_path: Path) -> None:
    real = _touch(tmp_path / "77" / "build-77_v2.abp")
    (tmp_path / "77" / "build-77.abp").symlink_to("build-77_v2.abp")
    package = find_build_package(tmp_path, "77")
    assert (package.name, package.link, package.path) == ("build-77_v2.abp", "build-77.abp", real)


@pytest.mark.parametrize(
    "target",
    [
        "../78/build-78.abp",  # another build
        "{root}/78/build-78.abp",  # the same, absolute
        "sub/inner.abp",  # a folder below: not beside it
        "chain.abp",  # a link to a link
        "missing.abp",
    ],
)
def test_package_links_that_do_not_name_a_file_beside_them_are_refused(
    tmp_path: Path, target: str
) -> None:
    _touch(tmp_path / "78" / "build-78.abp")
    _touch(tmp_path / "77" / "sub" / "inner.abp")
    (tmp_path / "77" / "chain.abp").symlink_to("../78/build-78.abp")
    (tmp_path / "77" / "build-77.abp").symlink_to(target.format(root=tmp_path))
    with pytest.raises(BuildRefused, match=r"build '77': package 77/build-77\.abp"):
        find_build_package(tmp_path, "77")


def test_build_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "78" / "build-78.abp")
    (tmp_path / "77").symlink_to(tmp_path / "78")
    with pytest.raises(BuildRefused, match="77 is a symbolic link"):
        find_build_package(tmp_path, "77")


def test_directory_named_abp_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "77" / "dir-77.abp").mkdir(parents=True)
    real = _touch(tmp_path / "77" / "x.abp")
    assert find_build_package(tmp_path, "77").path == real
