"""Folder exclusions: the default list, custom files and invalid files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clf_analysis.abp import ExclusionsError, PartFile, load_exclusions

SPEC_DEFAULTS = (
    "_Support",
    "supports",
    "SUPPORTS",
    "Supports",
    "ebm-ti64",
    "Porous",
    "porous",
    "Cylinder",
    "Support",
    "Coupon",
    "s_Skin",
    "hiplabel",
    "Birdcage",
    "_s_",
)


def part(folder: str, name: str = "Part.clf") -> PartFile:
    return PartFile(member=f"Models/{folder}/{name}", folder=folder, name=name, size=1)


def test_default_list_is_the_spec_list() -> None:
    assert load_exclusions(None).patterns == SPEC_DEFAULTS


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("Bracket A", None),
        ("Test Support 2", "_Support"),  # spaces read as '_'
        ("Coupons/tensile", "Coupon"),
        ("Lattice/porous cube", "porous"),
        ("outer_s_Skin", "s_Skin"),
        ("my part_s_1", "_s_"),
        ("support", None),  # case-sensitive: 'support' is not in the list
        ("", None),
    ],
)
def test_default_matching(folder: str, expected: str | None) -> None:
    assert load_exclusions(None).match(folder) == expected


def test_split_keeps_order_and_names_the_pattern() -> None:
    parts = [part("Bracket"), part("Coupon 1"), part("Gear"), part("SUPPORTS")]
    included, excluded = load_exclusions(None).split(parts)
    assert included == [parts[0], parts[2]]
    assert excluded == [(parts[1], "Coupon"), (parts[3], "SUPPORTS")]


def test_custom_file(tmp_path: Path) -> None:
    path = tmp_path / "ex.json"
    path.write_text(json.dumps({"_comment": "site list", "folder_exclusions": ["Gear", "x y"]}))
    exclusions = load_exclusions(path)
    assert exclusions.patterns == ("Gear", "x y")
    assert exclusions.match("Big Gear") == "Gear"
    assert exclusions.match("Coupon") is None


def test_empty_list_excludes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ex.json"
    path.write_text('{"folder_exclusions": []}')
    included, excluded = load_exclusions(path).split([part("Support")])
    assert len(included) == 1 and excluded == []


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ExclusionsError, match=r"nope\.json: exclusions file not found"):
        load_exclusions(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON at line 1"),
        ('["Support"]', "expected a JSON object"),
        ("{}", "missing key 'folder_exclusions'"),
        ('{"folder_exclusion": ["a"]}', "unknown key"),
        ('{"folder_exclusions": "Support"}', "must be a list of strings, got str"),
        ('{"folder_exclusions": ["ok", ""]}', r"folder_exclusions\[1\] must be a non-empty string"),
        ('{"folder_exclusions": ["ok", 3]}', r"folder_exclusions\[1\] must be a non-empty string"),
        ('{"folder_exclusions": [null]}', r"folder_exclusions\[0\]"),
    ],
)
def test_invalid_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ex.json"
    path.write_text(content)
    with pytest.raises(ExclusionsError, match=message) as info:
        load_exclusions(path)
    assert str(path) in str(info.value)
