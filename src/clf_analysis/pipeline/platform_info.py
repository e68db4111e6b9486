"""`platform_info.json`: the legacy keys with their meaning, plus the new ones (OUTPUTS.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from clf_analysis import __version__
from clf_analysis.build.archive import PartFile
from clf_analysis.build.exclusions import Exclusions
from clf_analysis.geometry.stats import BuildStats, LayerStats
from clf_analysis.pipeline.file_pass import MAX_LISTED_INVALID, FilePassResult
from clf_analysis.pipeline.images import part_slug
from clf_analysis.pipeline.params import AnalysisParams

SCHEMA_VERSION = 2  # 1 was the legacy service's untyped file


def _r(v: float) -> float:
    return round(float(v), 4)


def build_platform_info(
    *,
    build_id: str,
    package: Path,
    package_size: int,
    sha256: str,
    run_id: str,
    job_id: str | None,
    params: AnalysisParams,
    exclusions: Exclusions,
    included: list[PartFile],
    excluded: list[tuple[PartFile, str]],
    results: list[FilePassResult],
    grid: np.ndarray,
    layer_files: list[str],
    layer_stats: list[LayerStats],
    stats: BuildStats,
    images: dict[str, Any],
    thickness: float,
    warnings: list[str],
    timings: dict[str, float],
    pathdata_dir: str,
) -> dict[str, Any]:
    """The whole summary as JSON-ready values (booleans as booleans, ranges as [min, max])."""
    top = float(grid[-1]) if len(grid) else 0.0
    closed_summary: dict[str, dict[str, Any]] = {}
    path_counts: dict[str, int] = {}
    shape_types: dict[str, int] = {}
    file_identifier_summary = []
    for r in results:
        path_counts[r.part.key] = sum(r.total_loops.values())
        for kind, count in r.shape_kinds.items():
            shape_types[kind] = shape_types.get(kind, 0) + count
        file_identifier_summary.append(
            {
                "file_path": r.part.key,
                "identifier_counts": {str(k): v for k, v in sorted(r.total_loops.items())},
                "total_shapes": sum(r.total_loops.values()),
                "unique_identifiers": len(r.total_loops),
            }
        )
        for model_id, total in sorted(r.total_loops.items()):
            closed = r.closed_loops.get(model_id, 0)
            closed_summary[part_slug((r.part.folder, r.part.name, model_id))] = {
                "closed_count": closed,
                "total_count": total,
                "percentage_closed": round(100.0 * closed / total, 2) if total else 0.0,
            }
    identifier_views = [
        {
            **view,
            "closed_paths": closed_summary.get(view["identifier"], {}).get("closed_count", 0),
            "total_paths": closed_summary.get(view["identifier"], {}).get("total_count", 0),
        }
        for view in images["identifier_platform_views"]
    ]
    folder_info: dict[str, dict[str, Any]] = {}
    for part in included:
        entry = folder_info.setdefault(part.folder, {"files": [], "excluded": False})
        entry["files"].append(part.name)
    for part, pattern in excluded:
        entry = folder_info.setdefault(
            part.folder, {"files": [], "excluded": True, "excluded_by": pattern}
        )
        entry["files"].append(part.name)
    invalid = [item for r in results for item in r.invalid_loops][:MAX_LISTED_INVALID]
    invalid_total = sum(r.invalid_count for r in results)
    holes_views = images["holes_views"]
    parts = [
        {"identifier": part_slug((p["folder"], p["file"], p["model_id"])), **p}
        for p in stats.to_dict()["parts"]
    ]
    layer_file_of = dict(zip(grid.tolist(), layer_files, strict=False)) if layer_files else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": {"service": "clf-abp-path-analysis", "version": __version__},
        "run_id": run_id,
        "job_id": job_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "build": {
            "id": build_id,
            "archive": package.name,
            "size_bytes": package_size,
            "sha256": sha256,
        },
        "parameters": params.canonical(),
        "files_analyzed": [_file_entry(r) for r in results],
        "layers": [
            {
                "height": _r(ls.z),
                "filename": (f"{pathdata_dir}/{layer_file_of[z]}" if z in layer_file_of else None),
                "shapes": ls.loops,
                "holes": ls.holes,
                "parts": ls.parts,
            }
            for z, ls in zip(grid.tolist(), layer_stats, strict=True)
        ],
        "platform_composites": images["platform_composites"],
        "clean_platforms": images["clean_platforms"],
        "file_identifier_summary": file_identifier_summary,
        "identifier_platform_views": identifier_views,
        # Every CLF shape names its model, so there are no shapes without an identifier.
        "non_identifier_views": None,
        "closed_paths_summary": closed_summary,
        "global_height_info": {
            "min_height": _r(grid[0]) if len(grid) else 0.0,
            "max_height": _r(top),
            "num_samples": len(grid),
            "height_samples": [_r(z) for z in grid.tolist()],
            "padding_applied": 0.0,
            "layer_thickness": _r(thickness),
        },
        "folder_info": folder_info,
        "exclusion_info": {
            "exclusions_enabled": True,
            "patterns_used": list(exclusions.patterns),
            "files_excluded": len(excluded),
            "excluded_files": [
                {"folder": p.folder, "name": p.name, "pattern": pattern} for p, pattern in excluded
            ],
        },
        "combined_identifier_view": images["combined_identifier_view"],
        "holes_views_interval": {
            "interval_mm": params.holes_interval,
            "total_views": len(holes_views),
            "height_range": [0.0, _r(top)],
            "total_holes_across_all_views": sum(
                v["holes_statistics"]["total_holes"] for v in holes_views
            ),
            "views": holes_views,
        },
        "unclosed_shapes_view": images["unclosed_shapes_view"],
        "all_pathdata_views": images["all_pathdata"],
        "analysis_summary": {
            "path_counts": path_counts,
            "shape_types": shape_types,
            "visualization_settings": {"draw_points": False, "draw_lines": True},
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
        "warnings": warnings,
        "timings": timings,
    }


def _file_entry(r: FilePassResult) -> dict[str, Any]:
    box = r.box
    z_range = [_r(r.zs[0]), _r(r.zs[-1])] if len(r.zs) else [_r(box.min_z), _r(box.max_z)]
    return {
        "filename": r.part.name,
        "folder": r.part.folder,
        "member": r.part.member,
        "color": r.color,
        "num_layers": len(r.zs),
        "z_range": z_range,
        "bounds": {
            "x_range": [_r(box.min_x), _r(box.max_x)],
            "y_range": [_r(box.min_y), _r(box.max_y)],
            "z_range": [_r(box.min_z), _r(box.max_z)],
        },
        "layer_thickness": _r(r.thickness),
        "format_version": f"{r.version[0]}.{r.version[1]}",
        "models": [
            {"id": m.id, "name": m.name, "thickness": _r(m.thickness)}
            for m in sorted(r.models.values(), key=lambda m: m.id)
        ],
        "warnings": len(r.warnings),
        "seconds": round(r.seconds, 3),
    }
