"""How fast the guard turns findings into decisions, and what a tracked key costs in memory.

    python bench/actions_guard.py [--findings N] [--keys K]

Dry-run ActionRunner (no delivery): the cost the record-processing thread pays per finding.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
import tracemalloc

from actions.config import ActionsConfig
from actions.runner import ActionRunner
from detectors.finding import Finding


def findings(n: int, keys: int) -> list[Finding]:
    out = []
    for i in range(n):
        k = i % keys
        out.append(
            Finding(
                key=f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}",
                key_type="ip",
                detector=("rps", "bytes", "errors")[i % 3],
                score=1.5,
                threshold=100.0,
                window="1m",
                window_s=60,
                event_time=1_700_000_000.0 + i * 0.01,
                mode=("block", "block", "alert", "shadow")[i % 4],
                evidence={"requests": 150},
            )
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--findings", type=int, default=500_000)
    p.add_argument("--keys", type=int, default=100_000)
    a = p.parse_args()
    cfg = ActionsConfig.model_validate(
        {
            "guard": {
                "breaker": {"max_blocks": 10**9},
                "allowlist": {"cidrs": ["192.168.0.0/16", "2001:db8::/32"]},
            }
        }
    )
    fs = findings(a.findings, a.keys)
    r = ActionRunner(cfg, dry_run=True)
    t0 = time.perf_counter()
    for i in range(0, len(fs), 1000):
        r.submit(fs[i : i + 1000])
    dt = time.perf_counter() - t0
    st = r.stats()
    print(f"load average: {os.getloadavg()}")
    print(f"{a.findings:,} findings, {a.keys:,} keys: {dt:.2f} s, {a.findings / dt:,.0f} findings/s")
    print({k: v for k, v in st.items() if k.startswith("guard.") and "." not in k[6:]})

    tracemalloc.start()
    r2 = ActionRunner(cfg, dry_run=True)
    base = tracemalloc.get_traced_memory()[0]
    r2.submit(fs[: a.keys * 2])
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    n = r2.stats()["guard.tracked_keys"]
    snap = len(pickle.dumps(r2.snapshot())) / 2**20
    print(
        f"guard state: {n:,} blocked keys + {len(r2.guard.alerted):,} alert entries, {used / 2**20:.1f} MiB "
        f"traced ({used / max(n, 1):.0f} B per blocked key incl. alert memory); snapshot {snap:.1f} MiB"
    )


if __name__ == "__main__":
    main()
