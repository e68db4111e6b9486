"""`clf-analysis`: one command, many roles (serve, worker, submit, query, report,
inspect, analyze, build-report, demo).

Each role is a module of this package with `register(subparsers)`, listed in `COMMANDS`;
the module keeps its heavy imports inside the command so that `clf-analysis --help`
stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clf_analysis import __version__
from clf_analysis.cli import (
    analyze,
    build_report,
    demo,
    inspect,
    query,
    report,
    serve,
    submit,
    worker,
)

# In the order `--help` lists them.
COMMANDS = (analyze, build_report, demo, inspect, query, report, serve, submit, worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clf-analysis",
        description="Analyse Arcam EBM build packages (.abp / .clf) and serve the results.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen role; returns the exit code."""
    args = build_parser().parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
