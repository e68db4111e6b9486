"""`platform_info.json`: every legacy field in its legacy shape, richer data under new keys.

docs/OUTPUTS.md is the field reference; the legacy shapes are also a JSON Schema
(`schemas/platform_info.legacy.schema.json`) that the tests hold every output to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from clf_analysis import __version__
from clf_analysis.abp.archive import PartFile
from clf_analysis.geometry.stats import LayerStats, PartKey
from clf_analysis.layout import PATHDATA_DIR, mm
from clf_analysis.pipeline import heights as H
from clf_analysis.pipeline.file_pass import MAX_LISTED_INVALID, FilePassResult, model_keys
from clf_analysis.pipeline.holes import part_holes
from clf_analysis.pipeline.path_counts import PathCounts
from clf_analysis.pipeline.stages import ImageEntries, LayerPass, Prepared, RunLabel

# 1 was the legacy service's untyped file; 3 restored its field shapes, 4 added the holes
# across layers (docs/OUTPUTS.md).
SCHEMA_VERSION = 4
# Where today's images draw (plate rasters fill and stroke, single points are not drawn).
VISUALIZATION_SETTINGS = {"draw_points": "n", "draw_lines": "y"}


def build_platform_info(
    run: RunLabel,
    prepared: Prepared,
    layers: LayerPass,
    layer_files: list[str],
    images: ImageEntries,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The whole summary as JSON-ready values: legacy keys in their legacy shapes, new beside.

    `layer_files` are the names of the path-data files, one per grid height (none when the
    run wrote no path data).
    """
    results, grid, params = layers.results, layers.grid, run.params
    top = float(grid[-1]) if len(grid) else 0.0
    keys = model_keys(results)
    counts = _Counts.of(results)
    closed_summary = {str(i): c.closed_summary() for i, c in sorted(counts.by_id.items())}
    invalid = [item for r in results for item in r.invalid_loops][:MAX_LISTED_INVALID]
    invalid_total = sum(r.invalid_count for r in results)
    holes_views = images.holes_views
    parts = []
    tracks = {(r.part.folder, r.part.name): r.hole_tracks for r in results}
    for part in layers.stats.to_dict()["parts"]:
        key = keys[PartKey(part["folder"], part["file"], part["model_id"])]
        holes = part_holes(
            tracks[(part["folder"], part["file"])], part["model_id"], part["z_range"]
        )
        # `identifier` is the schema-2 name of `part_key`, kept for its readers.
        parts.append({"identifier": key, "part_key": key, **part, "holes": holes})
    layer_file_of = dict(zip(grid.tolist(), layer_files, strict=False)) if layer_files else {}
    layer_stats = _grid_layer_stats(layers)
    excluded = prepared.excluded
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": {"service": "clf-abp-path-analysis", "version": __version__},
        "run_id": run.run_id,
        "job_id": run.job_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "build": {
            "id": run.build_id,
            "archive": prepared.archive_name,
            "size_bytes": prepared.size_bytes,
            "sha256": prepared.sha256,
        },
        "parameters": params.canonical(),
        "files_analyzed": [_file_entry(r) for r in results],
        "layers": _legacy_layers(results),
        "heights": [
            {
                "height": mm(ls.z),
                "filename": (f"{PATHDATA_DIR}/{layer_file_of[z]}" if z in layer_file_of else None),
                "shapes": ls.loops,
                "holes": ls.holes,
                "parts": ls.parts,
            }
            for z, ls in zip(grid.tolist(), layer_stats, strict=True)
        ],
        "platform_composites": images.platform_composites,
        "clean_platforms": images.clean_platforms,
        "file_identifier_summary": [_identifier_counts(r) for r in results],
        "identifier_platform_views": [
            _identifier_view(view.entry, counts.by_part[view.key])
            for view in images.identifier_views
        ],
        # Every CLF shape names its model, so there are no shapes without an identifier.
        "non_identifier_views": None,
        "closed_paths_summary": closed_summary,
        "closed_paths_by_part": {
            keys[k]: {
                **c.closed_summary(),
                "folder": k.folder,
                "file": k.file,
                "model_id": k.model_id,
            }
            for k, c in sorted(counts.by_part.items())
        },
        "global_height_info": _height_info(results, grid, top, layers.thickness),
        "folder_info": _folder_info(prepared.included, excluded),
        "folders": _folders(prepared.included, excluded),
        "exclusion_info": {
            "exclusions_enabled": "y" if prepared.exclusions.patterns else "n",
            "patterns_used": list(prepared.exclusions.patterns),
            "files_excluded": len(excluded),
            "excluded_files": [
                {"folder": p.folder, "name": p.name, "pattern": pattern} for p, pattern in excluded
            ],
        },
        "combined_identifier_view": images.combined_identifier_view,
        "holes_views_interval": {
            # The interval drawn: wider than asked when that made too many views.
            "interval_mm": H.hole_view_interval(top, params.holes_interval),
            "total_views": len(holes_views),
            "height_range": [0.0, mm(top)],
            "total_holes_across_all_views": sum(
                v["holes_statistics"]["total_holes"] for v in holes_views
            ),
            "views": holes_views,
        },
        "unclosed_shapes_view": images.unclosed_shapes_view,
        "all_pathdata_views": images.all_pathdata,
        "analysis_summary": {
            "path_counts": {str(i): c.legacy() for i, c in sorted(counts.by_id.items())},
            "path_counts_by_file": {k: c.legacy() for k, c in counts.by_file.items()},
            "shape_types": {
                "point": counts.total.point,
                "line": counts.total.line,
                "path": counts.total.path,
            },
            "shape_kinds": counts.kinds,
            "visualization_settings": dict(VISUALIZATION_SETTINGS),
            "closed_paths": closed_summary,
            "parts": len(parts),
            "layers": len(grid),
            "invalid_loops_total": invalid_total,
            "winding_mismatches": sum(r.winding_mismatches for r in results),
        },
        "parts": parts,
        "layer_stats": [ls.to_dict() for ls in layer_stats],
        "invalid_loops": invalid,
        "invalid_loops_total": invalid_total,
        "warnings": [*layers.warnings, *H.hole_view_warnings(top, params.holes_interval)],
        "timings": timings,
    }


def _grid_layer_stats(layers: LayerPass) -> list[LayerStats]:
    """Per grid height: the statistics of the file layers that answer it, summed."""
    out = [LayerStats(mm(z)) for z in layers.grid.tolist()]
    for r, idx in zip(layers.results, layers.mapping, strict=True):
        for k in np.flatnonzero(idx >= 0).tolist():
            file_layer = r.stats.layers.get(mm(r.header.zs[idx[k]]))
            if file_layer is not None:
                out[k].merge(replace(file_layer, z=out[k].z))
    return out


@dataclass
class _Counts:
    """Path counts per part, per legacy identifier (model id, files merged) and per file."""

    by_part: dict[PartKey, PathCounts] = field(default_factory=dict)
    by_id: dict[int, PathCounts] = field(default_factory=dict)
    by_file: dict[str, PathCounts] = field(default_factory=dict)
    total: PathCounts = field(default_factory=PathCounts)
    kinds: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, results: list[FilePassResult]) -> _Counts:
        out = cls()
        for r in results:
            in_file = out.by_file.setdefault(r.part.key, PathCounts())
            for model_id, c in sorted(r.path_counts.items()):
                out.by_part[PartKey(r.part.folder, r.part.name, model_id)] = c
                out.by_id.setdefault(model_id, PathCounts()).merge(c)
                in_file.merge(c)
                out.total.merge(c)
            for kind, n in r.shape_kinds.items():
                out.kinds[kind] = out.kinds.get(kind, 0) + n
        return out


def _legacy_layers(results: list[FilePassResult]) -> list[dict[str, Any]]:
    """One entry per (file, sample height) the file answers; by height, then file order."""
    entries = []
    for order, r in enumerate(results):
        for sample in r.samples:
            c = sample.counts
            bounds = sample.bounds or (None, None, None, None)
            entry = {
                "height": sample.height,
                "num_shapes": c.shapes,
                "image": None,
                "file": r.part.name,
                "folder": r.part.folder,
                "position": dict(zip(("x_min", "x_max", "y_min", "y_max"), bounds, strict=True)),
                "closed_paths": c.closed,
                "total_paths": c.total,
                "z": sample.z,
            }
            entries.append((sample.height, order, entry))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [entry for _, _, entry in entries]


def _height_info(
    results: list[FilePassResult], grid: np.ndarray, top: float, thickness: float
) -> dict[str, Any]:
    """Legacy `global_height_info`: the sample heights of `layers` and the range they span."""
    answered = [s.height for r in results for s in r.samples]
    samples = H.legacy_sample_range(min(answered), max(answered)) if answered else []
    firsts = [float(r.header.zs[0]) for r in results if len(r.header.zs)]
    max_height = max([top, *samples[-1:]])
    return {
        "min_height": mm(min(firsts)) if firsts else 0.0,
        "max_height": mm(max_height),
        "num_samples": len(samples),
        "height_samples": samples,
        "padding_applied": mm(max_height - top),
        "layer_thickness": mm(thickness),
        "layer_count": len(grid),
        "top_layer_height": mm(top),
        "sample_step_mm": H.LEGACY_SAMPLE_STEP_MM,
        "sample_window_mm": H.LEGACY_SAMPLE_WINDOW_MM,
    }


def _identifier_counts(r: FilePassResult) -> dict[str, Any]:
    """Legacy `file_identifier_summary` entry: shapes per model id of one file."""
    shapes = {str(i): c.shapes for i, c in sorted(r.path_counts.items())}
    return {
        "file_path": r.part.key,
        "identifier_counts": shapes,
        "total_shapes": sum(shapes.values()),
        "unique_identifiers": len(shapes),
    }


def _identifier_view(view: dict[str, Any], counts: PathCounts) -> dict[str, Any]:
    return {
        **view,
        "total_shapes": counts.shapes,
        "closed_paths": counts.closed,
        "total_paths": counts.total,
    }


def _folder_info(included: list[PartFile], excluded: list[tuple[PartFile, str]]) -> dict[str, Any]:
    """Legacy `folder_info`: totals and sorted folder lists (a folder may hold both kinds)."""
    inside = sorted({p.folder for p in included})
    outside = sorted({p.folder for p, _ in excluded})
    every = sorted({*inside, *outside})
    return {
        "total_unique_folders": len(every),
        "all_folders": every,
        "included_folders": inside,
        "excluded_folders": outside,
        "included_folder_count": len(inside),
        "excluded_folder_count": len(outside),
    }


def _folders(
    included: list[PartFile], excluded: list[tuple[PartFile, str]]
) -> dict[str, dict[str, Any]]:
    """Per folder: its CLF files and whether (and by which pattern) it was excluded."""
    folders: dict[str, dict[str, Any]] = {}
    for part in included:
        entry = folders.setdefault(part.folder, {"files": [], "excluded": False})
        entry["files"].append(part.name)
    for part, pattern in excluded:
        entry = folders.setdefault(
            part.folder, {"files": [], "excluded": True, "excluded_by": pattern}
        )
        entry["files"].append(part.name)
    return folders


def _file_entry(r: FilePassResult) -> dict[str, Any]:
    header = r.header
    box, zs = header.box, header.zs
    return {
        "filename": r.part.name,
        "folder": r.part.folder,
        "member": r.part.member,
        "color": r.color,
        # The legacy read the header's count; it is informational and may be absent.
        "num_layers": len(zs) if header.declared_layers is None else header.declared_layers,
        "layers_indexed": len(zs),
        "z_range": [mm(zs[0]), mm(zs[-1])] if len(zs) else [mm(box.min_z), mm(box.max_z)],
        "bounds": {
            "x_range": [mm(box.min_x), mm(box.max_x)],
            "y_range": [mm(box.min_y), mm(box.max_y)],
            "z_range": [mm(box.min_z), mm(box.max_z)],
        },
        "layer_thickness": mm(header.thickness),
        "format_version": f"{header.version[0]}.{header.version[1]}",
        "models": [
            {"id": m.id, "name": m.name, "thickness": mm(m.thickness)}
            for m in sorted(header.models.values(), key=lambda m: m.id)
        ],
        "warnings": len(r.warnings),
        "seconds": round(r.seconds, 3),
    }
