"""``cfguard health``: the container health check (exit 0 healthy, 1 unhealthy with the reason)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer.commands._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_config_arg,
    config_from_args,
    run_guarded,
)
from consumer.health import check


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "health",
        help="exit 0 if the consumer runs and every shard processor made progress recently, else 1",
    )
    add_config_arg(p)
    p.add_argument(
        "--status-dir",
        metavar="DIR",
        help="where the processors write their status (default: kcl.status_dir)",
    )
    p.add_argument(
        "--max-age",
        type=float,
        default=120.0,
        metavar="S",
        help="a shard processor whose status is older than this is stuck (default 120)",
    )
    p.add_argument(
        "--start-grace",
        type=float,
        default=180.0,
        metavar="S",
        help="after the consumer starts, wait this long for the first shard processor (default 180)",
    )
    p.add_argument(
        "--allow-no-shards",
        action="store_true",
        help="healthy without any shard lease (more workers than shards)",
    )
    p.set_defaults(func=lambda a: run_guarded(_health, a))


def _health(args: argparse.Namespace) -> int:
    if args.max_age <= 0 or args.start_grace < 0:
        raise CommandError("--max-age must be > 0 and --start-grace >= 0", EXIT_USAGE)
    if args.status_dir:
        status_dir = Path(args.status_dir)
    else:
        cfg = config_from_args(args)
        if cfg.kcl.status_dir is None:
            raise CommandError("kcl.status_dir is not set: the processors leave nothing to check", EXIT_USAGE)
        status_dir = cfg.kcl.status_dir
    report = check(
        status_dir,
        max_age_s=args.max_age,
        start_grace_s=args.start_grace,
        allow_no_shards=args.allow_no_shards,
    )
    print(report.summary(), file=sys.stdout if report.healthy else sys.stderr)
    return EXIT_OK if report.healthy else EXIT_ERROR
