"""A small seeded stream with ordinary keys and one key that turns abusive, for the contract suite."""

from __future__ import annotations

import numpy as np

from detectors.batch import RecordBatch


def stream(
    seed: int = 1,
    minutes: int = 20,
    keys: int = 30,
    surge_from: int = 12,
    jitter_s: float = 0.0,
    batch_size: int = 97,
) -> list[RecordBatch]:
    """Ordinary keys ``k0..`` make 3-8 requests a minute; ``abuser`` makes 5 a minute, then from minute
    ``surge_from`` 120 a minute, mostly 404s on distinct paths and cache misses. Event times may be
    jittered by up to ``jitter_s`` (records then arrive out of order)."""
    rng = np.random.default_rng(seed)
    t_list: list[float] = []
    key_list: list[str] = []
    status: list[int] = []
    uris: list[str] = []
    results: list[str] = []
    for minute in range(minutes):
        for k in range(keys):
            for _ in range(int(rng.integers(3, 9))):
                t_list.append(minute * 60 + float(rng.uniform(0, 60)))
                key_list.append(f"k{k}")
                status.append(int(rng.choice([200, 200, 200, 304, 404, 401])))
                uris.append(f"/page/{int(rng.integers(0, 20))}")
                results.append(str(rng.choice(["Hit", "Hit", "Miss"])))
        n_abuse = 120 if minute >= surge_from else 5
        for i in range(n_abuse):
            t_list.append(minute * 60 + float(rng.uniform(0, 60)))
            key_list.append("abuser")
            status.append(404 if minute >= surge_from and i % 4 else 200)
            uris.append(f"/probe/{minute}/{i}" if minute >= surge_from else "/page/1")
            results.append("Miss" if minute >= surge_from else "Hit")
    t = np.array(t_list) + 1_764_000_000.0
    order = np.argsort(t, kind="stable")
    if jitter_s:
        t = t + rng.uniform(-jitter_s, jitter_s, t.size)
    out = []
    for a in range(0, order.size, batch_size):
        idx = order[a : a + batch_size]
        il = idx.tolist()
        b = RecordBatch(time=t[idx])
        b.numbers["sc-status"] = np.array([status[i] for i in il], dtype=np.float64)
        b.numbers["sc-bytes"] = rng.integers(100, 5000, idx.size).astype(np.float64)
        b.numbers["cs-bytes"] = np.full(idx.size, 300.0)
        b.numbers["time-taken"] = np.full(idx.size, 0.02)
        b.numbers["sc-range-start"] = np.full(idx.size, np.nan)
        b.texts["cs-uri-stem"] = [uris[i] for i in il]
        b.texts["cs-user-agent"] = ["Mozilla/5.0"] * idx.size
        b.texts["x-edge-result-type"] = [results[i] for i in il]
        b.keys["ip"] = [key_list[i] for i in il]
        b.keys["user"] = [key_list[i] for i in il]
        out.append(b)
    return out
