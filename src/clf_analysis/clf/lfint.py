"""lf_int: the format's variable-length unsigned integer (docs/FORMAT.md#primitives)."""

from __future__ import annotations

# 5 value bits in the first byte plus up to 7 following bytes.
LFINT_MAX = (1 << (5 + 8 * 7)) - 1


def encode_lfint(value: int) -> bytes:
    """Encode `value` in the shortest lf_int form."""
    if value < 0 or value > LFINT_MAX:
        raise ValueError(f"lf_int out of range: {value}")
    n = 0
    while value >> (5 + 8 * n):
        n += 1
    head = (n << 5) | (value >> (8 * n))
    return bytes((head,)) + (value & ((1 << (8 * n)) - 1)).to_bytes(n, "big")
