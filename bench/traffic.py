"""Throughput of the traffic generator (``consumer.traffic``): lines/s for 1,000,000 lines.

Usage: ``python -m bench.traffic [--lines N] [--rate R]``. Reports setup time (users and actors),
then wall-clock and CPU lines/s of generation + rendering, with the machine's load average, since
helpers share this machine and wall-clock figures depend on it.
"""

from __future__ import annotations

import argparse
import os
import time

from consumer.traffic import Generator


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=10_000.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    gen = Generator(args.seed, rate=args.rate)
    setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
    n = nbytes = 0
    t1, c1 = time.perf_counter(), time.process_time()
    for batch in gen.batches(None, batch_size=8192):
        n += len(batch)
        nbytes += sum(map(len, batch))
        if n >= args.lines:
            break
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    print(
        f"users {gen.users:,}  actors {len(gen.actors):,}  "
        f"setup {setup_wall:.2f} s wall / {setup_cpu:.2f} s cpu"
    )
    print(f"lines {n:,}  mean line {nbytes / n:.0f} bytes  event time {n / (args.rate + 100):.0f} s approx")
    print(
        f"wall {wall:.2f} s -> {n / wall:,.0f} lines/s;  cpu {cpu:.2f} s -> {n / cpu:,.0f} lines/s per core"
    )
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores)")


if __name__ == "__main__":
    main()
