"""The CLF layer-file format: read, write, value types. No policy, no I/O beyond bytes/paths."""

from clf_analysis.clf.canonical import describe
from clf_analysis.clf.errors import CLFFormatError
from clf_analysis.clf.reader import COMPILED_WALKER, CLFFile, open_clf
from clf_analysis.clf.types import (
    Box,
    ClusterType,
    Layer,
    LoopArray,
    Model,
    PolygonFormat,
    PolygonType,
    Shape,
    ShapeKind,
)
from clf_analysis.clf.writer import write_clf

__all__ = [
    "COMPILED_WALKER",
    "Box",
    "CLFFile",
    "CLFFormatError",
    "ClusterType",
    "Layer",
    "LoopArray",
    "Model",
    "PolygonFormat",
    "PolygonType",
    "Shape",
    "ShapeKind",
    "describe",
    "open_clf",
    "write_clf",
]
