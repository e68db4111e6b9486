"""The image stage: plate rasters and annotated figures from one pass's results.

Every image is an independent task (module-level functions with picklable arguments),
so the stage spreads over the run's processes like the layer pass does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clf_analysis.geometry.stats import BuildStats, PartKey
from clf_analysis.layout import (
    ALL_PATHDATA,
    ALL_PATHDATA_NO_ID,
    CLEAN_DIR,
    COMBINED_IDENTIFIERS,
    COMPOSITE_DIR,
    HOLES_DIR,
    IDENTIFIER_DIR,
    UNCLOSED,
    clean_platform_name,
    composite_name,
    holes_view_name,
    identifier_view_name,
)
from clf_analysis.pipeline import heights as H
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.file_pass import FilePassResult, SnapshotShape, model_keys
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.pool import RunPool
from clf_analysis.render import figures
from clf_analysis.render.plate import Plate
from clf_analysis.render.raster import RGBA, PlateRaster

MAX_UNCLOSED_DRAWN = 5000

RGBA_OF = {
    "blue": (31, 95, 191, 255),
    "red": (214, 39, 40, 255),
    "green": (44, 160, 44, 255),
    "gray": (128, 128, 128, 255),
}


@dataclass(frozen=True)
class ImageInputs:
    build_id: str
    out: Path
    plate: Plate
    top: float
    params: AnalysisParams
    results: list[FilePassResult]
    stats: BuildStats


@dataclass(frozen=True)
class LayerShapes:
    """What a height-specific image draws: each file's shapes at that height."""

    z: float
    files: tuple[tuple[str, str, str, tuple[SnapshotShape, ...]], ...]  # folder, name, color


def part_label(key: PartKey, model_name: str) -> str:
    """Short enough for a figure title: model name and id, last folder and file."""
    folder, name, model_id = key
    where = f"{folder.rsplit('/', 1)[-1]}/{name}" if folder else name
    return f"{model_name or 'model'} #{model_id} · {where}"


def _layer_shapes(results: list[FilePassResult], z: float) -> LayerShapes:
    return LayerShapes(
        z=z,
        files=tuple(
            (r.part.folder, r.part.name, r.color, tuple(r.snapshots[z]))
            for r in results
            if z in r.snapshots
        ),
    )


def _unpack(bits: npt.NDArray[np.uint8], plate: Plate) -> npt.NDArray[np.bool_]:
    n = plate.px * plate.px
    return np.unpackbits(bits, count=n).view(np.bool_).reshape(plate.px, plate.px)


# ------------------------------------------------------------------------ image tasks


def clean_platform(path: Path, layer: LayerShapes, plate: Plate) -> dict[str, Any]:
    """Plate-registered raster of every file's shapes at one height, file colours."""
    raster = PlateRaster(plate)
    for _folder, _name, color, shapes in layer.files:
        rgba: RGBA = RGBA_OF.get(color, RGBA_OF["gray"])
        for shape in shapes:
            if shape.kind == "model":
                raster.fill_shape(shape.loops, rgba)
            else:
                for loop in shape.loops:
                    raster.stroke(loop, rgba, closed=shape.closed, dashed=shape.dashed)
    raster.write_png(path)
    return {"height": layer.z, "filename": path.name}


def holes_platform(path: Path, build_id: str, layer: LayerShapes, plate: Plate) -> dict[str, Any]:
    """Annotated holes view at one height, with the hole count per file."""
    solids = []
    holes = []
    labels = []
    details: list[dict[str, Any]] = []
    for folder, name, _color, shapes in layer.files:
        file_holes = 0
        exteriors = 0
        models = [shape for shape in shapes if shape.kind == "model"]
        for shape in models:
            solids.append(shape.loops)
            for loop, is_hole in zip(shape.loops, shape.holes, strict=True):
                if is_hole:
                    holes.append(loop)
                    labels.append(str(shape.model_id))
                    file_holes += 1
                else:
                    exteriors += 1
        details.append(
            {
                "filename": name,
                "folder": folder,
                "exteriors": exteriors,
                "holes": file_holes,
                # Only MODEL loops nest; a file of web or support lines has no holes.
                "can_have_holes": bool(models),
            }
        )
    figures.holes_view(
        path,
        build_id=build_id,
        z=layer.z,
        solids=solids,
        holes=holes,
        hole_labels=labels,
        plate=plate,
    )
    return {
        "height": layer.z,
        "filename": path.name,
        "holes_statistics": {
            "total_files": len(details),
            "files_with_holes": sum(d["holes"] > 0 for d in details),
            "total_exteriors": sum(d["exteriors"] for d in details),
            "total_holes": len(holes),
            "file_details": details,
            "solid_shapes": len(solids),
        },
    }


def composite_platform(
    path: Path, build_id: str, layer: LayerShapes, plate: Plate
) -> dict[str, Any]:
    by_folder: dict[str, list[Any]] = {}
    for folder, _name, _color, shapes in layer.files:
        by_folder.setdefault(folder or "(Models)", []).extend(
            s.loops for s in shapes if s.kind == "model"
        )
    figures.composite_view(
        path, build_id=build_id, z=layer.z, shapes_by_folder=by_folder, plate=plate
    )
    return {"height": layer.z, "filename": path.name}


def identifier_platform(
    path: Path,
    build_id: str,
    label: str,
    footprint: npt.NDArray[np.uint8],
    others: npt.NDArray[np.uint8] | None,
    bbox: tuple[float, float, float, float] | None,
    plate: Plate,
) -> None:
    figures.identifier_view(
        path,
        build_id=build_id,
        part_label=label,
        footprint=_unpack(footprint, plate),
        bbox=bbox,
        others=() if others is None else (_unpack(others, plate),),
        plate=plate,
    )


def combined_identifiers(
    path: Path, build_id: str, parts: list[tuple[str, npt.NDArray[np.uint8]]], plate: Plate
) -> None:
    figures.combined_identifiers_view(
        path,
        build_id=build_id,
        parts=[(label, _unpack(bits, plate), None) for label, bits in parts],
        plate=plate,
    )


def all_pathdata(
    paths: tuple[Path, Path],
    files: list[tuple[str, list[npt.NDArray[np.uint8]]]],
    labels: list[tuple[str, tuple[float, float]]],
    plate: Plate,
) -> None:
    """Union of every layer of every file in its file colour; with and without ids."""
    raster = PlateRaster(plate)
    for color, masks in files:
        painted = np.zeros((plate.px, plate.px), dtype=bool)
        for bits in masks:
            painted |= _unpack(bits, plate)
        raster.rgba[painted] = RGBA_OF.get(color, RGBA_OF["gray"])
    with_id, without_id = paths
    raster.write_png(without_id)
    for text, xy in labels:
        raster.label(text, xy)
    raster.write_png(with_id)


def unclosed(path: Path, build_id: str, items: list[Any], plate: Plate) -> None:
    figures.unclosed_view(path, build_id=build_id, items=items, plate=plate)


# ---------------------------------------------------------------------------- stage


@dataclass(frozen=True)
class _Task:
    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]


def render_images(
    inputs: ImageInputs,
    pool: RunPool,
    *,
    on_progress: Callable[[float], None],
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Render every image of OUTPUTS.md; returns the platform_info entries describing them."""
    out, plate, build_id, params = inputs.out, inputs.plate, inputs.build_id, inputs.params
    results = inputs.results
    for sub in (IDENTIFIER_DIR, CLEAN_DIR, HOLES_DIR):
        (out / sub).mkdir()
    tasks: list[_Task] = []

    clean_heights = [
        h
        for h in H.clean_platform_heights(inputs.top, params.clean_platform_heights)
        if h <= inputs.top + 1e-9
    ]
    for h in clean_heights:
        path = out / CLEAN_DIR / clean_platform_name(h)
        tasks.append(_Task(f"clean:{h}", clean_platform, (path, _layer_shapes(results, h), plate)))
    if params.create_composite_views:
        (out / COMPOSITE_DIR).mkdir()
        for h in clean_heights:
            path = out / COMPOSITE_DIR / composite_name(h)
            tasks.append(
                _Task(
                    f"composite:{h}",
                    composite_platform,
                    (path, build_id, _layer_shapes(results, h), plate),
                )
            )
    hole_heights = [
        h
        for h in H.hole_view_heights(inputs.top, params.holes_interval, params.hole_heights)
        if h <= inputs.top + 1e-9
    ]
    for h in hole_heights:
        path = out / HOLES_DIR / holes_view_name(h)
        tasks.append(
            _Task(f"holes:{h}", holes_platform, (path, build_id, _layer_shapes(results, h), plate))
        )

    # Part footprints: every layer of the part, holes through all layers left open.
    footprints: dict[PartKey, npt.NDArray[np.uint8]] = {}
    for r in results:
        for model_id, bits in r.footprints.items():
            footprints[(r.part.folder, r.part.name, model_id)] = bits
    parts = [inputs.stats.parts[k] for k in sorted(inputs.stats.parts) if k in footprints]
    keys = model_keys(results)
    all_bits = None
    if footprints:
        union = np.zeros(plate.px * plate.px, dtype=bool)
        for bits in footprints.values():
            union |= np.unpackbits(bits, count=union.size).view(np.bool_)
        all_bits = np.packbits(union)
    identifier_entries = []
    for p in parts:
        key = p.key
        filename = identifier_view_name(keys[key])
        label = part_label(key, p.model_name)
        bbox = tuple(p.bounds) if p.layer_count else None
        tasks.append(
            _Task(
                f"identifier:{filename}",
                identifier_platform,
                (out / IDENTIFIER_DIR / filename, build_id, label, footprints[key], all_bits, bbox,
                 plate),
            )
        )  # fmt: skip
        identifier_entries.append(
            {
                "identifier": key[2],  # the legacy identifier: the model id
                "part_key": keys[key],
                "key": [key[0], key[1], key[2]],
                "model_id": key[2],
                "model_name": p.model_name,
                "folder": key[0],
                "file": key[1],
                "filename": f"{IDENTIFIER_DIR}/{filename}",
                "layer_count": p.layer_count,
                "height_range": [p.z_min, p.z_max],
            }
        )
    tasks.append(
        _Task(
            "combined",
            combined_identifiers,
            (
                out / IDENTIFIER_DIR / COMBINED_IDENTIFIERS,
                build_id,
                [(str(p.model_id), footprints[p.key]) for p in parts],
                plate,
            ),
        )
    )
    labels = [
        (str(p.model_id), ((p.bounds[0] + p.bounds[2]) / 2, (p.bounds[1] + p.bounds[3]) / 2))
        for p in parts
        if p.layer_count
    ]
    tasks.append(
        _Task(
            "all",
            all_pathdata,
            (
                (out / IDENTIFIER_DIR / ALL_PATHDATA, out / IDENTIFIER_DIR / ALL_PATHDATA_NO_ID),
                [
                    (r.color, [*r.footprints.values(), *([r.lines] if r.lines is not None else [])])
                    for r in results
                ],
                labels,
                plate,
            ),
        )
    )
    unclosed_items = [item for r in results for item in r.unclosed][:MAX_UNCLOSED_DRAWN]
    unclosed_total = sum(len(r.unclosed) for r in results)
    tasks.append(_Task("unclosed", unclosed, (out / UNCLOSED, build_id, unclosed_items, plate)))

    answers = dict(
        zip(
            (t.key for t in tasks),
            pool.map(
                _call, tasks, stage="images", on_progress=on_progress, is_cancelled=is_cancelled
            ),
            strict=True,
        )
    )

    def entry(kind: str, folder: str, h: float) -> dict[str, Any]:
        answer = answers[f"{kind}:{h}"]
        return {**answer, "filename": f"{folder}/{answer['filename']}"}

    def composite_entry(h: float) -> dict[str, Any]:
        # The legacy wrote composite heights as integers; `height_mm` keeps the exact one.
        return {**entry("composite", COMPOSITE_DIR, h), "height": round(h), "height_mm": h}

    return {
        "clean_platforms": [entry("clean", CLEAN_DIR, h) for h in clean_heights],
        "platform_composites": [
            composite_entry(h) for h in clean_heights if params.create_composite_views
        ],
        "holes_views": [entry("holes", HOLES_DIR, h) for h in hole_heights],
        "hole_heights": hole_heights,
        "identifier_platform_views": identifier_entries,
        "combined_identifier_view": {
            "filename": f"{IDENTIFIER_DIR}/{COMBINED_IDENTIFIERS}",
            # Legacy identifiers are model ids: equal ids of different files count once.
            "total_identifiers": len({p.model_id for p in parts}),
            "total_parts": len(parts),
        },
        "all_pathdata": {
            "with_ids": f"{IDENTIFIER_DIR}/{ALL_PATHDATA}",
            "without_ids": f"{IDENTIFIER_DIR}/{ALL_PATHDATA_NO_ID}",
        },
        "unclosed_shapes_view": {
            "filename": UNCLOSED,
            "total_shapes": unclosed_total,
            "drawn": len(unclosed_items),
            "by_reason": dict(
                sorted(Counter(i.reason for r in results for i in r.unclosed).items())
            ),
        },
    }


def _call(task: _Task) -> Any:
    try:
        return task.fn(*task.args)
    except AnalysisError:
        raise
    except Exception as exc:
        raise AnalysisError(
            f"{type(exc).__name__}: {exc} (image {task.key})", stage="images"
        ) from exc
