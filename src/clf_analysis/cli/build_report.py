"""`clf-analysis build-report`: the PDF report of an analysed build, from its results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build-report",
        help="write the PDF report of an analysed build",
        description="Write one PDF from a build's published results: summary (build, "
        "package checksum, parameters, parts table), warnings and invalid loops, the plate "
        "at each holes-view height and a page per part. BUILD is a build id under "
        "MIDAS_BASE_PATH, or the path of a build folder or of its clf_analysis/ folder.",
    )
    p.add_argument("build", metavar="BUILD", help="build id, or path to a (results) folder")
    p.add_argument("--midas", type=Path, default=None, help="MIDAS base path (MIDAS_BASE_PATH)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PDF file to write (default: <build id>_build_report.pdf here)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clf_analysis.abp.discovery import build_folder
    from clf_analysis.abp.errors import BuildError, UnsafeSharePath
    from clf_analysis.abp.share import BuildFolder
    from clf_analysis.config import ConfigError, load_settings
    from clf_analysis.layout import OUTPUT_DIR, PLATFORM_INFO
    from clf_analysis.render.plate import Plate
    from clf_analysis.render.report import ReportError, build_report

    def fail(message: str, code: int = 1) -> int:
        print(f"clf-analysis build-report: {message}", file=sys.stderr)
        return code

    try:
        settings = load_settings()
    except ConfigError as exc:
        return fail(str(exc), 2)
    given = Path(args.build)
    try:
        if given.is_dir():
            # A folder named on the command line is trusted like the base path itself;
            # below it nothing is followed.
            folder = BuildFolder(given.resolve().parent, given.resolve().name)
            build_id = folder.name
        else:
            folder = build_folder(args.midas or settings.midas_base_path, args.build)
            build_id = args.build
    except (BuildError, ValueError) as exc:
        return fail(str(exc), 2)
    plate = Plate(settings.plate_size_mm, settings.plate_px_per_mm)
    try:
        opened = folder.open()
    except FileNotFoundError:
        return fail(f"no folder {folder.path}")
    except (UnsafeSharePath, NotADirectoryError) as exc:
        return fail(f"{args.build}: {exc}")
    try:
        with opened:
            if opened.lstat(PLATFORM_INFO) is not None:  # the results folder itself
                pdf = build_report(opened.read_bytes, plate)
                if build_id == OUTPUT_DIR:
                    build_id = folder.root.name
            else:
                with opened.subdir(OUTPUT_DIR) as outputs:
                    pdf = build_report(outputs.read_bytes, plate)
    except FileNotFoundError as exc:
        missing = exc.filename or OUTPUT_DIR
        return fail(f"no analysis results in {folder.path} ({missing} is missing)")
    except (UnsafeSharePath, ReportError, NotADirectoryError) as exc:
        return fail(f"{args.build}: {exc}")
    out = args.out or Path(f"{build_id}_build_report.pdf")
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        temp.write_bytes(pdf)
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        return fail(f"cannot write {out}: {exc.strerror}")
    print(f"{out} ({len(pdf):,} bytes)")
    return 0
