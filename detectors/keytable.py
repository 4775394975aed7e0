"""Key -> slot mapping of one key type, with least-recently-seen and idle eviction in event time.

Every per-key aggregate lives in numpy arrays indexed by the slot, so a key costs one dict entry,
one list entry and a few array cells instead of a Python object per key and window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Least-recently-seen eviction frees at least this fraction of the capacity at once, so its O(keys)
#: selection runs once per many new keys instead of once per batch.
LRU_BATCH_FRACTION = 64


class KeyTable:
    def __init__(self, max_keys: int, capacity: int = 1024) -> None:
        self.max_keys = max_keys
        self.capacity = min(capacity, max_keys)
        self.index: dict[str, int] = {}
        self.keys: list[str | None] = [None] * self.capacity
        self.last_seen = np.full(self.capacity, -np.inf)
        self.free: list[int] = []  # released slots, reused last-in first-out
        self.next_slot = 0
        self.evicted_lru = 0
        self.evicted_idle = 0

    def __len__(self) -> int:
        return len(self.index)

    def _grow(self, needed: int) -> int:
        new_cap = min(self.max_keys, max(needed, self.capacity * 2))
        if new_cap > self.capacity:
            self.keys.extend([None] * (new_cap - self.capacity))
            ls = np.full(new_cap, -np.inf)
            ls[: self.capacity] = self.last_seen
            self.last_seen = ls
            self.capacity = new_cap
        return self.capacity

    def lookup(self, keys: Sequence[str | None]) -> np.ndarray:
        """Slots of ``keys`` (distinct), -1 for unknown keys and ``None``."""
        get = self.index.get
        return np.fromiter(
            (get(k, -1) if k is not None else -1 for k in keys), dtype=np.int64, count=len(keys)
        )

    def pick_lru(self, count: int, protected: np.ndarray) -> np.ndarray:
        """The ``count`` (or a bulk of more) least-recently-seen slots, never one in ``protected``."""
        active = np.flatnonzero(np.isfinite(self.last_seen[: self.next_slot]))
        ls = self.last_seen[active].copy()
        if protected.size:
            ls[np.isin(active, protected)] = np.inf
        evictable = int(np.isfinite(ls).sum())
        m = min(max(count, self.max_keys // LRU_BATCH_FRACTION), evictable)
        if m < count:
            raise RuntimeError("key table cannot make room: more keys in one batch than max_keys allows")
        if m == ls.size:
            chosen = np.arange(ls.size)
        else:
            chosen = np.argpartition(ls, m - 1)[:m]
        # Oldest first; ties by slot, so the order is deterministic.
        chosen = chosen[np.lexsort((active[chosen], ls[chosen]))]
        return active[chosen]

    def idle(self, cutoff: float) -> np.ndarray:
        """Active slots last seen before ``cutoff`` (event time)."""
        ls = self.last_seen[: self.next_slot]
        return np.flatnonzero(np.isfinite(ls) & (ls < cutoff))

    def release(self, slots: np.ndarray) -> None:
        for s in slots.tolist():
            k = self.keys[s]
            if k is not None:
                del self.index[k]
                self.keys[s] = None
        self.last_seen[slots] = -np.inf
        # Freed slots are reused lowest first (the free list is a stack).
        self.free.extend(sorted(slots.tolist(), reverse=True))

    def allocate(self, keys: Sequence[str]) -> np.ndarray:
        """New slots for keys not in the table; the caller made room (``room``/``pick_lru``)."""
        fresh = max(0, len(keys) - len(self.free))
        if self.next_slot + fresh > self.capacity:
            self._grow(self.next_slot + fresh)
        out = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            if self.free:
                s = self.free.pop()
            else:
                s = self.next_slot
                self.next_slot += 1
            self.index[k] = s
            self.keys[s] = k
            out[i] = s
        return out

    def room(self) -> int:
        """Slots available without eviction (free + never used up to max_keys)."""
        return len(self.free) + self.max_keys - self.next_slot
