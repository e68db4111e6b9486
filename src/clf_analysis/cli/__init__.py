"""`clf-analysis`: one command, many roles (serve, worker, submit, query, cancel, report,
inspect, analyze, build-report, demo).

Each role is a module of this package with `register(subparsers)`, listed in `COMMANDS`;
the module keeps its heavy imports inside the command so that `clf-analysis --help`
stays fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from clf_analysis import __version__
from clf_analysis.cli import (
    analyze,
    build_report,
    cancel,
    demo,
    inspect,
    query,
    report,
    serve,
    submit,
    worker,
)

# In the order `--help` lists them.
COMMANDS = (analyze, build_report, cancel, demo, inspect, query, report, serve, submit, worker)


class CommandLine(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line like every other error of
    the command, naming the flag, with where to read more (instead of the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLine(
        prog="clf-analysis",
        description="Analyse Arcam EBM build packages (.abp / .clf) and serve the results.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


# The status of a Unix tool that a closed pipe ended (`clf-analysis report | head`).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen role; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
        # Output still buffered would otherwise meet the closed pipe at exit, outside
        # this handler.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly as Unix tools do. Python's own
        # flush at exit must not fail again on the same pipe, so stdout goes nowhere now.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
