"""Key -> slot mapping of one key type, with least-recently-seen and idle eviction in event time.

Every per-key aggregate lives in numpy arrays indexed by the slot, so a key costs one list entry
(its string), a few array cells, and two cells of an open-addressing hash index (numpy, linear
probing, load <= 1/2) instead of a Python dict entry. The index is probed for a whole batch at once:
a Python dict lookup per record chases a pointer to the stored key string (a cache miss per key on a
big table), the vectorised probe compares 64-bit hashes in arrays.

The index holds Python's ``hash()`` of each key, which differs between processes; it is not
pickled but rebuilt from the key strings on restore. Two different keys with the same 64-bit hash
(probability ~ keys^2 / 2^64, about 3e-8 with a million keys) would share state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.kernels import insert, positions, probe

#: Least-recently-seen eviction frees at least this fraction of the capacity at once, so its O(keys)
#: selection runs once per many new keys instead of once per batch.
LRU_BATCH_FRACTION = 64
_EMPTY, _TOMB = 0, 1  # hash values reserved in the index; real hashes are moved off them


def key_hashes(keys: Sequence[str | None]) -> np.ndarray:
    h = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
    h[h == _EMPTY] = 2
    h[h == _TOMB] = 3
    return h


class KeyTable:
    def __init__(self, max_keys: int, capacity: int = 1024) -> None:
        self.max_keys = max_keys
        self.capacity = min(capacity, max_keys)
        self.keys: list[str | None] = [None] * self.capacity
        self.last_seen = np.full(self.capacity, -np.inf)
        self.free: list[int] = []  # released slots, reused lowest first
        self.next_slot = 0
        self.live = 0
        self.evicted_lru = 0
        self.evicted_idle = 0
        self._reindex()

    # -- pickling: the hash index is per process ---------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for k in ("_th", "_ts", "_used", "_tomb"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reindex()

    def _reindex(self) -> None:
        """Rebuild the index from the key strings, at load <= 1/4 (tombstones dropped)."""
        live = np.array([s for s, k in enumerate(self.keys) if k is not None], dtype=np.int64)
        size = max(2048, 1 << (4 * int(live.size)).bit_length())
        self._th = np.zeros(size, dtype=np.int64)
        self._ts = np.full(size, -1, dtype=np.int32)
        self._used = 0
        self._tomb = 0
        if live.size:
            self._insert(key_hashes([self.keys[s] for s in live.tolist()]), live)

    def _positions(self, h: np.ndarray) -> np.ndarray:
        """Index position of each hash, -1 where absent."""
        return positions(self._th, np.ascontiguousarray(h, dtype=np.int64))

    def _insert(self, h: np.ndarray, slots: np.ndarray) -> None:
        if (self._used + self._tomb + h.size) * 2 > self._th.size:
            self._reindex()  # rebuilds from self.keys, which already hold these keys
            return
        self._tomb -= insert(
            self._th, self._ts, np.ascontiguousarray(h, dtype=np.int64), slots.astype(np.int32)
        )
        self._used += int(h.size)

    # -- the table ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.live

    def nbytes(self) -> int:
        """Bytes of the table's arrays and slot list (not the key strings themselves)."""
        return self.last_seen.nbytes + self._th.nbytes + self._ts.nbytes + 8 * len(self.keys)

    def __contains__(self, key: str) -> bool:
        return self.slot_of(key) is not None

    def slot_of(self, key: str) -> int | None:
        s = int(self.find(key_hashes([key]))[0])
        return s if s >= 0 and self.keys[s] == key else None

    def live_keys(self) -> set[str]:
        return {k for k in self.keys if k is not None}

    def find(self, h: np.ndarray) -> np.ndarray:
        """Slots of the keys with these hashes, -1 for unknown ones (one compiled probe per hash)."""
        return probe(self._th, self._ts, np.ascontiguousarray(h, dtype=np.int64))

    def _grow(self, needed: int) -> int:
        new_cap = min(self.max_keys, max(needed, self.capacity * 2))
        if new_cap > self.capacity:
            self.keys.extend([None] * (new_cap - self.capacity))
            ls = np.full(new_cap, -np.inf)
            ls[: self.capacity] = self.last_seen
            self.last_seen = ls
            self.capacity = new_cap
        return self.capacity

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
        if slots.size == 0:
            return
        sl = slots.tolist()
        pos = self._positions(key_hashes([self.keys[s] for s in sl]))
        pos = pos[pos >= 0]
        self._th[pos] = _TOMB
        self._ts[pos] = -1
        self._used -= int(pos.size)
        self._tomb += int(pos.size)
        for s in sl:
            self.keys[s] = None
        self.live -= len(sl)
        self.last_seen[slots] = -np.inf
        # Freed slots are reused lowest first (the free list is a stack).
        self.free.extend(sorted(sl, reverse=True))

    def allocate(self, keys: Sequence[str], hashes: np.ndarray | None = None) -> np.ndarray:
        """New slots for keys not in the table; the caller made room (``room``/``pick_lru``)."""
        fresh = max(0, len(keys) - len(self.free))
        if self.next_slot + fresh > self.capacity:
            self._grow(self.next_slot + fresh)
        k = len(keys)
        nf = min(len(self.free), k)
        reused = self.free[len(self.free) - nf :][::-1]
        del self.free[len(self.free) - nf :]
        table = self.keys
        if nf == 0:  # the usual case while the table fills: one slice of fresh slots
            out = np.arange(self.next_slot, self.next_slot + k, dtype=np.int64)
            table[self.next_slot : self.next_slot + k] = keys
        else:
            slot_list = reused + list(range(self.next_slot, self.next_slot + k - nf))
            for slot, key in zip(slot_list, keys, strict=True):
                table[slot] = key
            out = np.array(slot_list, dtype=np.int64)
        self.next_slot += k - nf
        self.live += len(keys)
        self._insert(key_hashes(keys) if hashes is None else hashes, out)
        return out

    def room(self) -> int:
        """Slots available without eviction (free + never used up to max_keys)."""
        return len(self.free) + self.max_keys - self.next_slot
