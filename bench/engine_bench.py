"""Engine-only cost on the pipeline benchmark's traffic: parse and key extraction done beforehand.

    python bench/engine_bench.py [--records 300000] [--batch 8192] [--profile 30] [--digest]

Generates the same ``consumer.traffic`` lines as ``bench/pipeline_bench.py`` (seed, rate), parses
them and extracts the keys with the default config's ``Pipeline`` outside the timed section, then
times ``Engine.process`` alone (CPU seconds of this single-threaded process, and wall) and, in the
same run, ``ActionRunner.submit`` in dry-run on the findings. ``--digest`` prints a sha256 of every
finding (all fields, evidence included, in order) so a change to the engine can be checked to give
bit-identical findings. ``--profile N`` prints the N most expensive functions (cProfile, tottime).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_bench import lines
from consumer.config import load_config
from consumer.pipeline import Pipeline
from detectors.batch import RecordBatch
from detectors.finding import Finding


def batches(records: int, rate: float, seed: int, batch: int) -> list[RecordBatch]:
    cfg = load_config(None, environ={})
    p = Pipeline.from_config(cfg, dry_run=True)
    data = lines(records, rate, seed)
    out = []
    for i in range(0, len(data), batch):
        b = p.accept(p.parser.parse(data[i : i + batch]), len(data[i : i + batch]))
        if b is not None:
            out.append(b)
    return out


def digest(findings: list[Finding]) -> str:
    h = hashlib.sha256()
    for f in findings:
        h.update(repr(f).encode())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (fresh engine each); best is kept")
    ap.add_argument("--profile", type=int, default=0, help="print the N top functions by tottime")
    ap.add_argument("--digest", action="store_true")
    args = ap.parse_args()

    cfg = load_config(None, environ={})
    bs = batches(args.records, args.rate, args.seed, args.batch)
    n = sum(len(b) for b in bs)
    best = (float("inf"), 0.0, 0.0)
    findings: list[Finding] = []
    for _ in range(args.repeat):
        p = Pipeline.from_config(cfg, dry_run=True)
        findings = []
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        for b in bs:
            findings.extend(p.engine.process(b))
        c1, t1 = time.process_time(), time.perf_counter()
        p.actions.submit(findings)
        c2 = time.process_time()
        if c1 - c0 < best[0]:
            best = (c1 - c0, t1 - t0, c2 - c1)
    cpu, wall, act = best
    print(f"{n:,} records, {len(bs)} batches, load average {os.getloadavg()[0]:.2f}")
    rate = f"{n / cpu:,.0f} records per CPU-s"
    print(f"engine: {cpu / n * 1e6:.2f} µs/record CPU ({rate}), wall {wall / n * 1e6:.2f} µs/record")
    print(f"dry-run actions on {len(findings)} findings: {act / n * 1e6:.3f} µs/record CPU")
    if args.digest:
        print(f"findings digest {digest(findings)}")
    if args.profile:
        p = Pipeline.from_config(cfg, dry_run=True)
        prof = cProfile.Profile()
        prof.enable()
        for b in bs:
            p.engine.process(b)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
