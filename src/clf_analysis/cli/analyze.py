"""`clf-analysis analyze`: run one analysis in the foreground with a progress bar."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse a build in the foreground and publish its outputs",
        description="Analyse a build (an id under MIDAS_BASE_PATH, or a path to an .abp) and "
        "write clf_analysis/ next to the package.",
    )
    p.add_argument("build", help="build id under --midas, or a path to a .abp file")
    p.add_argument("--midas", type=Path, default=None, help="MIDAS base path (MIDAS_BASE_PATH)")
    p.add_argument("--holes-interval", type=float, default=10.0, help="mm between holes views (10)")
    p.add_argument("--composite", action="store_true", help="also write composite views")
    p.add_argument(
        "--no-pathdata", action="store_true", help="skip the per-layer path data JSON files"
    )
    p.add_argument("--processes", type=int, default=None, help="processes (ANALYSIS_PROCESSES)")
    p.add_argument("--exclusions", type=Path, default=None, help="folder exclusions JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class ProgressBar:
    """A one-line progress bar on a stream; a plain line per stage when not a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.stage = ""

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.tty:
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {fraction * 100:5.1f}% {stage:<9} {message[:40]:<40}")
            self.stream.flush()
        elif stage != self.stage:
            self.stream.write(f"{fraction * 100:5.1f}% {stage}: {message}\n")
            self.stream.flush()
        self.stage = stage

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def report_lines(info: dict[str, Any], output_dir: str, duration_seconds: float) -> list[str]:
    """The short report printed after a run, from its platform_info.json."""
    parts = info["parts"]
    heights = info["global_height_info"]
    holes = sum(p["hole_count"] for p in parts)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in info["timings"].items())
    lines = [
        f"build        {info['build']['id']} ({info['build']['archive']})",
        f"files        {len(info['files_analyzed'])} analysed, "
        f"{info['exclusion_info']['files_excluded']} excluded by folder rules",
        f"parts        {len(parts)}",
        f"layers       {heights['layer_count']} (thickness {heights['layer_thickness']} mm, "
        f"top {heights['top_layer_height']} mm)",
        f"holes        {holes} (per part the most holes on one layer, summed over parts)",
        f"invalid      {info['invalid_loops_total']} loops",
        f"warnings     {len(info['warnings'])}",
    ]
    lines += [f"  - {w}" for w in info["warnings"][:10]]
    lines += [
        f"timings      {timings} (total {duration_seconds:.2f}s)",
        f"output       {output_dir}",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    import json

    from clf_analysis.abp.errors import ExclusionsError
    from clf_analysis.abp.exclusions import load_exclusions
    from clf_analysis.abp.share import BuildFolder
    from clf_analysis.config import ConfigError, load_settings
    from clf_analysis.layout import OUTPUT_DIR, PLATFORM_INFO
    from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError
    from clf_analysis.pipeline.job import run_options
    from clf_analysis.pipeline.params import AnalysisParams
    from clf_analysis.pipeline.run import run as run_analysis

    try:
        settings = load_settings()
        params = AnalysisParams(
            holes_interval=args.holes_interval,
            create_composite_views=args.composite,
            pathdata=not args.no_pathdata,
        )
        exclusions = load_exclusions(args.exclusions or settings.exclusions_file)
    except (ConfigError, ExclusionsError, ValueError) as exc:
        print(f"clf-analysis analyze: {exc}", file=sys.stderr)
        return 2
    midas = args.midas or settings.midas_base_path
    options = run_options(settings, exclusions, processes=args.processes)
    bar = ProgressBar(sys.stderr)
    try:
        result = run_analysis(
            args.build,
            params,
            midas_base_path=midas,
            options=options,
            progress=(lambda *a: None) if args.quiet else bar,
        )
    except AnalysisCancelled:
        bar.close()
        print("clf-analysis analyze: cancelled", file=sys.stderr)
        return 130
    except AnalysisError as exc:
        bar.close()
        print(f"clf-analysis analyze: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print("clf-analysis analyze: interrupted; previous results left untouched", file=sys.stderr)
        return 130
    bar.close()
    # Read back through the share module: the folder may be on the share, where a link
    # could replace the results a moment after they were published.
    folder = result.output_dir.parent
    with BuildFolder(folder.parent, folder.name).open() as build:
        info = json.loads(build.read_bytes(f"{OUTPUT_DIR}/{PLATFORM_INFO}"))
    print("\n".join(report_lines(info, str(result.output_dir), result.duration_seconds)))
    return 0
