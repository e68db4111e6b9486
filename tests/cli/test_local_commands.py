"""`analyze` and `inspect` on what a user points them at: a build folder, a package, a
file that is neither, a height the file does not have."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from clf_analysis.abp.archive import open_archive
from clf_analysis.jobs.store import JobStore

from .conftest import BUILD_ID, CLI, clean_env, run_cli, small_build

REPO = Path(__file__).resolve().parents[2]
REVERSED_TUBE = "Build Plate/Defects/Reversed Tube 01/Part.clf"


@pytest.fixture(scope="module")
def eight_parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build folder of every part design, the reversed tube (wound clockwise) included."""
    return small_build(tmp_path_factory.mktemp("eight") / "builds", parts=8)


@pytest.fixture
def package(eight_parts: Path) -> Path:
    (found,) = eight_parts.glob("*.abp")
    return found


def test_analyze_a_folder_holding_a_package(tmp_path: Path) -> None:
    folder = small_build(tmp_path / "somewhere")
    done = run_cli("analyze", str(folder), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (folder / "clf_analysis" / "platform_info.json").is_file()
    assert f"output       {folder / 'clf_analysis'}" in done.stdout
    # Relative, as typed in a shell.
    again = run_cli("analyze", f"somewhere/{BUILD_ID}", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_analyze_a_folder_without_package_says_what_to_pass(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = run_cli("analyze", "./empty", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "clf-analysis analyze: ./empty: no .abp package in this folder; give a build id "
        "under MIDAS_BASE_PATH (or --midas), an .abp file, or a folder holding one\n"
    )


def test_analyze_a_build_id_that_is_a_folder_here_says_how_to_name_it(tmp_path: Path) -> None:
    small_build(tmp_path)
    midas = tmp_path / "midas"
    midas.mkdir()
    done = run_cli("analyze", BUILD_ID, cwd=tmp_path, MIDAS_BASE_PATH=str(midas))
    assert done.returncode == 2
    assert f"build {BUILD_ID} not found under {midas}" in done.stderr
    assert f"write: clf-analysis analyze ./{BUILD_ID}" in done.stderr


def test_analyze_a_file_that_is_no_package_says_so_once_and_writes_nothing(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "README.md", repo / "README.md")
    done = run_cli("analyze", "README.md", cwd=repo)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "clf-analysis analyze: README.md: not a build package (.abp); give a build id under "
        "MIDAS_BASE_PATH (or --midas), an .abp file, or a folder holding one"
    ]
    assert sorted(p.name for p in repo.iterdir()) == ["README.md"]  # no run log, no lock


def test_a_damaged_package_fails_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(REPO / "README.md", folder / "build.abp")
    done = run_cli("analyze", str(folder / "build.abp"), "--quiet", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "clf-analysis analyze: failed: repo/build.abp: not a readable ZIP archive "
        "(File is not a zip file) (stage prepare)"
    ]


def test_the_winding_warning_names_the_files(eight_parts: Path, package: Path) -> None:
    done = run_cli("analyze", str(package), "--quiet")
    assert done.returncode == 0, done.stderr
    info = json.loads((eight_parts / "clf_analysis" / "platform_info.json").read_text())
    (warning,) = [w for w in info["warnings"] if "wound against the convention" in w]
    mismatches = info["analysis_summary"]["winding_mismatches"]
    assert f"{mismatches} loops wound against the convention" in warning
    assert f"in {REVERSED_TUBE} ({mismatches})" in warning
    assert f"  - {warning}" in done.stdout


def test_inspect_of_a_text_file_says_it_is_not_a_clf_file() -> None:
    done = run_cli("inspect", "README.md", cwd=REPO)
    assert done.returncode == 2
    assert done.stderr == (
        "clf-analysis inspect: README.md: not a CLF file (a CLF file starts with its header "
        "section, id 0; this one starts with 23 20 63 6c)\n"
    )


def test_inspect_of_a_height_outside_the_file_says_so(package: Path, tmp_path: Path) -> None:
    with open_archive(package) as archive:
        part = next(p for p in archive.part_files() if p.key == "Build Plate/Tube 01/Part.clf")
        data = archive.read(part)
    clf = tmp_path / "Part.clf"
    clf.write_bytes(data)
    for option in (["--z", "400"], ["--z", "400", "--json"]):
        done = run_cli("inspect", str(clf), *option)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.startswith(
            f"clf-analysis inspect: {clf}: no layer at z 400.0000: outside the file's z range "
        )
    inside = run_cli("inspect", str(clf), "--z", "1")
    assert inside.returncode == 0 and "Layer at z 1.0000 (z 1.0000 mm): 1 shapes" in inside.stdout


def test_inspect_of_a_package_marks_the_excluded_files(package: Path, tmp_path: Path) -> None:
    done = run_cli("inspect", str(package))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("excluded by the folder rules of default_exclusions.json (packaged)")
    assert lines[1].split()[-2:] == ["excluded", "by"]
    coupon = next(line for line in lines if line.lstrip().startswith("Coupon 1 "))
    assert coupon.endswith(" Coupon")
    tube = next(line for line in lines if line.lstrip().startswith("Build Plate/Tube 01 "))
    assert tube.rstrip()[-1].isdigit()  # analysed: the size ends the row, no pattern
    # The same marks in JSON, and from an exclusions file of one's own.
    rules = tmp_path / "rules.json"
    rules.write_text('{"folder_exclusions": ["Tube"]}')
    listed = json.loads(
        run_cli("inspect", str(package), "--json", "--exclusions", str(rules)).stdout
    )
    marked = {f"{p['folder']}/{p['name']}": p["excluded_by"] for p in listed}
    assert marked["Build Plate/Tube 01/Part.clf"] == "Tube"
    assert marked["Coupon 1/Part.clf"] is None


def test_inspect_refuses_the_flags_of_the_other_kind_of_file(package: Path, tmp_path: Path) -> None:
    for option in (["--layer", "1"], ["--z", "1"]):
        done = run_cli("inspect", str(package), *option)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr == (
            f"clf-analysis inspect: {option[0]} selects a layer of a .clf file; a package "
            "lists its CLF files (inspect one of them, extracted, to see its layers)\n"
        )
    with open_archive(package) as archive:
        data = archive.read(archive.part_files()[0])
    clf = tmp_path / "Part.clf"
    clf.write_bytes(data)
    done = run_cli("inspect", str(clf), "--exclusions", str(tmp_path / "x.json"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "clf-analysis inspect: --exclusions applies to a build package (.abp), whose files it "
        f"marks; {clf} is read as a .clf file\n"
    )


def _into_closed_pipe(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`clf-analysis ARGS | head -c 0`, deterministically: the reader is gone before the
    command writes its first byte."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(CLI), *args], stdout=write_end, stderr=subprocess.PIPE, env=clean_env(**env),
            timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)


def test_output_into_a_closed_pipe_ends_quietly(package: Path, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    JobStore.connect(store_url).close()
    for args in (["inspect", str(package)], ["report", "--database-url", store_url]):
        done = _into_closed_pipe(*args)
        assert done.stderr == b"", done.stderr.decode()
        assert done.returncode == 128 + signal.SIGPIPE  # as a Unix tool the pipe stopped
