"""Where the real-time parser's time goes: the fast path's stages timed one by one.

    python bench/parse_stages.py [--input FILE] [--lines N] [--fields f1,f2,...]

Re-runs the steps of ``LineParser._fast`` on each chunk with a timer around each (so the total is
a little above a plain ``parse()``); figures in ns per line.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import defaultdict
from itertools import repeat
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.parse_bench import BRIEF_FIELDS
from consumer import columns, realtime
from consumer.fields import ALL_45


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=Path("/tmp/cfguard-parse-bench/realtime-1000000-7.tsv"))
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--fields", default=",".join(BRIEF_FIELDS))
    args = ap.parse_args(argv)
    lp = realtime.RealtimeParser(ALL_45, args.fields.split(","))._lines
    nf = lp.n_fields
    spent: dict[str, float] = defaultdict(float)
    n_total = 0
    with open(args.input, "rb") as f:
        while chunk := list(itertools.islice(f, min(realtime.CHUNK, args.lines - n_total))):
            n = len(chunk)
            n_total += n
            pc = time.perf_counter
            t0 = pc()
            lens = np.fromiter(map(len, chunk), np.int64, n)
            buf = b"\t".join(chunk)
            arr = np.frombuffer(buf, dtype=np.uint8)
            assert np.count_nonzero(arr[np.cumsum(lens) - 1 + np.arange(n)] == 10) == n
            assert np.count_nonzero(arr == 10) == n
            t1 = pc()
            flat = buf.split(b"\t")
            t2 = pc()
            lasts = flat[nf - 1 :: nf]
            assert sum(map(bytes.endswith, lasts, repeat(b"\n"))) == n
            t3 = pc()
            spent["join + newline checks"] += t1 - t0
            spent["split"] += t2 - t1
            spent["line structure check"] += t3 - t2
            bad: set[int] = set()
            for c in lp.columns:
                ta = pc()
                raw = flat[c.index :: nf]
                if c.numeric:
                    columns.numbers_column(raw, c, bad, lp._tables[c.name])
                else:
                    columns.texts_column(raw, c, bad, lp._tables[c.name])
                spent[f"column {c.name}"] += pc() - ta
            del flat, lasts
            spent["total"] += pc() - t0
            if n_total >= args.lines:
                break
    for name, s in spent.items():
        print(f"{name:40s} {s / n_total * 1e9:7.0f} ns/line")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
