"""The generated package: determinism, zip layout, designs, exclusions, placement."""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

import pytest

from clf_analysis.abp import load_exclusions, open_archive
from clf_analysis.cli import main
from clf_analysis.synth import GeneratedBuild, GroundTruth, generate_build, load_ground_truth
from clf_analysis.synth.designs import EXCLUDED_DESIGNS, PART_DESIGNS


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    first = generate_build(tmp_path / "a", parts=9, height_mm=2.0, seed=3)
    second = generate_build(tmp_path / "b", parts=9, height_mm=2.0, seed=3)
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert first.ground_truth.read_bytes() == second.ground_truth.read_bytes()


def test_another_seed_gives_another_build(tmp_path: Path) -> None:
    first = generate_build(tmp_path / "a", parts=3, height_mm=2.0, seed=1)
    second = generate_build(tmp_path / "b", parts=3, height_mm=2.0, seed=2)
    assert first.archive.read_bytes() != second.archive.read_bytes()


def test_package_sits_where_discovery_looks(demo_build: GeneratedBuild) -> None:
    assert demo_build.archive.name == "preprocess build-demo-0001.abp"
    assert demo_build.archive.parent == demo_build.build_dir
    assert demo_build.ground_truth.parent == demo_build.build_dir
    assert sorted(p.name for p in demo_build.build_dir.iterdir()) == [
        "ground_truth.json",
        "preprocess build-demo-0001.abp",
    ]


def test_zip_mixes_separators_and_carries_start_plate_xml(demo_build: GeneratedBuild) -> None:
    with zipfile.ZipFile(demo_build.archive) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
    clf = [n for n in names if n.endswith(".clf")]
    assert any("\\" in n for n in clf) and any("/" in n for n in clf)
    assert all(n.replace("\\", "/").startswith("Models/") for n in clf)
    xml = [n.replace("\\", "/") for n in names if n.endswith(".xml")]
    assert len(xml) >= 2 and all(n.startswith("StartPlate/") for n in xml)
    assert any("\\" in n for n in names if n.endswith(".xml"))
    assert "ground_truth.json" not in {n.rsplit("/", 1)[-1] for n in names}


def test_archive_reader_sees_the_files_of_the_truth(
    demo_build: GeneratedBuild, demo_truth: GroundTruth
) -> None:
    with open_archive(demo_build.archive) as archive:
        found = [(p.folder, p.name, p.member) for p in archive.part_files()]
    assert found == [(f.folder, f.name, f.member) for f in demo_truth.files]
    folders = {f.folder for f in demo_truth.files}
    assert any(" " in f for f in folders)
    assert any(f.count("/") >= 2 for f in folders)  # nested folders


def test_every_design_is_present(demo_truth: GroundTruth) -> None:
    designs = {f.design for f in demo_truth.files}
    expected = {name for name, _, _ in PART_DESIGNS} | {name for name, *_ in EXCLUDED_DESIGNS}
    assert designs == expected | {"lattice_net", "wafer_support"}
    names = {f.name for f in demo_truth.files}
    assert names == {"Part.clf", "Net.clf", "WaferSupport.clf"}


def test_parts_counts_analysed_part_files_and_designs_cycle(
    crowded_build: GeneratedBuild,
) -> None:
    truth = load_ground_truth(crowded_build.ground_truth)
    analysed = [f for f in truth.included_files if f.name == "Part.clf"]
    assert len(analysed) == 24
    per_design = {name: 0 for name, _, _ in PART_DESIGNS}
    for f in analysed:
        per_design[f.design] += 1
    assert set(per_design.values()) == {3}
    # Cycled designs differ in size and place.
    tubes = [f.bbox for f in analysed if f.design == "tube"]
    assert len(set(tubes)) == 3


def test_excluded_folders_are_those_the_default_list_matches(demo_truth: GroundTruth) -> None:
    exclusions = load_exclusions(None)
    for f in demo_truth.files:
        assert exclusions.match(f.folder) == f.excluded_by, f.folder
        assert f.excluded == (f.excluded_by is not None)
    assert {f.excluded_by for f in demo_truth.excluded_files} == {
        "Supports",
        "Coupon",
        "Birdcage",
        "s_Skin",
    }
    # Nothing named like an excluded pattern is counted as a part.
    excluded_folders = {f.folder for f in demo_truth.excluded_files}
    assert not any(key[0] in excluded_folders for key in demo_truth.parts)


@pytest.mark.parametrize("which", ["demo", "crowded"])
def test_files_stay_on_the_plate_without_overlapping(
    which: str, demo_build: GeneratedBuild, crowded_build: GeneratedBuild
) -> None:
    build = demo_build if which == "demo" else crowded_build
    truth = load_ground_truth(build.ground_truth)
    for f in truth.files:
        x0, y0, x1, y1 = f.bbox
        assert -100 <= x0 < x1 <= 100 and -100 <= y0 < y1 <= 100, f.folder
        assert 5 - 1e-3 <= max(x1 - x0, y1 - y0) <= 30 + 1e-3, f.folder
    for a, b in itertools.combinations(truth.files, 2):
        if a.folder == b.folder:
            continue  # a wafer support stands under its own part
        ax0, ay0, ax1, ay1 = a.bbox
        bx0, by0, bx1, by1 = b.bbox
        disjoint = ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0
        assert disjoint, (a.folder, b.folder)


def test_wafer_support_ends_below_its_part(demo_truth: GroundTruth) -> None:
    supports = [f for f in demo_truth.files if f.name == "WaferSupport.clf"]
    assert supports
    for support in supports:
        part = next(
            f for f in demo_truth.files if f.folder == support.folder and f.name == "Part.clf"
        )
        assert support.z_min == demo_truth.layer_thickness
        assert part.z_min == pytest.approx(support.z_max + demo_truth.layer_thickness)
        assert support.sections[0]["shapes"]["support"] == 3


def test_two_models_in_one_file_and_model_ids_reused_across_files(
    demo_truth: GroundTruth,
) -> None:
    twin = [f for f in demo_truth.files if len(f.models) == 2]
    assert len(twin) == 1 and [m[0] for m in twin[0].models] == [1, 2]
    keys_with_id_1 = [k for k in demo_truth.parts if k[2] == 1]
    assert len({k[0] for k in keys_with_id_1}) >= 7
    twin_keys = [k for k in demo_truth.parts if k[0] == twin[0].folder]
    assert [k[2] for k in twin_keys] == [1, 2]
    # The second model is shorter: z ranges are per part, not per file.
    bar, block = (demo_truth.parts[k] for k in twin_keys)
    assert block.z_max < bar.z_max


def test_build_height_and_grid(demo_truth: GroundTruth, demo_build: GeneratedBuild) -> None:
    heights = demo_truth.heights
    assert len(heights) == demo_build.layers == 400
    assert heights[0] == 0.05 and heights[-1] == 20.0 and heights[2] == 0.15
    assert max(p.z_max for p in demo_truth.parts.values()) == 20.0


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_build(tmp_path, parts=0)
    with pytest.raises(ValueError):
        generate_build(tmp_path, height_mm=0.5)
    with pytest.raises(ValueError):
        generate_build(tmp_path, vertices=(2, 10))
    with pytest.raises(ValueError):
        generate_build(tmp_path, build_id="../escape")
    with pytest.raises(ValueError, match="do not fit"):
        generate_build(tmp_path, parts=2000, height_mm=1.0)
    assert not any(tmp_path.iterdir())


def test_demo_command_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--out", str(tmp_path), "--parts", "2", "--height", "1", "--seed", "5"])
    out = capsys.readouterr().out
    assert code == 0
    archive = tmp_path / "demo-0001" / "preprocess build-demo-0001.abp"
    assert archive.is_file()
    assert str(archive) in out and "ground_truth.json" in out
    assert "20" in out  # layers


def test_demo_command_reports_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path), "--height", "0.1"]) == 2
    assert "fewer than 20 layers" in capsys.readouterr().err
