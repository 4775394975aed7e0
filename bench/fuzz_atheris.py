"""Coverage-guided fuzzing (atheris, libFuzzer) of the input-facing code: the campaign tool behind
bench/results/fuzz.md, next to the hypothesis property tests in tests/hostile/ that CI runs.

    pip install -e '.[fuzz]'
    python bench/fuzz_atheris.py TARGET -runs=200000 [-max_len=4096] [libFuzzer flags...]

Targets: ``realtime`` (RealtimeParser on the bytes split into lines), ``standard`` (StandardParser,
headers included), ``sources`` (the bytes as a replay file: kind detection, recorded/Lambda/gzip
readers, KPL de-aggregation), ``keys`` (every key source on the bytes as text). A target fails
(libFuzzer prints the input and exits non-zero) if anything raises or a count does not add up.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    import numpy as np

    from consumer.fields import ALL_45
    from consumer.keys import KeyExtractor, KeySpec
    from consumer.quarantine import Quarantine
    from consumer.realtime import RealtimeParser
    from consumer.sources import open_input
    from consumer.standard import StandardParser
    from detectors.batch import RecordBatch

REALTIME = RealtimeParser(ALL_45, ALL_45, decode=["cs-cookie", "cs-uri-query"], max_line_bytes=2048)
SPECS = [
    KeySpec(name="ip", source="c-ip", ipv6_prefix=64),
    KeySpec(name="fwd", source="x-forwarded-for", xff_from_right=1),
    KeySpec(name="user", source="cookie", param="uid"),
    KeySpec(name="hdr", source="header", param="x-id"),
    KeySpec(name="q", source="query", param="u"),
    KeySpec(name="path", source="uri-regex", param=r"^/u/([^/]{1,64})"),
]
FIELD = {"ip": "c-ip", "fwd": "x-forwarded-for", "user": "cs-cookie", "hdr": "cs-headers",
         "q": "cs-uri-query", "path": "cs-uri-stem"}  # fmt: skip
TMP = Path(tempfile.mkdtemp(prefix="cfguard-fuzz-")) / "input"


def realtime(data: bytes) -> None:
    lines = data.split(b"\n")
    r = REALTIME.parse(lines)
    assert len(r.batch) + len(r.malformed) == len(lines)


def standard(data: bytes) -> None:
    lines = data.split(b"\n")
    r = StandardParser(decode=["cs-cookie"], max_line_bytes=2048).parse(lines)
    data_lines = sum(1 for x in lines if x[:1] != b"#")
    assert len(r.batch) + sum(1 for why, _ in r.malformed if why != "bad_header") == data_lines


def sources(data: bytes) -> None:
    TMP.write_bytes(data)
    q = Quarantine()
    src = open_input(TMP, quarantine=q)
    for _ in src.batches(256):
        pass


def keys(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape").encode("utf-8", "replace").decode("utf-8")
    parts = (text.split("\x00") + [""] * 6)[:6]
    batch = RecordBatch(time=np.zeros(1), numbers={}, texts={FIELD[s.name]: [parts[i]] for i, s in
                        enumerate(SPECS)}, keys={})  # fmt: skip
    ex = KeyExtractor(SPECS)
    ex.extract(batch)
    for s in SPECS:
        (k,) = batch.keys[s.name]
        assert k is None or 0 < len(k) <= s.max_length


TARGETS = {"realtime": realtime, "standard": standard, "sources": sources, "keys": keys}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    try:
        atheris.Fuzz()
    finally:
        if TMP.exists():
            os.unlink(TMP)


if __name__ == "__main__":
    main()
