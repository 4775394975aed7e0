"""The ``cfguard`` command line: one sub-command per module in ``consumer/commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int``. Exit codes: 0 ok, 2 bad usage or invalid config, 1 other error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# One line per command module; keep sorted.
COMMAND_MODULES: tuple[str, ...] = (
    "consumer.commands.blocks",
    "consumer.commands.config_cmd",
    "consumer.commands.demo",
    "consumer.commands.explain",
    "consumer.commands.generate",
    "consumer.commands.health",
    "consumer.commands.local_stack",
    "consumer.commands.record",
    "consumer.commands.replay",
    "consumer.commands.run",
    "consumer.commands.tune",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfguard", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
