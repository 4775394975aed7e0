"""``cfguard health``: the container health check (exit 0 healthy, 1 unhealthy with the reason)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from consumer.health import DAEMON_MARKER, DEFAULT_DIR, check, daemon_started_at


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("health", help="exit 0 if the KCL daemon runs and every shard beat recently, else 1")
    p.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"heartbeat directory (env CFGUARD_HEARTBEAT_DIR; default {DEFAULT_DIR})",
    )
    p.add_argument(
        "--max-age",
        type=float,
        default=120.0,
        metavar="S",
        help="a shard whose last beat is older is stale (default 120)",
    )
    p.add_argument(
        "--start-grace",
        type=float,
        default=180.0,
        metavar="S",
        help="no shard yet is healthy this long after the daemon started (default 180)",
    )
    p.add_argument(
        "--daemon-marker",
        default=DAEMON_MARKER,
        help="text in the daemon's command line that identifies its process",
    )
    p.set_defaults(func=_health)


def _health(args: argparse.Namespace) -> int:
    report = check(
        args.dir,
        max_age_s=args.max_age,
        start_grace_s=args.start_grace,
        daemon_started=daemon_started_at(args.daemon_marker),
        now=time.time(),
    )
    print(("healthy: " if report.healthy else "unhealthy: ") + report.reason, file=sys.stderr)
    return 0 if report.healthy else 1
