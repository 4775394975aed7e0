"""Full pipeline throughput: parse + two key types + every default detector + dry-run actions.

    python bench/pipeline_bench.py [--records 1000000] [--rate 2000] [--naive 20000]

Generates realistic 45-field CloudFront real-time lines with ``consumer.traffic`` (seeded, all abuse
scenarios and hard negatives), holds them in memory, then times ``Pipeline.process`` over them in
replay-sized batches (generation excluded). For comparison it times the naive design on the same
lines: one river HalfSpaceTrees ``score_one`` + ``learn_one`` per record on a per-record feature
vector (measured on ``--naive`` records and reported as records/s). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumer.config import Config, load_config
from consumer.pipeline import Pipeline
from consumer.traffic.generator import generate


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def lines(n: int, rate: float, seed: int) -> list[bytes]:
    out: list[bytes] = []
    for batch in generate(seed=seed, duration_s=None, rate=rate):
        out.extend(batch)
        if len(out) >= n:
            return out[:n]
    return out


def _timed(obj: object, name: str, acc: dict[str, float], label: str) -> None:
    """Wrap ``obj.name`` (an instance attribute override) to add its CPU seconds to ``acc[label]``."""
    f = getattr(obj, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        c0 = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            acc[label] += time.process_time() - c0

    setattr(obj, name, wrapper)


def run_pipeline(
    cfg: Config, data: list[bytes], batch: int
) -> tuple[float, float, Pipeline, dict[str, float]]:
    """Wall seconds, CPU seconds of this (single-threaded) process, the pipeline and the CPU seconds
    per stage (parse, keys, engine, actions: timers around the pipeline's own calls, so the timed
    path is ``Pipeline.process`` itself). On a shared machine the CPU-time rate is the one-core
    figure; the wall rate includes waiting for a core."""
    pipeline = Pipeline.from_config(cfg, dry_run=True)
    stages = dict.fromkeys(("parse", "keys", "engine", "actions"), 0.0)
    _timed(pipeline.parser, "parse", stages, "parse")
    _timed(pipeline.keys, "extract", stages, "keys")
    _timed(pipeline.engine, "process", stages, "engine")
    _timed(pipeline.actions, "submit", stages, "actions")
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(data), batch):
        pipeline.process(data[i : i + batch])
    pipeline.flush()
    return time.perf_counter() - t0, time.process_time() - c0, pipeline, stages


def run_naive(cfg: Config, data: list[bytes], batch: int) -> tuple[float, float]:
    """The design cfguard avoids: a river model scoring and learning on every single record.

    Same parser and keys as ours (so only the detection design differs), then per record: the
    user's running figures in a dict, a feature vector, HalfSpaceTrees ``score_one`` + ``learn_one``
    with the ML detector's default model size (25 trees, height 6).
    """
    from river import anomaly, compose, preprocessing

    pipeline = Pipeline.from_config(cfg, dry_run=True)
    model = compose.Pipeline(
        preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(n_trees=25, height=6, window_size=250, seed=42)
    )
    per_user: dict[str | None, list[float]] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(data), batch):
        b = pipeline.parser.parse(data[i : i + batch]).batch
        pipeline.keys.extract(b)
        users = b.keys["user"]
        sizes = b.numbers["sc-bytes"].tolist()
        status = b.numbers["sc-status"].tolist()
        for u, size, st in zip(users, sizes, status, strict=True):
            acc = per_user.setdefault(u, [0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += size if size == size else 0.0
            acc[2] += st >= 400
            x = {"requests": math.log1p(acc[0]), "bytes": math.log1p(acc[1]), "errors": acc[2] / acc[0]}
            model.score_one(x)
            model.learn_one(x)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=2000.0, help="ordinary users' records/s of event time")
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--naive", type=int, default=20_000, help="records for the naive comparison")
    ap.add_argument("--config", help="default: the embedded default config")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    cfg = load_config(args.config, environ={})
    t0 = time.perf_counter()
    data = lines(args.records, args.rate, args.seed)
    gen_s = time.perf_counter() - t0
    size = sum(map(len, data))
    rss0 = rss_mb()
    secs, cpu_s, pipeline, stages = run_pipeline(cfg, data, args.batch)
    rss1 = rss_mb()
    stats = pipeline.stats()
    naive_s, naive_cpu = run_naive(cfg, data[: args.naive], args.batch)
    ours = len(data) / secs
    naive = args.naive / naive_s
    naive_c = args.naive / naive_cpu
    engine = stats["engine"]
    assert isinstance(engine, dict)
    print(
        f"generated {len(data):,} lines ({size / len(data):.0f} bytes/line) in {gen_s:.1f} s; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print("| measure | value |\n|---|---|")
    print(f"| pipeline records/s | {ours:,.0f} |")
    print(f"| pipeline records per CPU-second | {len(data) / cpu_s:,.0f} |")
    print(f"| pipeline µs/record | {secs / len(data) * 1e6:.2f} |")
    stage = ", ".join(f"{k} {v / len(data) * 1e6:.2f}" for k, v in stages.items())
    print(f"| CPU µs/record by stage | {stage} |")
    print(f"| naive river HST per record, records/s | {naive:,.0f} wall, {naive_c:,.0f} per CPU-s |")
    print(f"| speed-up over naive | {ours / naive:.1f}x wall, {len(data) / cpu_s / naive_c:.1f}x CPU |")
    decisions = sum(v for k, v in stats.items() if k.startswith("decisions.") and isinstance(v, int))
    tracked = ", ".join(f"{k}={v}" for k, v in engine.items() if k.startswith("tracked_keys"))
    print(f"| findings / decisions | {stats['findings']} / {decisions} |")
    print(f"| tracked keys | {tracked} |")
    print(f"| RSS growth during the run | {rss1 - rss0:.0f} MiB |")


if __name__ == "__main__":
    main()
