"""Per-key state stays bounded: far more distinct users and IPs than ``state.max_keys`` go through the
full default pipeline, and tracked keys, the engine's numpy state, the guard's memory and the pickled
snapshot stop growing once the bound is reached (the soak benchmark shows the same at 10M records).
"""

from __future__ import annotations

from consumer.config import Config
from consumer.pipeline import Pipeline
from consumer.traffic.generator import DEFAULT_START, Generator

MAX_KEYS = 2_000
GUARD_KEYS = 40


def _stream(segments: int, segment_s: float):
    """Consecutive populations of 5,000 fresh users each (new cookies and addresses per segment)."""
    for seg in range(segments):
        gen = Generator(seed=100 + seg, start=DEFAULT_START + seg * segment_s, rate=40.0, users=5_000)
        yield from gen.batches(segment_s, batch_size=2048)


def test_state_is_bounded_by_max_keys_with_many_more_distinct_keys() -> None:
    cfg = Config.model_validate(
        {"state": {"max_keys": MAX_KEYS}, "actions": {"guard": {"max_tracked_keys": GUARD_KEYS}}}
    )
    pipe = Pipeline.from_config(cfg, dry_run=True)
    seen: dict[str, set[str]] = {"ip": set(), "user": set()}
    peak_state = 0
    full_at = None  # state bytes and snapshot size when both tables were first full
    snap_full = 0
    extract = pipe.keys.extract

    def spy(batch) -> None:
        extract(batch)
        for kt, keys in seen.items():
            keys.update(k for k in batch.keys[kt] if k)

    pipe.keys.extract = spy  # type: ignore[method-assign]
    for lines in _stream(segments=6, segment_s=900):
        pipe.process(lines)
        eng = pipe.engine.stats()
        assert eng["tracked_keys.ip"] <= MAX_KEYS and eng["tracked_keys.user"] <= MAX_KEYS
        assert len(pipe.actions.guard.keys) <= GUARD_KEYS and len(pipe.actions.guard.alerted) <= GUARD_KEYS
        peak_state = max(peak_state, int(eng["state_bytes"]))
        if full_at is None and eng["tracked_keys.ip"] == MAX_KEYS == eng["tracked_keys.user"]:
            full_at = int(eng["state_bytes"])
            snap_full = len(pipe.snapshot())
    eng = pipe.engine.stats()
    stats = pipe.stats()
    # The run really had many more keys than the bound, and the bound really evicted.
    assert len(seen["user"]) > 3 * MAX_KEYS and len(seen["ip"]) > 3 * MAX_KEYS, {
        k: len(v) for k, v in seen.items()
    }
    assert eng["evicted_lru.ip"] + eng["evicted_idle.ip"] > 2 * MAX_KEYS
    assert eng["evicted_lru.user"] + eng["evicted_idle.user"] > 2 * MAX_KEYS
    assert stats["findings"] > 0
    assert full_at is not None
    # Once full, neither the numpy state nor the snapshot grows with the number of keys seen.
    assert peak_state == full_at
    snap_end = len(pipe.snapshot())
    assert snap_end <= 1.25 * snap_full, (snap_full, snap_end)
    assert snap_end < 400 * MAX_KEYS * 2  # well under a kilobyte per tracked key
