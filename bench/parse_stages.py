"""Where the real-time parser's time goes, and what parse + key extraction cost per record.

    python bench/parse_stages.py [--input FILE] [--lines N] [--fields f1,f2,...]   # parser stages
    python bench/parse_stages.py --keys [--records N]                              # parse + keys
    python bench/parse_stages.py --ab 2fc7c07 [--input FILE] [--batch N]           # old vs current

Stages: re-runs the steps of ``LineParser._chunk`` on each chunk with a timer around each (so the
total is a little above a plain ``parse()``); ns per line. ``--keys``: the embedded default config's
parser and key types on ``consumer.traffic`` lines (as ``bench/pipeline_bench.py``: 8192-line
batches), CPU time per record of ``parse()`` and of each key type, memos warm (second pass).
``--ab REV``: the parser of git revision REV (its ``consumer/realtime.py`` and ``columns.py``) and
the current one, alternately in one process (same load), best of two runs each.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.parse_bench import BRIEF_FIELDS
from consumer import realtime, scan
from consumer.fields import ALL_45


def stages(args: argparse.Namespace) -> None:
    lp = realtime.RealtimeParser(ALL_45, args.fields.split(","))._lines
    with open(args.input, "rb") as f:
        chunks = list(iter(lambda: list(itertools.islice(f, realtime.CHUNK)), []))
    chunks = chunks[: max(1, args.lines // realtime.CHUNK)]
    lp.parse_columns(chunks[0])  # compiled code loaded
    spent: dict[str, float] = defaultdict(float)
    n_total = 0
    pc = time.perf_counter
    for chunk in chunks:
        n = len(chunk)
        n_total += n
        t0 = pc()
        lens = np.fromiter(map(len, chunk), np.int64, n)
        t1 = pc()
        buf = np.frombuffer(b"".join(chunk), dtype=np.uint8)
        t2 = pc()
        offs = np.empty(n + 1, dtype=np.int64)
        offs[0] = 0
        np.cumsum(lens, out=offs[1:])
        masks = lp._tab_masks(buf)
        t3 = pc()
        n_cols = len(lp.columns)
        starts = np.empty((n_cols, n), dtype=np.int64)
        ends = np.empty((n_cols, n), dtype=np.int64)
        nums = np.empty((len(lp._numeric), n), dtype=np.float64)
        status = np.empty(n, dtype=np.int8)
        good = np.empty(n, dtype=np.int64)
        k = scan.scan(
            buf, masks, offs, lp.n_fields, lp._slot, lp._last_wanted, lp._kinds, lp._is_time,
            lp._num_slot, lp.max_line_bytes, starts, ends, nums, status, good,
        )  # fmt: skip
        t4 = pc()
        if lp._text.shape[0]:
            lp._texts(buf, starts, ends, k, {})
        t5 = pc()
        spent["text columns (gather kernel, decode, split, None)"] += t5 - t4
        spent["lengths of the lines"] += t1 - t0
        spent["join"] += t2 - t1
        spent["tab bit masks (numpy ==, kernel)"] += t3 - t2
        spent["scan kernel (structure, spans, numbers)"] += t4 - t3
        spent["total"] += pc() - t0
    print(f"{len(lp.columns)} fields, {n_total:,} lines of {args.input.name}")
    for name, s in spent.items():
        print(f"  {name:42s} {s / n_total * 1e9:7.0f} ns/line")


def parse_and_keys(args: argparse.Namespace) -> None:
    from bench.pipeline_bench import lines as traffic_lines
    from consumer.config import load_config
    from consumer.keys import KeyExtractor
    from consumer.pipeline import Pipeline

    cfg = load_config(None)
    data = traffic_lines(args.records, 2000, 1)
    parser = Pipeline.from_config(cfg, dry_run=True).parser
    batches = [data[i : i + 8192] for i in range(0, len(data), 8192)]
    size = sum(map(len, data)) / len(data)
    kinds = ", ".join(k.name for k in cfg.keys)
    print(f"default config: {len(parser.wanted)} fields ({', '.join(parser.wanted)}), key types {kinds}; "
          f"{len(data):,} traffic lines of {size:,.0f} bytes")  # fmt: skip
    warm = KeyExtractor(cfg.keys)  # compiled code loaded, outside the timings and the memos below
    warm.extract(parser.parse(data[:100]).batch)
    keys = KeyExtractor(cfg.keys)
    for label in ("first pass (memos cold)", "second pass (memos warm)"):
        t_parse = 0.0
        t_keys: dict[str, float] = defaultdict(float)
        for b in batches:
            c0 = time.process_time()
            batch = parser.parse(b).batch
            t_parse += time.process_time() - c0
            for spec in keys.specs:
                c1 = time.process_time()
                batch.keys[spec.name] = keys._extractors[spec.name](batch.texts[spec.field])
                t_keys[spec.name] += time.process_time() - c1
        n = len(data)
        total = t_parse + sum(t_keys.values())
        per = ", ".join(f"{k} {v / n * 1e6:.2f}" for k, v in t_keys.items())
        print(f"  {label}: parse {t_parse / n * 1e6:.2f} us + keys {sum(t_keys.values()) / n * 1e6:.2f} us "
              f"({per}) = {total / n * 1e6:.2f} us/record, {n / total:,.0f} records per CPU-s")  # fmt: skip


def ab(args: argparse.Namespace) -> None:
    import importlib
    import os
    import subprocess
    import tempfile

    repo = Path(__file__).resolve().parents[1]
    old_dir = Path(tempfile.mkdtemp(prefix="cfguard-parse-ab-"))
    for name in ("realtime", "columns"):
        text = subprocess.run(
            ["git", "show", f"{args.ab}:consumer/{name}.py"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (old_dir / f"old_{name}.py").write_text(
            text.replace("from consumer.columns import", "from old_columns import")
        )
    sys.path.insert(0, str(old_dir))
    old = importlib.import_module("old_realtime").RealtimeParser
    with open(args.input, "rb") as f:
        lines = list(itertools.islice(f, args.lines))
    data = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    default = ("timestamp", "c-ip", "sc-status", "sc-bytes", "cs-uri-stem", "cs-cookie", "x-edge-result-type",
               "cs-headers")  # fmt: skip

    def run(parser: object) -> float:
        parse = parser.parse  # type: ignore[attr-defined]
        parse(data[0])
        c = time.process_time()
        for b in data:
            parse(b)
        return (time.process_time() - c) / len(lines)

    print(f"{args.input.name}: {len(lines):,} lines, batches of {args.batch}, load {os.getloadavg()[0]:.1f}")
    for label, fields in (
        ("7", default[:-1]),
        ("8 (default)", default),
        ("13", BRIEF_FIELDS),
        ("45", ALL_45),
    ):
        o = min(run(old(ALL_45, fields)) for _ in range(2))
        n = min(run(realtime.RealtimeParser(ALL_45, fields)) for _ in range(2))
        print(
            f"  {label:12s} {args.ab} {o * 1e6:.2f} us ({1 / o:,.0f}/s)   "
            f"now {n * 1e6:.2f} us ({1 / n:,.0f}/s)   x{o / n:.2f}"
        )
    print(f"  load {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=Path("/tmp/cfguard-parse-bench/realtime-1000000-7.tsv"))
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--fields", default=",".join(BRIEF_FIELDS))
    ap.add_argument("--keys", action="store_true", help="parse + key extraction of the default config")
    ap.add_argument("--records", type=int, default=200_000, help="--keys: traffic lines to generate")
    ap.add_argument("--ab", metavar="REV", help="compare with the parser of this git revision")
    ap.add_argument("--batch", type=int, default=1000, help="--ab: lines per parse() call")
    args = ap.parse_args(argv)
    if args.ab:
        ab(args)
    elif args.keys:
        parse_and_keys(args)
    else:
        stages(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
