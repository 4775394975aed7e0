"""Fault: the block Lambda throttled, then failing, for tens of seconds (real KCL daemon).

Through the local stack's fault layer: ``Invoke`` answered ``TooManyRequestsException`` (HTTP 429),
then the function itself failing: its blocklist table (DynamoDB) errors, so the real handler answers
``ok: false, retryable: true``. Delivery settings are short (3 attempts, 50-200 ms backoff, spool
drained every 1.5 s) so minutes of outage compress into ~35 s.
"""

from __future__ import annotations

import io
import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from actions.config import ActionsConfig
from actions.runner import ActionRunner
from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo
from consumer.local_stack_faults import Faults
from detectors.finding import Finding
from tests.kcl.faults_common import (
    SHARD0,
    T0,
    blocklist_items,
    blocks,
    create_stream,
    decisions,
    expected_counts,
    fault_config,
    latest_counts,
    save_figures,
    steal_lease,
)
from tests.kcl.harness import daemon, leases, put_lines, tail, wait_for
from tests.kcl.protocol import line45

SIGTERM_EXIT = 143
THROTTLED_S = 20.0
FAILING_S = 15.0  # after the throttling
ABUSER1, ABUSER2 = "10.94.0.1", "10.94.0.2"  # unique in the session: the local stack is shared
QUICK_BLOCK = {"max_attempts": 3, "base_delay_s": 0.05, "max_delay_s": 0.2, "flush_timeout_s": 2}


class ScriptedLambda:
    """A Lambda client: throttled while ``down``, else the handler's ``applied`` answer."""

    def __init__(self, down: bool) -> None:
        self.down = down
        self.calls: list[str] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        self.calls.append(json.loads(Payload)["idempotency_key"])
        if self.down:
            err = {"Error": {"Code": "TooManyRequestsException"}, "ResponseMetadata": {"HTTPStatusCode": 429}}
            raise ClientError(err, "Invoke")  # type: ignore[arg-type]
        return {"StatusCode": 200, "Payload": io.BytesIO(b'{"ok": true, "status": "applied"}')}


def _runner(spool: Path, client: ScriptedLambda) -> ActionRunner:
    cfg = ActionsConfig.model_validate(
        {
            "dry_run": False,
            "block": {"function_name": "cfguard-block", "region": "us-east-1", "max_attempts": 2},
            "spool": {"path": str(spool), "retry_interval_s": 0.05},
            "alert": {"enabled": False},
        }
    )
    return ActionRunner(cfg, lambda_client=client, sleep=lambda s: None)


def test_spooled_blocks_travel_in_the_snapshot_to_the_next_owner(tmp_path: Path) -> None:
    """Guards ``ActionRunner.snapshot``'s ``pending`` and ``Delivery.adopt``: the guard state in a
    snapshot counts a spooled block as done, so a worker restoring it with another disk (its own,
    empty spool) must get the block too. Verified failing without them: nothing was delivered."""
    down, up = ScriptedLambda(down=True), ScriptedLambda(down=False)
    a = _runner(tmp_path / "a" / "spool.jsonl", down)
    f = Finding("198.51.100.7", "ip", "flood_ip", 2.0, 50.0, "1m", 60, T0, "block", {"requests": 100})
    [decided] = a.submit([f])
    a.flush()
    assert a.stats()["spool.pending"] == 1 and down.calls == [decided.idempotency_key] * 2
    snap = pickle.loads(pickle.dumps(a.snapshot()))
    a.close()  # its disk is gone with it: b never reads a's spool

    b = _runner(tmp_path / "b" / "spool.jsonl", up)
    b.restore(snap)
    wait_for(lambda: b.stats()["spool.pending"] == 0, 10, "b delivering the adopted block")
    st = b.stats()
    assert up.calls == [decided.idempotency_key]
    assert st["delivery.adopted"] == 1 and st["delivery.spool.redelivered"] == 1
    assert b.submit([f])[0].action == "refused"  # the restored guard: not decided again
    b.close()
    again = _runner(tmp_path / "a" / "spool.jsonl", ScriptedLambda(down=True))
    again.restore(snap)  # the same worker restarting: its spool already holds the entry
    assert again.stats().get("delivery.adopted", 0) == 0 and again.stats()["spool.pending"] == 1
    again.close()


@pytest.mark.integration
@pytest.mark.slow
def test_lambda_throttled_then_failing_blocks_spooled_and_delivered_once(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """Abuser 1 is decided while Invoke is throttled, abuser 2 while the function fails. Each block
    is tried 3 times, spooled, retried by the spool drain while the outage lasts, and delivered once
    it ends: one ``applied`` invocation per abuser, one idempotency item each in the blocklist table.
    Meanwhile the consumer keeps reading and checkpointing (batches are processed and checkpointed
    while the rule is still active), and the counts add up: 2 block decisions, 2 spooled, 2
    redelivered, none pending.

    Guards (1) the durable spool and its drain (``actions/delivery.py``, ``actions/spool.py``) and
    (2) delivery off the record thread with bounded attempts and a bounded ``flush``. Verified
    failing without each: (1) with ``Delivery._spool`` not writing the entry, abuser 1's block was
    never tried again after its 3 throttled attempts (no call reached the function); (2) with
    ``LambdaAction.deliver`` retrying until it succeeds and ``Delivery.flush`` waiting without its
    timeout, the checkpoint's flush held the record thread: batches 2-3 were not checkpointed while
    throttled.
    """
    app = "flt-lambda"
    create_stream(local_stack, app)
    cfg = fault_config(
        tmp_path,
        local_stack,
        app,
        "worker-a",
        actions={
            "block": QUICK_BLOCK,
            "spool": {"path": str(tmp_path / "spool.jsonl"), "retry_interval_s": 1.5},
        },
    )
    status = tmp_path / "status-worker-a"
    faults = Faults(local_stack.endpoint)
    background = [line45(T0 + 1 + i * 0.1, f"10.91.0.{i}") for i in range(40)]
    batch2 = [line45(T0 + 5 + i * 0.2, ABUSER1) for i in range(55)]
    batch3 = [line45(T0 + 20 + i * 0.1, f"10.91.1.{i}") for i in range(30)]
    batch4 = [line45(T0 + 25 + i * 0.2, ABUSER2) for i in range(55)]
    batch5 = [line45(T0 + 38 + i * 0.1, f"10.91.2.{i}") for i in range(30)]

    def processed() -> int:
        return int(read_status(status).get(SHARD0, {}).get("records", 0))

    def checkpointed_through(seq: str) -> bool:
        return leases(local_stack, app).get(SHARD0, {}).get("checkpoint") == seq

    seqs = put_lines(local_stack, app, background)
    d = daemon(cfg, local_stack, tmp_path, "a")
    d.start()
    try:
        wait_for(lambda: checkpointed_through(seqs[-1]), 120, "the first checkpoint\n" + tail(d.log_path))
        start = time.monotonic()
        throttle = faults.add(
            service="lambda", operation="Invoke", error="TooManyRequestsException", seconds=THROTTLED_S
        )
        failing = faults.add(  # matched only once the throttle ends: Invoke reaches the function then
            service="dynamodb",
            error="InternalServerError",
            body_contains=local_stack.spec.blocklist_table,
            seconds=THROTTLED_S + FAILING_S,
        )

        seqs += put_lines(local_stack, app, batch2)
        wait_for(lambda: [x for x in decisions(status) if x["key"] == ABUSER1], 20, "abuser 1's decision")
        seqs += put_lines(local_stack, app, batch3)
        wait_for(lambda: checkpointed_through(seqs[-1]), 15, "batches 2-3 checkpointed while throttled")
        assert time.monotonic() - start < THROTTLED_S and faults.rule(throttle)["active"]
        assert processed() == len(background) + len(batch2) + len(batch3)

        wait_for(lambda: not faults.rule(throttle)["active"], THROTTLED_S + 5, "the end of the throttling")
        seqs += put_lines(local_stack, app, batch4)
        wait_for(lambda: [x for x in decisions(status) if x["key"] == ABUSER2], 20, "abuser 2's decision")
        seqs += put_lines(local_stack, app, batch5)
        wait_for(lambda: checkpointed_through(seqs[-1]), 15, "batches 4-5 checkpointed while failing")
        assert faults.rule(failing)["active"]
        failed_calls = [c for c in blocks(local_stack, ABUSER1) if c["status"] == 503]
        assert failed_calls, "the function's failures reached it (retryable 503 answers)"
        assert not [
            c for c in blocks(local_stack, ABUSER1) + blocks(local_stack, ABUSER2) if c["status"] != 503
        ]

        wait_for(
            lambda: all(
                [c["status"] for c in blocks(local_stack, ip) if c["status"] != 503] == ["applied"]
                for ip in (ABUSER1, ABUSER2)
            ),
            30,
            "both blocks delivered after the outage\n" + tail(d.log_path),
        )
        wait_for(
            lambda: read_status(status)[SHARD0]["pipeline"]["actions"]["spool.pending"] == 0,
            10,
            "spool empty",
        )
        st = read_status(status)[SHARD0]
        injected = {"throttled": faults.injected(throttle), "failing": faults.injected(failing)}
    finally:
        faults.clear()
        code = d.stop()
    assert code == SIGTERM_EXIT, tail(d.log_path)

    # Exactly one block in effect per abuser, with the key it was decided with.
    for ip in (ABUSER1, ABUSER2):
        decided = [x for x in decisions(status) if x["key"] == ip]
        assert [x["action"] for x in decided] == ["block"]
        calls = blocks(local_stack, ip)
        assert {c["idempotency_key"] for c in calls} == {decided[0]["idempotency_key"]}
        block, idem = blocklist_items(local_stack, ip)
        assert block is not None and block["status"]["S"] == "active"
        assert block["idempotency_key"]["S"] == decided[0]["idempotency_key"] and len(idem) == 1
    # The counts say so.
    acts = st["pipeline"]["actions"]
    assert st["pipeline"]["decisions.flood_ip"] == 2
    assert acts["delivery.enqueued"] == 2 and acts.get("delivery.delivered", 0) == 0
    assert acts["delivery.spooled"] == acts["delivery.spooled.retries_exhausted"] == 2
    assert acts["delivery.spool.redelivered"] == 2 and acts["spool.pending"] == 0
    assert injected["throttled"] >= 3  # abuser 1's first 3 attempts, then the spool's drains
    assert injected["failing"] >= 1
    # Every record processed once into the state; the checkpoint at the last one.
    total = background + batch2 + batch3 + batch4 + batch5
    assert st["records"] == len(total)
    position, counts = latest_counts(local_stack, app)
    assert position == (int(seqs[-1]), 0) and counts == expected_counts(total)
    save_figures(
        tmp_path,
        records=st["records"],
        checkpoints=st["checkpoints"],
        decisions=st["pipeline"]["decisions.flood_ip"],
        delivery={k: v for k, v in acts.items() if k.startswith(("delivery.", "spool."))},
        injected=injected,
        invocations={ip: [c["status"] for c in blocks(local_stack, ip)] for ip in (ABUSER1, ABUSER2)},
    )


@pytest.mark.integration
@pytest.mark.slow
def test_worker_lost_with_spooled_blocks_next_owner_delivers_them(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """Invoke throttled until further notice. Worker a decides the abuser's block, spools it after 3
    attempts and keeps checkpointing past it (it never stalls), then its host is lost (SIGKILL; its
    spool file stays on that disk). Worker b, with its own disk, takes the lease, restores a's last
    snapshot, in which the guard already counts the block as done (so b does not decide it again),
    and delivers the block from the snapshot's pending entries once Invoke works: ``applied`` once.

    Guards the pending blocks in the actions snapshot (``ActionRunner.snapshot``,
    ``Delivery.adopt``). Verified failing without them: the block never reached the Lambda.
    """
    app = "flt-lambda-handover"
    create_stream(local_stack, app)
    abuser = "10.92.0.1"
    cfgs = {
        w: fault_config(
            tmp_path,
            local_stack,
            app,
            w,
            actions={
                "block": QUICK_BLOCK,
                "spool": {"path": str(tmp_path / f"disk-{w}" / "spool.jsonl"), "retry_interval_s": 1.5},
            },
        )
        for w in ("worker-a", "worker-b")
    }
    status_a, status_b = tmp_path / "status-worker-a", tmp_path / "status-worker-b"
    faults = Faults(local_stack.endpoint)
    batch1 = [line45(T0 + 1 + i * 0.1, f"10.93.0.{i}") for i in range(40)]
    batch2 = [line45(T0 + 5 + i * 0.2, abuser) for i in range(55)]
    batch3 = [line45(T0 + 20 + i * 0.1, f"10.93.1.{i}") for i in range(20)]
    batch4 = [line45(T0 + 25 + i * 0.1, f"10.93.2.{i}") for i in range(20)]

    def checkpoint() -> str | None:
        return leases(local_stack, app).get(SHARD0, {}).get("checkpoint")

    seqs = put_lines(local_stack, app, batch1)
    a = daemon(cfgs["worker-a"], local_stack, tmp_path, "a")
    b = daemon(cfgs["worker-b"], local_stack, tmp_path, "b")
    a.start()
    try:
        wait_for(lambda: checkpoint() == seqs[-1], 120, "a's first checkpoint\n" + tail(a.log_path))
        throttle = faults.add(service="lambda", operation="Invoke", error="TooManyRequestsException")
        seqs += put_lines(local_stack, app, batch2)
        wait_for(
            lambda: read_status(status_a)[SHARD0]["pipeline"]["actions"].get("delivery.spooled") == 1,
            20,
            "a spooling the abuser's block",
        )
        seqs += put_lines(local_stack, app, batch3)
        wait_for(lambda: checkpoint() == seqs[-1], 15, "a checkpointing past the spooled block")
        a.kill()
        steal_lease(local_stack, app, SHARD0, "worker-b")
        b.start()
        wait_for(lambda: read_status(status_b).get(SHARD0), 60, "b's processor\n" + tail(b.log_path))
        assert blocks(local_stack, abuser) == []  # still throttled: nothing reached the function
        throttled = faults.injected(throttle)
        faults.clear()
        calls = wait_for(
            lambda: blocks(local_stack, abuser), 30, "b delivering a's block\n" + tail(b.log_path)
        )
        seqs += put_lines(local_stack, app, batch4)
        wait_for(lambda: checkpoint() == seqs[-1], 30, "b's checkpoint of batch 4")
        st_b = read_status(status_b)[SHARD0]
    finally:
        faults.clear()
        a.kill()
        code = b.stop()
    assert code == SIGTERM_EXIT, tail(b.log_path)
    decided = [x for x in decisions(status_a) if x["key"] == abuser]
    assert [x["action"] for x in decided] == ["block"]
    assert [x for x in decisions(status_b) if x["key"] == abuser] == []  # b restored it as done
    assert [c["status"] for c in calls] == ["applied"] == [c["status"] for c in blocks(local_stack, abuser)]
    assert calls[0]["idempotency_key"] == decided[0]["idempotency_key"]
    block, idem = blocklist_items(local_stack, abuser)
    assert block is not None and len(idem) == 1
    acts = st_b["pipeline"]["actions"]
    assert (
        acts["delivery.adopted"] == 1
        and acts["delivery.spool.redelivered"] == 1
        and acts["spool.pending"] == 0
    )
    assert st_b["restored_from"] == f"{SHARD0}@{seqs[-len(batch4) - 1]}.0"
    assert st_b["records"] == len(batch4) and throttled >= 3
    lost = [json.loads(x) for x in (tmp_path / "disk-worker-a" / "spool.jsonl").read_text().splitlines()]
    assert [e["idempotency_key"] for e in lost] == [decided[0]["idempotency_key"]]  # left on a's disk
    position, counts = latest_counts(local_stack, app)
    assert position == (int(seqs[-1]), 0) and counts == expected_counts(batch1 + batch2 + batch3 + batch4)
    save_figures(
        tmp_path,
        throttled_invokes=throttled,
        old_owner_spooled=1,
        new_owner={k: st_b[k] for k in ("records", "restored_from", "checkpoints")},
        new_owner_delivery={k: v for k, v in acts.items() if k.startswith(("delivery.", "spool."))},
        block_invocations=[c["status"] for c in calls],
    )
