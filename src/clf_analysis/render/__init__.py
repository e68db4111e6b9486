"""Plate images: OpenCV rasters registered to the plate and annotated matplotlib figures."""

from clf_analysis.render.plate import Plate
from clf_analysis.render.png import RenderError, read_png_size, write_png_verified
from clf_analysis.render.raster import RGBA, PlateRaster

__all__ = [
    "RGBA",
    "Plate",
    "PlateRaster",
    "RenderError",
    "read_png_size",
    "write_png_verified",
]
