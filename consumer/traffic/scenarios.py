"""Abuse scenarios: each one a kind of abuse a file-sharing service behind CloudFront faces."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from consumer.traffic import behaviour as B
from consumer.traffic import content as C
from consumer.traffic.addresses import hosting_ipv4, region_addresses
from consumer.traffic.base import Scenario, poisson_times, steady
from consumer.traffic.events import Actors
from consumer.traffic.kinds import K, R
from consumer.traffic.population import make_uids
from consumer.traffic.vocab import CLIENTS, HOSTING_ASNS, REGIONS, TOOLS

LARGE_FILES = np.flatnonzero(C.FILE_SIZE > 300 * 2**20)


def _home(rng: np.random.Generator, actors: Actors, client, uid: str | None, *, v6: bool = False):
    """An actor on a residential connection in a random region, and its address."""
    reg = REGIONS[int(rng.integers(0, len(REGIONS)))]
    ip = region_addresses(rng, reg, 1, np.asarray([v6]))[0][0]
    actor = actors.add(
        uid, client, reg.edges[0], reg.country, reg.asns[0], extra_cookies="lang=en" if uid else ""
    )
    return actor, ip


def _hosted(rng: np.random.Generator, actors: Actors, client, uid: str | None = None, api_key=None):
    """An actor in a data centre (bots and scripts), and its address."""
    reg = REGIONS[int(rng.integers(0, len(REGIONS)))]
    ip = hosting_ipv4(rng, 1)[0]
    asn = HOSTING_ASNS[int(rng.integers(0, len(HOSTING_ASNS)))]
    actor = actors.add(uid, client, reg.edges[-1], reg.country, asn, api_key=api_key)
    return actor, ip


@dataclass
class BandwidthHog(Scenario):
    """One account pulling large files in parallel byte ranges, far beyond any ordinary user."""

    name = "bandwidth_hog"
    summary = "one uid pulls GBs through parallel ranged downloads (aria2-style)"
    duration_s: float | None = 3600.0
    bytes_per_s: float = 30e6
    chunk_bytes: int = 16 * 2**20
    connections: int = 8

    def prepare(self, rng, actors, ctx):
        self.uid = make_uids(rng, 1)[0]
        self.actor, self.ip = _home(rng, actors, TOOLS["aria2"], self.uid)
        self.add_key("user", self.uid)
        self.add_key("ip", self.ip)

    def emit(self, rng, t0, t1):
        t = poisson_times(rng, t0, t1, self.bytes_per_s / self.chunk_bytes)
        m = len(t)
        fid = LARGE_FILES[rng.integers(0, len(LARGE_FILES), m)]
        size = C.FILE_SIZE[fid]
        n_chunks = -(-size // self.chunk_bytes)
        rs = (rng.random(m) * n_chunks).astype(np.int64) * self.chunk_bytes
        re_ = np.minimum(rs + self.chunk_bytes, size) - 1
        res = np.where(fid < 2_000, R.HIT, np.where(rng.random(m) < 0.6, R.HIT, R.MISS)).astype(np.int64)
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
            origin_ms=80,
            bw=self.bytes_per_s / self.connections,
            content_len=re_ - rs + 1,
            range_start=rs,
            range_end=re_,
        )


@dataclass
class RequestFlood(Scenario):
    """One address hammering cheap, cached URLs (a layer-7 flood or a runaway script)."""

    name = "request_flood"
    summary = "one IP sends tens of requests per second to a few URLs"
    duration_s: float | None = 300.0
    rate: float = 40.0

    def prepare(self, rng, actors, ctx):
        self.actor, self.ip = _hosted(rng, actors, TOOLS["go"])
        self.add_key("ip", self.ip)

    def emit(self, rng, t0, t1):
        t = poisson_times(rng, t0, t1, self.rate)
        m = len(t)
        targets = ("/", "/files", "/api/v1/files", f"/s/{C.share_token(0)}")
        pick = rng.integers(0, len(targets), m)
        kind = np.where(pick == 2, K.API_READ, K.PAGE)
        res = np.where(pick == 2, R.MISS, R.HIT).astype(np.int64)
        status = np.where(rng.random(m) < 0.01, 503, 200)
        res = np.where(status == 503, R.ORIGIN_ERROR, res).astype(np.int64)
        body = np.where(pick == 2, 2_400, 18_000)
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            kind,
            [targets[p] for p in pick.tolist()],
            status=status,
            body=body,
            result=res,
        )


_SCAN_DIRS = (
    "",
    "/admin",
    "/wp",
    "/wordpress",
    "/old",
    "/backup",
    "/api",
    "/app",
    "/static",
    "/test",
    "/dev",
    "/.well-known",
    "/cgi-bin",
    "/vendor",
    "/public",
    "/site",
    "/new",
    "/v1",
)
_SCAN_FILES = (
    "/.env",
    "/.git/config",
    "/.git/HEAD",
    "/wp-login.php",
    "/wp-admin/",
    "/xmlrpc.php",
    "/phpinfo.php",
    "/config.json",
    "/config.php.bak",
    "/.aws/credentials",
    "/server-status",
    "/actuator/env",
    "/phpmyadmin/index.php",
    "/backup.zip",
    "/db.sql",
    "/.DS_Store",
    "/admin.php",
    "/login.action",
    "/.htpasswd",
    "/web.config",
    "/id_rsa",
    "/debug/pprof/",
    "/console",
    "/.svn/entries",
    "/composer.lock",
    "/docker-compose.yml",
    "/setup.php",
)


@dataclass
class Scanner(Scenario):
    """A vulnerability scanner walking a wordlist: many distinct paths, nearly all 404/403."""

    name = "scanner"
    summary = "one IP probes hundreds of distinct sensitive paths (/.env, /wp-admin...), ~95% 404/403"
    duration_s: float | None = 600.0
    rate: float = 8.0

    def prepare(self, rng, actors, ctx):
        self.actor, self.ip = _hosted(rng, actors, TOOLS["scanner"])
        self.add_key("ip", self.ip)
        self._n = 0

    def emit(self, rng, t0, t1):
        t = steady(rng, t0, t1, self.rate, jitter=0.8)
        m = len(t)
        k = self._n + np.arange(m)
        self._n += m
        nd, nf = len(_SCAN_DIRS), len(_SCAN_FILES)
        uri = [_SCAN_DIRS[(i // nf) % nd] + _SCAN_FILES[i % nf] for i in k.tolist()]
        u = rng.random(m)
        status = np.where(u < 0.86, 404, np.where(u < 0.96, 403, np.where(u < 0.98, 301, 200)))
        res = np.where(status >= 400, R.ERROR, R.MISS).astype(np.int64)
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            np.full(m, K.PROBE),
            uri,
            status=status,
            body=np.where(status == 200, 5_000, 1_800),
            result=res,
            origin_ms=35,
        )


@dataclass
class CredentialStuffing(Scenario):
    """Leaked passwords tried against the login API.

    ``mode=rotating_ips``: the tool keeps its cookie jar (``uids`` accounts) and rotates through a
    pool of ``ips`` residential proxies, each used a few times: caught by the user key.
    ``mode=one_ip``: one address, fresh cookies for every attempt: caught by the ip key.
    """

    name = "credential_stuffing"
    summary = "login attempts with ~95% 401: rotating proxy IPs with one uid, or one IP with fresh uids"
    duration_s: float | None = 1200.0
    rate: float = 4.0
    mode: str = "rotating_ips"
    ips: int = 2000
    uids: int = 1
    success: float = 0.02

    def prepare(self, rng, actors, ctx):
        if self.mode not in ("rotating_ips", "one_ip"):
            raise ValueError(f"credential_stuffing: mode must be rotating_ips or one_ip, got {self.mode!r}")
        self._actors = actors
        client = TOOLS["python"]
        if self.mode == "rotating_ips":
            self.uid_list = make_uids(rng, self.uids)
            self.actor_ids = np.asarray([_home(rng, actors, client, u)[0] for u in self.uid_list])
            reg = [REGIONS[i] for i in rng.integers(0, len(REGIONS), self.ips).tolist()]
            self.pool = [region_addresses(rng, r, 1, np.asarray([False]))[0][0] for r in reg]
            for u in self.uid_list:
                self.add_key("user", u)
            for ip in self.pool:
                self.add_accomplice("ip", ip)
        else:
            self.actor_ids = np.empty(0, np.int64)
            self.actor, self.ip = _hosted(rng, actors, client)
            self.add_key("ip", self.ip)

    def emit(self, rng, t0, t1):
        t = poisson_times(rng, t0, t1, self.rate)
        m = len(t)
        if self.mode == "rotating_ips":
            actor = self.actor_ids[rng.integers(0, len(self.actor_ids), m)]
            ip = [self.pool[i] for i in rng.integers(0, len(self.pool), m).tolist()]
        else:
            uids = make_uids(rng, m)
            actor = np.asarray(
                [
                    self._actors.add(u, TOOLS["python"], "IAD89-C1", "US", 14061, extra_cookies="lang=en")
                    for u in uids
                ],
                dtype=np.int64,
            )
            for u in uids:
                self.add_accomplice("user", u)
            ip = [self.ip] * m
        u = rng.random(m)
        status = np.where(
            u < self.success,
            200,
            np.where(u < self.success + 0.02, 403, np.where(u < self.success + 0.03, 429, 401)),
        )
        res = np.where(status == 200, R.MISS, np.where(status == 429, R.LIMIT, R.ERROR)).astype(np.int64)
        return B.auth(rng, t, actor, ip, status, res)


@dataclass
class Scraper(Scenario):
    """A script copying the catalogue: a new share page or file record at a steady pace."""

    name = "scraper"
    summary = "one IP (with a uid) fetches a distinct share page or file record every ~0.3 s"
    duration_s: float | None = 3600.0
    rate: float = 3.0
    with_uid: bool = True

    def prepare(self, rng, actors, ctx):
        uid = make_uids(rng, 1)[0] if self.with_uid else None
        self.actor, self.ip = _hosted(rng, actors, TOOLS["python"], uid)
        self.add_key("ip", self.ip)
        if uid:
            self.add_key("user", uid)
        self._next = int(rng.integers(5_000, 50_000))

    def emit(self, rng, t0, t1):
        t = steady(rng, t0, t1, self.rate, jitter=0.2)
        m = len(t)
        fid = (self._next + np.arange(m)) % C.N_FILES
        self._next += m
        api = rng.random(m) < 0.3
        uri = [
            f"/api/v1/files/{C.share_token(f)}" if a else C.share_page(f)
            for f, a in zip(fid.tolist(), api.tolist(), strict=True)
        ]
        status = np.where(rng.random(m) < 0.08, 404, 200)
        res = np.where(status == 404, R.ERROR, R.MISS).astype(np.int64)
        body = np.where(status == 404, 1_800, np.where(api, 2_300, 17_500))
        return B.finish(
            rng,
            t,
            np.full(m, self.actor),
            [self.ip] * m,
            np.where(api, K.API_READ, K.PAGE),
            uri,
            status=status,
            body=body,
            result=res,
            origin_ms=150,
        )


@dataclass
class OriginExhaustion(Scenario):
    """Cache busting: random query strings make every request a Miss that the origin must serve."""

    name = "origin_exhaustion"
    summary = "a few IPs add random ?cb= query strings: every request misses the cache, origin slows"
    duration_s: float | None = 600.0
    rate: float = 15.0
    ips: int = 3

    def prepare(self, rng, actors, ctx):
        self.who = [_hosted(rng, actors, TOOLS["go"]) for _ in range(self.ips)]
        for _, ip in self.who:
            self.add_key("ip", ip)

    def emit(self, rng, t0, t1):
        t = poisson_times(rng, t0, t1, self.rate)
        m = len(t)
        w = rng.integers(0, len(self.who), m).tolist()
        fid = C.popular_files(rng, m)
        thumb = rng.random(m) < 0.6
        uri = [
            C.thumb_path(f) if th else C.share_page(f)
            for f, th in zip(fid.tolist(), thumb.tolist(), strict=True)
        ]
        cb = rng.integers(0, 2**40, m).tolist()
        query = [f"cb={c:010x}" for c in cb]
        status = np.where(rng.random(m) < 0.03, 504, 200)
        res = np.where(status == 504, R.ORIGIN_ERROR, R.MISS).astype(np.int64)
        return B.finish(
            rng,
            t,
            np.asarray([self.who[i][0] for i in w]),
            [self.who[i][1] for i in w],
            np.where(thumb, K.THUMB, K.PAGE),
            uri,
            query,
            status=status,
            body=np.where(thumb, 24_000, 17_500),
            result=res,
            origin_ms=900,
        )


@dataclass
class ApiFreeRider(Scenario):
    """The paid conversion API used without paying.

    ``mode=shared_key``: one customer's leaked ``x-api-key`` used from ``ips`` servers (label key
    type ``api_key``: configure ``{name: api_key, source: header, param: x-api-key}`` to catch it).
    ``mode=no_key``: a free account calling the paid path from one IP; most calls are refused (403).
    """

    name = "api_free_rider"
    summary = "paid /api/v1/pro/ path: a leaked key shared by many servers, or a free account probing it"
    duration_s: float | None = 3600.0
    rate: float = 6.0
    mode: str = "shared_key"
    ips: int = 25

    def prepare(self, rng, actors, ctx):
        if self.mode not in ("shared_key", "no_key"):
            raise ValueError(f"api_free_rider: mode must be shared_key or no_key, got {self.mode!r}")
        if self.mode == "shared_key":
            raw = rng.integers(0, 256, 18, dtype=np.uint8).tobytes()
            self.api_key = "ak_live_" + base64.urlsafe_b64encode(raw).decode("ascii")
            self.who = [_hosted(rng, actors, TOOLS["curl"], api_key=self.api_key) for _ in range(self.ips)]
            self.add_key("api_key", self.api_key)
            for _, ip in self.who:
                self.add_accomplice("ip", ip)
        else:
            uid = make_uids(rng, 1)[0]
            self.who = [_hosted(rng, actors, CLIENTS[8], uid)]
            self.add_key("ip", self.who[0][1])
            self.add_key("user", uid)

    def emit(self, rng, t0, t1):
        t = poisson_times(rng, t0, t1, self.rate)
        m = len(t)
        w = rng.integers(0, len(self.who), m).tolist()
        ops = ("convert", "ocr", "transcode", "thumbnail")
        uri = [f"/api/v1/pro/{ops[i]}" for i in rng.integers(0, len(ops), m).tolist()]
        if self.mode == "shared_key":
            status = np.where(rng.random(m) < 0.02, 429, 200)
        else:
            status = np.where(rng.random(m) < 0.75, 403, 200)
        res = np.where(status == 200, R.MISS, np.where(status == 429, R.LIMIT, R.ERROR)).astype(np.int64)
        return B.finish(
            rng,
            t,
            np.asarray([self.who[i][0] for i in w]),
            [self.who[i][1] for i in w],
            np.full(m, K.PRO_API),
            uri,
            status=status,
            body=np.where(status == 200, rng.integers(20_000, 400_000, m), 120),
            result=res,
            origin_ms=700,
            req_body=rng.integers(2_000, 60_000, m),
        )


ABUSE: tuple[type[Scenario], ...] = (
    BandwidthHog,
    RequestFlood,
    Scanner,
    CredentialStuffing,
    Scraper,
    OriginExhaustion,
    ApiFreeRider,
)
