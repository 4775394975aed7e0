"""``cfguard generate``: synthetic CloudFront real-time log lines with abuse and hard negatives."""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from datetime import datetime
from typing import BinaryIO

from consumer.commands._common import EXIT_OK, EXIT_USAGE, CommandError, run_guarded
from consumer.traffic import DEFAULT_START, SCENARIOS, Generator
from consumer.traffic import labels as L


def register(sub: argparse._SubParsersAction) -> None:
    names = ", ".join(SCENARIOS)
    p = sub.add_parser(
        "generate",
        help="write synthetic CloudFront real-time log lines (users, abuse scenarios, hard negatives)",
        description=f"Scenarios: {names}. Syntax: name[:param=value...] comma-separated, 'all' or 'none'.",
    )
    p.add_argument(
        "--out", "-o", required=True, metavar="FILE", help="output file ('.gz' = gzip; '-' = stdout)"
    )
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--records", type=int, metavar="N", help="stop after N lines")
    size.add_argument("--duration", type=float, metavar="S", help="seconds of event time")
    p.add_argument("--rate", type=float, default=100.0, help="ordinary users' records/s (default 100)")
    p.add_argument("--users", type=int, help="ordinary users (default: 40 x rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", help="first event time: epoch seconds or ISO-8601 (default 2025-11-26T12:00Z)")
    p.add_argument("--scenarios", default="all", help="abuse scenarios (default: all)")
    p.add_argument("--negatives", default="all", help="hard negatives (default: all)")
    p.add_argument("--labels-out", metavar="FILE", help="write the labels JSON here")
    p.add_argument("--live", action="store_true", help="event time = now, paced on the wall clock")
    p.set_defaults(func=lambda a: run_guarded(_generate, a))


def _start(text: str | None) -> float:
    if text is None:
        return DEFAULT_START
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise CommandError(f"--start: not epoch seconds or ISO-8601: {text!r}", EXIT_USAGE) from None


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdout.buffer
    if path.endswith(".gz"):
        # mtime=0 and no file name in the header: the same arguments give the same bytes.
        raw = open(path, "wb")
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)  # type: ignore[return-value]
    return open(path, "wb")


def _generate(args: argparse.Namespace) -> int:
    if args.records is not None and args.records < 0:
        raise CommandError("--records must be >= 0", EXIT_USAGE)
    if args.duration is not None and args.duration <= 0:
        raise CommandError("--duration must be > 0", EXIT_USAGE)
    start = time.time() if args.live else _start(args.start)
    try:
        gen = Generator(
            args.seed, start, args.rate, users=args.users, scenarios=args.scenarios, negatives=args.negatives
        )
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    batches = gen.live(duration_s=args.duration) if args.live else gen.batches(args.duration)
    written = 0
    try:
        out = _open(args.out)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    try:
        for batch in batches:
            if args.records is not None and written + len(batch) >= args.records:
                out.writelines(batch[: args.records - written])
                written = args.records
                break
            out.writelines(batch)
            if args.live:
                out.flush()
            written += len(batch)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
            if isinstance(out, gzip.GzipFile) and out.fileobj is not None:
                out.fileobj.close()
    if args.labels_out:
        L.write(args.labels_out, gen.labels(args.duration))
    print(f"cfguard generate: {written:,} lines -> {args.out}", file=sys.stderr)
    return EXIT_OK
