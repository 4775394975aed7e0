"""Seeded generated traffic: one UTC day with injected abuse of every kind and the hard negatives.

Columnar (RecordBatch) so the detector tests and benchmarks do not depend on the parser. Actors:

abusers (key, expected default detector)
  flood        ip 203.0.113.66        150 req/s for 2 minutes                   request_flood_ip
  hog          user u_hog             12 GB in 30 minutes of range requests    bandwidth_hog_hourly
  daily_hog    user u_daily           4 GB/h for 14 hours (never 10 GB in 1h)  bandwidth_hog_daily
  scanner      ip 203.0.113.99        600 probes of distinct paths, 404/403    scanner_ip
  stuffing     ip 203.0.113.120       300 logins in 5 minutes, 95% fail        credential_stuffing_ip
  slow_stuff   ip 203.0.113.121       4 failed logins a minute for an hour     credential_stuffing_slow_ip
  scraper      user u_scraper         5,000 distinct pages in an hour          scraping_user
  buster       ip 203.0.113.140       10 req/s cache-busting for 10 minutes    origin_exhaustion_ip
  surge        user u_surge           ~100 req/h for 8 hours, then 3,000       request_surge_user
hard negatives (no finding allowed)
  nat          ip 198.51.100.7        300 ordinary users behind one IP for 2 hours
  monitor      ip 203.0.113.50        uptime check of /health every 10 s all day (always a miss)
  heavy        user u_heavy           the heaviest normal user: 8 GB/h streamed for 5 hours, a page every 2 s
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detectors.batch import RecordBatch

DAY0 = 20417 * 86400.0  # a UTC midnight (2025-11-25), so the day fits one 24h window
H = 3600.0
PAGES = [f"/catalog/{i // 50}/item-{i}.html" for i in range(2000)]
ABUSERS = {
    ("ip", "203.0.113.66"): "request_flood_ip",
    ("user", "u_hog"): "bandwidth_hog_hourly",
    ("user", "u_daily"): "bandwidth_hog_daily",
    ("ip", "203.0.113.99"): "scanner_ip",
    ("ip", "203.0.113.120"): "credential_stuffing_ip",
    ("ip", "203.0.113.121"): "credential_stuffing_slow_ip",
    ("user", "u_scraper"): "scraping_user",
    ("ip", "203.0.113.140"): "origin_exhaustion_ip",
    ("user", "u_surge"): "request_surge_user",
}
NAT_IP = "198.51.100.7"
HARD_NEGATIVE_KEYS = {("ip", NAT_IP), ("ip", "203.0.113.50"), ("user", "u_heavy"), ("ip", "192.0.2.10")}


@dataclass
class _Cols:
    t: list[np.ndarray] = field(default_factory=list)
    ip: list[list[str | None]] = field(default_factory=list)
    user: list[list[str | None]] = field(default_factory=list)
    status: list[np.ndarray] = field(default_factory=list)
    nbytes: list[np.ndarray] = field(default_factory=list)
    uri: list[list[str]] = field(default_factory=list)
    result: list[list[str]] = field(default_factory=list)
    range_start: list[np.ndarray] = field(default_factory=list)

    def add(self, t, ip, user, status, nbytes, uri, result, range_start=None) -> None:
        n = len(t)
        self.t.append(np.asarray(t, dtype=np.float64))
        self.ip.append(ip if isinstance(ip, list) else [ip] * n)
        self.user.append(user if isinstance(user, list) else [user] * n)
        self.status.append(np.broadcast_to(np.asarray(status, dtype=np.float64), (n,)).copy())
        self.nbytes.append(np.broadcast_to(np.asarray(nbytes, dtype=np.float64), (n,)).copy())
        self.uri.append(uri if isinstance(uri, list) else [uri] * n)
        self.result.append(result if isinstance(result, list) else [result] * n)
        rs = (
            np.full(n, np.nan)
            if range_start is None
            else np.broadcast_to(range_start, (n,)).astype(np.float64)
        )
        self.range_start.append(rs)


def _uniform(rng: np.random.Generator, start: float, seconds: float, n: int) -> np.ndarray:
    return np.sort(start + rng.uniform(0, seconds, n))


def _pages(rng: np.random.Generator, n: int) -> list[str]:
    idx = np.minimum(rng.zipf(1.4, n) - 1, len(PAGES) - 1)
    return [PAGES[i] for i in idx.tolist()]


def _results(rng: np.random.Generator, n: int, miss: float) -> list[str]:
    return np.where(rng.random(n) < miss, "Miss", "Hit").tolist()


def generate(seed: int = 2024, batch_size: int = 4096) -> list[RecordBatch]:
    rng = np.random.default_rng(seed)
    c = _Cols()
    busy = DAY0 + 9 * H  # the busy period: 09:00-11:00 UTC

    # -- hard negatives ------------------------------------------------------------------------
    for u in range(300):  # NAT: one request every ~20 s per user, 2 hours
        n = int(rng.poisson(360))
        t = _uniform(rng, busy, 2 * H, n)
        status = rng.choice([200, 200, 200, 200, 304, 404], n, p=[0.3, 0.3, 0.2, 0.1, 0.09, 0.01])
        uris = _pages(rng, n)
        c.add(t, NAT_IP, f"nat_{u}", status, rng.integers(2_000, 200_000, n), uris, _results(rng, n, 0.15))
        logins = int(rng.integers(1, 4))  # a few logins, one in ten mistyped
        tl = _uniform(rng, busy, 2 * H, logins)
        c.add(tl, NAT_IP, f"nat_{u}", np.where(rng.random(logins) < 0.1, 401, 200), 500, "/login", "Miss")
    t = DAY0 + np.arange(0, 24 * H, 10.0)  # uptime monitor
    c.add(t, "203.0.113.50", None, 200, 300, "/health", "Miss")
    n = 1800 * 5  # heaviest normal user: a page every 2 s for 5 hours ...
    t = _uniform(rng, DAY0 + 8 * H, 5 * H, n)
    c.add(
        t,
        "192.0.2.10",
        "u_heavy",
        200,
        rng.integers(2_000, 200_000, n),
        _pages(rng, n),
        _results(rng, n, 0.2),
    )
    n = 40 * 5  # ... and 8 GB/h of video: a player fetching a 200 MB range every 90 s (+- 10 s)
    t = DAY0 + 8 * H + np.arange(n) * 90.0 + rng.uniform(-10, 10, n)
    c.add(t, "192.0.2.10", "u_heavy", 206, 200e6, "/video/film.mp4", "Hit", 0.0)
    for u in range(200):  # ordinary background users all day
        n = int(rng.poisson(60))
        t = _uniform(rng, DAY0, 24 * H, n)
        c.add(
            t, f"10.0.{u // 250}.{u % 250}", f"user_{u}", 200, 20_000, _pages(rng, n), _results(rng, n, 0.1)
        )

    # -- abusers -------------------------------------------------------------------------------
    t = _uniform(rng, busy + 600, 120, 18_000)
    c.add(t, "203.0.113.66", None, 200, 1_000, "/", "Hit")
    t = _uniform(rng, busy + 1200, 1800, 60)
    c.add(t, "192.0.2.20", "u_hog", 206, 200e6, "/downloads/big.iso", "Hit", 0.0)
    t = DAY0 + 14 * H / 14 * np.arange(14 * 20) / 20 + 3 * H  # 20 x 200 MB an hour, 03:00-17:00
    c.add(t, "192.0.2.30", "u_daily", 206, 200e6, "/downloads/big.iso", "Hit", 0.0)
    t = _uniform(rng, busy + 1800, 180, 600)
    c.add(
        t,
        "203.0.113.99",
        None,
        rng.choice([404, 404, 404, 403, 200], 600),
        300,
        [f"/{w}/{i}.php" for i, w in enumerate(rng.choice(["wp-admin", "cgi-bin", "admin"], 600))],
        "Miss",
    )
    t = _uniform(rng, busy + 2400, 300, 300)
    c.add(t, "203.0.113.120", None, np.where(rng.random(300) < 0.95, 401, 200), 400, "/api/login", "Miss")
    t = busy + np.arange(0, H, 15.0)  # 4 a minute
    c.add(t, "203.0.113.121", None, 401, 400, "/login", "Miss")
    t = _uniform(rng, busy, H, 5_200)
    c.add(
        t,
        "192.0.2.40",
        "u_scraper",
        200,
        30_000,
        [f"/product/{i}" for i in range(5_200)],
        _results(rng, 5_200, 0.3),
    )
    t = _uniform(rng, busy + 3000, 600, 6_000)
    c.add(t, "203.0.113.140", None, 200, 5_000, [f"/search?q={i}" for i in range(6_000)], "Miss")
    for hour in range(8):  # surge user: a steady habit, then hour 9 explodes
        n = int(rng.integers(90, 111))
        c.add(
            _uniform(rng, DAY0 + hour * H, H, n), "192.0.2.50", "u_surge", 200, 10_000, _pages(rng, n), "Hit"
        )
    c.add(
        _uniform(rng, DAY0 + 9 * H, H, 3_000), "192.0.2.50", "u_surge", 200, 10_000, _pages(rng, 3_000), "Hit"
    )

    t = np.concatenate(c.t)
    order = np.argsort(t, kind="stable")
    ip = [x for part in c.ip for x in part]
    user = [x for part in c.user for x in part]
    uri = [x for part in c.uri for x in part]
    result = [x for part in c.result for x in part]
    status = np.concatenate(c.status)
    nbytes = np.concatenate(c.nbytes)
    range_start = np.concatenate(c.range_start)
    out = []
    for a in range(0, order.size, batch_size):
        idx = order[a : a + batch_size]
        il = idx.tolist()
        b = RecordBatch(time=t[idx])
        b.numbers["sc-status"] = status[idx]
        b.numbers["sc-bytes"] = nbytes[idx]
        b.numbers["cs-bytes"] = np.full(idx.size, 400.0)
        b.numbers["time-taken"] = np.full(idx.size, 0.05)
        b.numbers["sc-range-start"] = range_start[idx]
        b.texts["cs-uri-stem"] = [uri[i] for i in il]
        b.texts["cs-user-agent"] = ["Mozilla/5.0"] * idx.size
        b.texts["x-edge-result-type"] = [result[i] for i in il]
        b.keys["ip"] = [ip[i] for i in il]
        b.keys["user"] = [user[i] for i in il]
        out.append(b)
    return out
