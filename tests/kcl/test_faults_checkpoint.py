"""DynamoDB throttling of the lease table while the processor checkpoints, with the real KCL daemon.

Protections guarded (each verified by disabling it and watching this test fail, see the test):
- ``consumer/kcl/checkpoint.py``: a checkpoint answered with ``ThrottlingException`` is retried with
  backoff inside the same call (``RETRYABLE``), so a short throttle costs no checkpoint.
- a throttled checkpoint never stops processing, and a block re-decided after a restart from the last
  checkpoint that landed carries the same idempotency key (``actions/idempotency.py``), so the block
  Lambda applies it once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo
from consumer.local_stack_faults import Faults
from tests.kcl.faults_common import SHARD0, T0, block_invocations, blocklist, create_stream, traffic
from tests.kcl.harness import daemon, leases, put_lines, real_pipeline_sections, tail, wait_for, write_config
from tests.kcl.protocol import line45

pytestmark = pytest.mark.integration


def test_throttled_checkpoint_retried_lease_lost_and_resumed_without_double_blocks(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """Phase 1: abuser A blocked, a slow client S half way (30 of 50 in a minute), checkpoint C1 lands.
    Phase 2: the lease table throttles every checkpoint write (``ProvisionedThroughputExceededException``
    on UpdateItem carrying ``checkpoint``) while B floods and S sends 25 more: B and S are blocked. The
    SDK in the KCL retries the write with throttling backoff (~50 s) while holding the lease's lock, so
    renewals stop and the lease expires; the KCL then answers the processor ``ThrottlingException``, the
    policy retries, gets ``ShutdownException`` and stops checkpointing (never a checkpoint from a
    processor that lost its lease). The throttle ends; the worker takes the lease again and a new
    processor resumes from C1 with C1's snapshot: it re-decides B and S (after C1), never A (before
    C1), and the Lambda answers ``duplicate`` to both (same idempotency keys): one block row each, and
    the checkpoint lands at the last record.

    KCL 2.5.8 hands a throttled checkpoint to the processor only after the SDK's retries (about 9
    attempts, ~50 s), so with any failover time under that the lease is lost first: this test takes
    that real path (~2 min; failover 6 s to shorten the re-take).

    Verified failing without the protections: with a random idempotency key (``uuid4().hex`` in
    ``actions/idempotency.py``) B and S are ``applied`` twice; with the snapshot restore off
    (``ShardProcessor._restore`` returning at once) no processor resumes with C1's state (S's first
    30 requests are only in it); with ``ThrottlingException`` removed from
    ``checkpoint.RETRYABLE`` the policy gives up at once (no ``retry 1`` line).
    """
    app = "it-faults-ckpt"  # no "checkpoint" in the table name: body_contains must only match writes
    stream = create_stream(local_stack, app)
    faults = Faults(local_stack.endpoint)
    status = tmp_path / "status"
    sections = real_pipeline_sections(local_stack, tmp_path, 50)
    cfg = write_config(tmp_path, local_stack, app, stream, sections=sections, failover_time_ms=6000)
    a, b, slow = "10.80.0.1", "10.80.0.2", "10.80.0.3"
    seqs = put_lines(
        local_stack, stream, traffic([a], T0, tag="81") + [line45(T0 + 8 + i * 0.1, slow) for i in range(30)]
    )

    def checkpoint() -> str | None:
        return leases(local_stack, app).get(SHARD0, {}).get("checkpoint")

    d = daemon(cfg, local_stack, tmp_path, "ckpt")
    d.start()
    try:
        wait_for(lambda: checkpoint() == seqs[-1], 120, "phase 1 checkpoint\n" + tail(d.log_path))
        c1 = seqs[-1]
        throttle = faults.add(service="dynamodb", operation="UpdateItem", body_contains="checkpoint",
                              error="ProvisionedThroughputExceededException")  # fmt: skip
        phase2 = traffic([b], T0 + 12, tag="82") + [line45(T0 + 20 + i * 0.1, slow) for i in range(25)]
        seqs += put_lines(local_stack, stream, phase2)
        wait_for(lambda: "checkpoint refused (ShutdownException)" in d.log_path.read_text(), 120,
                 "the throttled checkpoint answered\n" + tail(d.log_path))  # fmt: skip
        throttled = faults.injected(throttle)
        faults.clear()
        resumed = f"{SHARD0}@{int(c1)}.0"
        st = wait_for(
            lambda: (
                (s := read_status(status).get(SHARD0, {})).get("restored_from") == resumed
                and s.get("records") == len(phase2)
                and s
            ),
            60,
            "the new processor\n" + tail(d.log_path),
        )
        wait_for(lambda: checkpoint() == seqs[-1], 30, "the final checkpoint\n" + tail(d.log_path))
    finally:
        d.stop()
    log = d.log_path.read_text()
    assert "checkpoint ThrottlingException, retry 1" in log  # the policy retried the throttle
    assert "lease lost; not checkpointing" in log
    assert throttled >= 2
    assert st["skipped_redelivered"] == 0
    blocks = [(x["key"], x["status"]) for x in block_invocations(local_stack, {a, b, slow})]
    assert blocks[0] == (a, "applied") and len(blocks) == 5
    assert sorted(blocks[1:]) == [(b, "applied"), (b, "duplicate"), (slow, "applied"), (slow, "duplicate")]
    keys = {}
    for x in block_invocations(local_stack, {b, slow}):
        keys.setdefault(x["key"], set()).add(x["idempotency_key"])
    assert all(len(v) == 1 for v in keys.values())
    rows = blocklist(local_stack, {a, b, slow})
    assert sorted(k for k in rows if k.startswith("block#")) == sorted(
        f"block#ip#{ip}" for ip in (a, b, slow)
    )
    print(f"\nfaults: throttled checkpoint writes={throttled}")
