"""The real KCL daemon path on the local stack: block latency and records/s on one shard.

    python bench/kcl_bench.py [--trials 30] [--records 100000]

1. Latency: a fresh IP per trial sends ``threshold`` requests in one ``put_records`` call (event
   time = now); measured from just before that call to the moment the local stack's block Lambda
   endpoint receives the Invoke for that IP. Real pipeline (parser, keys, rule detector, guard,
   Lambda action) with ``idleTimeBetweenReadsInMillis`` as given.
2. Throughput: ``--records`` generated 45-field lines are put first; the daemon starts at
   TRIM_HORIZON with the example config's detectors in dry-run; records/s from the processor's
   first to its last processed batch (status files), one shard.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from consumer.config import load_config
from consumer.kcl.daemon import Daemon
from consumer.kcl.status import read_status
from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackInfo, StackSpec, boto_client

REPO = Path(__file__).resolve().parents[1]


def kcl_section(stack: StackInfo, work: Path, app: str, idle_ms: int) -> dict:
    return {
        "stream_name": stack.spec.stream_name,
        "application_name": app,
        "region": stack.spec.region,
        "kinesis_endpoint": stack.endpoint,
        "dynamodb_endpoint": stack.endpoint,
        "worker_id": f"bench-{app}",
        "cbor_enabled": False,
        "idle_time_between_reads_ms": idle_ms,
        "shard_sync_interval_ms": 3000,
        "checkpoint": {"every_records": 50000, "every_s": 10},
        "snapshots": {"store": "local", "path": str(work / f"snap-{app}")},
        "status_dir": str(work / f"status-{app}"),
    }


def line(ts: float, ip: str, i: int) -> bytes:
    from consumer.fields import ALL_45

    vals = {name: "-" for name in ALL_45}
    vals.update({"timestamp": f"{ts:.3f}", "c-ip": ip, "sc-status": "200", "sc-bytes": "1000",
                 "cs-method": "GET", "cs-uri-stem": f"/f/{i}", "time-taken": "0.01"})  # fmt: skip
    return ("\t".join(vals[n] for n in ALL_45) + "\n").encode()


def invocations(stack: StackInfo) -> list[dict]:
    with urllib.request.urlopen(stack.endpoint + "/_cfguard/invocations", timeout=5) as r:
        return json.loads(r.read())


def start(stack: StackInfo, work: Path, cfg: dict, name: str) -> Daemon:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = stack.env()
    env["PYTHONPATH"] = str(REPO)
    d = Daemon(load_config(path).kcl, path, work, env=env, log_path=work / f"{name}.log", name=name)
    d.start()
    return d


def wait_for_lease(work: Path, app: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not read_status(work / f"status-{app}"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{app}: no lease taken in {timeout} s")
        time.sleep(0.5)


def latency(stack: StackInfo, work: Path, trials: int, idle_ms: int) -> dict:
    threshold = 20
    cfg = {
        "detectors": [
            {
                "name": "flood",
                "type": "rule",
                "key": "ip",
                "metric": "requests",
                "window": "1m",
                "threshold": threshold,
                "mode": "block",
            }
        ],
        "actions": {
            "dry_run": False,
            "block": {
                "function_name": stack.spec.lambda_name,
                "region": "us-east-1",
                "endpoint_url": stack.endpoint,
            },
            "spool": {"path": str(work / "spool.jsonl")},
            "alert": {"enabled": False},
        },
        "kcl": kcl_section(stack, work, "lat", idle_ms),
    }
    d = start(stack, work, cfg, "lat")
    kinesis = boto_client("kinesis", stack.endpoint, "us-east-1")
    try:
        wait_for_lease(work, "lat")
        out = []
        for t in range(trials):
            ip = f"198.51.{t // 250}.{t % 250 + 1}"
            now = time.time()
            recs = [{"Data": line(now, ip, i), "PartitionKey": f"{t}-{i}"} for i in range(threshold)]
            t0 = time.time()
            kinesis.put_records(StreamName=stack.spec.stream_name, Records=recs)
            deadline = t0 + 30
            while time.time() < deadline:
                hit = [x for x in invocations(stack) if x.get("key") == ip]
                if hit:
                    out.append(hit[0]["received"] - t0)
                    break
                time.sleep(0.02)
            else:
                raise SystemExit(f"no block for {ip} within 30 s")
            time.sleep(0.3)
    finally:
        d.stop()
    first = out[0]
    out.sort()
    return {
        "first_ms": first * 1000,
        "p90_ms": out[round(0.9 * (len(out) - 1))] * 1000,
        "trials": len(out),
        "p50_ms": statistics.median(out) * 1000,
        "p99_ms": out[min(len(out) - 1, round(0.99 * (len(out) - 1)))] * 1000,
        "max_ms": out[-1] * 1000,
    }


def throughput(stack: StackInfo, work: Path, n: int, idle_ms: int) -> dict:
    from consumer.traffic.generator import generate

    stream = "bench-throughput"
    k = boto_client("kinesis", stack.endpoint, "us-east-1")
    k.create_stream(StreamName=stream, ShardCount=1)
    k.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    lines: list[bytes] = []
    for batch in generate(seed=1, start=time.time() - 3600, duration_s=None, rate=2000):
        lines.extend(batch)
        if len(lines) >= n:
            break
    lines = lines[:n]
    t = time.perf_counter()
    for i in range(0, n, 500):
        chunk = lines[i : i + 500]
        k.put_records(
            StreamName=stream, Records=[{"Data": x, "PartitionKey": str(i + j)} for j, x in enumerate(chunk)]
        )
    put_s = time.perf_counter() - t
    example = yaml.safe_load((REPO / "examples" / "cfguard.yaml").read_text())
    example["actions"] = {"dry_run": True}
    example["kcl"] = kcl_section(stack, work, "tput", idle_ms)
    example["kcl"]["stream_name"] = stream
    example.pop("quarantine", None)
    d = start(stack, work, example, "tput")
    first = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            st = read_status(work / "status-tput")
            done = sum(int(s.get("records", 0)) for s in st.values())
            if done and first is None:
                first = (time.perf_counter(), done)
            if done >= n:
                break
            time.sleep(0.05)
        end = time.perf_counter()
    finally:
        d.stop()
    assert first is not None
    return {"records": n, "put_s": put_s, "records_per_s": (n - first[1]) / (end - first[0])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--idle-ms", type=int, default=200)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    work = Path(tempfile.mkdtemp(prefix="cfguard-kcl-bench-"))
    load = os.getloadavg()
    with LocalStackProcess(StackSpec(shards=1), log_path=work / "stack.log") as stack:
        lat = latency(stack, work, args.trials, args.idle_ms)
        tput = None if args.skip_throughput else throughput(stack, work, args.records, args.idle_ms)
    print(f"machine: {os.cpu_count()} cores, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| measure | value |\n|---|---|")
    print(f"| put_records -> block Invoke, p50 ({lat['trials']} trials, idle {args.idle_ms} ms) | "
          f"{lat['p50_ms']:.0f} ms |")  # fmt: skip
    print(f"| put_records -> block Invoke, p90 | {lat['p90_ms']:.0f} ms |")
    print(f"| put_records -> block Invoke, p99 | {lat['p99_ms']:.0f} ms (max {lat['max_ms']:.0f}) |")
    print(f"| first trial (cold: Lambda handler's clients, JIT) | {lat['first_ms']:.0f} ms |")
    if tput is not None:
        print(f"| records/s through the daemon, 1 shard, example detectors, dry-run | "
              f"{tput['records_per_s']:,.0f} ({tput['records']:,} records) |")  # fmt: skip
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
