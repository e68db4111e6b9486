"""Verified PNG writing: exact size, channel order, atomic replacement."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from clf_analysis.render import RenderError, read_png_size, write_png_verified
from clf_analysis.render import png as png_module


def test_round_trip_keeps_rgba_channels(tmp_path: Path) -> None:
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[5, 7] = (250, 20, 10, 255)
    rgba[6, 8] = (1, 2, 3, 128)
    out = tmp_path / "img.png"
    write_png_verified(out, rgba, (40, 30))
    assert read_png_size(out) == (40, 30)
    back = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(back, rgba)
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]  # no temp file left


def test_array_of_the_wrong_size_is_refused_and_nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "img.png"
    with pytest.raises(RenderError, match="expected 2100x2100"):
        write_png_verified(out, np.zeros((2100, 2000, 4), np.uint8), (2100, 2100))
    assert list(tmp_path.iterdir()) == []


def test_not_rgba_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="RGBA"):
        write_png_verified(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8), (4, 4))


def test_written_file_of_the_wrong_size_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "img.png"
    out.write_bytes(b"previous")
    real_imwrite = cv2.imwrite

    def shrinking_imwrite(name: str, image: np.ndarray) -> bool:
        return real_imwrite(name, image[:-1])

    monkeypatch.setattr(png_module.cv2, "imwrite", shrinking_imwrite)
    with pytest.raises(RenderError, match="written image is 8x7 px, expected 8x8"):
        write_png_verified(out, np.zeros((8, 8, 4), np.uint8), (8, 8))
    assert out.read_bytes() == b"previous"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]


def test_read_png_size_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(RenderError, match="not a PNG"):
        read_png_size(path)
