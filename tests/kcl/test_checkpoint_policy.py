from __future__ import annotations

from consumer.kcl.checkpoint import CheckpointPolicy
from consumer.kcl.config import CheckpointConfig


def test_due_by_records_or_time() -> None:
    now = [100.0]
    p = CheckpointPolicy(CheckpointConfig(every_records=10, every_s=30), clock=lambda: now[0])
    assert not p.due()
    p.record(9)
    assert not p.due()
    p.record(1)
    assert p.due()
    p.done()
    assert not p.due()
    p.record(1)
    now[0] += 29.9
    assert not p.due()
    now[0] += 0.2
    assert p.due()
    p.done()
    now[0] += 1000
    assert not p.due()  # nothing new to checkpoint
