"""Ground truth of a synthetic build: what the analysis must find, known by construction.

`generate_build` writes it as `<out>/<build_id>/ground_truth.json` (next to the `.abp`,
never inside it). Format (schema "clf-analysis-synth-ground-truth", version 1); all
heights are rounded to 4 decimals as in OUTPUTS.md and bounding boxes to 4 decimals;
areas and volumes are full float64 values (shoelace sums over the float32 vertices as
written, not the ideal shapes):

    {
      "schema": "clf-analysis-synth-ground-truth", "schema_version": 1,
      "build_id": str, "archive": str (file name of the .abp, same folder),
      "generator": {"parts", "height_mm", "layer_mm", "seed", "vertices": [lo, hi]},
      "layer_thickness": float (mm),
      "heights": [float, ...]      every layer of the build: k × thickness, k = 1..top
      "files": [                   every CLF member, sorted by (folder, name)
        {"folder": str (relative to Models/, "/"-separated), "name": str,
         "member": str (exact zip member name, may contain "\\"),
         "excluded": bool, "excluded_by": str | null (first default pattern that matches),
         "design": str, "models": [{"id": int, "name": str}],
         "z_min", "z_max": float, "layer_count": int,
         "bbox": [minx, miny, maxx, maxy] (all geometry of the file),
         "sections": [{"z": [z_from, z_to], "layers": int,
                       "shapes": {"model", "closed", "open", "dashed", "support": int},
                       "loops": int (all loops), "loops_min3": int (loops with >= 3
                       vertices, i.e. the objects of the per-layer path data)}]}
      ],
      "parts": [                   one per (folder, file, model id) of an INCLUDED file
                                   that has MODEL geometry; sorted by that key
        {"folder", "file": str, "model_id": int, "model_name": str, "design": str,
         "z_min", "z_max": float, "layer_count": int,
         "volume_mm3": float (sum over layers of net_area × layer_thickness),
         "max_area", "mean_area": float (of net_area over the part's layers),
         "max_holes": int, "bbox": [minx, miny, maxx, maxy] (all its loops),
         "sections": [             runs of consecutive layers with a constant section,
                                   in z order; together they cover z_min..z_max exactly
           {"z": [z_from, z_to], "layers": int,
            "solids": int, "holes": int    valid loops with even / odd nesting depth,
            "net_area": float              sum of (-1)^depth × |area| over valid loops,
            "winding_mismatches": int      valid loops whose orientation disagrees with
                                           the rule (solid CCW, hole CW),
            "loops": [{"index": int        loop index in the FILE's layer: every loop of
                                           every shape of the file, in file order,
                       "shape_index", "path_index": int  (shape in the file's layer,
                                           loop in its shape),
                       "vertices": int, "signed_area": float  (shoelace of the float32
                                           vertices as written; CCW > 0),
                       "depth": int        number of loops of the file containing it,
                       "enclosing": int | null  index of the smallest loop containing it,
                       "is_hole": bool     depth odd,
                       "parent": int | null     = enclosing for holes, else null,
                       "invalid": str | null    defect reason ("self-intersection")}]}]}
      ],
      "invalid_loops": [{"folder", "file", "model_id", "z", "index", "reason"}]  one per
                                   defective loop and layer, sorted by (folder, file, z)
    }

Invalid loops carry depth 0, are not contained in and do not contain any other loop,
and are excluded from solids, holes, net_area and winding_mismatches; they still count
in "loops", "loops_min3" and the bounding boxes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "clf-analysis-synth-ground-truth"
SCHEMA_VERSION = 1

PartKey = tuple[str, str, int]
"""(folder relative to Models/, file name, model id): how parts are keyed (OUTPUTS.md)."""


@dataclass(frozen=True)
class LoopTruth:
    index: int
    shape_index: int
    path_index: int
    vertices: int
    signed_area: float
    depth: int
    enclosing: int | None
    is_hole: bool
    parent: int | None
    invalid: str | None


@dataclass(frozen=True)
class SectionTruth:
    """A run of layers z_from..z_to over which a part's section is constant."""

    z_from: float
    z_to: float
    layers: int
    solids: int
    holes: int
    net_area: float
    winding_mismatches: int
    loops: tuple[LoopTruth, ...]


@dataclass(frozen=True)
class PartTruth:
    key: PartKey
    model_name: str
    design: str
    z_min: float
    z_max: float
    layer_count: int
    volume_mm3: float
    max_area: float
    mean_area: float
    max_holes: int
    bbox: tuple[float, float, float, float]
    sections: tuple[SectionTruth, ...]


@dataclass(frozen=True)
class FileTruth:
    folder: str
    name: str
    member: str
    excluded: bool
    excluded_by: str | None
    design: str
    models: tuple[tuple[int, str], ...]
    z_min: float
    z_max: float
    layer_count: int
    bbox: tuple[float, float, float, float]
    sections: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class InvalidLoopTruth:
    folder: str
    file: str
    model_id: int
    z: float
    index: int
    reason: str


@dataclass(frozen=True)
class GroundTruth:
    """The decoded ground-truth file; `at(key, z)` gives a part's section at a height."""

    build_id: str
    archive: str
    layer_thickness: float
    heights: tuple[float, ...]
    files: tuple[FileTruth, ...]
    parts: dict[PartKey, PartTruth]
    invalid_loops: tuple[InvalidLoopTruth, ...]
    raw: dict[str, Any]

    @property
    def included_files(self) -> tuple[FileTruth, ...]:
        return tuple(f for f in self.files if not f.excluded)

    @property
    def excluded_files(self) -> tuple[FileTruth, ...]:
        return tuple(f for f in self.files if f.excluded)

    def at(self, key: PartKey, z: float) -> SectionTruth | None:
        """The part's section at height z, or None where the part has no layer.

        z matches a section when it lies within half a layer of its range, so float32
        heights read back from a file find the layer they were written for.
        """
        part = self.parts[key]
        half = self.layer_thickness / 2
        for section in part.sections:
            if section.z_from - half <= z < section.z_to + half:
                return section
        return None


def _bbox(values: list[float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def _section(data: dict[str, Any]) -> SectionTruth:
    loops = tuple(LoopTruth(**loop) for loop in data["loops"])
    z_from, z_to = data["z"]
    return SectionTruth(
        z_from=z_from,
        z_to=z_to,
        layers=data["layers"],
        solids=data["solids"],
        holes=data["holes"],
        net_area=data["net_area"],
        winding_mismatches=data["winding_mismatches"],
        loops=loops,
    )


def parse_ground_truth(data: dict[str, Any]) -> GroundTruth:
    """GroundTruth from the decoded JSON document."""
    if data.get("schema") != SCHEMA or data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"not a version {SCHEMA_VERSION} {SCHEMA} document: "
            f"{data.get('schema')!r} version {data.get('schema_version')!r}"
        )
    files = tuple(
        FileTruth(
            folder=f["folder"],
            name=f["name"],
            member=f["member"],
            excluded=f["excluded"],
            excluded_by=f["excluded_by"],
            design=f["design"],
            models=tuple((m["id"], m["name"]) for m in f["models"]),
            z_min=f["z_min"],
            z_max=f["z_max"],
            layer_count=f["layer_count"],
            bbox=_bbox(f["bbox"]),
            sections=tuple(f["sections"]),
        )
        for f in data["files"]
    )
    parts: dict[PartKey, PartTruth] = {}
    for p in data["parts"]:
        key: PartKey = (p["folder"], p["file"], p["model_id"])
        parts[key] = PartTruth(
            key=key,
            model_name=p["model_name"],
            design=p["design"],
            z_min=p["z_min"],
            z_max=p["z_max"],
            layer_count=p["layer_count"],
            volume_mm3=p["volume_mm3"],
            max_area=p["max_area"],
            mean_area=p["mean_area"],
            max_holes=p["max_holes"],
            bbox=_bbox(p["bbox"]),
            sections=tuple(_section(s) for s in p["sections"]),
        )
    invalid = tuple(InvalidLoopTruth(**entry) for entry in data["invalid_loops"])
    return GroundTruth(
        build_id=data["build_id"],
        archive=data["archive"],
        layer_thickness=data["layer_thickness"],
        heights=tuple(data["heights"]),
        files=files,
        parts=parts,
        invalid_loops=invalid,
        raw=data,
    )


def load_ground_truth(path: Path | str) -> GroundTruth:
    """Read a `ground_truth.json` written by `generate_build`."""
    with Path(path).open(encoding="utf-8") as fh:
        return parse_ground_truth(json.load(fh))
