"""What a shard processor spends per record on the MultiLangDaemon protocol, before the pipeline.

    python bench/protocol_bench.py [--records 200000] [--batch 8192]

Generated 45-field traffic lines (``bench/pipeline_bench.py``'s), each the data of one Kinesis
record, in ``processRecords`` messages as the daemon writes them (one JSON line per batch: base64
data, 56-digit sequence numbers). Timed per record, CPU time of this process, best of 3:

- ``amazon_kclpy``: its message decoding (``json`` + an ``object_hook`` building a ``Record`` per
  record) and ``consumer.kcl.records.decode`` (base64 per record, positions);
- ``msgspec``: ``consumer.kcl.fast_io.FastIOHandler.load_action`` (typed structs, base64 in C) and the
  same ``decode``;
- for scale, the pipeline on the same lines (``Pipeline.process``, default config, dry-run).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amazon_kclpy import dispatch

from bench.pipeline_bench import lines as traffic_lines
from consumer.config import load_config
from consumer.kcl.fast_io import FastIOHandler
from consumer.kcl.records import decode
from consumer.pipeline import Pipeline

SEQ = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


def messages(data: list[bytes], batch: int) -> list[bytes]:
    out = []
    for s in range(0, len(data), batch):
        recs = [
            {
                "action": "record",
                "data": base64.b64encode(x).decode(),
                "partitionKey": f"pk{s + i}",
                "sequenceNumber": str(SEQ + s + i),
                "subSequenceNumber": None,
                "approximateArrivalTimestamp": 1_700_000_000_000 + s + i,
            }
            for i, x in enumerate(data[s : s + batch])
        ]
        msg = {"action": "processRecords", "records": recs, "millisBehindLatest": 0}
        out.append((json.dumps(msg) + "\n").encode())
    return out


def best(fn: object, n: int, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        c = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - c)
    return min(times) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=8192)
    args = ap.parse_args(argv)
    data = traffic_lines(args.records, 2000, 1)
    msgs = messages(data, args.batch)
    n = len(data)
    size = sum(map(len, msgs)) / n
    handler = FastIOHandler(None, None, None)  # type: ignore[arg-type]

    def reference() -> None:
        for m in msgs:
            decode(json.loads(m.decode(), object_hook=dispatch.message_decode).records, None)

    def fast() -> None:
        for m in msgs:
            decode(handler.load_action(m).records, None)

    got = [x for m in msgs for x in decode(handler.load_action(m).records, None).lines]
    assert got == data, "the fast path must give back the lines"
    pipeline = Pipeline.from_config(load_config(None), dry_run=True)
    batches = [data[s : s + args.batch] for s in range(0, n, args.batch)]
    pipeline.process(batches[0][:100], "warm-up")

    def detect() -> None:
        for b in batches:
            pipeline.process(b, "bench")

    load = os.getloadavg()[0]
    ref, new = best(reference, n), best(fast, n)
    det = best(detect, n, runs=1)
    print(f"{n:,} records in {len(msgs)} processRecords messages of {args.batch}, {size:,.0f} bytes of JSON "
          f"per record; load average {load:.2f}")  # fmt: skip
    print("| path | CPU µs/record | records per CPU-s |")
    print("|---|---|---|")
    print(f"| protocol, amazon_kclpy decoding + base64 per record | {ref:.2f} | {1e6 / ref:,.0f} |")
    print(f"| protocol, msgspec (consumer.kcl.fast_io) | {new:.2f} | {1e6 / new:,.0f} |")
    print(f"| pipeline (parse, keys, detectors, dry-run actions) | {det:.2f} | {1e6 / det:,.0f} |")
    print(f"| processor total before -> after | {ref + det:.2f} -> {new + det:.2f} | "
          f"{1e6 / (ref + det):,.0f} -> {1e6 / (new + det):,.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
