"""``cfguard replay PATH...``: recorded input through the live pipeline, actions dry-run by default."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from actions.decision import Decision
from consumer.commands._common import (
    EXIT_OK,
    CommandError,
    add_config_arg,
    config_from_args,
    run_guarded,
)
from consumer.pacing import Pacer
from consumer.pipeline import Pipeline
from consumer.progress import Progress
from consumer.quarantine import Quarantine
from consumer.rekey.factory import replay_pipeline
from consumer.replay_loop import InputMismatch, missing_inputs, run_inputs
from consumer.to_stream import republish


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run recorded input (real-time TSV, standard logs, recorded Kinesis JSONL; .gz ok)",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_config_arg(p)
    p.add_argument("--decisions-out", metavar="FILE", help="write one JSON object per decision")
    p.add_argument("--summary-out", metavar="FILE", help="write the run summary as JSON")
    p.add_argument("--quarantine", metavar="FILE", help="write a bounded sample of malformed lines here")
    p.add_argument("--execute-actions", action="store_true", help="really invoke actions (default: dry-run)")
    p.add_argument(
        "--speed",
        type=float,
        metavar="N",
        help="pace at N times the recorded rate (default: as fast as possible)",
    )
    p.add_argument(
        "--to-stream",
        metavar="NAME",
        help="republish the input into this Kinesis stream instead of running the pipeline "
        "(recordings keep their partition keys)",
    )
    p.add_argument("--endpoint-url", help="Kinesis endpoint for --to-stream (e.g. the local stack)")
    p.add_argument("--region", help="AWS region for --to-stream (default: the SDK's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary table")
    p.set_defaults(func=lambda a: run_guarded(_replay, a))


def _pacer(args: argparse.Namespace) -> Pacer | None:
    if args.speed is None:
        return None
    if args.speed <= 0:
        raise CommandError(f"--speed must be positive, got {args.speed}", 2)
    return Pacer(args.speed)


def _replay(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    problems = missing_inputs(args.paths)
    if problems:
        raise CommandError("; ".join(problems), 2)
    pacer = _pacer(args)
    if args.to_stream:
        return republish(args, pacer)
    quarantine_path = Path(args.quarantine) if args.quarantine else cfg.quarantine.path
    quarantine = Quarantine(quarantine_path, cfg.quarantine.max_samples)
    try:
        pipeline = replay_pipeline(cfg, dry_run=not args.execute_actions, quarantine=quarantine)
    except ValueError as exc:
        raise CommandError(f"invalid configuration: {exc}", 2) from None
    out: TextIO | None = open(args.decisions_out, "w", encoding="utf-8") if args.decisions_out else None
    progress = Progress(enabled=not args.quiet)
    started = time.perf_counter()
    kinds: dict[str, str] = {}

    def on_decisions(decisions: list[Decision]) -> None:
        if out is not None:
            for d in decisions:
                out.write(json.dumps(d.to_record(), sort_keys=True) + "\n")

    def on_batch_done() -> None:
        c = pipeline.counters
        progress.update(c.records, sum(c.decisions_by_detector.values()))

    try:
        try:
            kinds = run_inputs(
                pipeline, args.paths, pacer=pacer, on_decisions=on_decisions, on_batch_done=on_batch_done
            )
        except InputMismatch as exc:
            raise CommandError(str(exc), 2) from None
        pipeline.flush()
    finally:
        pipeline.close()
        progress.close()
        if out is not None:
            out.close()
    elapsed = time.perf_counter() - started
    summary = build_summary(pipeline, elapsed, kinds)
    if args.summary_out:
        Path(args.summary_out).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if not args.quiet:
        print_summary(summary, sys.stdout)
    return EXIT_OK


def build_summary(pipeline: Pipeline, elapsed: float, kinds: dict[str, str]) -> dict[str, Any]:
    c = pipeline.counters
    engine = pipeline.engine.stats()
    keys: dict[str, Any] = {}
    for name in pipeline.keys.missing:
        keys[name] = {
            "records_with_key": pipeline.keys.keyed[name],
            "records_without_key": pipeline.keys.missing[name],
            "tracked": engine.get(f"tracked_keys.{name}", engine.get(f"{name}.tracked_keys")),
        }
    # Damage found before parsing (over-long lines, bad recorded records, a truncated gzip) is
    # quarantined by the source: it counts as malformed input like a line the parser refused.
    malformed = pipeline.quarantine.total
    return {
        "inputs": kinds,
        "records": c.parsed + malformed,
        "parsed": c.parsed,
        "malformed": malformed,
        "malformed_by_reason": dict(sorted(pipeline.quarantine.counts.items())),
        "keys": keys,
        "findings": c.findings,
        "decisions": dict(sorted(c.decisions_by_detector.items())),
        "decisions_by_action": dict(sorted(c.decisions_by_action.items())),
        "engine": engine,
        "actions": pipeline.actions.stats(),
        "evaluate": _resolution(pipeline),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round((c.parsed + malformed) / elapsed, 1) if elapsed > 0 else None,
    }


def _resolution(pipeline: Pipeline) -> dict[str, Any]:
    """Record resolution, or bucket resolution with the topology figures (the two-stage decisions)."""
    if not hasattr(pipeline, "bucket_engine"):
        return {"resolution": "record"}
    topo = pipeline.stats().get("topology")
    return {"resolution": "bucket", **(topo if isinstance(topo, dict) else {})}


def print_summary(s: dict[str, Any], out: TextIO) -> None:
    rows: list[tuple[str, str]] = [
        ("records", f"{s['records']:,}"),
        ("parsed", f"{s['parsed']:,}"),
        ("malformed", f"{s['malformed']:,}"),
    ]
    rows += [(f"  {reason}", f"{n:,}") for reason, n in s["malformed_by_reason"].items()]
    for name, k in s["keys"].items():
        tracked = k["tracked"] if k["tracked"] is not None else "?"
        figures = f"{k['records_with_key']:,} keyed, {k['records_without_key']:,} without, {tracked} tracked"
        rows.append((f"key {name}", figures))
    ev = s.get("evaluate", {})
    if ev.get("resolution") == "bucket":
        rows.append(("evaluate", f"bucket ({ev['bucket_s']} s buckets, hold {ev['hold_s']} s)"))
    rows.append(("findings", f"{s['findings']:,}"))
    for det, n in s["decisions"].items():
        rows.append((f"decisions {det}", f"{n:,}"))
    rows.append(("elapsed", f"{s['elapsed_s']:.2f} s"))
    if s["records_per_s"]:
        rows.append(("throughput", f"{s['records_per_s']:,.0f} records/s"))
    width = max(len(r[0]) for r in rows)
    out.write("cfguard replay summary\n")
    for label, value in rows:
        out.write(f"  {label.ljust(width)}  {value}\n")
