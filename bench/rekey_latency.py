"""Added latency of the two-stage deployment, end to end on the local stack with the real KCL daemons.

For each deployment an abuser's requests (one PutRecords call, event time = now) are written to the
raw stream while background traffic from many addresses keeps flowing (like CloudFront, event time
= wall clock, random partition keys); the figure is the wall-clock time from that PutRecords call
to the block Lambda's Invoke for the abuser's address (the local stack logs each Invoke it answers).
Deployments:

- ``single``: one raw shard, ``role: single``, ``evaluate: record`` (the historical default);
- ``single-bucket``: the same at bucket resolution (``evaluate: bucket``: the partial buffer's hold,
  no second stream);
- ``two-stage``: 4 random raw shards -> rekey application -> 2-shard partials stream -> detect
  application (``topology.hold_s`` from ``--hold-s``, one run per value).

KCL settings are the production defaults (``idle_time_between_reads_ms`` 1000) unless
``--idle-ms`` says otherwise.

    python bench/rekey_latency.py --abusers 6 --hold-s 5 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from consumer.config import load_config
from consumer.kcl.daemon import Daemon
from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackInfo, StackSpec, boto_client
from consumer.rekey.factory import effective_kcl, with_role
from consumer.traffic import generate

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = 40  # requests per minute per address (block)
ABUSE_REQUESTS = 45  # one burst, crossing the threshold


def template_line() -> list[bytes]:
    """A real 45-field line from the traffic generator (status 200); timestamp and c-ip replaced."""
    for batch in generate(seed=4, duration_s=30, rate=20, batch_size=512):
        for x in batch:
            f = x.rstrip(b"\n").split(b"\t")
            if f[3] == b"200":
                return f
    raise RuntimeError("no 200 line generated")


def line(fields: list[bytes], t: float, ip: str) -> bytes:
    f = list(fields)
    f[0], f[1] = f"{t:.3f}".encode(), ip.encode()
    return b"\t".join(f) + b"\n"


class Background(threading.Thread):
    """``rate`` requests/s from 4,000 addresses (each far below the threshold), event time = now."""

    def __init__(self, stack: StackInfo, stream: str, fields: list[bytes], rate: float = 40) -> None:
        super().__init__(daemon=True)
        self.k = boto_client("kinesis", stack.endpoint, stack.spec.region)
        self.stream, self.fields, self.rate = stream, fields, rate
        self.stop_event = threading.Event()
        self.rng = np.random.default_rng(0)
        self.n = 0

    def run(self) -> None:
        step = 0.25
        per = max(1, round(self.rate * step))
        while not self.stop_event.is_set():
            now = time.time()
            recs = []
            for i in range(per):
                a = (self.n + i) % 4000
                recs.append(
                    {
                        "Data": line(self.fields, now + i * 0.001, f"198.18.{a // 250}.{a % 250}"),
                        "PartitionKey": self.rng.bytes(16).hex(),
                    }
                )
            self.n += per
            self.k.put_records(StreamName=self.stream, Records=recs)
            self.stop_event.wait(max(0.0, now + step - time.time()))


def invocations(stack: StackInfo) -> list[dict[str, Any]]:
    with urllib.request.urlopen(stack.endpoint + "/_cfguard/invocations", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def wait_for_leases(stack: StackInfo, app: str, n: int, timeout_s: float = 120) -> None:
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            items = ddb.scan(TableName=app)["Items"]
        except ddb.exceptions.ResourceNotFoundException:
            items = []
        if len([i for i in items if i.get("leaseOwner")]) >= n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{app}: {n} leases not taken within {timeout_s:.0f} s")


def config(stack: StackInfo, wd: Path, app: str, raw: str, parts: str, evaluate: str, hold_s: float,
           idle_ms: int) -> Path:  # fmt: skip
    s = stack.spec
    doc = {
        "detectors": [{"name": "flood_ip", "type": "rule", "key": "ip", "metric": "requests", "window": "1m",
                       "threshold": THRESHOLD, "mode": "block"}],
        "actions": {
            "dry_run": False,
            "block": {"function_name": s.lambda_name, "region": s.region, "endpoint_url": stack.endpoint},
            "spool": {"path": str(wd / "spool.jsonl")},
        },
        "topology": {"raw_input": "random", "partials_stream": parts, "evaluate": evaluate, "hold_s": hold_s,
                     "partitions": 64},
        "kcl": {
            "stream_name": raw, "application_name": app, "region": s.region,
            "kinesis_endpoint": stack.endpoint, "dynamodb_endpoint": stack.endpoint, "worker_id": "w",
            "cbor_enabled": False, "idle_time_between_reads_ms": idle_ms, "shard_sync_interval_ms": 3000,
            "snapshots": {"store": "none"}, "status_dir": str(wd / "status"),
        },
    }  # fmt: skip
    path = wd / f"{app}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def daemon(cfg_path: Path, stack: StackInfo, wd: Path, role: str) -> Daemon:
    cfg = with_role(load_config(cfg_path, environ={}), role)
    env = stack.env()
    env["PYTHONPATH"] = str(REPO)
    env["CFGUARD__TOPOLOGY__ROLE"] = role
    d = wd / f"wd-{role}"
    d.mkdir(exist_ok=True)
    return Daemon(effective_kcl(cfg), cfg_path, d, env=env, log_path=wd / f"daemon-{role}.log", name=role)


def block(stack: StackInfo, k: Any, raw: str, fields: list[bytes], ip: str, rng: np.random.Generator,
          timeout_s: float) -> float | None:  # fmt: skip
    """Seconds from the PutRecords of ``ip``'s burst to the block Lambda's Invoke for it (None: none)."""
    # Rule windows are aligned to the epoch (1m = a UTC minute): a burst straddling a minute's end
    # would be split over two windows, neither over the threshold.
    if time.time() % 60 > 58.5:
        time.sleep(60.3 - time.time() % 60)
    t0 = time.time()
    recs = [{"Data": line(fields, t0 + j * 0.002, ip), "PartitionKey": rng.bytes(16).hex()}
            for j in range(ABUSE_REQUESTS)]  # fmt: skip
    sent = time.time()
    assert k.put_records(StreamName=raw, Records=recs)["FailedRecordCount"] == 0
    deadline = sent + timeout_s
    while time.time() < deadline:
        got = next((x["received"] for x in invocations(stack) if x.get("key") == ip), None)
        if got is not None:
            return float(got) - sent
        time.sleep(0.05)
    return None


def measure(stack: StackInfo, fields: list[bytes], name: str, raw: str, parts: str, evaluate: str,
            hold_s: float, roles: list[tuple[str, str, int]], abusers: int, idle_ms: int,
            first_octet: int) -> list[float]:  # fmt: skip
    wd = Path(tempfile.mkdtemp(prefix=f"cfguard-lat-{name}-"))
    app = f"lat-{name}"
    cfg_path = config(stack, wd, app, raw, parts, evaluate, hold_s, idle_ms)
    daemons = [daemon(cfg_path, stack, wd, role) for role, _, _ in roles]
    k = boto_client("kinesis", stack.endpoint, stack.spec.region)
    rng = np.random.default_rng(first_octet)
    bg = Background(stack, raw, fields)
    out: list[float] = []
    for d in daemons:
        d.start()
    try:
        for _, lease_app, n in roles:
            wait_for_leases(stack, lease_app.format(app=app), n)
        bg.start()
        # Warm-up: a lease owned is not a processor running (child start-up takes up to ~40 s on a
        # loaded machine). A canary abuser, not measured, blocked end to end proves every stage live.
        canary = block(stack, k, raw, fields, f"203.0.{first_octet}.250", rng, timeout_s=240)
        if canary is None:
            raise RuntimeError(f"{name}: the canary was not blocked within 240 s (logs in {wd})")
        time.sleep(3)
        for i in range(abusers):
            ip = f"203.0.{first_octet}.{i + 1}"
            latency = block(stack, k, raw, fields, ip, rng, timeout_s=60)
            if latency is None:
                print(f"{name}: no block for {ip} within 60 s (logs in {wd})", file=sys.stderr)
                continue
            out.append(latency)
            print(f"{name}: abuser {i + 1}: {latency:.2f} s", file=sys.stderr)
            time.sleep(2 + float(rng.uniform(0, 1)))  # abusers at unrelated phases of the bucket
    finally:
        bg.stop_event.set()
        bg.join(5)
        for d in daemons:
            d.stop()
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--abusers", type=int, default=6, help="blocks measured per deployment")
    ap.add_argument("--hold-s", type=float, nargs="+", default=[5.0], help="two-stage runs, one per value")
    ap.add_argument("--idle-ms", type=int, default=1000, help="kcl.idle_time_between_reads_ms")
    ap.add_argument("--modes", nargs="+", default=["single", "single-bucket", "two-stage"])
    a = ap.parse_args()
    for key, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, v)
    fields = template_line()
    rows = []
    loads = [os.getloadavg()[0]]
    log = Path(tempfile.mkdtemp(prefix="cfguard-lat-stack-")) / "local-stack.log"
    with LocalStackProcess(StackSpec(stream_name="lat-raw-1", shards=1), log_path=log) as stack:
        k = boto_client("kinesis", stack.endpoint, stack.spec.region)
        runs: list[tuple[str, str, str, str, float, list[tuple[str, str, int]]]] = []
        if "single" in a.modes:
            runs.append(("single", "raw", "unused", "record", 5.0, [("single", "{app}", 1)]))
        if "single-bucket" in a.modes:
            for h in a.hold_s:
                runs.append((f"single-bucket-h{h:g}", "raw", "unused", "bucket", h, [("single", "{app}", 1)]))
        if "two-stage" in a.modes:
            for h in a.hold_s:
                runs.append((f"two-stage-h{h:g}", "raw", "partials", "bucket", h,
                             [("rekey", "{app}-rekey", 4), ("detect", "{app}", 2)]))  # fmt: skip
        for n, (name, raw, parts, evaluate, hold, roles) in enumerate(runs):
            # Fresh streams per run: nothing of an earlier run is read again (TRIM_HORIZON).
            raw, two = f"lat-{name}-raw", parts != "unused"
            k.create_stream(StreamName=raw, ShardCount=4 if two else 1)
            if two:
                parts = f"lat-{name}-partials"
                k.create_stream(StreamName=parts, ShardCount=2)
            time.sleep(1)
            xs = measure(stack, fields, name, raw, parts, evaluate, hold, roles, a.abusers, a.idle_ms, 10 + n)
            loads.append(os.getloadavg()[0])
            rows.append((name, xs))
    print(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f}; "
          f"idle_time_between_reads_ms {a.idle_ms}")  # fmt: skip
    print("| deployment | blocks | p50 (s) | p90 (s) | min (s) | max (s) | mean (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, xs in rows:
        nan = float("nan")
        mean = statistics.fmean(xs) if xs else nan
        print(f"| {name} | {len(xs)}/{a.abusers} | {pct(xs, 50):.2f} | {pct(xs, 90):.2f} | "
              f"{min(xs, default=nan):.2f} | {max(xs, default=nan):.2f} | {mean:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
