"""``cfguard blocks list|unblock|reset-breaker``: the operator's view of the blocklist."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from actions.blocklist import BlocklistReader
from actions.dead_letter import DeadLetterQueue
from actions.decision import iso8601
from actions.lambda_action import LambdaAction
from actions.payload import UnblockPayload
from consumer.commands._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_config_arg,
    config_from_args,
    run_guarded,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("blocks", help="list blocks, unblock a key, redrive dead letters, reset the breaker")
    bsub = p.add_subparsers(dest="blocks_command", required=True, metavar="ACTION")

    ls = bsub.add_parser("list", help="the blocklist (active blocks; --all for ended ones too)")
    add_config_arg(ls)
    ls.add_argument("--all", action="store_true", help="include unblocked and expired entries")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=lambda a: run_guarded(_list, a))

    un = bsub.add_parser("unblock", help="end a key's block now (DynamoDB and WAF), through the block Lambda")
    un.add_argument("key")
    add_config_arg(un)
    un.add_argument("--key-type", help="needed when the key is blocked under several key types")
    un.add_argument("--reason", default="operator unblock")
    un.set_defaults(func=lambda a: run_guarded(_unblock, a))

    rd = bsub.add_parser("redrive", help="re-send the SQS dead-letter queue's blocks to the block Lambda")
    add_config_arg(rd)
    rd.add_argument("--max", type=int, default=1000, help="at most this many messages")
    rd.set_defaults(func=lambda a: run_guarded(_redrive, a))

    rb = bsub.add_parser(
        "reset-breaker", help="close an open circuit breaker (touches guard.breaker.reset_file)"
    )
    add_config_arg(rb)
    rb.set_defaults(func=lambda a: run_guarded(_reset_breaker, a))


def _aws_error(exc: Exception) -> CommandError:
    return CommandError(f"blocklist not reachable: {type(exc).__name__}: {exc}", EXIT_ERROR)


def _list(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    now = time.time()
    try:
        entries = BlocklistReader(cfg.actions.blocklist).entries()
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(exc) from None
    if not args.all:
        entries = [e for e in entries if e.active(now)]
    out = sys.stdout
    if args.json:
        for e in entries:
            rec = dataclasses.asdict(e)
            rec["expires"] = iso8601(e.expires_at)
            out.write(json.dumps(rec, sort_keys=True) + "\n")
        return EXIT_OK
    if not entries:
        out.write("no active blocks\n" if not args.all else "blocklist is empty\n")
        return EXIT_OK
    rows = [("KEY TYPE", "KEY", "DETECTOR", "SCORE", "STATUS", "EXPIRES", "WAF")]
    for e in entries:
        status = e.status if e.status != "active" or e.active(now) else "ended"
        rows.append(
            (e.key_type, e.key, e.detector, f"{e.score:.2f}", status, iso8601(e.expires_at), e.waf_status)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
    return EXIT_OK


def _unblock(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    key_type = args.key_type
    if key_type is None:
        try:
            types = sorted(
                {e.key_type for e in BlocklistReader(cfg.actions.blocklist).active() if e.key == args.key}
            )
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc) from None
        if not types:
            raise CommandError(f"no active block for key {args.key!r}", EXIT_ERROR)
        if len(types) > 1:
            raise CommandError(
                f"key {args.key!r} is blocked as {', '.join(types)}: pass --key-type", EXIT_USAGE
            )
        key_type = types[0]
    try:
        event = UnblockPayload(
            key=args.key, key_type=key_type, reason=args.reason, requested_by=getpass.getuser()
        )
    except ValueError as exc:
        raise CommandError(f"invalid unblock request: {exc}", EXIT_USAGE) from None
    block_cfg = cfg.actions.block.model_copy(update={"invocation_type": "RequestResponse"})
    try:
        action = LambdaAction(block_cfg)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    outcome = action.deliver(event.model_dump(mode="json"))
    if outcome.status != "delivered":
        raise CommandError(f"unblock failed: {outcome.error}", EXIT_ERROR)
    answer = outcome.response or {}
    if answer.get("status") == "not_found":
        raise CommandError(f"no block for {key_type} key {args.key!r}", EXIT_ERROR)
    sys.stdout.write(
        f"unblocked {key_type} {args.key} (WAF entries removed: {answer.get('waf_removed', 0)})\n"
    )
    return EXIT_OK


def _redrive(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not cfg.actions.spool.dead_letter_queue_url:
        raise CommandError("actions.spool.dead_letter_queue_url is not configured", EXIT_USAGE)
    try:
        action = LambdaAction(cfg.actions.block.model_copy(update={"invocation_type": "RequestResponse"}))
        dlq = DeadLetterQueue(cfg.actions.spool)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    try:
        counts = dlq.redrive(action.deliver, max_messages=args.max)
    except (ClientError, BotoCoreError) as exc:
        raise CommandError(f"dead-letter queue not reachable: {type(exc).__name__}: {exc}") from None
    sys.stdout.write(
        f"redrive: {counts['delivered']} delivered, {counts['failed']} still failing, "
        f"{counts['unreadable']} unreadable\n"
    )
    return EXIT_OK if not counts["failed"] and not counts["unreadable"] else EXIT_ERROR


def _reset_breaker(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    path: Path | None = cfg.actions.guard.breaker.reset_file
    if path is None:
        raise CommandError("actions.guard.breaker.reset_file is not configured", EXIT_USAGE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    now = time.time()
    os.utime(path, (now, now))
    sys.stdout.write(f"touched {path}: consumers close their circuit breaker within a second\n")
    return EXIT_OK
