"""The executable the MultiLangDaemon starts per shard lease: ``python -m consumer.kcl.app --config F``.

File descriptor 1 is the KCL protocol channel and nothing else: at startup it is duplicated for the
protocol and fd 1 (and ``sys.stdout``) are pointed at stderr, so a stray print or a library writing
to stdout cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


def protect_stdout() -> Any:
    """Return a text file on the original stdout for the protocol; everything else goes to stderr."""
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8")


def resolve(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"kcl.pipeline_factory must be 'module:callable', got {path!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"kcl.pipeline_factory {path!r} is not callable")
    return obj


def parents_lookup(kcl_cfg: Any) -> Callable[[str], list[str]]:
    """Parent shard ids from ListShards (for child shards after a resharding)."""

    def parents_of(shard_id: str) -> list[str]:
        import boto3

        args: dict[str, Any] = {"region_name": kcl_cfg.region}
        if kcl_cfg.kinesis_endpoint:
            args["endpoint_url"] = kcl_cfg.kinesis_endpoint
        client = boto3.client("kinesis", **args)
        shards: list[dict[str, Any]] = []
        kw: dict[str, Any] = {"StreamName": kcl_cfg.stream_name}
        while True:
            page = client.list_shards(**kw)
            shards += page["Shards"]
            if not page.get("NextToken"):
                break
            kw = {"NextToken": page["NextToken"]}
        for s in shards:
            if s["ShardId"] == shard_id:
                return [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p]
        return []

    return parents_of


def live_config(source: str | None, cfg: Any) -> Callable[[Any], Any] | None:
    """Re-read the config source every ``kcl.config_reload_s`` (and on SIGHUP); a valid new config
    gives a new pipeline carrying the old one's state (``Pipeline.reconfigured``)."""
    if source is None or cfg.kcl.config_reload_s <= 0:
        return None
    import signal

    from consumer.config_source import ConfigWatcher

    watcher = ConfigWatcher(source, cfg, poll_s=cfg.kcl.config_reload_s)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: watcher.request())

    def reconfigure(pipeline: Any) -> Any:
        new_cfg = watcher.poll()
        if new_cfg is None or not hasattr(pipeline, "reconfigured"):
            return None
        return pipeline.reconfigured(new_cfg)

    return reconfigure


def build_processor(cfg: Any, source: str | None) -> Any:
    """The shard processor for ``cfg`` (``source``: the config's location, re-read live), with the
    stream, application and metrics role of the process's ``topology.role``."""
    from consumer import snapshots
    from consumer.kcl.processor import ShardProcessor
    from consumer.rekey.factory import effective_kcl, factory_for

    factory = factory_for(cfg, resolve)
    kcl_cfg = effective_kcl(cfg)  # the stream and application of this process's role
    store = snapshots.open_store(kcl_cfg.snapshots, kcl_cfg.region)
    return ShardProcessor(
        kcl_cfg,
        lambda: factory(cfg),
        store,
        parents_of=parents_lookup(kcl_cfg),
        reconfigure=live_config(source, cfg),
        metrics=cfg.metrics,
        role=cfg.topology.role,
    )


def main(argv: list[str] | None = None) -> int:
    protocol_out = protect_stdout()
    from consumer import logs

    logs.configure()
    p = argparse.ArgumentParser(prog="cfguard-kcl-processor")
    p.add_argument("--config", metavar="FILE")
    args = p.parse_args(argv)

    from consumer.config import load_config
    from consumer.config_source import is_remote, load_from
    from consumer.kcl.fast_io import kcl_process

    cfg = load_from(args.config) if args.config and is_remote(args.config) else load_config(args.config)
    processor = build_processor(cfg, args.config)
    # stdin as bytes: the ~MB processRecords lines are decoded by msgspec, not UTF-8-decoded first.
    kcl_process(processor, sys.stdin.buffer, protocol_out, sys.stderr).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
