"""`clf-analysis analyze`: run one analysis in the foreground with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from clf_analysis.cli.options import at_least


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse a build in the foreground and publish its outputs",
        description="Analyse a build and write clf_analysis/ next to its package. BUILD is "
        "a build id under --midas (MIDAS_BASE_PATH), a path to an .abp package, or a path "
        "to a folder holding one (the package is chosen as the service chooses it).",
    )
    p.add_argument(
        "build", metavar="BUILD", help="build id under --midas, an .abp file, or a folder with one"
    )
    p.add_argument("--midas", type=Path, default=None, help="MIDAS base path (MIDAS_BASE_PATH)")
    p.add_argument("--holes-interval", type=float, default=10.0, help="mm between holes views (10)")
    p.add_argument("--composite", action="store_true", help="also write composite views")
    p.add_argument(
        "--no-pathdata", action="store_true", help="skip the per-layer path data JSON files"
    )
    p.add_argument(
        "--processes", type=at_least(1), default=None, help="processes (ANALYSIS_PROCESSES)"
    )
    p.add_argument("--exclusions", type=Path, default=None, help="folder exclusions JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--verbose", action="store_true", help="also show the pipeline's log lines (LOG_LEVEL)"
    )
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


EXIT_USAGE = 2
USAGE_HINT = (
    "give a build id under MIDAS_BASE_PATH (or --midas), an .abp file, or a folder holding one"
)


# The flag of each analysis parameter this command sets.
PARAM_FLAGS = {
    "holes_interval": "--holes-interval",
    "create_composite_views": "--composite",
    "pathdata": "--no-pathdata",
}


def params_problem(exc: Any) -> str:
    """A refused analysis parameter (pydantic's ValidationError) in one line, by its flag."""
    problems = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        problems.append(f"{PARAM_FLAGS.get(field, field)}: {err['msg']} (got {err['input']!r})")
    return "; ".join(problems)


class TargetError(Exception):
    """BUILD names nothing that can be analysed; the message says what to pass instead."""


def _is_path(text: str) -> bool:
    return os.sep in text or "/" in text or text in (".", "..")


def _package_of_folder(text: str) -> Path:
    """The package the service would choose in the folder `text` (the user's own path,
    resolved); errors name it as typed."""
    from clf_analysis.abp.discovery import open_build_folder, package_in
    from clf_analysis.abp.errors import BuildNotFound, BuildRefused
    from clf_analysis.abp.share import BuildFolder

    real = Path(text).resolve()
    if real == real.parent:
        raise TargetError(f"{text}: put the package in a folder of its own")
    build = BuildFolder(real.parent, real.name)
    try:
        with open_build_folder(build) as share:
            package = package_in(share, build)
    except BuildRefused as exc:
        raise TargetError(f"{text}: {str(exc).split(': ', 1)[-1]}") from None
    except BuildNotFound:
        raise TargetError(f"{text}: no .abp package in this folder; {USAGE_HINT}") from None
    return real / (package.link or package.name)


def resolve_target(text: str, midas: Path) -> str | Path:
    """What to analyse: a build id (str) under `midas`, or the path of a package."""
    from clf_analysis.abp.discovery import find_build_package, validate_build_id
    from clf_analysis.abp.errors import BuildNotFound, BuildRefused, InvalidBuildId

    path = Path(text)
    if path.suffix.lower() == ".abp" or (_is_path(text) and not path.is_dir()):
        if path.is_file():
            if path.suffix.lower() != ".abp":
                raise TargetError(f"{text}: not a build package (.abp); {USAGE_HINT}")
            return path
        raise TargetError(f"{text}: no such file or folder; {USAGE_HINT}")
    if path.is_dir() and _is_path(text):
        return _package_of_folder(text)
    if path.is_file():
        raise TargetError(f"{text}: not a build package (.abp); {USAGE_HINT}")
    try:
        build_id = validate_build_id(text)
    except InvalidBuildId as exc:
        if path.is_dir():  # "my build": not an id, but a folder here
            return _package_of_folder(text)
        raise TargetError(f"{exc}; {USAGE_HINT}") from None
    # A folder of that name here is probably what was meant: say how to name it.
    hint = f"; for the folder ./{text} here, write: clf-analysis analyze ./{text}"
    hint = hint if path.is_dir() else ""
    if not midas.is_dir():
        raise TargetError(
            f"build {build_id}: the builds folder {midas} does not exist or is no folder "
            f"(set MIDAS_BASE_PATH or --midas){hint}"
        )
    try:
        find_build_package(midas, build_id)
    except BuildRefused:
        return build_id  # the run names the refused link, as the service does
    except BuildNotFound:
        missing = "no .abp package in it" if (midas / build_id).is_dir() else "no such folder"
        raise TargetError(
            f"build {build_id} not found under {midas} (MIDAS_BASE_PATH or --midas): "
            f"{missing}{hint}"
        ) from None
    return build_id


def run(args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from clf_analysis.abp.errors import ExclusionsError
    from clf_analysis.abp.exclusions import load_exclusions
    from clf_analysis.abp.share import BuildFolder
    from clf_analysis.config import ConfigError, load_settings
    from clf_analysis.layout import OUTPUT_DIR, PLATFORM_INFO
    from clf_analysis.logs import configure_logging
    from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError
    from clf_analysis.pipeline.job import run_options
    from clf_analysis.pipeline.params import AnalysisParams
    from clf_analysis.pipeline.run import run as run_analysis

    try:
        overrides = {} if args.processes is None else {"analysis_processes": args.processes}
        settings = load_settings(option_names={"analysis_processes": "--processes"}, **overrides)
        params = AnalysisParams(
            holes_interval=args.holes_interval,
            create_composite_views=args.composite,
            pathdata=not args.no_pathdata,
        )
    except ConfigError as exc:
        print(f"clf-analysis analyze: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"clf-analysis analyze: {params_problem(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        exclusions = load_exclusions(args.exclusions or settings.exclusions_file)
    except ExclusionsError as exc:
        named = "--exclusions" if args.exclusions else "EXCLUSIONS_FILE"
        print(f"clf-analysis analyze: {named}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    midas = args.midas or settings.midas_base_path
    try:
        target = resolve_target(args.build, midas)
    except TargetError as exc:
        print(f"clf-analysis analyze: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # The pipeline logs for the service's operators; here its failure is printed once,
    # below, and what it warns about is in the report's warnings.
    configure_logging(settings.log_level if args.verbose else "ERROR", "text")
    options = run_options(settings, exclusions)
    bar = ProgressBar(sys.stderr)
    try:
        result = run_analysis(
            target,
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
