"""The image stage: plate rasters and annotated figures from one pass's results.

Every image is an independent task (module-level functions with picklable arguments),
so the stage spreads over the run's processes like the layer pass does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from clf_analysis.geometry.stats import PartKey
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
from clf_analysis.pipeline.stages import IdentifierView, ImageEntries, LayerPass
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
    params: AnalysisParams
    layers: LayerPass


class FileShapes(NamedTuple):
    """One file's shapes at one height, with its path-data colour."""

    folder: str
    name: str
    color: str
    shapes: tuple[SnapshotShape, ...]


@dataclass(frozen=True)
class LayerShapes:
    """What a height-specific image draws: each file's shapes at that height."""

    z: float
    files: tuple[FileShapes, ...]


def part_label(key: PartKey, model_name: str) -> str:
    """Short enough for a figure title: model name and id, last folder and file."""
    where = f"{key.folder.rsplit('/', 1)[-1]}/{key.file}" if key.folder else key.file
    return f"{model_name or 'model'} #{key.model_id} · {where}"


def _layer_shapes(results: list[FilePassResult], z: float) -> LayerShapes:
    return LayerShapes(
        z=z,
        files=tuple(
            FileShapes(r.part.folder, r.part.name, r.color, tuple(r.snapshots[z]))
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
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    label: str  # names the image in an error


def render_images(
    inputs: ImageInputs,
    pool: RunPool,
    *,
    on_progress: Callable[[float], None],
    is_cancelled: Callable[[], bool],
) -> ImageEntries:
    """Render every image of OUTPUTS.md; returns the platform_info entries describing them."""
    out, plate, build_id, params = inputs.out, inputs.plate, inputs.build_id, inputs.params
    layers = inputs.layers
    results, top = layers.results, layers.top
    for sub in (IDENTIFIER_DIR, CLEAN_DIR, HOLES_DIR):
        (out / sub).mkdir()

    clean_heights = [
        h for h in H.clean_platform_heights(top, params.clean_platform_heights) if h <= top + 1e-9
    ]
    clean_tasks = [
        _Task(
            clean_platform,
            (out / CLEAN_DIR / clean_platform_name(h), _layer_shapes(results, h), plate),
            f"clean:{h}",
        )
        for h in clean_heights
    ]
    composite_heights = clean_heights if params.create_composite_views else []
    if params.create_composite_views:
        (out / COMPOSITE_DIR).mkdir()
    composite_tasks = [
        _Task(
            composite_platform,
            (out / COMPOSITE_DIR / composite_name(h), build_id, _layer_shapes(results, h), plate),
            f"composite:{h}",
        )
        for h in composite_heights
    ]
    hole_heights = [
        h
        for h in H.hole_view_heights(top, params.holes_interval, params.hole_heights)
        if h <= top + 1e-9
    ]
    holes_tasks = [
        _Task(
            holes_platform,
            (out / HOLES_DIR / holes_view_name(h), build_id, _layer_shapes(results, h), plate),
            f"holes:{h}",
        )
        for h in hole_heights
    ]

    # Part footprints: every layer of the part, holes through all layers left open.
    footprints: dict[PartKey, npt.NDArray[np.uint8]] = {}
    for r in results:
        for model_id, bits in r.footprints.items():
            footprints[PartKey(r.part.folder, r.part.name, model_id)] = bits
    stats = layers.stats
    parts = [stats.parts[k] for k in sorted(stats.parts) if k in footprints]
    keys = model_keys(results)
    all_bits = None
    if footprints:
        union = np.zeros(plate.px * plate.px, dtype=bool)
        for bits in footprints.values():
            union |= np.unpackbits(bits, count=union.size).view(np.bool_)
        all_bits = np.packbits(union)
    identifier_tasks = []
    identifier_views = []
    for p in parts:
        key = p.key
        filename = identifier_view_name(keys[key])
        label = part_label(key, p.model_name)
        bbox = tuple(p.bounds) if p.layer_count else None
        identifier_tasks.append(
            _Task(
                identifier_platform,
                (out / IDENTIFIER_DIR / filename, build_id, label, footprints[key], all_bits, bbox,
                 plate),
                f"identifier:{filename}",
            )
        )  # fmt: skip
        entry = {
            "identifier": key.model_id,  # the legacy identifier: the model id
            "part_key": keys[key],
            "key": list(key),
            "model_id": key.model_id,
            "model_name": p.model_name,
            "folder": key.folder,
            "file": key.file,
            "filename": f"{IDENTIFIER_DIR}/{filename}",
            "layer_count": p.layer_count,
            "height_range": [p.z_min, p.z_max],
        }
        identifier_views.append(IdentifierView(key, entry))
    combined_task = _Task(
        combined_identifiers,
        (
            out / IDENTIFIER_DIR / COMBINED_IDENTIFIERS,
            build_id,
            [(str(p.model_id), footprints[p.key]) for p in parts],
            plate,
        ),
        "combined",
    )
    labels = [
        (str(p.model_id), ((p.bounds[0] + p.bounds[2]) / 2, (p.bounds[1] + p.bounds[3]) / 2))
        for p in parts
        if p.layer_count
    ]
    all_task = _Task(
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
        "all",
    )
    unclosed_items = [item for r in results for item in r.unclosed][:MAX_UNCLOSED_DRAWN]
    unclosed_total = sum(len(r.unclosed) for r in results)
    unclosed_task = _Task(unclosed, (out / UNCLOSED, build_id, unclosed_items, plate), "unclosed")

    # Answers come back in task order: the height views first, each kind in its heights'
    # order, then the images whose tasks answer nothing.
    answers = iter(
        pool.map(
            _call,
            [
                *clean_tasks,
                *composite_tasks,
                *holes_tasks,
                *identifier_tasks,
                combined_task,
                all_task,
                unclosed_task,
            ],
            stage="images",
            on_progress=on_progress,
            is_cancelled=is_cancelled,
        )
    )
    clean_answers = [next(answers) for _ in clean_tasks]
    composite_answers = [next(answers) for _ in composite_tasks]
    holes_answers = [next(answers) for _ in holes_tasks]

    def entry_in(folder: str, answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "filename": f"{folder}/{answer['filename']}"}

    return ImageEntries(
        clean_platforms=[entry_in(CLEAN_DIR, a) for a in clean_answers],
        # The legacy wrote composite heights as integers; `height_mm` keeps the exact one.
        platform_composites=[
            {**entry_in(COMPOSITE_DIR, a), "height": round(h), "height_mm": h}
            for h, a in zip(composite_heights, composite_answers, strict=True)
        ],
        holes_views=[entry_in(HOLES_DIR, a) for a in holes_answers],
        identifier_views=identifier_views,
        combined_identifier_view={
            "filename": f"{IDENTIFIER_DIR}/{COMBINED_IDENTIFIERS}",
            # Legacy identifiers are model ids: equal ids of different files count once.
            "total_identifiers": len({p.model_id for p in parts}),
            "total_parts": len(parts),
        },
        all_pathdata={
            "with_ids": f"{IDENTIFIER_DIR}/{ALL_PATHDATA}",
            "without_ids": f"{IDENTIFIER_DIR}/{ALL_PATHDATA_NO_ID}",
        },
        unclosed_shapes_view={
            "filename": UNCLOSED,
            "total_shapes": unclosed_total,
            "drawn": len(unclosed_items),
            "by_reason": dict(
                sorted(Counter(i.reason for r in results for i in r.unclosed).items())
            ),
        },
    )


def _call(task: _Task) -> Any:
    try:
        return task.fn(*task.args)
    except AnalysisError:
        raise
    except Exception as exc:
        raise AnalysisError(
            f"{type(exc).__name__}: {exc} (image {task.label})", stage="images"
        ) from exc
