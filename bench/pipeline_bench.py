"""Full pipeline throughput: parse + two key types + every default detector + dry-run actions.

    python bench/pipeline_bench.py [--records 1000000] [--rate 2000] [--naive 20000]

Generates realistic 45-field CloudFront real-time lines with ``consumer.traffic`` (seeded, all abuse
scenarios and hard negatives), holds them in memory, then times ``Pipeline.process`` over them in
replay-sized batches (generation excluded). For comparison it times the naive design on the same
lines: one river HalfSpaceTrees ``score_one`` + ``learn_one`` per record on a per-record feature
vector (the first ``--naive`` records, in slices run between our batches so that both designs are
timed under the same machine conditions; reported as records/s). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Callable
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
    cfg: Config, data: list[bytes], batch: int, between: Callable[[int], None] | None = None
) -> tuple[float, float, Pipeline, dict[str, float]]:
    """Wall seconds, CPU seconds of this (single-threaded) process, the pipeline and the CPU seconds
    per stage (parse, keys, engine, actions: timers around the pipeline's own calls, so the timed
    path is ``Pipeline.process`` itself). On a shared machine the CPU-time rate is the one-core
    figure; the wall rate includes waiting for a core. ``between(i)`` runs after batch ``i``, its
    time taken out of the pipeline's (the naive design's interleaved slices)."""
    pipeline = Pipeline.from_config(cfg, dry_run=True)
    stages = dict.fromkeys(("parse", "keys", "engine", "actions"), 0.0)
    _timed(pipeline.parser, "parse", stages, "parse")
    _timed(pipeline.keys, "extract", stages, "keys")
    _timed(pipeline.engine, "process", stages, "engine")
    _timed(pipeline.actions, "submit", stages, "actions")
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out_w = out_c = 0.0
    for k, i in enumerate(range(0, len(data), batch)):
        pipeline.process(data[i : i + batch])
        if between is not None:
            w, c = time.perf_counter(), time.process_time()
            between(k)
            out_w += time.perf_counter() - w
            out_c += time.process_time() - c
    pipeline.flush()
    return time.perf_counter() - t0 - out_w, time.process_time() - c0 - out_c, pipeline, stages


class Naive:
    """The design cfguard avoids: a river model scoring and learning on every single record.
    Same parser and keys as ours (so only the detection design differs), then per record: the
    user's running figures in a dict, a feature vector, HalfSpaceTrees ``score_one`` + ``learn_one``
    with the ML detector's default model size (25 trees, height 6). ``run`` continues where the
    previous call stopped, so it can be measured in slices interleaved with our pipeline (both
    then see the same machine: on a shared VM the speed drifts by ~10% over seconds).
    """

    def __init__(self, cfg: Config) -> None:
        from river import anomaly, compose, preprocessing

        self.pipeline = Pipeline.from_config(cfg, dry_run=True)
        hst = anomaly.HalfSpaceTrees(n_trees=25, height=6, window_size=250, seed=42)
        self.model = compose.Pipeline(preprocessing.MinMaxScaler(), hst)
        self.per_user: dict[str | None, list[float]] = {}
        self.wall = self.cpu = 0.0
        self.records = 0

    def run(self, data: list[bytes]) -> None:
        model, per_user = self.model, self.per_user
        t0, c0 = time.perf_counter(), time.process_time()
        b = self.pipeline.parser.parse(data).batch
        self.pipeline.keys.extract(b)
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
        self.wall += time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        self.records += len(data)


def interleaved(naive: Naive, data: list[bytes], batches: int, slice_records: int) -> Callable[[int], None]:
    """The naive design's ``data`` in slices of ``slice_records`` (large enough that its parser's
    per-batch cost does not count against it), spread evenly over our ``batches`` batches."""
    slices = [data[i : i + slice_records] for i in range(0, len(data), slice_records)]
    every = max(1, batches // max(len(slices), 1))

    def between(k: int) -> None:
        if k % every == 0 and k // every < len(slices):
            naive.run(slices[k // every])

    return between


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
    naive_run = Naive(cfg)
    batches = -(-len(data) // args.batch)
    between = interleaved(naive_run, data[: args.naive], batches, min(args.batch, 2048))
    secs, cpu_s, pipeline, stages = run_pipeline(cfg, data, args.batch, between)
    rss1 = rss_mb()
    stats = pipeline.stats()
    ours = len(data) / secs
    naive = naive_run.records / naive_run.wall
    naive_c = naive_run.records / naive_run.cpu
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
    print(
        f"| naive river HST per record ({naive_run.records:,} records between our batches), records/s | "
        f"{naive:,.0f} wall, {naive_c:,.0f} per CPU-s |"
    )
    print(f"| speed-up over naive | {ours / naive:.1f}x wall, {len(data) / cpu_s / naive_c:.1f}x CPU |")
    decisions = sum(v for k, v in stats.items() if k.startswith("decisions.") and isinstance(v, int))
    tracked = ", ".join(f"{k}={v}" for k, v in engine.items() if k.startswith("tracked_keys"))
    print(f"| findings / decisions | {stats['findings']} / {decisions} |")
    print(f"| tracked keys | {tracked} |")
    print(f"| RSS growth during the run | {rss1 - rss0:.0f} MiB |")


if __name__ == "__main__":
    main()
