"""Options several roles share, and the checks of numeric flags.

Light on purpose (no third-party imports): every role's `register` uses it, and
`clf-analysis --help` imports every role.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

DEFAULT_PORT = 6300
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_service_options(parser: argparse.ArgumentParser) -> None:
    """--url and --token of the roles that call a running service."""
    parser.add_argument(
        "--url",
        default=None,
        help=f"the service's root URL (default CLF_ANALYSIS_URL or {DEFAULT_URL}); "
        f"HOST:PORT means http://HOST:PORT, a HOST alone http://HOST:{DEFAULT_PORT}",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="API token, needed to submit and cancel when the service sets API_TOKEN "
        "(default: API_TOKEN)",
    )


def _number(kind: Callable[[str], Any], text: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def at_least(low: float, kind: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse `type`: a number of `kind` that is `low` or more (argparse then names
    the flag: "argument --limit: must be at least 1, got -5")."""

    def parse(text: str) -> Any:
        value = _number(kind, text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def above(low: float) -> Callable[[str], float]:
    """An argparse `type`: a number greater than `low`."""

    def parse(text: str) -> float:
        value = float(_number(float, text))
        if not value > low:
            raise argparse.ArgumentTypeError(f"must be greater than {low:g}, got {text}")
        return value

    parse.__name__ = "float"
    return parse
