"""Reading plate canvases back in the render tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from clf_analysis.render.raster import PlateRaster


def painted(canvas: PlateRaster) -> npt.NDArray[np.bool_]:
    """(px, px) bool array of the canvas's painted pixels, a footprint the figures accept."""
    return canvas.rgba[..., 3] > 0
