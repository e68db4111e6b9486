"""The string key of each part: unique in its build, safe and short enough for a file name.

A part is (folder, file, model id). Its key is `<folder>-<file stem>-<model id>` with every
run of characters outside `[A-Za-z0-9._-]` replaced by `_`. Two parts can meet on one key
(`Models/a b/Part.clf` and `Models/a_b/Part.clf` both give `a_b-Part-1`), and a folder
name can be longer than a file name may be; such keys get a suffix of 8 hex digits of a
SHA-256 of the part itself, after the readable part is cut to fit. The suffix depends only
on the part, and whether a key gets one only on the set of parts, so keys are the same in
every run and in whatever order the package lists its files.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

from clf_analysis.geometry.stats import PartKey

# Keys name files (`identifier_<key>_platform_view.png`); file systems allow 255 bytes.
# Keys are ASCII, so characters are bytes: 100 leaves room for prefix, suffix and a copy.
MAX_KEY_CHARS = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Widths tried in turn: a clash left after 8 hex digits would need two parts whose
# hashes agree in 32 bits (and then in 64, and in all 256).
_HASH_WIDTHS = (8, 16, 64)


def readable_key(key: PartKey) -> str:
    """The key before any suffix: folder, file stem and model id, unsafe characters as `_`."""
    folder, name, model_id = key
    stem = name.rsplit(".", 1)[0]
    raw = f"{folder}-{stem}-{model_id}" if folder else f"{stem}-{model_id}"
    return _UNSAFE.sub("_", raw).strip("_") or f"part-{model_id}"


def _hashed(key: PartKey, readable: str, width: int) -> str:
    folder, name, model_id = key
    digest = hashlib.sha256(f"{folder}\0{name}\0{model_id}".encode()).hexdigest()[:width]
    return f"{readable[: MAX_KEY_CHARS - width - 1].rstrip('_')}-{digest}"


def part_keys(parts: Iterable[PartKey]) -> dict[PartKey, str]:
    """Every part's key: readable where that is unique and short, else with a hash suffix."""
    readable = {key: readable_key(key) for key in set(parts)}
    keys = dict(readable)
    for width in _HASH_WIDTHS:
        uses = Counter(keys.values())
        clashing = [k for k, v in keys.items() if uses[v] > 1 or len(v) > MAX_KEY_CHARS]
        if not clashing:
            return keys
        for key in clashing:
            keys[key] = _hashed(key, readable[key], width)
    raise AssertionError("two parts share a SHA-256")  # pragma: no cover
