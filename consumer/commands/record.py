"""``cfguard record --stream NAME --out FILE[.gz]``: capture a live stream for replay and tuning."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import boto3

from consumer.commands._common import EXIT_OK, CommandError, run_guarded
from consumer.recording import RecordingWriter, RecordStats, StreamRecorder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="capture every shard of a Kinesis stream into a recording (JSONL)")
    p.add_argument("--stream", required=True, help="Kinesis stream name")
    p.add_argument("--out", required=True, metavar="FILE", help="recording to write (.gz compresses)")
    p.add_argument(
        "--from",
        dest="start",
        default="TRIM_HORIZON",
        help="TRIM_HORIZON (default), LATEST, or an ISO-8601 timestamp",
    )
    stop = p.add_argument_group("when to stop (default: when every shard is caught up)")
    stop.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    stop.add_argument("--count", type=int, metavar="N", help="stop after N records")
    p.add_argument("--region", help="AWS region (default: the SDK's)")
    p.add_argument("--endpoint-url", help="Kinesis endpoint (e.g. the local stack)")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=lambda a: run_guarded(_record, a))


def _start(value: str) -> str | datetime:
    if value.upper() in ("TRIM_HORIZON", "LATEST"):
        return value.upper()
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--from: expected TRIM_HORIZON, LATEST or an ISO-8601 time, got {value!r}", 2
        ) from None


def _record(args: argparse.Namespace) -> int:
    start = _start(args.start)
    if args.count is not None and args.count <= 0:
        raise CommandError(f"--count must be positive, got {args.count}", 2)
    client = boto3.client("kinesis", region_name=args.region, endpoint_url=args.endpoint_url)
    writer = RecordingWriter(args.out)
    show = sys.stderr.isatty() and not args.quiet

    def progress(stats: RecordStats) -> None:
        if show:
            lag = max(stats.millis_behind.values(), default=0)
            sys.stderr.write(f"\r{stats.records:,} records, lag {lag / 1000:.1f} s   ")

    recorder = StreamRecorder(client, args.stream, writer, start=start, on_progress=progress)
    try:
        stats = recorder.run(
            max_records=args.count,
            duration_s=args.duration,
            until_idle=args.count is None and args.duration is None,
        )
    except recorder.client.exceptions.ResourceNotFoundException:
        raise CommandError(f"stream not found: {args.stream}", 2) from None
    finally:
        writer.close()
    if show:
        sys.stderr.write("\n")
    if not args.quiet:
        print(
            f"recorded {stats.records:,} records from {len(recorder.shards)} shard(s) into {args.out}"
            f" (throttled {stats.throttled}, expired iterators renewed {stats.expired_iterators})",
            file=sys.stderr,
        )
    return EXIT_OK
