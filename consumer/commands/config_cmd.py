"""``cfguard config validate|show|schema``."""

from __future__ import annotations

import argparse
import json
import sys

from consumer.commands._common import EXIT_OK, add_config_arg, config_from_args, run_guarded
from consumer.config import Config, config_to_yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate, show or describe the configuration")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    v = csub.add_parser("validate", help="exit 0 if FILE is valid, else exit 2 naming the bad field")
    v.add_argument("file", metavar="FILE")
    v.set_defaults(func=lambda a: run_guarded(_validate, a))

    s = csub.add_parser("show", help="print the effective config (file or default + env overrides)")
    s.add_argument("file", metavar="FILE", nargs="?")
    add_config_arg(s)
    s.add_argument("--json", action="store_true", help="JSON instead of YAML")
    s.set_defaults(func=lambda a: run_guarded(_show, a))

    j = csub.add_parser("schema", help="print the JSON Schema of the config file (for editors)")
    j.set_defaults(func=lambda a: run_guarded(_schema, a))


def _validate(args: argparse.Namespace) -> int:
    args.config = args.file
    cfg = config_from_args(args)
    detectors = ", ".join(d.name for d in cfg.detectors) or "none"
    print(f"{args.file}: valid ({len(cfg.keys)} key types, {len(cfg.detectors)} detectors: {detectors})")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    if args.file:
        args.config = args.file
    cfg = config_from_args(args)
    if args.json:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        sys.stdout.write(config_to_yaml(cfg))
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(Config.model_json_schema(), indent=2))
    return EXIT_OK
