"""Block delivery: invocations/s through the worker, and what submit() costs while the Lambda is slow.

    PYTHONPATH=. python bench/actions_delivery.py [--blocks N]

The Lambda is a local HTTP endpoint speaking the Invoke API that answers ``{"ok": true}`` at once
(the real boto3 client and HTTP are in the loop; the handler and AWS behind it are not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from actions.config import ActionsConfig
from actions.runner import ActionRunner
from tests.actions.aws import FakeLambdaEndpoint, set_fake_credentials
from tests.actions.helpers import T0, finding


def runner(url: str, spool: Path, queue_size: int) -> ActionRunner:
    cfg = ActionsConfig.model_validate(
        {
            "dry_run": False,
            "guard": {"breaker": {"max_blocks": 10**9}},
            "block": {"function_name": "cfguard-block", "region": "us-east-1", "endpoint_url": url,
                      "queue_size": queue_size, "flush_timeout_s": 600},
            "spool": {"path": str(spool)},
            "alert": {"enabled": False},
        }
    )  # fmt: skip
    return ActionRunner(cfg)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", type=int, default=2000)
    a = p.parse_args()
    set_fake_credentials()
    ep = FakeLambdaEndpoint(lambda event: {"ok": True, "status": "applied"})
    tmp = Path(tempfile.mkdtemp())
    print(f"load average: {os.getloadavg()}")

    r = runner(ep.url, tmp / "s1.jsonl", queue_size=a.blocks)
    fs = [finding(f"10.{i >> 8 & 255}.{i & 255}.1", t=T0 + i) for i in range(a.blocks)]
    t0 = time.perf_counter()
    r.submit(fs)
    t_submit = time.perf_counter() - t0
    r.flush()
    dt = time.perf_counter() - t0
    st = r.stats()
    r.close()
    print(
        f"{a.blocks:,} blocks: submit {t_submit * 1e3:.0f} ms, all delivered after {dt:.2f} s "
        f"({st['delivery.delivered'] / dt:,.0f} invocations/s, one worker)"
    )

    ep.hold = threading.Event()  # the Lambda hangs: submit must not
    r = runner(ep.url, tmp / "s2.jsonl", queue_size=100)
    lat = []
    for i, f in enumerate(fs[:1000]):
        t = time.perf_counter()
        r.submit([f])
        lat.append(time.perf_counter() - t)
        if i == 0:
            time.sleep(0.05)
    st = r.stats()
    q = statistics.quantiles(lat, n=100)
    print(
        f"Lambda hanging: 1,000 submits, median {statistics.median(lat) * 1e6:.0f} us, "
        f"p99 {q[98] * 1e6:.0f} us, "
        f"max {max(lat) * 1e3:.1f} ms; {st['delivery.spooled.queue_full']} spooled (queue full, fsync each)"
    )
    ep.hold.set()
    r.close()
    ep.close()


if __name__ == "__main__":
    main()
