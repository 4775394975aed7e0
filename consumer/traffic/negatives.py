"""Hard negatives: legitimate traffic that looks like abuse on one metric and must never be blocked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consumer.traffic import behaviour as B
from consumer.traffic import content as C
from consumer.traffic.base import Scenario, steady
from consumer.traffic.events import Requests
from consumer.traffic.kinds import K, R
from consumer.traffic.population import UserGroup, make_uids
from consumer.traffic.scenarios import LARGE_FILES, _home, _hosted
from consumer.traffic.vocab import CLIENTS, TOOLS


@dataclass
class HeavyDownloader(Scenario):
    """The heaviest honest user: a sync client downloading all day, just under a daily cap."""

    name = "heavy_downloader"
    abuse = False
    summary = "one uid downloads ~gb_per_day over active_hours, one range at a time (resembles the hog)"
    start_s: float = 0.0
    gb_per_day: float = 40.0
    active_hours: float = 16.0
    chunk_bytes: int = 8 * 2**20

    def prepare(self, rng, actors, ctx):
        self.uid = make_uids(rng, 1)[0]
        self.actor, self.ip = _home(rng, actors, CLIENTS[9], self.uid)
        self.add_key("user", self.uid)
        self.add_key("ip", self.ip)
        big = np.flatnonzero(C.FILE_SIZE >= 64 * self.chunk_bytes)
        self.files = big if len(big) else LARGE_FILES

    @property
    def bytes_per_s(self) -> float:
        return self.gb_per_day * 1e9 / (self.active_hours * 3600)

    def emit(self, rng, t0, t1):
        t = steady(rng, t0, t1, self.bytes_per_s / self.chunk_bytes, jitter=0.5)
        m = len(t)
        # Works through one large file after another, range by range.
        k = np.floor(t * self.bytes_per_s / self.chunk_bytes).astype(np.int64)
        fid = self.files[(k // 64) % len(self.files)]
        size = C.FILE_SIZE[fid]
        rs = np.minimum((k % 64) * self.chunk_bytes, (size - 1) // self.chunk_bytes * self.chunk_bytes)
        re_ = np.minimum(rs + self.chunk_bytes, size) - 1
        res = np.where(rng.random(m) < 0.5, R.HIT, R.MISS).astype(np.int64)
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            C.FILE_KIND[fid],
            [C.download_path(f) for f in fid.tolist()],
            status=206,
            body=re_ - rs + 1,
            result=res,
            bw=4e6,
            content_len=re_ - rs + 1,
            range_start=rs,
            range_end=re_,
        )


@dataclass
class NatOffice(Scenario):
    """An office, or with ``mobile=true`` a mobile carrier's NAT: hundreds of users on one IPv4 address."""

    name = "nat_office"
    abuse = False
    summary = "users ordinary users behind one IPv4 address (resembles a flood on the ip key)"
    start_s: float = 0.0
    users: int = 300
    mobile: bool = False

    def prepare(self, rng, actors, ctx):
        self.ip = _home(rng, actors, CLIENTS[0], None)[1]  # a business line (or CGNAT) of an ordinary ISP
        self.group = UserGroup(
            rng,
            actors,
            self.users,
            self.users * ctx.rate_per_user,
            shared_ip=self.ip,
            proxy_share=0.0,
            mobile_only=self.mobile,
        )
        self.add_key("ip", self.ip)

    def emit(self, rng, t0, t1):
        return self.group.requests(rng, t0, t1)


@dataclass
class Monitor(Scenario):
    """An uptime probe: GET /health every few seconds, forever (resembles a flood by its steadiness)."""

    name = "monitor"
    abuse = False
    summary = "one IP requests /health every interval_s seconds"
    start_s: float = 0.0
    interval_s: float = 2.0

    def prepare(self, rng, actors, ctx):
        self.actor, self.ip = _hosted(rng, actors, TOOLS["monitor"])
        self.add_key("ip", self.ip)

    def emit(self, rng, t0, t1):
        t = steady(rng, t0, t1, 1.0 / self.interval_s, jitter=0.02)
        m = len(t)
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            np.full(m, K.HEALTH),
            ["/health"] * m,
            status=200,
            body=np.full(m, 16),
            result=np.full(m, R.MISS),
            origin_ms=12,
        )


@dataclass
class PasswordRetry(Scenario):
    """Users who mistype their password a few times, then get it right (resembles credential stuffing)."""

    name = "password_retry"
    abuse = False
    summary = "users accounts each fail fails logins (401) a few seconds apart, then succeed, every every_s"
    start_s: float = 0.0
    users: int = 5
    fails: int = 3
    every_s: float = 3600.0

    def prepare(self, rng, actors, ctx):
        self.uid_list = make_uids(rng, self.users)
        clients = [CLIENTS[i] for i in rng.integers(0, 7, self.users).tolist()]  # browsers
        self.who = [_home(rng, actors, c, u) for c, u in zip(clients, self.uid_list, strict=True)]
        # First attempts within two minutes of the start (so short runs show them), then every every_s.
        self.offset = rng.uniform(0, min(self.every_s * 0.5, 120.0), self.users)
        for u in self.uid_list:
            self.add_key("user", u)

    def emit(self, rng, t0, t1):
        starts, who = [], []
        for j in range(self.users):
            base = self.t_start + self.offset[j]
            k = max(0, int(np.ceil((t0 - base) / self.every_s)))
            while base + k * self.every_s < t1:
                starts.append(base + k * self.every_s)
                who.append(j)
                k += 1
        if not starts:
            return Requests.empty()
        n = len(starts)
        return B.login(
            rng,
            np.asarray(starts),
            np.asarray([self.who[j][0] for j in who]),
            [self.who[j][1] for j in who],
            np.full(n, self.fails),
            np.ones(n, bool),
        )


@dataclass
class CdnPrefetcher(Scenario):
    """A partner's edge warmer re-fetching the most popular objects (resembles a scraper's pace)."""

    name = "cdn_prefetcher"
    abuse = False
    summary = "one data-centre IP fetches the top `urls` popular objects round-robin at `rate`/s"
    start_s: float = 0.0
    rate: float = 1.0
    urls: int = 40

    def prepare(self, rng, actors, ctx):
        self.actor, self.ip = _hosted(rng, actors, TOOLS["prefetch"])
        self.add_key("ip", self.ip)
        half = self.urls // 2
        self.targets = [C.thumb_path(f) for f in range(half)]
        self.targets += [C.share_page(f) for f in range(self.urls - half)]

    def emit(self, rng, t0, t1):
        t = steady(rng, t0, t1, self.rate, jitter=0.1)
        m = len(t)
        k = np.round(t * self.rate).astype(np.int64) % len(self.targets)
        thumb = k < self.urls // 2
        res = np.where(rng.random(m) < 0.95, R.HIT, R.REFRESH_HIT).astype(np.int64)
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            np.where(thumb, K.THUMB, K.PAGE),
            [self.targets[i] for i in k.tolist()],
            status=200,
            body=np.where(thumb, 24_000, 17_500),
            result=res,
        )


@dataclass
class SearchCrawler(Scenario):
    """A search engine indexing public share pages: many distinct URIs from one IP, slowly.

    Resembles a scraper on the ip key (no cookie, a new page each time), at a crawl-delay pace.
    """

    name = "search_crawler"
    abuse = False
    summary = "Googlebot from 66.249.x fetches a distinct share page every 1/rate s, no cookie"
    start_s: float = 0.0
    rate: float = 0.5

    def prepare(self, rng, actors, ctx):
        self.ip = f"66.249.{int(rng.integers(64, 80))}.{int(rng.integers(1, 255))}"
        self.actor = actors.add(None, TOOLS["googlebot"], "IAD89-C1", "US", 15169)
        self.add_key("ip", self.ip)
        self._next = int(rng.integers(0, C.N_FILES))

    def emit(self, rng, t0, t1):
        t = steady(rng, t0, t1, self.rate, jitter=0.9)
        m = len(t)
        fid = (self._next + 7919 * np.arange(m)) % C.N_FILES  # a crawl order, not an enumeration
        self._next = int((self._next + 7919 * m) % C.N_FILES)
        status = np.where(rng.random(m) < 0.03, 404, 200)
        res = np.where(status == 404, R.ERROR, np.where(rng.random(m) < 0.3, R.HIT, R.MISS)).astype(np.int64)
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            np.full(m, K.PAGE),
            [C.share_page(int(f)) for f in fid.tolist()],
            status=status,
            body=np.where(status == 404, 1_800, 17_500),
            result=res,
            origin_ms=150,
        )


NEGATIVES: tuple[type[Scenario], ...] = (
    HeavyDownloader,
    NatOffice,
    Monitor,
    PasswordRetry,
    CdnPrefetcher,
    SearchCrawler,
)
