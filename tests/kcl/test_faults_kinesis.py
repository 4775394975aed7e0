"""Kinesis throttling and expired iterators seen by the real KCL daemon, mid-run."""

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


def test_getrecords_throttled_and_iterators_expired(local_stack: StackInfo, tmp_path: Path) -> None:
    """Four abusers, one per phase: before any fault; while every GetRecords is answered
    ``ProvisionedThroughputExceededException`` for 8 s; while 3 GetRecords are answered
    ``ExpiredIteratorException``; after. A slow client sends 60 requests spread over 3 minutes of event
    time (20 a minute, under the threshold of 50) during the throttle, so they reach the processor as
    one burst when it ends. Every record is processed exactly once (the processor's count equals what
    was put: the KCL backs off, and restarts an expired iterator after the last record it handed
    over), each abuser has exactly one block decided and one ``applied`` Invoke (no ``duplicate``:
    nothing re-decided), the slow client none, and the checkpoint lands at the last record.

    Protection guarded: decisions use the records' event time, never their arrival time, so a
    backlog delivered in a burst after a throttle looks like what it was. Verified failing without
    it: stamping each batch with the wall clock (``RecordBatch(time=np.full(n, time.time()))`` in
    ``consumer/realtime.py``) blocks the slow client. The KCL side (backoff, iterator restart) has no
    cfguard code to disable; the exact record count pins it (a redelivery or a skip fails the test).
    """
    app = "it-faults-kinesis"
    stream = create_stream(local_stack, app)
    faults = Faults(local_stack.endpoint)
    status = tmp_path / "status"
    sections = real_pipeline_sections(local_stack, tmp_path, 50)
    cfg = write_config(tmp_path, local_stack, app, stream, sections=sections)
    abusers = [f"10.70.0.{i}" for i in range(1, 5)]
    slow = "10.70.9.9"
    seqs = put_lines(local_stack, stream, traffic(abusers[:1], T0, tag="71"))

    def processed() -> int:
        return int(read_status(status).get(SHARD0, {}).get("records", 0))

    d = daemon(cfg, local_stack, tmp_path, "kinesis")
    d.start()
    try:
        wait_for(lambda: processed() == len(seqs), 120, "phase 1 processed\n" + tail(d.log_path))
        throttle = faults.add(service="kinesis", operation="GetRecords",
                              error="ProvisionedThroughputExceededException", seconds=8)  # fmt: skip
        burst = traffic(abusers[1:2], T0 + 20, tag="72") + [
            line45(T0 + 30 + i * 3.0, slow) for i in range(60)
        ]
        seqs += put_lines(local_stack, stream, burst)
        wait_for(lambda: faults.injected(throttle) >= 3, 20, "throttled GetRecords calls")
        during = processed()
        expired = faults.add(
            service="kinesis", operation="GetRecords", error="ExpiredIteratorException", count=3
        )
        seqs += put_lines(local_stack, stream, traffic(abusers[2:3], T0 + 240, tag="73"))
        wait_for(lambda: faults.injected(expired) == 3, 30, "expired iterators")
        seqs += put_lines(local_stack, stream, traffic(abusers[3:], T0 + 260, tag="74"))
        wait_for(lambda: processed() >= len(seqs), 60, "all records processed\n" + tail(d.log_path))
        wait_for(lambda: leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1], 30, "last checkpoint")
        st = read_status(status)[SHARD0]
        throttled, expirations = faults.injected(throttle), faults.injected(expired)
    finally:
        d.stop()
    log = d.log_path.read_text()
    assert "records threw ExpiredIteratorException" in log  # the KCL parsed the injected errors as AWS's
    assert "kinesis.model.ProvisionedThroughputExceededException" in log
    assert during == 100  # nothing got through while every GetRecords was throttled
    assert st["records"] == len(seqs) and st["skipped_redelivered"] == 0
    blocks = [(x["key"], x["status"]) for x in block_invocations(local_stack, {*abusers, slow})]
    assert sorted(blocks) == [(ip, "applied") for ip in abusers]
    rows = blocklist(local_stack, {*abusers, slow})
    assert sorted(k for k in rows if k.startswith("block#")) == [f"block#ip#{ip}" for ip in abusers]
    print(
        f"\nfaults: GetRecords throttled {throttled}x over 8 s, expired iterators {expirations}, "
        f"records {st['records']} of {len(seqs)}"
    )
