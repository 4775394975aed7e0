"""``cfguard local-stack``: moto on 127.0.0.1 (HTTP/1.1 + h2c) with cfguard's resources, until signalled."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from consumer.commands._common import EXIT_OK, CommandError, run_guarded
from consumer.local_stack import FAKE_CREDENTIALS, LocalStack, StackSpec, describe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "local-stack", help="serve a local AWS stand-in (moto, h2c) with the stream and tables"
    )
    add_arguments(p)
    p.set_defaults(func=lambda a: run_guarded(_local_stack, a))


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = StackSpec()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4566)
    p.add_argument("--region", default=d.region)
    p.add_argument("--stream", default=d.stream_name)
    p.add_argument("--shards", type=int, default=d.shards)
    p.add_argument("--blocklist-table", default=d.blocklist_table)
    p.add_argument("--bucket", default=d.snapshot_bucket, help="snapshot bucket")
    p.add_argument("--lambda-name", default=d.lambda_name)
    p.add_argument("--json", action="store_true", help="print one JSON line when ready (for programs)")
    p.add_argument(
        "--write-config",
        metavar="FILE",
        help="write a cfguard config pointing at this stack (then: cfguard run --config FILE)",
    )


def _local_stack(args: argparse.Namespace) -> int:
    if args.shards < 1:
        raise CommandError("--shards must be at least 1", 2)
    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)
    spec = StackSpec(
        region=args.region,
        stream_name=args.stream,
        shards=args.shards,
        blocklist_table=args.blocklist_table,
        snapshot_bucket=args.bucket,
        lambda_name=args.lambda_name,
    )
    stack = LocalStack(spec, host=args.host, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        info = stack.start()
    except Exception as exc:
        stack.stop()
        raise CommandError(f"local stack failed to start on {args.host}:{args.port}: {exc}") from None
    if args.write_config:
        _write_config(info, Path(args.write_config))
    try:
        if args.json:
            print(info.to_json(), flush=True)
        else:
            print("cfguard local stack ready (Ctrl-C to stop)")
            for label, value in describe(info).items():
                print(f"  {label}: {value}")
            print(
                f"  use: export AWS_ENDPOINT_URL={info.endpoint} AWS_ACCESS_KEY_ID=testing "
                "AWS_SECRET_ACCESS_KEY=testing CBOR_ENABLED=false",
                flush=True,
            )
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
    print("local stack stopped", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point without the rest of the CLI (``python -m consumer.commands.local_stack``)."""
    import logging

    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    p = argparse.ArgumentParser(prog="cfguard local-stack")
    add_arguments(p)
    return run_guarded(_local_stack, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


def _write_config(info: object, path: Path) -> None:
    import yaml

    from consumer.demo_config import demo_config

    workdir = path.resolve().parent / "cfguard-local"
    path.write_text(
        "# Written by `cfguard local-stack --write-config`: the demo's detectors, blocks through the\n"
        "# stack's block Lambda, the KCL pointed at the stack. Run: cfguard run --config "
        f"{path}\n" + yaml.safe_dump(demo_config(info, workdir, worker_id="local-worker"), sort_keys=False)  # type: ignore[arg-type]
    )
