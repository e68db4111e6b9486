"""Layer routes: the heights with path data, and one layer's path data file."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from clf_analysis.abp.errors import UnsafeSharePath
from clf_analysis.abp.share import ShareDir
from clf_analysis.api.artifacts import (
    CHANGING,
    IF_NONE_MATCH,
    NO_RESULTS,
    SHARE_DENIED,
    UNSATISFIABLE,
    file_replies,
    open_outputs,
    results_changing,
    send_artifact,
)
from clf_analysis.api.contract import Link, Operation, Parameter, Reply, declare, problem
from clf_analysis.api.errors import ApiError
from clf_analysis.api.models import LayerListResponse
from clf_analysis.api.parsing import BUILD_ID, build_id_arg
from clf_analysis.layout import PATHDATA_DIR, pathdata_height, pathdata_name

bp = Blueprint("layers", __name__)

# A height in the URL: a plain decimal of mm, "mm" allowed after it ("12.35", "12.3500",
# "12.35mm"); the check and the published pattern are this one.
HEIGHT_TEXT = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:mm)?"
_HEIGHT_TEXT = re.compile(HEIGHT_TEXT)
MAX_HEIGHT_TEXT = 32

HEIGHT = Parameter(
    "height",
    "path",
    {"type": "string", "pattern": f"^{HEIGHT_TEXT}$", "maxLength": MAX_HEIGHT_TEXT},
    "A layer height in mm, as listed by the layers' `heights`.",
    example="1.0",
    required=True,
    refusals=(problem(400, "invalid-height", description="Not a plain number of mm."),),
)


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
@declare(
    Operation(
        "Heights with path data",
        parameters=(BUILD_ID,),
        replies={
            200: Reply(
                "Heights (mm, ascending) and the URL of each layer.",
                LayerListResponse,
                links={
                    "GetLayer": Link(
                        "layers.get_layer",
                        "The lowest layer.",
                        {
                            "build_id": "$response.body#/build_id",
                            "height": "$response.body#/heights/0",
                        },
                    )
                },
            )
        },
        refusals=(NO_RESULTS, SHARE_DENIED, CHANGING),
    )
)
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
@declare(
    Operation(
        "Path data of one layer: the loops at that height",
        parameters=(BUILD_ID, HEIGHT, IF_NONE_MATCH),
        replies=file_replies(
            "imagePathRawData-/platform_layer_pathdata_<h>mm.json as written.",
            ("application/json",),
            {"type": "array", "items": {"$ref": "#/components/schemas/PathDataRecord"}},
        ),
        refusals=(
            NO_RESULTS,
            problem(404, "layer-not-found", description="No layer file at that height."),
            SHARE_DENIED,
            UNSATISFIABLE,
        ),
    )
)
def get_layer(build_id: str, height: str) -> Response:
    build_id = build_id_arg(build_id)
    if len(height) > MAX_HEIGHT_TEXT or not _HEIGHT_TEXT.fullmatch(height):
        raise ApiError(
            400, "Bad Request", "height must be a number of mm, e.g. 12.35", kind="invalid-height"
        )
    wanted = float(height.removesuffix("mm"))
    # "12.35", "12.3500" and "12.35mm" all name platform_layer_pathdata_12.35mm.json.
    # The name is built, not looked up in a listing of thousands of files.
    name = pathdata_name(wanted)
    missing = ApiError(
        404, "Not Found", f"build {build_id} has no layer at {wanted} mm", kind="layer-not-found"
    )
    with open_outputs(build_id) as outputs:
        return send_artifact(outputs, f"{PATHDATA_DIR}/{name}", missing, build_id)
