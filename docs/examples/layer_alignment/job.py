"""Layer alignment as a job of the clf_analysis job system.

Reads the path data the CLF analysis published for a build, computes one result per
layer, and publishes `<build>/layer_alignment/alignment.json` with one rename.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from clf_analysis import layout
from clf_analysis.abp.discovery import build_folder, open_build_folder
from clf_analysis.abp.share import ShareDir
from clf_analysis.config import load_settings

OUTPUT_DIR = "layer_alignment"
# The CLF analysis's path data: one file per layer height (docs/OUTPUTS.md).
PATHDATA_DIR = f"{layout.OUTPUT_DIR}/{layout.PATHDATA_DIR}"


class AlignmentError(Exception):
    """Why a build cannot be aligned; the message becomes the job's error."""


def align_layer(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The team's own computation for one layer (here: the centre of its outlines)."""
    points = [p for r in records if not r["is_hole"] for p in r["points"]]
    if not points:
        return {"paths": len(records), "centre_mm": None}
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    centre = [round((min(xs) + max(xs)) / 2, 4), round((min(ys) + max(ys)) / 2, 4)]
    return {"paths": len(records), "centre_mm": centre}


def publish(build: ShareDir, tmp: str, final: str) -> None:
    """Make the folder `tmp` the folder `final` in one step; the old one goes afterwards."""
    if build.lstat(final) is None:
        build.rename(tmp, final)
    elif build.exchange(tmp, final):  # `tmp` now holds the previous results
        build.rmtree(tmp)
    else:  # a file system without an atomic exchange: two renames
        old = tmp.replace(".tmp-", ".old-", 1)
        build.rename(final, old)
        build.rename(tmp, final)
        build.rmtree(old)


def run_job(
    job_id: str,
    build_id: str,
    params: dict[str, Any],
    progress: Callable[[str, float, str], None],
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    settings = load_settings()
    folder = build_folder(settings.midas_base_path, build_id)
    # Every path below the base is opened without following a link.
    with open_build_folder(folder) as build:
        try:
            pathdata = build.subdir(PATHDATA_DIR)
        except FileNotFoundError:
            raise AlignmentError(
                f"build {build_id} has no path data ({folder.relpath(PATHDATA_DIR)}): "
                "run the CLF analysis first"
            ) from None
        with pathdata:
            layers = sorted(
                (z, e.name)
                for e in pathdata.entries()
                if e.is_file(follow_symlinks=False)
                and (z := layout.pathdata_height(e.name)) is not None
            )
            if not layers:
                raise AlignmentError(f"build {build_id}: {pathdata.relpath} holds no layer")
            # A job can run twice (a lost worker's job is retried): start clean.
            tmp = f"{OUTPUT_DIR}.tmp-{job_id}"
            if build.lstat(tmp) is not None:
                build.rmtree(tmp)
            build.mkdir(tmp)
            try:
                aligned = []
                for i, (height, name) in enumerate(layers):
                    if is_cancelled():
                        raise AlignmentError(f"build {build_id}: cancelled")
                    records = json.loads(pathdata.read_bytes(name))
                    aligned.append({"height_mm": height, **align_layer(records)})
                    progress("align", (i + 1) / len(layers), f"{i + 1} of {len(layers)} layers")
                summary = {"build_id": build_id, "job_id": job_id, "layers": aligned}
                with build.subdir(tmp) as out:
                    out.write_atomically(
                        "alignment.json", json.dumps(summary, indent=2).encode(), ".alignment.tmp"
                    )
                progress("publish", 1.0, "publishing")
                publish(build, tmp, OUTPUT_DIR)
            except BaseException:
                if build.lstat(tmp) is not None:
                    build.rmtree(tmp)
                raise
    return {
        "build_id": build_id,
        "layers": len(layers),
        "output_relpath": folder.relpath(OUTPUT_DIR),
    }
