"""``cfguard tune RECORDING... --sweep DETECTOR.PARAM=FROM:TO:STEPS``: what each value would decide."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from consumer.commands._common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_config_arg,
    config_from_args,
    run_guarded,
)
from consumer.config import Config
from consumer.replay_loop import InputMismatch, missing_inputs
from consumer.tuning import labels as tune_labels
from consumer.tuning import metrics, plot, report
from consumer.tuning.run import replay_outcome
from consumer.tuning.sweep import SweepError, candidate_config, candidate_values, parse_sweep


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="replay recordings once per candidate value of a detector parameter and recommend one",
        description="Replays the recordings through the real pipeline (actions dry-run) once per value "
        "and reports the keys each value would flag and block; with --labels, precision, recall, "
        "time to detect and a recommendation. Labels format: docs/tune.md.",
    )
    p.add_argument("paths", nargs="+", metavar="RECORDING")
    add_config_arg(p, required=True)
    p.add_argument("--labels", metavar="FILE", help="abusive keys (cfguard generate --labels-out format)")
    p.add_argument(
        "--sweep",
        action="append",
        required=True,
        metavar="DETECTOR.PARAM=FROM:TO:STEPS",
        help="STEPS evenly spaced values FROM..TO (both included); repeat for more sweeps, each run "
        "with the other parameters as configured",
    )
    p.add_argument(
        "--max-false-block-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="innocent keys flagged / innocent keys seen allowed for the recommendation (default 0)",
    )
    p.add_argument(
        "--scenarios",
        metavar="NAME,...",
        help="only these labelled scenarios count as abuse to catch (others count on neither side)",
    )
    p.add_argument("--out-json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--out-png", metavar="FILE", help="plot recall and false blocks vs the parameter")
    p.add_argument("--quiet", "-q", action="store_true", help="no table and no progress")
    p.set_defaults(func=lambda a: run_guarded(_tune, a))


def _plan(cfg: Config, texts: list[str]) -> list[tuple[Any, list[tuple[float | int, Config]]]]:
    """Every sweep and candidate config, all validated before the first replay."""
    names = [d.name for d in cfg.detectors]
    plan = []
    for text in texts:
        sw = parse_sweep(text, names)
        plan.append((sw, [(v, candidate_config(cfg, sw, v)) for v in candidate_values(cfg, sw)]))
    return plan


def _tune(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    problems = missing_inputs(args.paths)
    if problems:
        raise CommandError("; ".join(problems), 2)
    if not 0.0 <= args.max_false_block_rate <= 1.0:
        raise CommandError(
            f"--max-false-block-rate must be 0..1, got {args.max_false_block_rate}", EXIT_USAGE
        )
    try:
        plan = _plan(cfg, args.sweep)
    except SweepError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    raw_labels = None
    if args.labels:
        try:
            raw_labels = tune_labels.load(args.labels)
        except ValueError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()} if args.scenarios else None
    if wanted:
        if raw_labels is None:
            raise CommandError("--scenarios needs --labels", EXIT_USAGE)
        unknown = sorted(wanted - tune_labels.abuse_scenarios(raw_labels))
        if unknown:
            raise CommandError(
                f"--scenarios: not labelled in {args.labels}: {', '.join(unknown)}", EXIT_USAGE
            )
    started = time.perf_counter()
    sweeps = []
    for sw, candidates in plan:
        key_type = next(d.key for d in cfg.detectors if d.name == sw.detector)
        kl = None
        if raw_labels is not None:
            try:
                kl = tune_labels.for_key_type(raw_labels, key_type, wanted)
            except ValueError as exc:
                raise CommandError(str(exc), EXIT_USAGE) from None
        rows = []
        for value, cand in candidates:
            try:
                outcome = replay_outcome(cand, args.paths)
            except InputMismatch as exc:
                raise CommandError(str(exc), EXIT_USAGE) from None
            except ValueError as exc:
                raise CommandError(
                    f"candidate {sw.label}={value}: invalid configuration: {exc}", EXIT_USAGE
                ) from None
            rows.append(metrics.score(value, outcome, sw.detector, key_type, kl))
            if not args.quiet:
                print(f"cfguard tune: {sw.label}={value} replayed", file=sys.stderr)
        entry = {
            "detector": sw.detector,
            "param": sw.param,
            "key_type": key_type,
            "scenarios": sorted(set(kl.abusive.values())) if wanted and kl is not None else None,
            "max_false_block_rate": args.max_false_block_rate,
            "rows": rows,
            "recommended": metrics.recommend(rows, args.max_false_block_rate) if kl is not None else None,
        }
        sweeps.append(entry)
        if not args.quiet:
            report.print_table(entry, sys.stdout)
    doc = report.build(
        list(args.paths),
        args.config,
        args.labels,
        args.max_false_block_rate,
        sweeps,
        time.perf_counter() - started,
    )
    if args.out_json:
        report.write_json(args.out_json, doc)
    if args.out_png:
        plot.write_png(args.out_png, doc)
    return EXIT_OK
