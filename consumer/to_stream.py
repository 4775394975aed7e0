"""``replay --to-stream``: put recorded input back into a Kinesis stream, as CloudFront would."""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections.abc import Iterator

import boto3

from consumer.commands._common import EXIT_OK, CommandError
from consumer.pacing import Pacer, line_time
from consumer.quarantine import Quarantine
from consumer.republish import Republisher
from consumer.sources import InputSource, open_input


def _records(source: InputSource, pacer: Pacer | None, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    if source.kind in ("recorded", "lambda-event"):
        for rec in source.records():
            if pacer is not None:
                pacer.wait_until(rec.arrival_time)
            # The payload is republished as stored (KPL aggregation included), under its own key.
            yield rec.partition_key or str(uuid.UUID(int=rng.getrandbits(128), version=4)), rec.data
        return
    if source.kind == "standard":
        raise CommandError(
            f"{source.path}: standard access logs are not a real-time stream; --to-stream takes "
            "real-time lines or recordings",
            2,
        )
    for line in source.lines():
        if pacer is not None:
            pacer.wait_until(line_time(line))
        # CloudFront's own partition key is a random UUID per record (seeded here: reproducible).
        payload = line if line.endswith(b"\n") else line + b"\n"
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), payload


def republish(args: argparse.Namespace, pacer: Pacer | None) -> int:
    client = boto3.client("kinesis", region_name=args.region, endpoint_url=args.endpoint_url)
    try:
        publisher = Republisher(client, args.to_stream)
    except client.exceptions.ResourceNotFoundException:
        raise CommandError(f"stream not found: {args.to_stream}", 2) from None
    quarantine = Quarantine(args.quarantine)
    rng = random.Random(0)
    try:
        for path in args.paths:
            publisher.put(_records(open_input(path, quarantine=quarantine), pacer, rng))
    finally:
        quarantine.close()
    st = publisher.stats
    if not args.quiet:
        print(
            f"republished {st.sent:,} records into {args.to_stream} ({st.retried:,} retried, "
            f"{st.failed:,} failed, {quarantine.total:,} unreadable input units)",
            file=sys.stderr,
        )
    return EXIT_OK if st.failed == 0 else 1
