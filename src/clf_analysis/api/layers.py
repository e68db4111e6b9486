"""Layer routes: the heights with path data, and one layer's path data file."""

from __future__ import annotations

import math

from flask import Blueprint, Response, jsonify

from clf_analysis.abp.errors import UnsafeSharePath
from clf_analysis.abp.share import ShareDir
from clf_analysis.api.artifacts import open_outputs, results_changing, send_artifact
from clf_analysis.api.errors import ApiError
from clf_analysis.api.models import LayerListResponse
from clf_analysis.api.parsing import build_id_arg
from clf_analysis.layout import PATHDATA_DIR, pathdata_height, pathdata_name

bp = Blueprint("layers", __name__)


def layer_files(outputs: ShareDir) -> dict[float, str]:
    """Height (mm) → file name, for every layer file of an output folder.

    Only regular files count; a layer folder that is a link lists nothing.
    """
    try:
        folder = outputs.subdir(PATHDATA_DIR)
    except (FileNotFoundError, UnsafeSharePath):
        return {}
    found: dict[float, str] = {}
    with folder:
        for entry in folder.entries():
            height = pathdata_height(entry.name)
            if height is not None and entry.is_file(follow_symlinks=False):
                found[height] = entry.name
    return found


@bp.get("/api/builds/<path:build_id>/layers")
def list_layers(build_id: str) -> Response:
    build_id = build_id_arg(build_id)
    try:
        with open_outputs(build_id) as outputs:
            heights = sorted(layer_files(outputs))
    except FileNotFoundError:  # the folder was swapped out by a publish while listed
        raise results_changing(build_id) from None
    return jsonify(
        LayerListResponse(
            build_id=build_id,
            heights=heights,
            count=len(heights),
            urls=[f"/api/builds/{build_id}/layers/{h}" for h in heights],
        ).dump()
    )


@bp.get("/api/builds/<path:build_id>/layers/<height>")
def get_layer(build_id: str, height: str) -> Response:
    build_id = build_id_arg(build_id)
    try:
        wanted = float(height.removesuffix("mm"))
    except ValueError:
        wanted = math.nan
    if not math.isfinite(wanted) or len(height) > 32:
        raise ApiError(
            400, "Bad Request", "height must be a number of mm, e.g. 12.35", kind="invalid-height"
        )
    # "12.35", "12.3500" and "12.35mm" all name platform_layer_pathdata_12.35mm.json.
    # The name is built, not looked up in a listing of thousands of files.
    name = pathdata_name(wanted)
    missing = ApiError(
        404, "Not Found", f"build {build_id} has no layer at {wanted} mm", kind="layer-not-found"
    )
    with open_outputs(build_id) as outputs:
        return send_artifact(outputs, f"{PATHDATA_DIR}/{name}", missing, build_id)
