"""Restore from a snapshot of another configuration: keep what is still compatible.

When thresholds are tuned or detectors added or removed, the engine's snapshot fingerprint no
longer matches, yet most state is still valid: a key type's keys (if they fit the new
``max_keys``), a store whose key type, filter, window and metrics are unchanged, a detector whose
spec is unchanged or whose state it can adopt. Those are kept, the rest starts empty, and one
warning names both, so a config change never silently forgets (or wrongly reuses) state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.engine import Engine

log = logging.getLogger("detectors.engine")  # the engine's logger, as before the split


def restore_compatible(engine: Engine, state: dict[str, Any]) -> None:
    """Take from ``state`` (an unpickled engine snapshot) the tables, stores and detectors that fit
    ``engine``'s configuration; size the others for the kept tables (they start empty)."""
    kept: list[str] = []
    reset: list[str] = []
    for kt in engine.tables:
        old = state["tables"].get(kt)
        if old is not None and old.next_slot <= engine.state.max_keys:
            old.max_keys = engine.state.max_keys
            engine.tables[kt] = old
            kept.append(f"keys of {kt!r}")
        elif old is not None:
            reset.append(f"keys of {kt!r} (more slots used than the new max_keys)")
    for sk, store in engine.stores.items():
        old = state["stores"].get(sk)
        kt_kept = state["tables"].get(sk[0]) is engine.tables[sk[0]]
        if (
            kt_kept
            and old is not None
            and (old.sums, old.distincts, old.subscribed) == (store.sums, store.distincts, store.subscribed)
        ):
            engine.stores[sk] = old
        else:
            if kt_kept:
                what = f"{sk[2]} s window of {sk[0]!r} {sk[1].describe() or ''}".rstrip()
                reset.append(f"{what} ({'new' if old is None else 'changed'})")
            store.grow(engine.tables[sk[0]].capacity)
    old_dets = {d.spec.name: d for d in state["detectors"]}
    for i, det in enumerate(engine.detectors):
        old = old_dets.get(det.spec.name)
        table = engine.tables[det.spec.key]
        if state["tables"].get(det.spec.key) is table:
            if old is not None and old.spec == det.spec:
                engine.detectors[i] = old
                continue
            if old is not None and type(old) is type(det) and det.adopt(old):
                continue
            reset.append(f"detector {det.spec.name!r} ({'new' if old is None else 'changed'})")
        det.grow(table.capacity)
    log.warning(
        "engine snapshot from another configuration: kept %s; started empty: %s",
        ", ".join(kept) or "nothing",
        ", ".join(reset) or "nothing",
    )
