"""Per-layer path data records (OUTPUTS.md) for one part file at one height.

A layer's JSON list is the concatenation, in file order, of the records of every
included file at that height. Each file's records are serialised here once, as a JSON
fragment without the enclosing brackets, so that assembling a height is a byte join.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

from clf_analysis.clf.types import Layer
from clf_analysis.geometry.loops import LoopAnalysis, analyze_loops, signed_area
from clf_analysis.layout import MM_DECIMALS

COLORS = {"Part.clf": "blue", "WaferSupport.clf": "red", "Net.clf": "green"}
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def file_color(name: str) -> str:
    return COLORS.get(name, "gray")


@dataclass(frozen=True)
class LoopRef:
    """Where a loop sits in its file's layer: shape index and index inside the shape."""

    shape_index: int
    path_index: int


@dataclass(frozen=True)
class FileLayer:
    """One part file's layer with its model loops analysed (nesting, areas, validity)."""

    layer: Layer
    model_loops: list[LoopRef]  # loops of MODEL shapes, in file order
    analysis: LoopAnalysis  # aligned with model_loops


def analyse_file_layer(layer: Layer) -> FileLayer:
    """Nest the loops of every MODEL shape of one file's layer together."""
    refs = [
        LoopRef(s, p)
        for s, shape in enumerate(layer.shapes)
        if shape.kind == "model"
        for p in range(len(shape.loops))
    ]
    loops = [layer.shapes[r.shape_index].loops[r.path_index] for r in refs]
    return FileLayer(layer=layer, model_loops=refs, analysis=analyze_loops(loops))


def layer_records(
    fl: FileLayer,
    *,
    clf_name: str,
    clf_folder: str,
    model_names: dict[int, str],
    hole_fields: Callable[[int], dict[str, object]] | None = None,
) -> list[dict[str, object]]:
    """Records of every loop with at least 3 vertices, in file order (OUTPUTS.md fields).

    `identifier` is "<model id>_path_<loop index>" with the loop index counted over the
    whole file layer (so it is unique in the file at that height); `path_index` is the
    index inside the shape. A hole's parent is named by the same identifier scheme.
    `hole_fields(k)` gives the extra fields of the record of a hole, k its index among
    the analysed model loops (`pipeline.holes.LayerHoles.fields`).
    """
    color = file_color(clf_name)
    shapes = fl.layer.shapes
    # Loop index over the file layer, for every (shape, path) with >= 3 vertices.
    loop_index: dict[tuple[int, int], int] = {}
    for s, shape in enumerate(shapes):
        for p, loop in enumerate(shape.loops):
            if len(loop) >= 3:
                loop_index[(s, p)] = len(loop_index)
    analysed = {(r.shape_index, r.path_index): k for k, r in enumerate(fl.model_loops)}
    a = fl.analysis
    records: list[dict[str, object]] = []
    for s, shape in enumerate(shapes):
        total = len(shape.loops)
        for p, loop in enumerate(shape.loops):
            idx = loop_index.get((s, p))
            if idx is None:
                continue
            k = analysed.get((s, p))
            parent_id: str | None = None
            parent_index: int | None = None
            if k is not None:
                is_hole = bool(a.is_hole[k])
                depth = int(a.depth[k])
                area = float(a.area[k])
                if is_hole and a.parent[k] >= 0:
                    pref = fl.model_loops[int(a.parent[k])]
                    parent_index = loop_index[(pref.shape_index, pref.path_index)]
                    parent_model = shapes[pref.shape_index].model_id
                    parent_id = f"{parent_model}_path_{parent_index}"
            else:
                is_hole, depth = False, 0
                area = abs(signed_area(loop)) if shape.is_closed else 0.0
            record: dict[str, object] = {
                "type": "path",
                "shape_type": "interior" if is_hole else "exterior",
                "points": np.round(loop.astype(np.float64), MM_DECIMALS),
                "color": color,
                "clf_name": clf_name,
                "clf_folder": clf_folder,
                # A string, as the legacy wrote it: consumers may compare with "y".
                "fill_closed": "y",
                "should_close": shape.is_closed,
                "identifier": f"{shape.model_id}_path_{idx}",
                "is_hole": is_hole,
                "parent_shape_id": parent_id,
                "parent_shape_index": parent_index,
                "path_index": p,
                "shape_index": s,
                "total_paths_in_shape": total,
                "model_name": model_names.get(shape.model_id, ""),
                "area_mm2": round(area, 6),
                "nesting_depth": depth,
                # New: what the loop is, so consumers can draw DASHED pairs apart.
                "kind": shape.kind,
                "line_format": shape.line_format.name.lower(),
            }
            if is_hole and hole_fields is not None and k is not None:
                record.update(hole_fields(k))
            records.append(record)
    return records


def fragment(records: list[dict[str, object]]) -> bytes:
    """The records as a JSON list without its brackets (b'' for no records)."""
    if not records:
        return b""
    return orjson.dumps(records, option=_JSON_OPTIONS)[1:-1]


def assemble(fragments: list[bytes]) -> bytes:
    """One height's JSON list from the fragments of each file, in file order."""
    return b"[" + b",".join(f for f in fragments if f) + b"]"
