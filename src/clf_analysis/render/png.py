"""Writing PNG files atomically and verifying what landed on disk."""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RenderError(Exception):
    """An image could not be rendered or did not come out as required."""


def read_png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding the image."""
    with Path(path).open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise RenderError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _temp_sibling(path: Path) -> Path:
    # Same directory so the final os.replace is atomic; '.png' suffix because the
    # writer picks the format from the extension.
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.png")


def write_atomically_verified(
    path: Path, write: Callable[[Path], None], expected_px: tuple[int, int]
) -> None:
    """Run `write(temp)`, check the PNG is `expected_px` (width, height), rename to `path`.

    A file of the wrong size is deleted and reported; it never appears under `path`.
    """
    path = Path(path)
    temp = _temp_sibling(path)
    try:
        write(temp)
        if not temp.exists():
            raise RenderError(f"{path}: the image writer produced no file")
        size = read_png_size(temp)
        if size != tuple(expected_px):
            raise RenderError(
                f"{path}: written image is {size[0]}x{size[1]} px, expected "
                f"{expected_px[0]}x{expected_px[1]}"
            )
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_png_verified(
    path: Path, rgba: npt.NDArray[np.uint8], expected_px: tuple[int, int]
) -> None:
    """Write an (h, w, 4) uint8 RGBA array as a PNG of exactly `expected_px` = (width, height).

    Raises RenderError (and leaves no file) when the array or the written file has
    another size; the file is written under a temporary name and renamed into place.
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise RenderError(
            f"{path}: expected an (h, w, 4) uint8 RGBA array, got {rgba.shape} {rgba.dtype}"
        )
    width, height = expected_px
    if rgba.shape[:2] != (height, width):
        raise RenderError(
            f"{path}: image is {rgba.shape[1]}x{rgba.shape[0]} px, expected {width}x{height}"
        )
    # OpenCV stores channels as BGR(A).
    bgra = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)

    def write(temp: Path) -> None:
        if not cv2.imwrite(str(temp), bgra):
            raise RenderError(f"{path}: OpenCV could not write the PNG")

    write_atomically_verified(path, write, expected_px)
