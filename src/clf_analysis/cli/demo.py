"""`clf-analysis demo`: generate a synthetic build with its ground truth and summarise it.

The generation step (`generate_demo`) is separate from the command so that later stages
(analysis of the generated build) can be chained onto it without touching it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clf_analysis.synth import GeneratedBuild


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a synthetic build (.abp + ground truth) and summarise it",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--out", type=Path, required=True, help="folder that receives <build id>/")
    p.add_argument("--parts", type=int, default=8, help="analysed part files (default 8)")
    p.add_argument("--height", type=float, default=20.0, help="build height in mm (default 20)")
    p.add_argument("--layer", type=float, default=0.05, help="layer thickness in mm (0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--build-id", default="demo-0001", help="build id (default demo-0001)")
    p.set_defaults(func=run)


def generate_demo(args: argparse.Namespace) -> GeneratedBuild:
    """Generate the build the command line describes."""
    from clf_analysis.synth import generate_build

    return generate_build(
        args.out,
        build_id=args.build_id,
        parts=args.parts,
        height_mm=args.height,
        layer_mm=args.layer,
        seed=args.seed,
    )


def summary_lines(build: GeneratedBuild) -> list[str]:
    """A short human summary of a generated build."""
    return [
        f"build       {build.build_id}",
        f"package     {build.archive} ({build.size_bytes / 1e6:.2f} MB)",
        f"clf files   {build.clf_files}: {build.included_files} included, "
        f"{build.excluded_files} excluded by folder",
        f"parts       {build.parts} (folder, file, model id) keys analysed",
        f"layers      {build.layers}",
        f"truth       {build.ground_truth}",
        f"generated   in {build.seconds:.2f} s",
    ]


def run(args: argparse.Namespace) -> int:
    try:
        build = generate_demo(args)
    except ValueError as exc:
        print(f"clf-analysis demo: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(build)))
    # `inspect` is another role of this CLI; list the package with it when it exists.
    if importlib.util.find_spec("clf_analysis.cli.inspect") is not None:
        from clf_analysis.cli import main

        print()
        return main(["inspect", str(build.archive)])
    return 0
