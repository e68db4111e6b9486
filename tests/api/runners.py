"""Job runners for API tests: stand-ins for the pipeline that write a small result folder.

They run in spawned children of the worker, so this module must be importable there (the
tests put the repository root on PYTHONPATH). The base path comes from MIDAS_BASE_PATH,
exactly as for the real pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

Progress = Callable[[str, float, str], None]

LAYER_HEIGHTS = (0.05, 0.1, 1.0)
LAYER_POINTS = [[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]]


def tiny_png(width: int = 4, height: int = 4) -> bytes:
    """A valid RGBA PNG (transparent), built by hand so that the tests need no OpenCV."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_fake_results(build_dir: Path, job_id: str, params: dict[str, Any]) -> Path:
    """clf_analysis/ with platform_info.json, layer JSONs and one plate PNG, swapped in."""
    out = build_dir / "clf_analysis"
    tmp = build_dir / f"clf_analysis.tmp-{job_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "imagePathRawData-").mkdir(parents=True)
    (tmp / "clean_platforms").mkdir()
    for h in LAYER_HEIGHTS:
        record = {
            "type": "path",
            "shape_type": "exterior",
            "points": LAYER_POINTS,
            "color": "blue",
            "identifier": "1_path_0",
            "is_hole": False,
        }
        (tmp / "imagePathRawData-" / f"platform_layer_pathdata_{h}mm.json").write_text(
            json.dumps([record], separators=(",", ":"))
        )
    (tmp / "clean_platforms" / "clean_platform_1.0mm.png").write_bytes(tiny_png())
    info = {
        "schema_version": 2,
        "files_analyzed": 1,
        "layers": len(LAYER_HEIGHTS),
        "holes_views_interval": params.get("holes_interval"),
        "analysis_summary": {"job_id": job_id},
    }
    (tmp / "platform_info.json").write_text(json.dumps(info))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def quick(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """Finishes in about half a second with a legacy-shaped result; logs as the pipeline
    does (a line with the job id, and a warning)."""
    log = logging.getLogger("clf_analysis.pipeline.run")
    log.info("analysis of %s started", build_id, extra={"job_id": job_id})
    log.warning("stand-in runner: no real analysis", extra={"job_id": job_id})
    started = time.monotonic()
    for i, stage in enumerate(("open", "layers", "images")):
        progress(stage, i / 3, f"stage {stage}")
        time.sleep(0.15)
    build_dir = Path(os.environ["MIDAS_BASE_PATH"]) / build_id
    out = write_fake_results(build_dir, job_id, params)
    return {
        "success": True,
        "build_id": build_id,
        "duration_seconds": round(time.monotonic() - started, 3),
        "summary_path": str(out / "platform_info.json"),
        "output_dir": str(out),
        "holes_interval": params.get("holes_interval"),
        "create_composite_views": params.get("create_composite_views"),
    }


def slow(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """Runs CLF_TEST_RUNNER_SECONDS (default 40), reporting progress, honouring cancel."""
    seconds = float(os.environ.get("CLF_TEST_RUNNER_SECONDS", "40"))
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if is_cancelled():
            raise RuntimeError("cancelled")
        progress("layers", elapsed / seconds, f"{elapsed:.0f} of {seconds:.0f} s")
        time.sleep(0.2)
    return quick(job_id, build_id, params, lambda *a: None, is_cancelled)


def failing(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """Fails the way a corrupt build would."""
    progress("open", 0.1, "opening")
    raise ValueError(f"build {build_id}: corrupt package (test runner)")


def pipeline(
    job_id: str, build_id: str, params: dict[str, Any], progress: Progress, is_cancelled: Any
) -> dict[str, Any]:
    """The production runner itself, reachable under this module's name."""
    from clf_analysis.pipeline.job import run_job

    return run_job(job_id, build_id, params, progress, is_cancelled)
