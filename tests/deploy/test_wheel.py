"""The package as the image's builder makes it: `pip wheel` on the files the Dockerfile
copies yields a wheel with the compiled layer walker and its type stub, which loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clf_analysis.clf import COMPILED_WALKER

from .deploylib import ROOT

BUILD_FILES = ("pyproject.toml", "setup.py", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not COMPILED_WALKER and not os.environ.get("CI"):
        # This install could not compile the walker, so neither can this build; the
        # package works without it. CI must build it (test_fast_paths fails there).
        pytest.skip("no compiled layer walker on this machine (no C compiler?)")
    tree = tmp_path_factory.mktemp("context")
    for name in BUILD_FILES:
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src",
        tree / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"),
    )
    out = tmp_path_factory.mktemp("wheels")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*command, "--quiet", "--wheel-dir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = out.glob("clf_analysis-*.whl")
    return found


def test_wheel_holds_the_compiled_walker_and_its_stub(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    compiled = [n for n in names if n.startswith("clf_analysis/clf/_layerwalk.")]
    assert "clf_analysis/clf/_layerwalk.pyi" in compiled
    assert any(n.endswith(".so") for n in compiled), compiled
    assert "clf_analysis/py.typed" in names
    # A platform wheel: the tag names this interpreter, not py3-none-any.
    assert "-none-any" not in wheel.name


def test_the_wheels_walker_reads_a_file(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = "\n".join(
        [
            "import numpy as np, clf_analysis",
            "import clf_analysis.clf.reader as r, clf_analysis.clf._layerwalk as w",
            "from clf_analysis.clf import Box, Layer, Model, Shape, write_clf",
            "assert r._walk_layer is w.read_layer, 'walker not configured'",
            "ring = np.array([[0, 0], [1, 0], [1, 1]], np.float32)",
            "model = Model(1, 'p', Box(0, 0, 0, 1, 1, 1), 0.05)",
            "layer = Layer(0.05, (Shape(1, 'model', (ring,)),))",
            "clf = r.open_clf(write_clf(None, models=[model], layers=[layer]))",
            "assert clf._read_writer_layer(clf._offsets[0]) is not None",
            "assert list(clf)[0].shapes[0] == layer.shapes[0]",
            "print(clf_analysis.__file__)",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(target)), proc.stdout  # not the checkout
