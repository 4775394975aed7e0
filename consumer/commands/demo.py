"""``cfguard demo``: local stack + real KCL daemon + generated abuse, with a live view and a summary."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from consumer.commands._common import EXIT_ERROR, EXIT_OK, CommandError, run_guarded


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole service locally (no AWS account): local stack, KCL daemon, generated abuse",
    )
    p.add_argument("--duration", type=float, default=90.0, help="seconds of traffic (default 90)")
    p.add_argument("--rate", type=float, default=150.0, help="ordinary users' records/s (default 150)")
    p.add_argument("--shards", type=int, default=1, help="Kinesis shards (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", metavar="DIR", help="keep config, logs, status and snapshots here")
    p.add_argument("--plain", action="store_true", help="periodic plain lines even on a terminal")
    p.set_defaults(func=lambda a: run_guarded(_demo, a))


def _demo(args: argparse.Namespace) -> int:
    from consumer.dashboard import Dashboard
    from consumer.demo import DemoOptions, run_demo, summary
    from consumer.kcl.jars import KclNotInstalled, find_java, jars_dir

    if args.duration <= 0 or args.rate <= 0 or args.shards < 1:
        raise CommandError("--duration and --rate must be > 0, --shards >= 1", 2)
    try:
        jars_dir()
        find_java()
    except KclNotInstalled as exc:
        raise CommandError(str(exc)) from None
    opts = DemoOptions(
        duration_s=args.duration,
        rate=args.rate,
        shards=args.shards,
        seed=args.seed,
        workdir=Path(args.workdir) if args.workdir else None,
    )
    dashboard = Dashboard(sys.stdout, tty=False if args.plain else None)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the daemon and the stack on SIGTERM too
    result = run_demo(opts, sys.stdout, dashboard)
    summary(result, sys.stdout)
    return EXIT_ERROR if result.problems else EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
