from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clf_analysis.clf import write_clf
from clf_analysis.cli import main

from .builders import WORKED_EXAMPLE, sample_layers
from .test_canonical import EXAMPLE_JSON


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    models, layers = sample_layers(5)
    path = tmp_path / "Part.clf"
    write_clf(path, models=models, layers=layers, comment="demo", layer_count=7)
    return path


def test_summary_names_models_layers_and_warnings(sample: Path, capsys) -> None:
    assert main(["inspect", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "Layers:     5 (header declares 7)" in out
    assert "Z range:    0.0500 .. 0.2500 mm" in out
    assert "Thickness:  0.0500 mm" in out
    assert "Net ü" in out and "Comment:    demo" in out
    assert "declares 7 layers" in out  # the warning


def test_summary_of_selected_layer_lists_shapes(sample: Path, capsys) -> None:
    assert main(["inspect", str(sample), "--layer", "2"]) == 0
    out = capsys.readouterr().out
    assert "Layer 2 (z 0.1500 mm): 6 shapes, 7 loops" in out
    assert "support" in out and "120 60" in out


def test_json_all_layers_is_canonical(tmp_path: Path, capsys) -> None:
    path = tmp_path / "example.clf"
    path.write_bytes(WORKED_EXAMPLE)
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == EXAMPLE_JSON


def test_json_selected_by_height(sample: Path, capsys) -> None:
    assert main(["inspect", str(sample), "--json", "--z", "0.11"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["nlayers"] == 5 and [layer["z"] for layer in d["layers"]] == [0.1]


def test_layer_out_of_range_exits_2(sample: Path, capsys) -> None:
    assert main(["inspect", str(sample), "--layer", "5"]) == 2
    assert "no layer 5" in capsys.readouterr().err


def test_malformed_file_exits_2_without_traceback(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cut.clf"
    path.write_bytes(WORKED_EXAMPLE[:150])
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: byte 105:" in err and "Traceback" not in err


def test_build_package_lists_clf_files(tmp_path: Path, capsys) -> None:
    abp = tmp_path / "preprocess build-42.abp"
    with zipfile.ZipFile(abp, "w") as zf:
        zf.writestr("Models\\Bracket A\\Part.clf", WORKED_EXAMPLE)
        zf.writestr("Models/Net/Net.clf", WORKED_EXAMPLE)
        zf.writestr("StartPlate/plate.xml", "<x/>")
    assert main(["inspect", str(abp)]) == 0
    out = capsys.readouterr().out
    assert "2 CLF files" in out and "Bracket A" in out and "Net.clf" in out
    assert "plate.xml" not in out
    assert main(["inspect", str(abp), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(p["folder"], p["name"], p["size"]) for p in listed] == [
        ("Bracket A", "Part.clf", 188),
        ("Net", "Net.clf", 188),
    ]


def test_real_subprocess_prints_json_and_exit_codes(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "clf-analysis"
    good = tmp_path / "example.clf"
    good.write_bytes(WORKED_EXAMPLE)
    done = subprocess.run(
        [str(exe), "inspect", str(good), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0 and json.loads(done.stdout) == EXAMPLE_JSON
    bad = tmp_path / "bad.clf"
    bad.write_bytes(b"\x00\xff")
    done = subprocess.run([str(exe), "inspect", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("clf-analysis inspect: ") and "Traceback" not in done.stderr
