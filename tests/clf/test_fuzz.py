"""Mutated, truncated and random byte strings: the reader raises CLFFormatError or nothing.

Seeded and bounded (a few thousand inputs in total) so the run is deterministic and fast.
Each input is opened lazily and by full scan, every layer is decoded and touched, and a
few heights are looked up.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from clf_analysis.clf import CLFFormatError, open_clf, write_clf

from .builders import SQUARE, WORKED_EXAMPLE, Raw, sample_layers


def _seed_files() -> list[bytes]:
    models, layers = sample_layers(3)
    r = Raw(1)
    wide = r.file(
        [(0.05, r.layer(0.05, SQUARE, (r.cluster(polygons=(r.polygon(compression=0),)),)))]
    )
    return [WORKED_EXAMPLE, write_clf(None, models=models, layers=layers, comment="c"), wide]


def exercise(data: bytes) -> None:
    for scan in (False, True):
        try:
            clf = open_clf(data, name="fuzz.clf", scan=scan)
            for layer in clf:
                for shape in layer.shapes:
                    for loop in shape.loops:
                        assert loop.ndim == 2 and loop.shape[1] == 2
                        loop.tobytes()
            for z in (-1.0, 0.0, 0.05, 0.1, 0.125, 1e9):
                clf.find(z)
            if len(clf):
                clf.layer(-1)
            _ = (clf.name, clf.version, clf.box, clf.models, clf.comment, clf.warnings)
        except CLFFormatError as err:
            assert err.source == "fuzz.clf" and isinstance(err.offset, int)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(buf)) if buf else 0
        if op < 0.5 and buf:
            buf[i] = rng.randrange(256)
        elif op < 0.65 and buf:
            buf[i] ^= 1 << rng.randrange(8)
        elif op < 0.8:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif buf:
            del buf[i : i + rng.randint(1, 4)]
    return bytes(buf)


@pytest.mark.parametrize("seed", range(4))
def test_mutations_raise_only_format_errors(seed: int) -> None:
    rng = random.Random(seed)
    files = _seed_files()
    for _ in range(500):
        exercise(mutate(rng, rng.choice(files)))


def test_every_truncation_raises_only_format_errors() -> None:
    for data in _seed_files():
        for cut in range(0, len(data), 1 if len(data) < 400 else 7):
            with pytest.raises(CLFFormatError):
                list(open_clf(data[:cut], name="fuzz.clf"))
            with pytest.raises(CLFFormatError):
                list(open_clf(data[:cut], name="fuzz.clf", scan=True))


def test_random_bytes_raise_only_format_errors() -> None:
    rng = np.random.default_rng(1234)
    for n in range(600):
        data = rng.integers(0, 256, size=int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
        if n % 2:
            data = b"\x00" + data  # start like a header to get past the first check
        exercise(data)


def test_lfint_headed_garbage_raises_only_format_errors() -> None:
    # Long runs of 0xE0-style heads (7-byte lf_ints) and huge lengths everywhere.
    rng = random.Random(99)
    for _ in range(300):
        data = bytes(
            rng.choice([0x00, 0x02, 0x03, 0xFF, 0xE0, 0x20, 0x7F])
            for _ in range(rng.randint(0, 60))
        )
        exercise(data)
