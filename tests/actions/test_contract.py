"""Shared checks every stateful actions part goes through: pickling, clone independence, bounded
memory, and (for the runner) snapshot/restore giving the same decisions as an uninterrupted run."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from actions.config import BreakerConfig, GuardConfig
from actions.guard import Guard
from actions.runner import ActionRunner
from tests.actions.helpers import T0, FakeWall, cfg, finding


def stream(n: int, start: int = 0, keys: int = 40) -> list[Any]:
    """Findings from a handful of repeat offenders, some alerts and shadows, in event-time order."""
    out = []
    for i in range(start, start + n):
        mode = ("block", "block", "alert", "shadow")[i % 4]
        out.append(finding(f"10.{i % keys}.0.1", t=T0 + i * 13, mode=mode, detector=f"d{i % 3}"))
    return out


def sig(decisions: list[Any]) -> list[tuple[Any, ...]]:
    return [(d.key, d.action, d.reason, d.block_duration_s, d.idempotency_key) for d in decisions]


GUARD = GuardConfig(cooldown_s=120, breaker=BreakerConfig(max_blocks=8, per_s=300, reset_after_s=900))

Factory = Callable[[], Any]
PARTS: dict[str, tuple[Factory, Callable[[Any, list[Any]], list[Any]]]] = {
    "guard": (lambda: Guard(GUARD, wall=FakeWall()), lambda g, fs: [g.decide(f) for f in fs]),
    "runner": (
        lambda: ActionRunner(cfg(guard=GUARD.model_dump()), dry_run=True, clock=FakeWall()),
        lambda r, fs: r.submit(fs),
    ),
}


@pytest.fixture(params=sorted(PARTS))
def part(request: pytest.FixtureRequest) -> tuple[Factory, Callable[[Any, list[Any]], list[Any]]]:
    return PARTS[request.param]


def test_pickle_round_trip_continues_identically(part) -> None:  # type: ignore[no-untyped-def]
    make, feed = part
    a = make()
    feed(a, stream(300))
    b = pickle.loads(pickle.dumps(a))
    assert sig(feed(a, stream(300, 300))) == sig(feed(b, stream(300, 300)))


def test_clones_are_independent(part) -> None:  # type: ignore[no-untyped-def]
    make, feed = part
    a = make()
    feed(a, stream(100))
    b = pickle.loads(pickle.dumps(a))
    reference = pickle.loads(pickle.dumps(a))
    feed(a, stream(500, 100))  # a moves on (cooldowns, offences, breaker)
    assert sig(feed(b, stream(50, 100))) == sig(feed(reference, stream(50, 100)))


def test_bounded_memory(part) -> None:  # type: ignore[no-untyped-def]
    make, feed = part
    small = GUARD.model_copy(update={"max_tracked_keys": 500})
    obj = make()
    guard = obj if isinstance(obj, Guard) else obj.guard
    guard.__init__(small, wall=FakeWall())  # same part, tight bound
    feed(
        obj,
        [finding(f"u{i}", key_type="user", t=T0 + i, mode=("block", "alert")[i % 2]) for i in range(20_000)],
    )
    assert len(guard.keys) <= 500 and len(guard.alerted) <= 500
    assert len(pickle.dumps(guard.snapshot())) < 120_000


def test_runner_snapshot_restore_equals_uninterrupted_run() -> None:
    def make() -> ActionRunner:
        return ActionRunner(cfg(guard=GUARD.model_dump()), dry_run=True, clock=FakeWall())

    whole = make()
    expected = sig(whole.submit(stream(400))) + sig(whole.submit(stream(400, 400)))
    first = make()
    got = sig(first.submit(stream(400)))
    blob = pickle.dumps(first.snapshot())
    second = make()  # a new process after a checkpoint
    second.restore(pickle.loads(blob))
    got += sig(second.submit(stream(400, 400)))
    assert got == expected
    actions = {a for _, a, *_ in got}
    assert {"block", "alert", "shadow", "refused"} <= actions  # the stream exercises every path
    assert {"circuit_breaker_open", "cooldown"} <= {r for _, _, r, *_ in got}
