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

from clf_analysis.geometry.loops import REASON_DUPLICATE
from clf_analysis.geometry.stats import PartKey, PartStats
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
from clf_analysis.pipeline.file_pass import FilePassResult, model_keys
from clf_analysis.pipeline.holes import part_holes
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.pool import RunPool
from clf_analysis.pipeline.snapshots import SnapshotShape
from clf_analysis.pipeline.stages import IdentifierView, ImageEntries, LayerPass
from clf_analysis.render import figures
from clf_analysis.render.items import PartName, PlateLoop, UnclosedItem
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
    """One file's shapes at one height, with its path-data colour and real layer height."""

    folder: str
    name: str
    color: str
    shapes: tuple[SnapshotShape, ...]
    z: float


@dataclass(frozen=True)
class LayerShapes:
    """What a height-specific image draws: each file's shapes at that height."""

    z: float  # the height asked for; each file answers with its nearest layer
    files: tuple[FileShapes, ...]


def _layer_shapes(results: list[FilePassResult], z: float) -> LayerShapes:
    return LayerShapes(
        z=z,
        files=tuple(
            FileShapes(r.part.folder, r.part.name, r.color, r.snapshots[z].shapes, r.snapshots[z].z)
            for r in results
            if z in r.snapshots
        ),
    )


def plate_loops(shapes: tuple[SnapshotShape, ...]) -> list[PlateLoop]:
    """One file layer's loops with their nesting roles, as the figures draw them."""
    out: list[PlateLoop] = []
    for shape in shapes:
        if shape.kind == "model":
            for loop, depth, nested, invalid, area in zip(
                shape.loops, shape.depths, shape.nested, shape.invalid, shape.areas, strict=True
            ):
                out.append(PlateLoop(loop, depth if nested else None, invalid, area=area))
        else:
            out.extend(
                PlateLoop(loop, None, closed=shape.closed, dashed=shape.dashed)
                for loop in shape.loops
            )
    return out


def part_facts(stats: PartStats, holes: dict[str, Any]) -> list[str]:
    """What a part view says of its part beside the picture."""
    max_area = stats.area_max_q * 1e-6 if stats.area_max_q is not None else 0.0
    facts = [
        f"volume {stats.volume_mm3:,.1f} mm³, largest section {max_area:,.1f} mm²",
        f"holes: up to {stats.hole_count} on a layer, "
        f"{figures.plural(holes['tracks'], 'hole')} followed through the layers",
    ]
    if holes["opening_inside"] or holes["closing_inside"]:
        facts.append(
            f"{holes['opening_inside']} opening and {holes['closing_inside']} closing "
            "within the part's height"
        )
    return facts


def _unpack(bits: npt.NDArray[np.uint8], plate: Plate) -> npt.NDArray[np.bool_]:
    n = plate.px * plate.px
    return np.unpackbits(bits, count=n).view(np.bool_).reshape(plate.px, plate.px)


# ------------------------------------------------------------------------ image tasks


def clean_platform(path: Path, layer: LayerShapes, plate: Plate) -> dict[str, Any]:
    """Plate-registered raster of every file's shapes at one height, file colours."""
    raster = PlateRaster(plate)
    for file in layer.files:
        rgba: RGBA = RGBA_OF.get(file.color, RGBA_OF["gray"])
        # All MODEL loops of the file in one even-odd fill: the parity of a loop is its
        # nesting depth's, so holes stay open and islands in them are metal, whichever
        # cluster a loop is stored in. Duplicates, which nesting leaves out, are too.
        raster.fill_shape(
            [
                loop
                for shape in file.shapes
                if shape.kind == "model"
                for loop, nested, invalid in zip(
                    shape.loops, shape.nested, shape.invalid, strict=True
                )
                if nested and invalid != REASON_DUPLICATE
            ],
            rgba,
        )
        for shape in file.shapes:
            if shape.kind != "model":
                for loop in shape.loops:
                    raster.stroke(loop, rgba, closed=shape.closed, dashed=shape.dashed)
    raster.write_png(path)
    return {"height": layer.z, "filename": path.name}


def holes_platform(path: Path, build_id: str, layer: LayerShapes, plate: Plate) -> dict[str, Any]:
    """Annotated holes view at one height, with the hole count per file."""
    loops: list[PlateLoop] = []
    solids = 0
    holes = 0
    details: list[dict[str, Any]] = []
    for folder, name, _color, shapes, _z in layer.files:
        models = [shape for shape in shapes if shape.kind == "model"]
        file_holes = sum(sum(shape.holes) for shape in models)
        exteriors = sum(len(shape.loops) for shape in models) - file_holes
        solids += len(models)
        holes += file_holes
        loops.extend(plate_loops(shapes))
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
    figure = figures.holes_figure(
        build_id=build_id,
        height=layer.z,
        loops=loops,
        layer_zs=[f.z for f in layer.files],
        files=len(layer.files),
        solid_shapes=solids,
        plate=plate,
    )
    figures.save(figure, path)
    return {
        "height": layer.z,
        "filename": path.name,
        "holes_statistics": {
            "total_files": len(details),
            "files_with_holes": sum(d["holes"] > 0 for d in details),
            "total_exteriors": sum(d["exteriors"] for d in details),
            "total_holes": holes,
            "file_details": details,
            "solid_shapes": solids,
        },
    }


def composite_platform(
    path: Path, build_id: str, layer: LayerShapes, plate: Plate
) -> dict[str, Any]:
    by_folder: dict[str, tuple[list[PlateLoop], list[int]]] = {}
    for file in layer.files:
        loops, count = by_folder.setdefault(file.folder or "(Models)", ([], [0]))
        loops.extend(plate_loops(file.shapes))
        count[0] += len(file.shapes)
    figure = figures.composite_figure(
        build_id=build_id,
        height=layer.z,
        folders=[(folder, loops, count[0]) for folder, (loops, count) in by_folder.items()],
        layer_zs=[f.z for f in layer.files],
        plate=plate,
    )
    figures.save(figure, path)
    return {"height": layer.z, "filename": path.name}


@dataclass(frozen=True)
class PartView:
    """What one part's view shows besides its footprint."""

    name: PartName
    bbox: tuple[float, float, float, float] | None
    z_range: tuple[float, float] | None
    layer_count: int
    other_count: int
    facts: tuple[str, ...]


def identifier_platform(
    path: Path,
    build_id: str,
    view: PartView,
    footprint: npt.NDArray[np.uint8],
    others: npt.NDArray[np.uint8] | None,
    plate: Plate,
) -> None:
    figure = figures.identifier_figure(
        build_id=build_id,
        part=view.name,
        footprint=_unpack(footprint, plate),
        bbox=view.bbox,
        others=() if others is None else (_unpack(others, plate),),
        other_count=view.other_count,
        z_range=view.z_range,
        layer_count=view.layer_count,
        facts=view.facts,
        plate=plate,
    )
    figures.save(figure, path)


def combined_identifiers(
    path: Path, build_id: str, parts: list[tuple[PartName, npt.NDArray[np.uint8]]], plate: Plate
) -> None:
    figure = figures.combined_identifiers_figure(
        build_id=build_id,
        parts=[(name, _unpack(bits, plate), None) for name, bits in parts],
        plate=plate,
    )
    figures.save(figure, path)


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


def unclosed(
    path: Path, build_id: str, items: list[UnclosedItem], totals: dict[str, int], plate: Plate
) -> None:
    figure = figures.unclosed_figure(build_id=build_id, items=items, totals=totals, plate=plate)
    figures.save(figure, path)


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
    tracks = {(r.part.folder, r.part.name): r.hole_tracks for r in results}
    for p in parts:
        key = p.key
        filename = identifier_view_name(keys[key])
        z_range = (p.z_min, p.z_max) if p.layer_count else None
        view = PartView(
            name=PartName(key.folder, key.file, key.model_id, p.model_name),
            bbox=(p.bounds[0], p.bounds[1], p.bounds[2], p.bounds[3]) if p.layer_count else None,
            z_range=z_range,
            layer_count=p.layer_count,
            other_count=len(parts) - 1,
            facts=tuple(
                part_facts(p, part_holes(tracks[(key.folder, key.file)], key.model_id, z_range))
            ),
        )
        identifier_tasks.append(
            _Task(
                identifier_platform,
                (out / IDENTIFIER_DIR / filename, build_id, view, footprints[key], all_bits, plate),
                f"identifier:{filename}",
            )
        )
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
            [
                (PartName(p.folder, p.file, p.model_id, p.model_name), footprints[p.key])
                for p in parts
            ],
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
    # Defects first: thousands of open-by-design lattice lines must not crowd them out.
    every_unclosed = [item for r in results for item in r.unclosed]
    unclosed_items = sorted(every_unclosed, key=lambda item: item.by_design)[:MAX_UNCLOSED_DRAWN]
    unclosed_total = len(every_unclosed)
    by_reason = dict(sorted(Counter(i.reason for i in every_unclosed).items()))
    unclosed_task = _Task(
        unclosed, (out / UNCLOSED, build_id, unclosed_items, by_reason, plate), "unclosed"
    )

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
            "by_reason": by_reason,
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
