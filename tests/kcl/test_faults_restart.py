"""The local stack's endpoint goes away for 15 s and comes back with the same state, under the real daemon.

The listener itself is closed (``outage: down``: connections refused, every service at once) and the
same Hypercorn server listens again on the same port; moto's backends live on in the stack process,
as AWS's state does when an endpoint is unreachable for a while.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo
from consumer.local_stack_faults import Faults
from tests.kcl.faults_common import SHARD0, T0, block_invocations, blocklist, create_stream, traffic
from tests.kcl.harness import daemon, leases, put_lines, real_pipeline_sections, tail, wait_for, write_config

pytestmark = pytest.mark.integration
DOWN_S = 15


def _back(faults: Faults) -> bool:
    try:
        faults.state()
        return True
    except OSError:
        return False


def test_endpoint_down_and_back_recovers_delivery_and_checkpoints(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """Phase 1: abuser A blocked, checkpoint C1. Phase 2: the Lambda throttles every Invoke
    (``TooManyRequestsException``) while abuser B floods: B's delivery gives up after 3 attempts and B
    goes to the durable spool; the snapshot and checkpoint C2 land. The endpoint then refuses every
    connection for 15 s (Kinesis, DynamoDB, S3 and Lambda together): the lease cannot be renewed and
    is lost, the spool drains fail. The endpoint
    comes back (same state), the throttle is lifted: the spool delivers B once; abuser C (phase 3) is
    blocked and the checkpoint lands at the last record. Every record was processed, each abuser has
    one ``applied`` block and one block row, the spool is empty.

    Protection guarded: the block delivery's durable spool and its drains (``actions/delivery.py``):
    B's decision is before C2, so no restart re-decides it; only the spool can deliver it. Verified
    failing without it: with ``Delivery._spool`` dropping the payload, B is never applied.
    """
    app = "it-faults-restart"
    stream = create_stream(local_stack, app)
    faults = Faults(local_stack.endpoint)
    status = tmp_path / "status"
    sections = real_pipeline_sections(local_stack, tmp_path, 50)
    sections["actions"]["block"].update(
        max_attempts=3, base_delay_s=0.2, max_delay_s=1.0, flush_timeout_s=1.0
    )
    sections["actions"]["spool"]["retry_interval_s"] = 2.0
    cfg = write_config(tmp_path, local_stack, app, stream, sections=sections, failover_time_ms=6000)
    a, b, c = "10.90.0.1", "10.90.0.2", "10.90.0.3"
    seqs = put_lines(local_stack, stream, traffic([a], T0, tag="91"))

    def checkpoint() -> str | None:
        return leases(local_stack, app).get(SHARD0, {}).get("checkpoint")

    def applied(ip: str) -> list[dict]:
        return [x for x in block_invocations(local_stack, {ip}) if x["status"] == "applied"]

    d = daemon(cfg, local_stack, tmp_path, "restart")
    d.start()
    try:
        wait_for(lambda: checkpoint() == seqs[-1], 120, "phase 1 checkpoint\n" + tail(d.log_path))
        throttle = faults.add(service="lambda", operation="Invoke", error="TooManyRequestsException")
        seqs += put_lines(local_stack, stream, traffic([b], T0 + 20, tag="92"))
        wait_for(lambda: checkpoint() == seqs[-1], 30, "C2 with B spooled\n" + tail(d.log_path))
        assert faults.injected(throttle) >= 1 and not applied(b)
        restarts = faults.state()["restarts"]
        faults.outage(DOWN_S, kind="down")
        down_at = time.monotonic()
        time.sleep(1)
        assert not _back(faults)
        wait_for(lambda: _back(faults), DOWN_S + 15, "the endpoint back")
        down_for = time.monotonic() - down_at
        state = faults.state()
        throttled = faults.injected(throttle)
        faults.clear()
        assert state["restarts"] == restarts + 1
        wait_for(lambda: applied(b), 60, "B delivered from the spool\n" + tail(d.log_path))
        seqs += put_lines(local_stack, stream, traffic([c], T0 + 40, tag="93"))
        wait_for(lambda: applied(c), 60, "C's block\n" + tail(d.log_path))
        wait_for(lambda: checkpoint() == seqs[-1], 60, "the last checkpoint\n" + tail(d.log_path))
        st = wait_for(
            lambda: (s := read_status(status).get(SHARD0, {})).get("closed") is False and s, 10, "status"
        )
    finally:
        d.stop()
    blocks = [(x["key"], x["status"]) for x in block_invocations(local_stack, {a, b, c})]
    assert sorted(set(blocks)) == [(a, "applied"), (b, "applied"), (c, "applied")]
    assert all(blocks.count((ip, "applied")) == 1 for ip in (a, b, c))
    rows = blocklist(local_stack, {a, b, c})
    assert sorted(k for k in rows if k.startswith("block#")) == sorted(f"block#ip#{ip}" for ip in (a, b, c))
    spool = tmp_path / "spool.jsonl"
    assert not spool.exists() or not [x for x in spool.read_text().splitlines() if x.strip()]
    decisions = [json.loads(x) for x in (status / "decisions.jsonl").read_text().splitlines()]
    assert sorted({x["key"] for x in decisions if x["action"] == "block"}) == [a, b, c]
    log = d.log_path.read_text()
    b_key = next(x["idempotency_key"] for x in decisions if x["key"] == b and x["action"] == "block")
    assert f"block {b_key} spooled (" in log  # B went through the durable spool
    lost = log.count("lost lease with key")
    print(
        f"\nfaults: endpoint down {down_for:.1f} s (restarts {state['restarts']}), Invoke throttled "
        f"{throttled}x, spooled {log.count(' spooled (')}, leases lost {lost}, "
        f"new processor restored_from {st['restored_from']}, snapshot_failures {st['snapshot_failures']}"
    )
