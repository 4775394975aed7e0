"""Detector engine throughput and memory, on RecordBatch columns built directly (no parser).

    python bench/detect_bench.py [--records 2000000] [--keys 100000 1000000] [--batch 8192]

For each key count: builds realistic batches (Zipf-ish key popularity so every key shows up, a URI
pool, status/cache/bytes mixes, event time advancing at --rate records/s), runs the default
detectors over them (two key types: ip and user), and reports records/s of ``Engine.process`` alone
(batch building excluded), tracked keys, numpy state bytes per key, and the process RSS growth per
key (which includes the key dicts and strings). Prints a markdown table row per run.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.batch import RecordBatch
from detectors.config import StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_batches(n_records: int, n_keys: int, batch: int, rate: float, seed: int = 7) -> list[RecordBatch]:
    rng = np.random.default_rng(seed)
    ips = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n_keys)]
    users = [f"u{i:08d}" for i in range(n_keys)]
    uris = [f"/content/{i // 100}/item-{i}.html" for i in range(50_000)]
    uris += ["/login", "/api/session", "/static/app.js", "/static/app.css"]
    uas = [f"Mozilla/5.0 (X11; Linux x86_64) Build/{i}" for i in range(500)]
    results = np.array(["Hit", "Miss", "RefreshHit", "Error"], dtype=object)
    out = []
    t0 = 1_764_000_000.0
    for start in range(0, n_records, batch):
        n = min(batch, n_records - start)
        # The first pass over the key space touches every key once (so n_keys are really tracked),
        # then keys are drawn with a heavy head.
        idx = np.arange(start, start + n) % n_keys if start < n_keys else (rng.zipf(1.3, n) - 1) % n_keys
        uidx = (idx * 7919 + 13) % n_keys
        t = t0 + (start + np.arange(n)) / rate
        status = rng.choice([200, 200, 200, 200, 304, 206, 403, 404, 500], n).astype(np.float64)
        b = RecordBatch(time=t)
        b.numbers["sc-status"] = status
        b.numbers["sc-bytes"] = np.round(rng.lognormal(9, 2, n))
        b.numbers["cs-bytes"] = rng.integers(200, 900, n).astype(np.float64)
        b.numbers["time-taken"] = rng.exponential(0.05, n)
        b.numbers["sc-range-start"] = np.where(status == 206, 0.0, np.nan)
        ui = rng.integers(0, len(uris), n)
        b.texts["cs-uri-stem"] = [uris[i] for i in ui.tolist()]
        b.texts["cs-user-agent"] = [uas[i] for i in rng.integers(0, len(uas), n).tolist()]
        b.texts["x-edge-result-type"] = results[rng.choice(4, n, p=[0.7, 0.25, 0.04, 0.01])].tolist()
        b.keys["ip"] = [ips[i] for i in idx.tolist()]
        b.keys["user"] = [users[i] for i in uidx.tolist()]
        out.append(b)
    return out


def run(n_records: int, n_keys: int, batch: int, rate: float) -> dict[str, float]:
    batches = make_batches(n_records, n_keys, batch, rate)
    gc.collect()
    rss0 = rss_bytes()
    eng = Engine.from_config(default_detectors(), StateConfig(max_keys=max(n_keys, 1000)), ["ip", "user"])
    findings = 0
    t = time.perf_counter()
    for b in batches:
        findings += len(eng.process(b))
    dt = time.perf_counter() - t
    gc.collect()
    rss1 = rss_bytes()
    st = eng.stats()
    keys = st["tracked_keys.ip"] + st["tracked_keys.user"]
    return {
        "records": n_records,
        "keys_per_type": n_keys,
        "tracked_keys": keys,
        "seconds": dt,
        "rec_per_s": n_records / dt,
        "state_bytes_per_key": st["state_bytes"] / keys,
        "rss_growth_mb": (rss1 - rss0) / 1e6,
        "rss_bytes_per_key": (rss1 - rss0) / keys,
        "findings": findings,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--rate", type=float, default=5000.0, help="event-time records per second")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    print(
        "| keys/type | records | tracked keys | engine rec/s | numpy state B/key | RSS growth MB | "
        "RSS B/key | findings |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for k in a.keys:
        r = run(max(a.records, k), k, a.batch, a.rate)
        print(
            f"| {k:,} | {r['records']:,} | {r['tracked_keys']:,} | {r['rec_per_s']:,.0f} | "
            f"{r['state_bytes_per_key']:.0f} | {r['rss_growth_mb']:.0f} | {r['rss_bytes_per_key']:.0f} | "
            f"{r['findings']} |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
