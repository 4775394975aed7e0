"""Detector engine throughput and memory, on RecordBatch columns built directly (no parser).

    python bench/detect_bench.py [--keys 100000 1000000] [--steady 2000000] [--batch 8192]

For each key count K (per key type ``ip`` and ``user``, with the default detectors; the ``api_key``
key type is configured but absent from every record):

1. fill: K records touching every key once (every record brings a new ip and a new user key),
2. steady: --steady records over the existing keys (Zipf-like popularity, event time advancing at
   --rate records/s, URI pool, status/cache/bytes mixes, range requests).

Batches are generated one at a time, outside the timed section, with fresh strings (as the parser
makes them), so the RSS growth includes the key strings the engine keeps. Reports records/s of
``Engine.process`` alone for both phases, tracked keys, numpy state bytes per key and the process RSS
growth per tracked key, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import kernels
from detectors.batch import RecordBatch
from detectors.config import StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine

URIS = [f"/content/{i // 100}/item-{i}.html" for i in range(50_000)] + ["/login", "/api/session"]
UAS = [f"Mozilla/5.0 (X11; Linux x86_64) Build/{i}" for i in range(500)]
RESULTS = np.array(["Hit", "Miss", "RefreshHit", "Error"], dtype=object)
T0 = 1_764_000_000.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_batch(
    rng: np.random.Generator, idx: np.ndarray, start: int, rate: float, n_keys: int
) -> RecordBatch:
    n = idx.size
    uidx = (idx * 7919 + 13) % n_keys
    status = rng.choice([200, 200, 200, 200, 304, 206, 403, 404, 500], n).astype(np.float64)
    b = RecordBatch(time=T0 + (start + np.arange(n)) / rate)
    b.numbers["sc-status"] = status
    b.numbers["sc-bytes"] = np.round(rng.lognormal(9, 2, n))
    b.numbers["cs-bytes"] = rng.integers(200, 900, n).astype(np.float64)
    b.numbers["time-taken"] = rng.exponential(0.05, n)
    b.numbers["sc-range-start"] = np.where(status == 206, 0.0, np.nan)
    b.texts["cs-uri-stem"] = [URIS[i] for i in rng.integers(0, len(URIS), n).tolist()]
    b.texts["cs-user-agent"] = [UAS[i] for i in rng.integers(0, len(UAS), n).tolist()]
    b.texts["x-edge-result-type"] = RESULTS[rng.choice(4, n, p=[0.7, 0.25, 0.04, 0.01])].tolist()
    # fresh strings per record, as the parser makes them
    b.keys["ip"] = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in idx.tolist()]
    b.keys["user"] = [f"u{i:08d}" for i in uidx.tolist()]
    b.keys["api_key"] = [None] * n  # the default api_key detector's key: absent, as on most traffic
    return b


def batches(
    rng: np.random.Generator, n_keys: int, total: int, first: int, batch: int, rate: float, fill: bool
) -> Iterator[RecordBatch]:
    for start in range(first, first + total, batch):
        n = min(batch, first + total - start)
        if fill:
            idx = np.arange(start, start + n) % n_keys
        else:
            idx = (rng.zipf(1.2, n) * 104729 + rng.integers(0, n_keys, n) * (rng.random(n) < 0.5)) % n_keys
        yield make_batch(rng, idx, start, rate, n_keys)


def timed(eng: Engine, it: Iterator[RecordBatch]) -> tuple[float, float, int, int]:
    """Wall seconds and CPU seconds (this process) spent in ``process``: on a shared machine the CPU
    time is the one-core figure, the wall time includes waiting for a core."""
    spent, cpu, records, findings = 0.0, 0.0, 0, 0
    for b in it:
        t = time.perf_counter()
        c = time.process_time()
        findings += len(eng.process(b))
        cpu += time.process_time() - c
        spent += time.perf_counter() - t
        records += len(b)
    return spent, cpu, records, findings


def run(n_keys: int, steady: int, batch: int, rate: float) -> dict[str, float]:
    rng = np.random.default_rng(7)
    kernels.warm()  # the compiled kernels and LLVM: a fixed ~130 MiB per process, not per key
    gc.collect()
    rss0 = rss_bytes()
    eng = Engine.from_config(default_detectors(), StateConfig(max_keys=n_keys), ["ip", "user", "api_key"])
    fill_s, fill_cpu, fill_n, f1 = timed(eng, batches(rng, n_keys, n_keys, 0, batch, rate, fill=True))
    steady_s, steady_cpu, steady_n, f2 = timed(
        eng, batches(rng, n_keys, steady, n_keys, batch, rate, fill=False)
    )
    gc.collect()
    rss1 = rss_bytes()
    st = eng.stats()
    keys = st["tracked_keys.ip"] + st["tracked_keys.user"]
    return {
        "tracked_keys": keys,
        "fill_rec_per_s": fill_n / fill_s,
        "fill_rec_per_cpu_s": fill_n / fill_cpu,
        "steady_rec_per_s": steady_n / steady_s,
        "steady_rec_per_cpu_s": steady_n / steady_cpu,
        "steady_records": steady_n,
        "state_bytes_per_key": st["state_bytes"] / keys,
        "rss_growth_mb": (rss1 - rss0) / 1e6,
        "rss_bytes_per_key": (rss1 - rss0) / keys,
        "findings": f1 + f2,
        "evictions": st["evicted_lru.ip"]
        + st["evicted_lru.user"]
        + st["evicted_idle.ip"]
        + st["evicted_idle.user"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--steady", type=int, default=2_000_000, help="records of the steady phase")
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--rate", type=float, default=5000.0, help="event-time records per second")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}, batch {a.batch}")
    print(
        "| keys/type | tracked keys | fill rec/s wall (cpu) | steady rec/s wall (cpu) | steady records | "
        "numpy state B/key | RSS growth MB | RSS B/key | findings | evictions |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in a.keys:
        r = run(k, a.steady, a.batch, a.rate)
        print(
            f"| {k:,} | {r['tracked_keys']:,} | "
            f"{r['fill_rec_per_s']:,.0f} ({r['fill_rec_per_cpu_s']:,.0f}) | "
            f"{r['steady_rec_per_s']:,.0f} ({r['steady_rec_per_cpu_s']:,.0f}) | "
            f"{r['steady_records']:,} | {r['state_bytes_per_key']:.0f} | {r['rss_growth_mb']:.0f} | "
            f"{r['rss_bytes_per_key']:.0f} | {r['findings']} | {r['evictions']} |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
