"""``cfguard explain KEY RECORDING...``: one key's window figures, detector scores and decisions."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from consumer.commands._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_config_arg,
    config_from_args,
    run_guarded,
)
from consumer.explain import KeyTimeline
from consumer.pipeline import Pipeline
from consumer.quarantine import Quarantine
from consumer.replay_loop import InputMismatch, missing_inputs, run_inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="why was this key flagged? its window figures, detector scores and decisions over a replay",
        description="Replays the recordings exactly as `cfguard replay` does (actions dry-run) and "
        "follows one key. Exit 0: the key was seen; 1: it never appears in the recordings; "
        "2: bad usage or config.",
    )
    p.add_argument("key", metavar="KEY")
    p.add_argument("paths", nargs="+", metavar="RECORDING")
    add_config_arg(p, required=True)
    p.add_argument("--key-type", metavar="T", help="the key type of KEY (default: every configured one)")
    p.add_argument("--json", action="store_true", help="the full timeline as JSON on stdout")
    p.set_defaults(func=lambda a: run_guarded(_explain, a))


def _explain(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    problems = missing_inputs(args.paths)
    if problems:
        raise CommandError("; ".join(problems), 2)
    configured = [k.name for k in cfg.keys]
    if args.key_type is not None and args.key_type not in configured:
        raise CommandError(
            f"--key-type {args.key_type!r} is not configured (configured: {', '.join(configured)})",
            EXIT_USAGE,
        )
    key_types = [args.key_type] if args.key_type else configured
    try:
        pipeline = Pipeline.from_config(cfg, dry_run=True, quarantine=Quarantine(None, 0))
    except ValueError as exc:
        raise CommandError(f"invalid configuration: {exc}", EXIT_USAGE) from None
    if cfg.topology.partial_mode:
        # The timeline observes Engine.process; the bucket engine applies 1 s partials after a hold.
        print(
            f"cfguard explain: this config decides per {cfg.topology.bucket_s} s bucket after a "
            f"{cfg.topology.hold_s:g} s hold; explain follows the key record by record, so its decision "
            "times can be earlier by up to a bucket; `cfguard replay --decisions-out` gives the "
            "deployment's own decisions",
            file=sys.stderr,
        )
    timeline = KeyTimeline(args.key, key_types)
    timeline.attach(pipeline)
    try:
        run_inputs(pipeline, args.paths, on_decisions=timeline.on_decisions)
        pipeline.flush()
    except InputMismatch as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    finally:
        pipeline.close()
    if not timeline.seen():
        raise CommandError(
            f"key {args.key!r} does not appear in the recordings as {' or '.join(key_types)} "
            f"({pipeline.counters.records:,} records read)",
            EXIT_ERROR,
        )
    doc = timeline.to_dict()
    doc["resolution"] = "record"
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render(doc, sys.stdout)
    return EXIT_OK


def _hms(t: float) -> str:
    from actions.decision import iso8601

    return iso8601(t)[11:]


def _day(t: float) -> str:
    from actions.decision import iso8601

    return iso8601(t)[:19] + "Z"


def _figures(f: dict[str, Any]) -> str:
    return "  ".join(f"{m}={v:,}" if isinstance(v, int) else f"{m}={v:g}" for m, v in f.items())


def render(doc: dict[str, Any], out: TextIO) -> None:
    for kt, tl in doc["key_types"].items():
        out.write(
            f"key {doc['key']} ({kt}): {tl['records']:,} records, {tl['first_seen']} .. {tl['last_seen']}\n"
        )
        dets = ", ".join(f"{d['name']} ({d['type']} {d['window']}, {d['mode']})" for d in tl["detectors"])
        out.write(f"detectors on {kt}: {dets or 'none'}\n\n")
        out.write("windows (the key's figures in each window it was active)\n")
        for w in tl["windows"]:
            span = f"{_day(w['start'])} .. {_day(w['end'])}"
            out.write(f"  {span}  [{w['counts']}]  {_figures(w['figures'])}\n")
        out.write(
            "\nscores (value / threshold, at each finding and each batch end; peak per window, and when "
            "it first reached 1.0)\n"
        )
        for name, series in tl["scores"].items():
            by_window: dict[float, list[dict[str, Any]]] = {}
            for s in series:
                by_window.setdefault(s["window_start"], []).append(s)
            for start, pts in by_window.items():
                scored = [p for p in pts if p["score"] is not None]
                if not scored:
                    out.write(f"  {name:<24} window {_hms(start)}  not scored yet (history too short)\n")
                    continue
                peak = max(scored, key=lambda p: p["score"])
                crossed = next((p for p in scored if p["score"] >= 1.0 and p["eligible"]), None)
                note = f", reached 1.0 at {_hms(crossed['t'])}" if crossed else ""
                if not peak["eligible"]:
                    note += " (below min_requests)"
                out.write(
                    f"  {name:<24} window {_hms(start)}  peak {peak['score']:.3f} "
                    f"(value {peak['value']:g} / {peak['threshold']:g}){note}\n"
                )
        if tl["window_closes"]:
            out.write("\nwindow closes seen by window-close detectors (baseline, ML)\n")
            for c in tl["window_closes"]:
                out.write(f"  {_hms(c['t'])}  {c['detector']:<24} {_figures(c['figures'])}\n")
        out.write(f"\nfindings: {len(tl['findings'])}\n")
        for f in tl["findings"]:
            out.write(f"  {f['time'][11:]}  {f['detector']:<24} score {f['score']:.3f}  ({f['mode']})\n")
        out.write(f"decisions: {len(tl['decisions'])}\n")
        for d in tl["decisions"]:
            dur = f", {d['block_duration_s']} s" if d.get("block_duration_s") else ""
            out.write(
                f"  {d['event_time'][11:]}  {d['detector']:<24} {d['action']:<7} reason: {d['reason']}{dur}\n"
            )
        out.write("\n")
