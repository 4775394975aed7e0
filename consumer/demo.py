"""``cfguard demo``: the whole service on one machine, no AWS account needed.

Starts the local stack (moto on 127.0.0.1, fake credentials), the real KCL MultiLangDaemon with the
cfguard record processor, streams generated CloudFront real-time traffic with abuse into Kinesis at
wall-clock pace, shows what the consumer does, then stops everything gracefully (SIGTERM: the
processors checkpoint) and prints who was blocked and why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from consumer.dashboard import Dashboard, TopKeys, View, decision_line
from consumer.demo_config import demo_config
from consumer.kcl.daemon import Daemon
from consumer.kcl.status import DecisionTail, read_status
from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackInfo, StackSpec, boto_client

log = logging.getLogger(__name__)


@dataclass
class DemoOptions:
    duration_s: float = 90.0
    rate: float = 150.0
    shards: int = 1
    seed: int = 0
    workdir: Path | None = None
    keep: bool = False
    drain_timeout_s: float = 90.0
    startup_timeout_s: float = 150.0


@dataclass
class DemoResult:
    sent: int = 0
    processed: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    blocklist: list[dict[str, Any]] = field(default_factory=list)
    lambda_calls: int = 0
    labels: dict[str, Any] = field(default_factory=dict)
    daemon_exit: int | None = None
    workdir: Path | None = None
    problems: list[str] = field(default_factory=list)


class Producer(threading.Thread):
    """Generated traffic into the stream, paced on the wall clock (event time = now)."""

    def __init__(self, stack: StackInfo, opts: DemoOptions) -> None:
        super().__init__(name="demo-producer", daemon=True)
        from consumer.republish import Republisher
        from consumer.traffic import Generator

        self.gen = Generator(opts.seed, time.time(), opts.rate)
        self.duration_s = opts.duration_s
        client = boto_client("kinesis", stack.endpoint, stack.spec.region)
        self.publisher = Republisher(client, stack.spec.stream_name)
        self.top = TopKeys(ticks=60)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def sent(self) -> int:
        return self.publisher.stats.sent

    def run(self) -> None:
        try:
            for lines in self.gen.live(tick_s=0.5, duration_s=self.duration_s):
                if self.stop_event.is_set():
                    break
                with self._lock:
                    self.top.add(lines)
                self.publisher.put((str(uuid.uuid4()), line) for line in lines)
        except BaseException as exc:  # reported by the demo
            self.error = exc

    def top_ips(self) -> list[tuple[str, int]]:
        with self._lock:
            return self.top.top(5)


def _invocations(stack: StackInfo) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(stack.endpoint + "/_cfguard/invocations", timeout=2) as r:
            return list(json.loads(r.read()))
    except (OSError, ValueError):
        return []


def _blocklist(stack: StackInfo) -> list[dict[str, Any]]:
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    try:
        items = ddb.scan(TableName=stack.spec.blocklist_table)["Items"]
    except Exception:
        return []
    out = []
    for it in items:
        pk = it.get("pk", {}).get("S", "")
        if pk.startswith("block#"):
            out.append({k: next(iter(v.values())) for k, v in it.items()})
    return out


class Rates:
    def __init__(self) -> None:
        self.prev: tuple[float, int, int] | None = None
        self.send = self.process = 0.0

    def update(self, now: float, sent: int, processed: int) -> None:
        if self.prev is not None and now - self.prev[0] >= 1.0:
            dt = now - self.prev[0]
            self.send = (sent - self.prev[1]) / dt
            self.process = (processed - self.prev[2]) / dt
            self.prev = (now, sent, processed)
        elif self.prev is None:
            self.prev = (now, sent, processed)


def run_demo(opts: DemoOptions, out: TextIO, dashboard: Dashboard) -> DemoResult:
    for k, v in FAKE_CREDENTIALS.items():
        os.environ[k] = v  # never a real account: everything below talks to 127.0.0.1
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="cfguard-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(workdir=workdir)
    spec = StackSpec(shards=opts.shards)
    out.write(f"cfguard demo: starting the local stack (logs in {workdir})\n")
    out.flush()
    with LocalStackProcess(spec, log_path=workdir / "local-stack.log") as stack:
        config_path = workdir / "cfguard-demo.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(stack, workdir), sort_keys=False))
        from consumer.config import load_config

        cfg = load_config(config_path)
        daemon = Daemon(cfg.kcl, config_path, workdir, env=stack.env(), log_path=workdir / "kcl-daemon.log")
        out.write(f"cfguard demo: local stack at {stack.endpoint}; starting the KCL daemon\n")
        out.flush()
        daemon.start()
        producer = Producer(stack, opts)
        result.labels = producer.gen.labels(opts.duration_s)
        producer.start()
        tail = DecisionTail(workdir / "status")
        rates = Rates()
        started = time.monotonic()
        view = View(duration_s=opts.duration_s)
        drain_deadline: float | None = None
        try:
            while True:
                time.sleep(1.0)
                now = time.monotonic()
                status = read_status(workdir / "status")
                view.elapsed_s = now - started
                view.sent = producer.sent
                view.processed = sum(int(s.get("records", 0)) for s in status.values())
                rates.update(now, view.sent, view.processed)
                view.send_rate, view.process_rate = rates.send, rates.process
                behind = [
                    s["millis_behind_latest"]
                    for s in status.values()
                    if s.get("millis_behind_latest") is not None
                ]
                view.millis_behind = max(behind) if behind else None
                view.shards = status
                view.top_ips = producer.top_ips()
                view.decisions += tail.read()
                calls = _invocations(stack)
                if len(calls) != view.lambda_calls or int(view.elapsed_s) % 5 == 0:
                    view.blocklist = len(_blocklist(stack))
                view.lambda_calls = len(calls)
                if daemon.proc is not None and daemon.proc.poll() is not None:
                    result.problems.append(f"the KCL daemon exited early ({daemon.proc.returncode})")
                    break
                if producer.error is not None:
                    result.problems.append(f"producer failed: {producer.error}")
                    break
                if not status and now - started > opts.startup_timeout_s:
                    result.problems.append("the KCL daemon took no lease in time (see kcl-daemon.log)")
                    break
                if producer.is_alive():
                    view.phase = "streaming" if status else "streaming; KCL taking its leases"
                else:
                    view.phase = "draining"
                    drain_deadline = drain_deadline or now + opts.drain_timeout_s
                    if view.processed >= view.sent:
                        dashboard.show(view)
                        break
                    if now > drain_deadline:
                        result.problems.append(
                            f"{view.sent - view.processed:,} records not processed in time"
                        )
                        break
                dashboard.show(view)
        except KeyboardInterrupt:
            result.problems.append("interrupted")
        finally:
            producer.stop_event.set()
            out.write("\ncfguard demo: stopping the KCL daemon (SIGTERM: processors flush and checkpoint)\n")
            out.flush()
            result.daemon_exit = daemon.stop()
            producer.join(timeout=5)
        view.decisions += tail.read()
        result.sent, result.processed = producer.sent, view.processed
        result.decisions = view.decisions
        result.blocklist = _blocklist(stack)
        result.lambda_calls = len(_invocations(stack))
    if not opts.keep and opts.workdir is None and not result.problems:
        shutil.rmtree(workdir, ignore_errors=True)
        result.workdir = None
    return result


def summary(result: DemoResult, out: TextIO) -> None:
    labels = result.labels
    out.write("\ncfguard demo summary\n")
    out.write(f"  records sent {result.sent:,}, processed {result.processed:,}\n")
    blocks = [d for d in result.decisions if d.get("action") == "block"]
    alerts = [d for d in result.decisions if d.get("action") == "alert"]
    refused = [d for d in result.decisions if d.get("action") not in ("block", "alert", "shadow")]
    out.write(
        f"  decisions: {len(blocks)} block, {len(alerts)} alert, {len(refused)} refused by the guard; "
        f"block Lambda invoked {result.lambda_calls} time(s), {len(result.blocklist)} blocklist entr"
        f"{'y' if len(result.blocklist) == 1 else 'ies'}\n"
    )

    def who(d: dict[str, Any]) -> str:
        kt, k = d.get("key_type", ""), d.get("key", "")
        if k in labels.get(kt, {}):
            return f"abuse: {labels[kt][k]}"
        if k in labels.get("hard_negatives", {}).get(kt, {}):
            return f"INNOCENT ({labels['hard_negatives'][kt][k]})"
        return "ordinary user"

    if blocks or alerts:
        out.write("\n  who was blocked (or alerted on), and why\n")
        for d in blocks + alerts:
            out.write(f"    {decision_line(d)}\n      -> generated as {who(d)}\n")
    caught = {(d.get("key_type"), d.get("key")) for d in blocks + alerts}
    scen: dict[str, list[str]] = {}
    for kt in ("user", "ip"):
        for k, name in labels.get(kt, {}).items():
            scen.setdefault(name, []).append("caught" if (kt, k) in caught else "")
    missed = sorted(n for n, marks in scen.items() if "caught" not in marks)
    got = sorted(n for n, marks in scen.items() if "caught" in marks)
    out.write(f"\n  abuse scenarios caught: {', '.join(got) or 'none'}\n")
    if missed:
        out.write(f"  not caught within the demo: {', '.join(missed)}\n")
    innocent = [d for d in blocks if who(d).startswith("INNOCENT") or who(d) == "ordinary user"]
    out.write(f"  innocent keys blocked: {len(innocent)}\n")
    if result.problems:
        out.write("\n  problems: " + "; ".join(result.problems) + "\n")
    if result.workdir is not None:
        out.write(f"  logs, config and decisions kept in {result.workdir}\n")
