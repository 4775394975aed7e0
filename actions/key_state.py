"""Per-key guard memory in event time: cooldowns and the offence count that drives escalation."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class KeyState:
    """Compact: four numbers and one short string per key that was acted on."""

    blocked_until: float = float("-inf")  # event time the current block (or cooldown) ends
    last_block: float = float("-inf")  # event time of the last block
    offences: int = 0  # blocks so far within the escalation memory
    last_idempotency_key: str = ""


class KeyStates:
    """LRU-bounded map (key_type, key) -> KeyState; the least recently acted-on key goes first."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._d: OrderedDict[tuple[str, str], KeyState] = OrderedDict()
        self.evicted = 0

    def get(self, key_type: str, key: str) -> KeyState | None:
        return self._d.get((key_type, key))

    def touch(self, key_type: str, key: str) -> KeyState:
        k = (key_type, key)
        st = self._d.get(k)
        if st is None:
            st = self._d[k] = KeyState()
            while len(self._d) > self.max_keys:
                self._d.popitem(last=False)
                self.evicted += 1
        else:
            self._d.move_to_end(k)
        return st

    def __len__(self) -> int:
        return len(self._d)

    def snapshot(self) -> list[tuple[str, str, float, float, int, str]]:
        return [
            (kt, k, s.blocked_until, s.last_block, s.offences, s.last_idempotency_key)
            for (kt, k), s in self._d.items()
        ]

    def restore(self, rows: list[tuple[str, str, float, float, int, str]]) -> None:
        self._d = OrderedDict(((kt, k), KeyState(bu, lb, n, ik)) for kt, k, bu, lb, n, ik in rows)


class AlertMemory:
    """Event time until which (key_type, key, detector) is not alerted again; LRU-bounded."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._d: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def until(self, k: tuple[str, str, str]) -> float:
        return self._d.get(k, float("-inf"))

    def set(self, k: tuple[str, str, str], until: float) -> None:
        self._d[k] = until
        self._d.move_to_end(k)
        while len(self._d) > self.max_keys:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)

    def snapshot(self) -> list[tuple[tuple[str, str, str], float]]:
        return list(self._d.items())

    def restore(self, rows: list[tuple[tuple[str, str, str], float]]) -> None:
        self._d = OrderedDict((tuple(k), v) for k, v in rows)  # type: ignore[misc]
