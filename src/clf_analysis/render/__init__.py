"""Plate images: OpenCV rasters registered to the plate and annotated matplotlib figures."""

from clf_analysis.render.figures import (
    FIGURE_PX,
    combined_identifiers_view,
    composite_view,
    holes_view,
    identifier_view,
    unclosed_view,
)
from clf_analysis.render.items import UnclosedItem
from clf_analysis.render.plate import Plate
from clf_analysis.render.png import RenderError, read_png_size, write_png_verified
from clf_analysis.render.raster import RGBA, PlateRaster

__all__ = [
    "FIGURE_PX",
    "RGBA",
    "Plate",
    "PlateRaster",
    "RenderError",
    "UnclosedItem",
    "combined_identifiers_view",
    "composite_view",
    "holes_view",
    "identifier_view",
    "read_png_size",
    "unclosed_view",
    "write_png_verified",
]
