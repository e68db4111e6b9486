"""Generating a synthetic build package (`.abp`) together with its ground truth."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clf_analysis.abp.discovery import validate_build_id
from clf_analysis.clf import Box, Layer, Model, write_clf
from clf_analysis.synth import designs as d
from clf_analysis.synth.geometry import signed_area
from clf_analysis.synth.truth import SCHEMA, SCHEMA_VERSION

PLATE_HALF_MM = 100.0  # parts stay within ±100 mm, inside the 210 mm plate
MAX_PART_MM = 30.0
MIN_PART_MM = 5.0
CELL_MARGIN_MM = 2.0
GROUND_TRUTH_NAME = "ground_truth.json"

# A fixed timestamp makes the archive bytes depend only on the parameters and seed.
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)
_COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class GeneratedBuild:
    """What `generate_build` wrote, with the counts a summary needs."""

    build_id: str
    build_dir: Path
    archive: Path
    ground_truth: Path
    clf_files: int
    included_files: int
    excluded_files: int
    parts: int  # analysed (folder, file, model id) keys
    layers: int  # layer heights of the build
    size_bytes: int
    seconds: float


@dataclass(frozen=True)
class _File:
    folder: str
    name: str
    content: d.FileDesign
    excluded_by: str | None


def _z(k: int, thickness: float) -> float:
    return round(k * thickness, 4)


def _layout(rng: np.random.Generator, count: int) -> list[d.Placement]:
    """`count` non-overlapping squares: one per cell of a grid over ±100 mm, jittered."""
    grid = math.ceil(math.sqrt(count))
    cell = 2 * PLATE_HALF_MM / grid
    cap = min(MAX_PART_MM, cell - CELL_MARGIN_MM)
    if cap < MIN_PART_MM:
        raise ValueError(f"{count} files do not fit on the plate with >= {MIN_PART_MM} mm parts")
    cells = rng.permutation(grid * grid)[:count]
    placements: list[d.Placement] = []
    for c in cells:
        row, col = divmod(int(c), grid)
        size = float(rng.uniform(max(MIN_PART_MM, 0.5 * cap), cap))
        # Jitter inside the cell, keeping half the margin to the cell edges.
        slack = (cell - size - CELL_MARGIN_MM) / 2
        cx = -PLATE_HALF_MM + (col + 0.5) * cell + float(rng.uniform(-slack, slack))
        cy = -PLATE_HALF_MM + (row + 0.5) * cell + float(rng.uniform(-slack, slack))
        placements.append(d.Placement(cx, cy, size))
    return placements


def _plan(
    parts: int, top: int, thickness: float, height_mm: float, sampler: d.Sampler
) -> list[_File]:
    """Every CLF file of the build with its content."""
    rng = sampler.rng
    sets = math.ceil(parts / len(d.PART_DESIGNS))
    placements = iter(_layout(rng, parts + sets * len(d.EXCLUDED_DESIGNS) + 1))
    support_layers = max(2, round(min(3.0, 0.1 * height_mm) / thickness))
    files: list[_File] = []
    for i in range(parts):
        _, folder_pattern, design = d.PART_DESIGNS[i % len(d.PART_DESIGNS)]
        number = i // len(d.PART_DESIGNS) + 1
        folder = folder_pattern.format(n=number)
        place = next(placements)
        # The first part sets the build height; the others stop somewhere above half.
        k1 = top if i == 0 else max(round(sampler.uniform(0.55, 1.0) * top), 10)
        k0 = 1
        if i % len(d.PART_DESIGNS) == 0:
            # Round bars stand on a wafer support, as real parts do.
            k0 = support_layers + 1
            files.append(
                _File(folder, "WaferSupport.clf", d.wafer_support(place, 1, support_layers), None)
            )
        files.append(
            _File(folder, "Part.clf", design(sampler, place, k0, k1, f"{i + 1:02d}"), None)
        )
    for j in range(sets):
        for name, folder_pattern, pattern, design in d.EXCLUDED_DESIGNS:
            k1 = max(round(sampler.uniform(0.15, 0.35) * top), 4)
            content = design(sampler, next(placements), 1, k1, f"X{j + 1:02d}")
            content = dataclasses.replace(content, design=name)
            files.append(_File(folder_pattern.format(n=j + 1), "Part.clf", content, pattern))
    net = d.lattice_net(sampler, next(placements), 1, max(round(0.6 * top), 1))
    files.append(_File("Lattice Net", "Net.clf", net, None))
    return sorted(files, key=lambda f: (f.folder, f.name))


def _segment_points(segment: d.Segment) -> np.ndarray:
    return np.concatenate([loop for shape in segment.shapes for loop in shape.loops])


def _xy_bounds(segments: list[d.Segment]) -> tuple[float, float, float, float]:
    pts = np.concatenate([_segment_points(s) for s in segments])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _box(segments: list[d.Segment], thickness: float) -> Box:
    x0, y0, x1, y1 = _xy_bounds(segments)
    # A layer at z covers (z - thickness, z], as in docs/FORMAT.md#worked-example.
    z0 = (segments[0].k_from - 1) * thickness
    return Box(x0, y0, z0, x1, y1, segments[-1].k_to * thickness)


def _model_segments(content: d.FileDesign, model_id: int) -> list[d.Segment]:
    return [
        s
        for s in content.segments
        if any(c.model_id == model_id for c in s.clusters)
        or any(line.model_id == model_id for line in s.lines)
    ]


def _clf_bytes(file: _File, thickness: float) -> bytes:
    content = file.content
    segments = list(content.segments)
    models = [
        Model(mid, name, _box(_model_segments(content, mid), thickness), thickness)
        for mid, name in content.models
    ]
    layers = [
        Layer(z=k * thickness, shapes=seg.shapes)
        for seg in segments
        for k in range(seg.k_from, seg.k_to + 1)
    ]
    # An explicit box spares the writer a pass over every point of every layer.
    return write_clf(
        None,
        models=models,
        layers=layers,
        comment=f"synthetic {content.design}",
        box=_box(segments, thickness),
    )


def _member_name(folder: str, name: str, backslashes: bool) -> str:
    member = f"Models/{folder}/{name}"
    return member.replace("/", "\\") if backslashes else member


def _start_plate_members(build_id: str) -> list[tuple[str, bytes]]:
    plate = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<StartPlate build="{build_id}"><Size unit="mm">210</Size>'
        "<Material>Ti6Al4V</Material></StartPlate>\n"
    )
    theme = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Theme name="Synthetic"><LayerThickness unit="mm">0.05</LayerThickness></Theme>\n'
    )
    return [
        ("StartPlate\\StartPlate.xml", plate.encode()),
        ("StartPlate/Theme.xml", theme.encode()),
    ]


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


# ----------------------------------------------------------------------------- truth


def _r(value: float, digits: int) -> float:
    return round(float(value), digits)


def _loop_records(segment: d.Segment) -> list[tuple[int, dict[str, Any]]]:
    """(model id, loop record) for every MODEL loop of the segment, in file order."""
    start: list[int] = []
    index = 0
    for cluster in segment.clusters:
        start.append(index)
        index += len(cluster.loops)
    depth: dict[int, int] = {}
    records: list[tuple[int, dict[str, Any]]] = []
    for s, cluster in enumerate(segment.clusters):
        for p, loop in enumerate(cluster.loops):
            i = start[s] + p
            if cluster.invalid is not None:
                enclosing = None
            elif p > 0:
                enclosing = start[s]
            elif cluster.inside is not None:
                enclosing = start[cluster.inside[0]] + cluster.inside[1]
            else:
                enclosing = None
            depth[i] = 0 if enclosing is None else depth[enclosing] + 1
            is_hole = depth[i] % 2 == 1
            record = {
                "index": i,
                "shape_index": s,
                "path_index": p,
                "vertices": len(loop),
                "signed_area": signed_area(loop),
                "depth": depth[i],
                "enclosing": enclosing,
                "is_hole": is_hole,
                "parent": enclosing if is_hole else None,
                "invalid": cluster.invalid,
            }
            records.append((cluster.model_id, record))
    return records


def _part_section(segment: d.Segment, loops: list[dict[str, Any]], t: float) -> dict[str, Any]:
    valid = [lp for lp in loops if lp["invalid"] is None]
    net = sum(-abs(lp["signed_area"]) if lp["is_hole"] else abs(lp["signed_area"]) for lp in valid)
    mismatches = sum((lp["signed_area"] > 0) == lp["is_hole"] for lp in valid)
    return {
        "z": [_z(segment.k_from, t), _z(segment.k_to, t)],
        "layers": segment.layer_count,
        "solids": sum(not lp["is_hole"] for lp in valid),
        "holes": sum(lp["is_hole"] for lp in valid),
        "net_area": float(net),
        "winding_mismatches": mismatches,
        "loops": loops,
    }


def _file_section(segment: d.Segment, t: float) -> dict[str, Any]:
    kinds = Counter(shape.kind for shape in segment.shapes)
    loops = [loop for shape in segment.shapes for loop in shape.loops]
    return {
        "z": [_z(segment.k_from, t), _z(segment.k_to, t)],
        "layers": segment.layer_count,
        "shapes": {
            kind: kinds.get(kind, 0) for kind in ("model", "closed", "open", "dashed", "support")
        },
        "loops": len(loops),
        "loops_min3": sum(len(loop) >= 3 for loop in loops),
    }


def _bbox4(bounds: tuple[float, float, float, float]) -> list[float]:
    return [_r(v, 4) for v in bounds]


def _truth(
    build_id: str,
    archive: str,
    files: list[_File],
    members: list[str],
    top: int,
    t: float,
    generator: dict[str, Any],
) -> dict[str, Any]:
    file_records: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for file, member in zip(files, members, strict=True):
        segs = list(file.content.segments)
        file_records.append(
            {
                "folder": file.folder,
                "name": file.name,
                "member": member,
                "excluded": file.excluded_by is not None,
                "excluded_by": file.excluded_by,
                "design": file.content.design,
                "models": [{"id": mid, "name": name} for mid, name in file.content.models],
                "z_min": _z(segs[0].k_from, t),
                "z_max": _z(segs[-1].k_to, t),
                "layer_count": sum(s.layer_count for s in segs),
                "bbox": _bbox4(_xy_bounds(segs)),
                "sections": [_file_section(s, t) for s in segs],
            }
        )
        if file.excluded_by is not None:
            continue
        for mid, name in file.content.models:
            sections: list[dict[str, Any]] = []
            model_segments: list[d.Segment] = []
            for seg in segs:
                loops = [rec for m, rec in _loop_records(seg) if m == mid]
                if not loops:
                    continue
                model_segments.append(seg)
                if sections and sections[-1]["loops"] == loops:
                    # Another model of the file changed here, this one did not: one run.
                    sections[-1]["z"][1] = _z(seg.k_to, t)
                    sections[-1]["layers"] += seg.layer_count
                else:
                    sections.append(_part_section(seg, loops, t))
                for rec in loops:
                    if rec["invalid"] is None:
                        continue
                    invalid.extend(
                        {
                            "folder": file.folder,
                            "file": file.name,
                            "model_id": mid,
                            "z": _z(k, t),
                            "index": rec["index"],
                            "reason": rec["invalid"],
                        }
                        for k in range(seg.k_from, seg.k_to + 1)
                    )
            if not sections:
                continue  # line geometry only (Net, WaferSupport): not a part
            layer_count = sum(s["layers"] for s in sections)
            area_sum = sum(s["net_area"] * s["layers"] for s in sections)
            model_pts = np.concatenate(
                [
                    c.loops[p]
                    for seg in model_segments
                    for c in seg.clusters
                    if c.model_id == mid
                    for p in range(len(c.loops))
                ]
            )
            lo, hi = model_pts.min(axis=0), model_pts.max(axis=0)
            parts.append(
                {
                    "folder": file.folder,
                    "file": file.name,
                    "model_id": mid,
                    "model_name": name,
                    "design": file.content.design,
                    "z_min": sections[0]["z"][0],
                    "z_max": sections[-1]["z"][1],
                    "layer_count": layer_count,
                    "volume_mm3": area_sum * t,
                    "max_area": max(s["net_area"] for s in sections),
                    "mean_area": area_sum / layer_count,
                    "max_holes": max(s["holes"] for s in sections),
                    "bbox": _bbox4((lo[0], lo[1], hi[0], hi[1])),
                    "sections": sections,
                }
            )
    parts.sort(key=lambda p: (p["folder"], p["file"], p["model_id"]))
    invalid.sort(key=lambda e: (e["folder"], e["file"], e["z"], e["index"]))
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "build_id": build_id,
        "archive": archive,
        "generator": generator,
        "layer_thickness": t,
        "heights": [_z(k, t) for k in range(1, top + 1)],
        "files": file_records,
        "parts": parts,
        "invalid_loops": invalid,
    }


# ----------------------------------------------------------------------------- entry


def archive_name(build_id: str) -> str:
    """The package name the field uses: `preprocess build-<build_id>.abp`."""
    return f"preprocess build-{build_id}.abp"


def generate_build(
    out_dir: Path,
    *,
    build_id: str = "demo-0001",
    parts: int = 8,
    height_mm: float = 20.0,
    layer_mm: float = 0.05,
    seed: int = 0,
    vertices: tuple[int, int] = (100, 400),
) -> GeneratedBuild:
    """Write `out_dir/<build_id>/` with the `.abp` package and `ground_truth.json`.

    `parts` counts the analysed part files (designs cycle beyond the eight there are);
    wafer supports, a lattice net and excluded-folder parts come on top. The same
    arguments always produce the same bytes. Existing files of the same names are
    replaced.
    """
    started = time.perf_counter()
    build_id = validate_build_id(build_id)
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    if not (layer_mm > 0 and math.isfinite(layer_mm)):
        raise ValueError(f"layer_mm must be a positive number, got {layer_mm!r}")
    top = round(height_mm / layer_mm) if math.isfinite(height_mm) else 0
    if top < 20:
        raise ValueError(f"height {height_mm!r} mm is fewer than 20 layers of {layer_mm} mm")
    lo, hi = vertices
    if not 3 <= lo <= hi:
        raise ValueError(f"vertices must be (lo, hi) with 3 <= lo <= hi, got {vertices!r}")

    sampler = d.Sampler(np.random.default_rng(seed), (lo, hi))
    files = _plan(parts, top, layer_mm, height_mm, sampler)
    # Alternate separators so that readers meet both spellings in every build.
    members = [_member_name(f.folder, f.name, i % 2 == 1) for i, f in enumerate(files)]

    build_dir = Path(out_dir) / build_id
    build_dir.mkdir(parents=True, exist_ok=True)
    archive = build_dir / archive_name(build_id)
    partial = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for name, data in _start_plate_members(build_id):
            zf.writestr(_zip_info(name), data, compresslevel=_COMPRESS_LEVEL)
        for file, member in zip(files, members, strict=True):
            data = _clf_bytes(file, layer_mm)
            zf.writestr(_zip_info(member), data, compresslevel=_COMPRESS_LEVEL)
    os.replace(partial, archive)

    generator = {
        "parts": parts,
        "height_mm": height_mm,
        "layer_mm": layer_mm,
        "seed": seed,
        "vertices": [lo, hi],
    }
    truth = _truth(build_id, archive.name, files, members, top, layer_mm, generator)
    truth_path = build_dir / GROUND_TRUTH_NAME
    truth_path.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")

    included = sum(f.excluded_by is None for f in files)
    return GeneratedBuild(
        build_id=build_id,
        build_dir=build_dir,
        archive=archive,
        ground_truth=truth_path,
        clf_files=len(files),
        included_files=included,
        excluded_files=len(files) - included,
        parts=len(truth["parts"]),
        layers=top,
        size_bytes=archive.stat().st_size,
        seconds=time.perf_counter() - started,
    )
