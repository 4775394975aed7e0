"""Shared bits of the command modules: loading the config with the documented exit codes."""

from __future__ import annotations

import argparse
import logging
import sys

from consumer.config import Config, ConfigError, load_config
from consumer.config_source import ConfigSourceError, is_remote, load_from

log = logging.getLogger("cfguard")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure the command reports in one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def add_config_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        required=required,
        help="YAML config: a file, s3://bucket/key or ssm:/name (default: the embedded default; "
        "CFGUARD__SECTION__FIELD env vars override)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    source = getattr(args, "config", None)
    try:
        if source is not None and is_remote(source):
            return load_from(source)
        return load_config(source)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except ConfigSourceError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None


def run_guarded(func, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """Turn CommandError into its message on stderr and its exit code."""
    try:
        return int(func(args) or 0)
    except CommandError as exc:
        print(f"cfguard: {exc}", file=sys.stderr)
        return exc.code
