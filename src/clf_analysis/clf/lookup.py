"""Which layer of a file answers a height, vectorised: the rules of
docs/FORMAT.md#finding-the-layer-at-a-height.

`CLFFile.find` and the pipeline (which maps a whole build's layer grid onto each file
without re-opening it) share this one implementation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def z_tolerance(z: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Tolerance for comparing layer heights: 4 float32 ulps at |z| (at least at 1 mm)."""
    zz = np.maximum(np.abs(np.asarray(z, dtype=np.float64)), 1.0).astype(np.float32)
    return 4.0 * np.spacing(zz).astype(np.float64)


def layer_indices(
    zs: npt.ArrayLike,
    heights: npt.ArrayLike,
    *,
    min_z: float,
    max_z: float,
    thickness: float,
) -> npt.NDArray[np.int64]:
    """For each height, the index into sorted `zs` of the layer there, or -1 for none.

    Outside [min_z, max_z] (the file box, inclusive) or farther than `thickness` from
    every layer: -1. Otherwise the nearest layer; equal distances (within float32
    tolerance) choose the lower layer, and of layers at one height the first.
    """
    z64 = np.asarray(zs, dtype=np.float64)
    h = np.asarray(heights, dtype=np.float64).reshape(-1)
    out = np.full(h.shape, -1, dtype=np.int64)
    n = z64.size
    if n == 0 or h.size == 0:
        return out
    finite = np.isfinite(h)
    hf = np.where(finite, h, 0.0)
    tol = z_tolerance(hf)
    i = np.searchsorted(z64, hf)
    below = np.clip(i - 1, 0, n - 1)
    above = np.clip(i, 0, n - 1)
    d_below = hf - z64[below]
    d_above = z64[above] - hf
    best = np.where(
        i == 0, 0, np.where(i >= n, n - 1, np.where(d_above < d_below - tol, above, below))
    )
    ok = (
        finite
        & (hf >= min_z - tol)
        & (hf <= max_z + tol)
        & (np.abs(z64[best] - hf) <= thickness + tol)
    )
    # Equal layer heights: the first of them answers, whichever side the height fell on
    # (a height just above their float32 value lands after the last of them).
    best = np.searchsorted(z64, z64[best], side="left")
    out[ok] = best[ok]
    return out
