"""The one exception the CLF reader raises for malformed input."""

from __future__ import annotations


class CLFFormatError(Exception):
    """A CLF byte string is malformed.

    The message names the file, the byte offset and what was expected; the same facts are
    kept as attributes so callers can report them without parsing the message.
    """

    def __init__(self, source: str, offset: int, expected: str) -> None:
        self.source = source
        self.offset = offset
        self.expected = expected
        super().__init__(f"{source}: byte {offset}: {expected}")
