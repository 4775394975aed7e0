"""Soak: >= 10 million generated records through the full default pipeline, memory sampled.

    python bench/soak_bench.py [--records 10000000] [--rate 60] [--users 50000] [--segment-s 3600]
        [--idle-timeout-s 14400] [--sample 250000] [--out bench/results/soak] [--config cfg.yaml]

Event time runs over days so that windows turn over and idle keys are evicted: the traffic is made of
consecutive ``--segment-s`` segments of ``consumer.traffic`` (all abuse scenarios and hard negatives),
each with its own seed, so every segment brings a fresh population of ``--users`` users with their own
cookies and addresses and the previous population falls idle. Records are generated batch by batch
and dropped once processed: nothing holds the stream in memory. Actions run in dry-run (the guard
decides as live, nothing is sent).

Every ``--sample`` records it notes the RSS, the pipeline's own records/s over the last interval
(generation excluded), tracked keys and the engine's state bytes. It writes ``<out>.csv`` and
``<out>.png`` and prints a markdown summary: RSS and throughput in the first and last quarter, the
growth of RSS after the warm-up (the first idle-timeout of event time), and the machine load.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumer.config import Config, load_config
from consumer.pipeline import Pipeline
from consumer.traffic.generator import DEFAULT_START, Generator


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Sample:
    records: int
    wall_s: float
    event_h: float
    rss_mb: float
    rps: float  # pipeline records/s over the interval since the previous sample
    tracked_ip: int
    tracked_user: int
    state_mb: float
    guard_keys: int
    decisions: int
    load1: float


def stream(args: argparse.Namespace):
    """Batches of lines, segment after segment, each segment a new seed and population."""
    seg = 0
    while True:
        gen = Generator(
            seed=args.seed * 1000 + seg,
            start=DEFAULT_START + seg * args.segment_s,
            rate=args.rate,
            users=args.users,
        )
        yield from gen.batches(args.segment_s, batch_size=args.batch)
        seg += 1


def soak_config(args: argparse.Namespace) -> Config:
    """The given (or default) config with ``state.idle_timeout_s`` from ``--idle-timeout-s`` if set."""
    cfg = load_config(args.config, environ={})
    if args.idle_timeout_s:
        state = cfg.state.model_copy(update={"idle_timeout_s": args.idle_timeout_s})
        cfg = cfg.model_copy(update={"state": state})
    return cfg


def run(args: argparse.Namespace) -> list[Sample]:
    cfg = soak_config(args)
    pipeline = Pipeline.from_config(cfg, dry_run=True)
    samples: list[Sample] = []
    done = 0
    busy = 0.0  # pipeline seconds since the last sample
    last_done = 0
    next_sample = args.sample
    decisions = 0
    t_start = time.perf_counter()
    gc.collect()
    for lines in stream(args):
        t0 = time.perf_counter()
        decisions += len(pipeline.process(lines, "soak"))
        busy += time.perf_counter() - t0
        done += len(lines)
        if done >= next_sample:
            st = pipeline.stats()
            eng = st["engine"]
            act = st["actions"]
            assert isinstance(eng, dict) and isinstance(act, dict)
            s = Sample(
                records=done,
                wall_s=time.perf_counter() - t_start,
                event_h=(float(eng["watermark"]) - DEFAULT_START) / 3600,
                rss_mb=rss_mb(),
                rps=(done - last_done) / busy if busy else 0.0,
                tracked_ip=int(eng.get("tracked_keys.ip", 0)),
                tracked_user=int(eng.get("tracked_keys.user", 0)),
                state_mb=float(eng["state_bytes"]) / 2**20,
                guard_keys=len(pipeline.actions.guard.keys),
                decisions=decisions,
                load1=os.getloadavg()[0],
            )
            samples.append(s)
            print(
                f"{s.records:>11,} rec  {s.event_h:6.1f} h  rss {s.rss_mb:7.1f} MiB  {s.rps:8,.0f} rec/s  "
                f"ip {s.tracked_ip:>8,} user {s.tracked_user:>8,}  state {s.state_mb:6.1f} MiB  "
                f"load {s.load1:.1f}",
                file=sys.stderr,
                flush=True,
            )
            busy, last_done = 0.0, done
            next_sample += args.sample
        if done >= args.records:
            break
    pipeline.flush()
    pipeline.close()
    final = pipeline.stats()
    print(f"final stats: {final}", file=sys.stderr)
    return samples


def write_csv(path: Path, samples: list[Sample]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(Sample.__dataclass_fields__))
        for s in samples:
            w.writerow([getattr(s, k) for k in Sample.__dataclass_fields__])


def plot(path: Path, samples: list[Sample], warmup_h: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [s.records / 1e6 for s in samples]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    a1.plot(x, [s.rss_mb for s in samples], label="RSS")
    a1.plot(x, [s.state_mb for s in samples], label="engine numpy state")
    a1.set_ylabel("MiB")
    a1.legend(loc="lower right")
    a1.set_title("cfguard soak: full default pipeline, dry-run actions")
    a2.plot(x, [s.rps / 1000 for s in samples], color="tab:green")
    a2.set_ylabel("pipeline k records/s")
    a2.set_ylim(bottom=0)
    a3.plot(x, [s.tracked_ip / 1000 for s in samples], label="tracked ip keys")
    a3.plot(x, [s.tracked_user / 1000 for s in samples], label="tracked user keys")
    a3.set_ylabel("thousands")
    a3.set_xlabel("records processed (millions)")
    a3.legend(loc="lower right")
    warm = next((s.records / 1e6 for s in samples if s.event_h >= warmup_h), None)
    if warm is not None:
        for a in (a1, a2, a3):
            a.axvline(warm, color="grey", linestyle=":", linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def summary(samples: list[Sample], warmup_h: float, args: argparse.Namespace) -> str:
    n = len(samples)
    q = max(1, n // 4)
    first, last = samples[:q], samples[-q:]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    after = [s for s in samples if s.event_h >= warmup_h]
    out = [
        f"records {samples[-1].records:,} over {samples[-1].event_h:.1f} h of event time in "
        f"{samples[-1].wall_s / 60:.1f} min wall; {n} samples every {args.sample:,} records",
        "",
        "| measure | first quarter | last quarter |",
        "|---|---|---|",
        f"| pipeline records/s (mean) | {mean([s.rps for s in first]):,.0f} | "
        f"{mean([s.rps for s in last]):,.0f} |",
        f"| RSS MiB (mean) | {mean([s.rss_mb for s in first]):.0f} | {mean([s.rss_mb for s in last]):.0f} |",
        f"| tracked ip / user keys (max) | {max(s.tracked_ip for s in first):,} / "
        f"{max(s.tracked_user for s in first):,} | {max(s.tracked_ip for s in last):,} / "
        f"{max(s.tracked_user for s in last):,} |",
        f"| load average (1 min, mean) | {mean([s.load1 for s in first]):.1f} | "
        f"{mean([s.load1 for s in last]):.1f} |",
        "",
    ]
    if after:
        lo = min(s.rss_mb for s in after)
        hi = max(s.rss_mb for s in after)
        out.append(
            f"after the warm-up ({warmup_h:.0f} h of event time, the idle timeout): RSS between "
            f"{lo:.0f} and {hi:.0f} MiB (spread {hi - lo:.0f} MiB) over {len(after)} samples; "
            f"first {after[0].rss_mb:.0f}, last {after[-1].rss_mb:.0f} MiB"
        )
    out.append(f"peak RSS {max(s.rss_mb for s in samples):.0f} MiB; decisions {samples[-1].decisions:,}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--rate", type=float, default=60.0, help="ordinary users' records/s of event time")
    ap.add_argument("--users", type=int, default=50_000, help="users per segment (a new set per segment)")
    ap.add_argument("--segment-s", type=float, default=3600.0, help="event-time seconds per population")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--sample", type=int, default=250_000, help="records between samples")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--config", help="default: the embedded default config")
    ap.add_argument(
        "--idle-timeout-s",
        type=int,
        default=14_400,
        help="overrides state.idle_timeout_s so keys go idle several times within the run (0: keep)",
    )
    ap.add_argument("--out", default="bench/results/soak", help="writes <out>.csv and <out>.png")
    args = ap.parse_args()

    cfg = soak_config(args)
    warmup_h = cfg.state.idle_timeout_s / 3600
    print(
        f"soak: {args.records:,} records, rate {args.rate}/s, {args.users:,} users per "
        f"{args.segment_s:.0f} s segment; idle timeout {warmup_h:.0f} h; max_keys {cfg.state.max_keys:,}; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    samples = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out.with_suffix(".csv"), samples)
    plot(out.with_suffix(".png"), samples, warmup_h)
    print(summary(samples, warmup_h, args))


if __name__ == "__main__":
    main()
