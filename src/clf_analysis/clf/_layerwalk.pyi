"""Type stub of the compiled layer walker (`_layerwalk.c`)."""

from collections.abc import Callable, Mapping
from typing import Any

from clf_analysis.clf.types import LoopArray, PolygonFormat, Shape, ShapeKind

def configure(
    shape_type: type[Shape],
    make_points: Callable[[Any, int, int], LoopArray],
    web_kinds: tuple[ShapeKind, ...],
    support_kind: str,
    model_kind: str,
    formats: tuple[PolygonFormat, ...],
) -> None: ...
def read_layer(
    data: Any, offset: int, models: Mapping[int, object]
) -> tuple[float, int, int, list[Shape]] | None: ...
