"""Ordinary users: heavy-tailed activity, a diurnal rate, browsers and apps, IPv4 and IPv6.

A ``UserGroup`` is a set of users that behave normally; the population is one big group, and the
office NAT hard negative is another whose users all share one address.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from consumer.traffic import behaviour as B
from consumer.traffic import content as C
from consumer.traffic.addresses import hosting_ipv4, ipv6, region_addresses
from consumer.traffic.events import Actors, Requests
from consumer.traffic.vocab import CLIENT_WEIGHTS, CLIENTS, REGIONS

#: Mean requests one user action makes (page view, sync, download...), measured on the mix below;
#: converts the requested records/s into actions/s.
REQUESTS_PER_ACTION = 5.7
_MOBILE = {"chrome-android", "safari-iphone", "app-ios", "app-android"}
# Action mix (browse-or-sync, download, login, upload, misc) for browsers and for apps.
_MIX_BROWSER = np.cumsum([0.80, 0.07, 0.03, 0.02, 0.08])
_MIX_APP = np.cumsum([0.78, 0.12, 0.01, 0.05, 0.04])


def diurnal(t: float) -> float:
    """Relative traffic level at epoch time ``t``: evening peak at 20:00 UTC, trough at 08:00."""
    hour = (t % 86_400) / 3_600
    return 1.0 + 0.35 * math.cos(2 * math.pi * (hour - 20) / 24)


def make_uids(rng: np.random.Generator, n: int) -> list[str]:
    raw = base64.urlsafe_b64encode(rng.integers(0, 256, n * 12, dtype=np.uint8).tobytes()).decode("ascii")
    return [raw[i * 16 : (i + 1) * 16] for i in range(n)]


class UserGroup:
    """``n`` users with Pareto-distributed activity producing ``rate`` records/s on average."""

    def __init__(
        self,
        rng: np.random.Generator,
        actors: Actors,
        n: int,
        rate: float,
        *,
        shared_ip: str | None = None,
        shared_region: int | None = None,
        mobile_only: bool = False,
        proxy_share: float = 0.02,
    ) -> None:
        self.n, self.rate = n, rate
        region = rng.choice(len(REGIONS), n, p=_norm([r.weight for r in REGIONS]))
        if shared_region is not None:
            region[:] = shared_region
        weights = np.asarray(CLIENT_WEIGHTS)
        if mobile_only:
            weights = weights * np.asarray([c.name in _MOBILE for c in CLIENTS])
        client = rng.choice(len(CLIENTS), n, p=weights / weights.sum())
        self.browser = np.asarray([CLIENTS[c].browser for c in client.tolist()])
        self.ranged = np.asarray([CLIENTS[c].ranged for c in client.tolist()])
        # Heavy-tailed activity (Lomax, shape 1.6): the busiest users do ~20x the mean, ~60x the median;
        # capped so that no ordinary human sustains a script's pace.
        w = np.minimum(rng.pareto(1.6, n) + 0.05, 40.0)
        self.cdf = np.cumsum(w) / w.sum()
        self.bw = rng.lognormal(np.log(4e6), 0.9, n)
        uids: list[str | None] = list(make_uids(rng, n))
        for m in np.flatnonzero(rng.random(n) < 0.03).tolist():  # first visit, or cookies blocked
            uids[m] = None
        self.ip_a: list[str] = [""] * n
        self.ip_b: list[str | None] = [None] * n
        xff: list[str | None] = [None] * n
        v6_all = rng.random(n)
        for r_idx in np.unique(region).tolist():
            members = np.flatnonzero(region == r_idx)
            reg = REGIONS[r_idx]
            v6 = v6_all[members] < reg.v6_share
            a, upper = region_addresses(rng, reg, len(members), v6)
            b, _ = region_addresses(rng, reg, len(members), v6)
            for j, m in enumerate(members.tolist()):
                self.ip_a[m] = a[j]
                if upper[j]:  # privacy addresses: a second interface id in the same /64
                    self.ip_b[m] = ipv6(upper[j], int(rng.integers(1, 2**63)))
                elif CLIENTS[client[m]].name in _MOBILE and rng.random() < 0.3:
                    self.ip_b[m] = b[j]  # Wi-Fi at home, cellular outside
        if shared_ip is not None:
            self.ip_a = [shared_ip] * n
            self.ip_b = [None] * n
        elif proxy_share > 0:
            proxies = hosting_ipv4(rng, 12)
            behind = np.flatnonzero(rng.random(n) < proxy_share)
            for m in behind.tolist():
                xff[m] = self.ip_a[m]
                self.ip_a[m] = proxies[m % len(proxies)]
                self.ip_b[m] = None
        first = len(actors)
        for m in range(n):
            reg = REGIONS[region[m]]
            c = CLIENTS[client[m]]
            edge = reg.edges[(m * 7919) % len(reg.edges)]
            lang = (c.lang or "en").split(",")[0].split("-")[0].split(";")[0]
            actors.add(
                uids[m],
                c,
                edge,
                reg.country,
                reg.asns[m % len(reg.asns)],
                xff=xff[m],
                extra_cookies=f"lang={lang}" if uids[m] else "",
            )
        self.actor_ids = np.arange(first, first + n)
        self.uids = uids

    def requests(self, rng: np.random.Generator, t0: float, t1: float) -> Requests:
        """The requests of the actions that start in ``[t0, t1)``."""
        dt = t1 - t0
        lam = self.rate * dt * diurnal(0.5 * (t0 + t1)) / REQUESTS_PER_ACTION
        k = int(rng.poisson(lam))
        if k == 0:
            return Requests.empty()
        user = np.minimum(np.searchsorted(self.cdf, rng.random(k)), self.n - 1)
        start = t0 + rng.random(k) * dt
        second = rng.random(k) < 0.3
        ip = [
            (self.ip_b[u] or self.ip_a[u]) if s else self.ip_a[u]
            for u, s in zip(user.tolist(), second.tolist(), strict=True)
        ]
        actor = self.actor_ids[user]
        browser = self.browser[user]
        u = rng.random(k)
        which = np.where(browser, np.searchsorted(_MIX_BROWSER, u), np.searchsorted(_MIX_APP, u))
        parts = []
        for code, fn in enumerate((None, "download", "login", "upload", "misc")):
            sel = np.flatnonzero(which == code)
            if len(sel) == 0:
                continue
            s, a, i = start[sel], actor[sel], [ip[j] for j in sel.tolist()]
            if fn is None:
                b = browser[sel]
                parts.append(B.browse(rng, s[b], a[b], [x for x, y in zip(i, b.tolist(), strict=True) if y]))
                nb = ~b
                ib = [x for x, y in zip(i, nb.tolist(), strict=True) if y]
                parts.append(B.app_sync(rng, s[nb], a[nb], ib))
            elif fn == "download":
                us = user[sel]
                parts.append(
                    B.downloads(rng, s, a, i, C.popular_files(rng, len(sel)), self.ranged[us], bw=self.bw[us])
                )
            elif fn == "login":
                fails = (rng.random(len(sel)) < 0.06).astype(np.int64)
                parts.append(B.login(rng, s, a, i, fails, browser[sel]))
            elif fn == "upload":
                parts.append(B.uploads(rng, s, a, i))
            else:
                parts.append(B.misc(rng, s, a, i))
        return Requests.concat(parts)


def _norm(w: tuple[float, ...] | list[float]) -> np.ndarray:
    a = np.asarray(w, dtype=np.float64)
    return a / a.sum()
