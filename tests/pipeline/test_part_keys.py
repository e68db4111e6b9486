"""Part keys name files: one key per part, the same in every run, short enough for any disk."""

from __future__ import annotations

import json
import random
import re

import cv2
import numpy as np
from package_builders import cube_clf, write_package

from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.part_keys import MAX_KEY_CHARS, part_keys, readable_key
from clf_analysis.pipeline.run import run

PARAMS = AnalysisParams(holes_interval=1.0, clean_platform_heights=(1.0,))
ZS = [round(0.05 * k, 4) for k in range(1, 21)]
HASHED = re.compile(r"-[0-9a-f]{8}$")
NAME_MAX_BYTES = 255


def _analyse(base, build_id, members):
    write_package(base, build_id, members)
    result = run(build_id, PARAMS, midas_base_path=base)
    return result, json.loads(result.summary_path.read_text())


def _keys_by_folder(info):
    """Folder -> the key its identifier view is named by (each folder holds one part)."""
    keys = {}
    for view in info["identifier_platform_views"]:
        name = view["filename"].removeprefix("identifier_views/identifier_")
        keys[view["folder"]] = name.removesuffix("_platform_view.png")
    return keys


def test_readable_keys_stay_as_they_were_when_unique():
    keys = part_keys([("Build Plate/Tube 01", "Part.clf", 1), ("", "Net.clf", 3)])
    assert keys == {
        ("Build Plate/Tube 01", "Part.clf", 1): "Build_Plate_Tube_01-Part-1",
        ("", "Net.clf", 3): "Net-3",
    }


def test_clashing_keys_all_get_a_suffix_whatever_the_order():
    parts = [
        ("a b", "Part.clf", 1),
        ("a_b", "Part.clf", 1),
        ("a/b", "Part.clf", 1),
        ("c", "P.clf", 1),
    ]
    keys = part_keys(parts)
    for order in range(5):
        shuffled = parts[:]
        random.Random(order).shuffle(shuffled)
        assert part_keys(shuffled) == keys
    assert len(set(keys.values())) == 4
    for key in parts[:3]:
        assert keys[key].startswith("a_b-Part-1-") and HASHED.search(keys[key])
    assert keys[("c", "P.clf", 1)] == "c-P-1"


def test_a_readable_key_equal_to_a_suffixed_one_is_suffixed_too():
    # A suffix of decimal digits reads like a model id: find such a pair of parts, then
    # add a third part whose readable key is exactly the first pair's suffixed key.
    for model_id in range(1, 1000):
        pair = [("a b", "Part.clf", model_id), ("a_b", "Part.clf", model_id)]
        suffixed = part_keys(pair)[pair[1]]
        digits = suffixed.rsplit("-", 1)[1]
        if digits.isdigit() and not digits.startswith("0"):
            break
    lookalike = ("a_b", f"Part-{model_id}.clf", int(digits))
    assert readable_key(lookalike) == suffixed
    keys = part_keys([*pair, lookalike])
    assert len(set(keys.values())) == 3
    assert keys == part_keys([lookalike, *reversed(pair)])


def test_long_keys_are_cut_and_keep_distinct_parts_apart():
    long_a = ("L" * 299 + "a", "Part.clf", 1)
    long_b = ("L" * 299 + "b", "Part.clf", 1)
    keys = part_keys([long_a, long_b])
    assert keys[long_a] != keys[long_b]
    assert all(len(k) <= MAX_KEY_CHARS and HASHED.search(k) for k in keys.values())
    assert keys == part_keys([long_b, long_a])


def test_two_folders_meeting_on_one_key_get_one_image_each(tmp_path):
    # Issue 16, defect 8: both parts were keyed `a_b-Part-1`; one image overwrote the other.
    members = {
        "Models/a b/Part.clf": cube_clf(ZS, 0.05, half=3.0, cx=-40.0),
        "Models/a_b/Part.clf": cube_clf(ZS, 0.05, half=3.0, cx=40.0),
    }
    result, info = _analyse(tmp_path, "twin-names", members)
    keys = _keys_by_folder(info)
    assert set(keys) == {"a b", "a_b"}
    assert keys["a b"] != keys["a_b"]
    assert all(k.startswith("a_b-Part-1-") and HASHED.search(k) for k in keys.values())
    views = sorted((result.output_dir / "identifier_views").glob("identifier_a_b*"))
    assert [p.name for p in views] == sorted(
        f"identifier_{k}_platform_view.png" for k in keys.values()
    )
    listed = {v["filename"] for v in info["identifier_platform_views"]}
    assert listed == {f"identifier_views/{p.name}" for p in views}
    assert {v["part_key"] for v in info["identifier_platform_views"]} == set(keys.values())
    assert {p["part_key"] for p in info["parts"]} == set(keys.values())
    assert set(info["closed_paths_by_part"]) == set(keys.values())
    # Each view highlights its own part: the two images differ.
    first, second = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in views)
    assert not np.array_equal(first, second)


def test_keys_do_not_depend_on_the_order_of_the_package(tmp_path):
    members = {
        "Models/a b/Part.clf": cube_clf(ZS, 0.05, cx=-40.0),
        "Models/a_b/Part.clf": cube_clf(ZS, 0.05, cx=40.0),
        "Models/c/Part.clf": cube_clf(ZS, 0.05, cx=0.0),
    }
    _, forward = _analyse(tmp_path, "order-1", members)
    _, backward = _analyse(tmp_path, "order-2", dict(reversed(members.items())))
    _, again = _analyse(tmp_path / "again", "order-1", members)
    assert _keys_by_folder(forward) == _keys_by_folder(backward) == _keys_by_folder(again)
    assert _keys_by_folder(forward)["c"] == "c-Part-1"


def test_a_300_character_folder_analyses_with_short_file_names(tmp_path):
    # Issue 16, defect 8: the job failed with "File name too long".
    long_a, long_b = "L" * 299 + "a", "L" * 299 + "b"
    members = {
        f"Models/{long_a}/Part.clf": cube_clf(ZS, 0.05, cx=-40.0),
        f"Models/{long_b}/Part.clf": cube_clf(ZS, 0.05, cx=40.0),
    }
    result, info = _analyse(tmp_path, "long-names", members)
    keys = _keys_by_folder(info)
    assert set(keys) == {long_a, long_b} and len(set(keys.values())) == 2
    assert all(len(k) <= MAX_KEY_CHARS and HASHED.search(k) for k in keys.values())
    names = [p.name for p in result.output_dir.rglob("*")]
    longest = max(len(n.encode()) for n in names)
    assert longest == len("identifier__platform_view.png") + MAX_KEY_CHARS < NAME_MAX_BYTES
    views = {p.name for p in (result.output_dir / "identifier_views").glob("identifier_L*")}
    assert views == {f"identifier_{k}_platform_view.png" for k in keys.values()}
