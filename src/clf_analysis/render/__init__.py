"""Plate images: OpenCV rasters registered to the plate and annotated matplotlib figures."""

from clf_analysis.render.figures import (
    FIGURE_PX,
    combined_identifiers_figure,
    composite_figure,
    holes_figure,
    identifier_figure,
    save,
    unclosed_figure,
)
from clf_analysis.render.items import PartName, PlateLoop, UnclosedItem
from clf_analysis.render.plate import Plate
from clf_analysis.render.png import RenderError, read_png_size, write_png_verified
from clf_analysis.render.raster import RGBA, PlateRaster

__all__ = [
    "FIGURE_PX",
    "RGBA",
    "PartName",
    "Plate",
    "PlateLoop",
    "PlateRaster",
    "RenderError",
    "UnclosedItem",
    "combined_identifiers_figure",
    "composite_figure",
    "holes_figure",
    "identifier_figure",
    "read_png_size",
    "save",
    "unclosed_figure",
    "write_png_verified",
]
