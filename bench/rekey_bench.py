"""Re-keying stage: how much the partials shrink the traffic, and what each stage costs per record.

Generated file-sharing traffic with every abuse scenario (``consumer.traffic``), spread over N raw
shards by a random partition key, delivered to each shard's re-keying processor in batches of
``--batch-s`` seconds of event time (a KCL poll every second delivers about one second per shard
when caught up). Raw bytes = the lines as CloudFront writes them (partition keys not counted);
partial bytes = data + partition key (what counts against a shard's 1 MiB/s).

    python bench/rekey_bench.py --duration 1800 --rate 200 --shards 4 --batch-s 1 5 10
"""

from __future__ import annotations

import argparse
import os
import resource

import numpy as np

from consumer.config import Config
from consumer.rekey.factory import build_pipeline
from consumer.rekey.stages import RekeyPipeline
from consumer.rekey.streams import StaticView
from consumer.traffic import generate


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def put(self, records):  # type: ignore[no-untyped-def]
        self.records += list(records)
        return type("S", (), {"failed": 0})()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--batch-s", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    lines = [x for b in generate(seed=a.seed, duration_s=a.duration, rate=a.rate, batch_size=8192) for x in b]
    t = np.array([float(x[: x.index(b"\t")]) for x in lines])
    shard = np.random.default_rng(0).integers(0, a.shards, len(lines))
    raw_bytes = sum(map(len, lines))
    print(f"load {os.getloadavg()[0]:.2f}; {len(lines)} lines, {raw_bytes / len(lines):.0f} B/line, "
          f"{len(lines) / a.duration:.0f} rec/s over {a.duration:.0f} s, {a.shards} shards")  # fmt: skip
    print(
        "| batch (s of event time per shard) | raw rec | partial rec | rec shrink | raw MB | partial MB "
        "| byte shrink | rekey rec/s (cpu) | detect partial rec/s (cpu) | decisions 2-stage / 1-stage |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    cfg_r = Config.model_validate({"topology": {"role": "rekey"}, "actions": {"dry_run": True}})
    cfg_d = Config.model_validate({"topology": {"role": "detect"}, "actions": {"dry_run": True}})
    single = build_pipeline(Config.model_validate({"topology": {"evaluate": "bucket"}}), dry_run=True)
    ref = len(single.process(lines, "one")) + len(single.drain())
    for bs in a.batch_s:
        sink = Sink()
        names = [f"s{i}" for i in range(a.shards)]
        rks = [RekeyPipeline.from_config(cfg_r, publisher=sink, view=StaticView(names)) for _ in names]
        slot = np.floor((t - t.min()) / bs).astype(np.int64)
        c0 = cpu()
        groups: dict[tuple[int, int], list[bytes]] = {}
        for x, s, b in zip(lines, shard.tolist(), slot.tolist(), strict=True):
            groups.setdefault((b, s), []).append(x)
        for (_, s), g in sorted(groups.items()):
            rks[s].process(g, f"s{s}")
        rekey_cpu = cpu() - c0
        recs = sink.records
        pbytes = sum(len(d) + len(k.encode()) for k, d in recs)
        det = build_pipeline(cfg_d, dry_run=True)
        c0 = cpu()
        n_dec = 0
        for i in range(0, len(recs), 2000):
            n_dec += len(det.process([d for _, d in recs[i : i + 2000]], "p"))
        n_dec += len(det.drain())
        det_cpu = cpu() - c0
        print(
            f"| {bs:g} | {len(lines):,} | {len(recs):,} | {len(lines) / len(recs):.1f}x "
            f"| {raw_bytes / 1e6:.1f} "
            f"| {pbytes / 1e6:.2f} | {raw_bytes / pbytes:.1f}x | {len(lines) / rekey_cpu:,.0f} "
            f"| {len(recs) / det_cpu:,.0f} | {n_dec} / {ref} |"
        )
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
