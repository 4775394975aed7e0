"""``cfguard run --config FILE``: the long-running consumer on the KCL MultiLangDaemon."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from consumer.commands._common import EXIT_USAGE, CommandError, add_config_arg, config_from_args, run_guarded
from consumer.config import Config
from consumer.config_source import is_remote
from consumer.kcl.daemon import Daemon, processor_command, run_forwarding_signals
from consumer.kcl.jars import KclNotInstalled
from consumer.kcl.properties import render_properties


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="consume the Kinesis stream through the KCL MultiLangDaemon")
    add_config_arg(p, required=True)
    p.add_argument("--workdir", metavar="DIR", help="directory for the rendered .properties (default: temp)")
    p.add_argument("--print-properties", action="store_true", help="print the KCL properties and exit")
    p.add_argument(
        "--role", choices=("single", "rekey", "detect"), help="override topology.role (see docs/scale-out.md)"
    )
    p.set_defaults(func=lambda a: run_guarded(_run, a))


def _run(args: argparse.Namespace) -> int:
    from consumer.rekey import factory as topology

    cfg = config_from_args(args)
    try:
        cfg = topology.with_role(cfg, args.role)
    except ValueError as exc:
        raise CommandError(f"invalid configuration: {exc}", EXIT_USAGE) from None
    kcl = topology.effective_kcl(cfg)
    config_path: Path | str = args.config if is_remote(args.config) else Path(args.config)
    try:
        executable = processor_command(config_path)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.print_properties:
        sys.stdout.write(render_properties(kcl, executable))
        return 0
    _check_pipeline(cfg)
    _check_topology(cfg)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cfguard-kcl-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.role:
        env["CFGUARD__TOPOLOGY__ROLE"] = args.role  # the processors read the same role
    daemon = Daemon(kcl, config_path, workdir, env=env)
    try:
        code = run_forwarding_signals(daemon)
    except KclNotInstalled as exc:
        raise CommandError(str(exc)) from None
    print(f"cfguard: KCL daemon exited with code {code}", file=sys.stderr)
    return code


def _check_pipeline(cfg: Config) -> None:
    """Build one pipeline before starting Java: a config the processors cannot use fails here (exit 2)."""
    from consumer.kcl.app import resolve
    from consumer.rekey.factory import check_pipeline

    try:
        check_pipeline(cfg, resolve)
    except (ValueError, ImportError, AttributeError) as exc:
        raise CommandError(f"invalid configuration: {exc}", EXIT_USAGE) from None


def _check_topology(cfg: Config) -> None:
    """A single-stage consumer refuses a multi-shard raw stream it cannot judge per key (exit 2)."""
    from consumer.rekey.config import check_stream
    from consumer.rekey.factory import DEFAULT_FACTORY, open_shards

    if cfg.topology.role != "single" or cfg.kcl.pipeline_factory != DEFAULT_FACTORY:
        return  # a custom pipeline owns what it assumes about the partitioning
    shards = open_shards(cfg.kcl)
    if shards is None:
        return
    try:
        check_stream(cfg.topology, shards)
    except ValueError as exc:
        raise CommandError(f"invalid topology: {exc}", EXIT_USAGE) from None
