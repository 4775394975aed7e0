"""What clients do, vectorised: page views, app syncs, downloads (ranged or not), logins, uploads.

Each function takes the start times of n actions with who performs them (actor id and c-ip) and
returns the requests those actions make, with status, sizes, cache result and timings filled in.
The normal population, the hard negatives and the abuse scenarios all build on these.
"""

from __future__ import annotations

import numpy as np

from consumer.traffic import content as C
from consumer.traffic.events import Requests
from consumer.traffic.kinds import K, R

_HEADER_BYTES = 320  # response status line + headers CloudFront counts in sc-bytes


def finish(
    rng: np.random.Generator,
    start: np.ndarray,
    actor: np.ndarray,
    ip: list[str],
    kind: np.ndarray,
    uri: list[str],
    query: list[str | None] | None = None,
    *,
    status: np.ndarray | int = 200,
    body: np.ndarray,
    result: np.ndarray,
    origin_ms: float = 60.0,
    bw: np.ndarray | float | None = None,
    content_len: np.ndarray | None = None,
    range_start: np.ndarray | int = -1,
    range_end: np.ndarray | int = -1,
    req_body: np.ndarray | int = 0,
) -> Requests:
    """Timings and byte counts for requests starting at ``start``; ``t`` is when each finishes."""
    n = len(start)
    hit = (result == R.HIT) | (result == R.LIMIT)
    ttfb = np.where(
        hit,
        rng.lognormal(np.log(0.002), 0.6, n),
        rng.lognormal(np.log(origin_ms / 1000.0), 0.5, n),
    )
    ttfb = np.clip(ttfb, 0.001, 30.0)
    if bw is None:
        bw = rng.lognormal(np.log(3e6), 0.8, n)
    body = np.asarray(body, dtype=np.int64)
    taken = ttfb + body / bw
    sc = body + _HEADER_BYTES + rng.integers(0, 120, n)
    if content_len is None:
        content_len = np.where(body > 64 * 1024, body, -1)
    return Requests.build(
        start + taken,
        actor,
        ip,
        kind,
        uri,
        query if query is not None else [None] * n,
        status=status,
        sc_bytes=sc,
        content_len=content_len,
        range_start=range_start,
        range_end=range_end,
        result=result,
        ttfb=ttfb,
        taken=taken,
        body=req_body,
    )


def _cache(rng: np.random.Generator, n: int, hit_p: float) -> np.ndarray:
    u = rng.random(n)
    return np.where(u < hit_p, R.HIT, np.where(u < hit_p + 0.02, R.REFRESH_HIT, R.MISS)).astype(np.int64)


def _errors(rng: np.random.Generator, result: np.ndarray, table: tuple[tuple[int, float], ...]) -> np.ndarray:
    """Status codes: 200 unless one of ``table``'s (status, probability) draws; sets ``result``."""
    n = len(result)
    status = np.full(n, 200, np.int64)
    u = rng.random(n)
    edge = 0.0
    for code, p in table:
        sel = (u >= edge) & (u < edge + p)
        status[sel] = code
        result[sel] = R.ORIGIN_ERROR if code >= 500 else (R.LIMIT if code == 429 else R.ERROR)
        edge += p
    return status


_API_ERRORS = (
    (404, 0.012),
    (401, 0.004),
    (403, 0.002),
    (429, 0.001),
    (500, 0.001),
    (502, 0.0005),
    (503, 0.0005),
)
_PAGE_ERRORS = ((404, 0.006), (302, 0.004), (500, 0.0005))


def _expand(
    start: np.ndarray,
    actor: np.ndarray,
    ip: list[str],
    counts: np.ndarray,
    spread: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    idx = np.repeat(np.arange(len(start)), counts)
    t = start[idx] + rng.uniform(0.05, spread, len(idx))
    return t, actor[idx], [ip[i] for i in idx.tolist()]


def browse(rng: np.random.Generator, start: np.ndarray, actor: np.ndarray, ip: list[str]) -> Requests:
    """Browser page views: the page, its assets (cold cache or revalidations), thumbnails, API calls."""
    n = len(start)
    if n == 0:
        return Requests.empty()
    parts: list[Requests] = []
    # The page itself: an app page or a file's share page.
    share = rng.random(n) < 0.45
    fid = C.popular_files(rng, n)
    page_idx = rng.integers(0, len(C.PAGES), n)
    uri = [
        C.share_page(f) if s else C.PAGES[p]
        for s, f, p in zip(share.tolist(), fid.tolist(), page_idx.tolist(), strict=True)
    ]
    res = np.where(rng.random(n) < 0.15, R.HIT, R.MISS).astype(np.int64)
    status = _errors(rng, res, _PAGE_ERRORS)
    body = rng.lognormal(np.log(18_000), 0.5, n).astype(np.int64)
    body = np.where(status == 302, 0, body)
    parts.append(
        finish(
            rng,
            start,
            actor,
            ip,
            np.full(n, K.PAGE),
            uri,
            status=status,
            body=body,
            result=res,
            origin_ms=140,
        )
    )
    # Static assets: all of them on a cold cache, else a revalidation or two (304).
    cold = rng.random(n) < 0.25
    counts = np.where(cold, len(C.STATIC_JS) + len(C.STATIC_CSS) + 1, rng.binomial(2, 0.3, n))
    t, a, i = _expand(start, actor, ip, counts, 0.8, rng)
    m = len(t)
    if m:
        assets = C.STATIC_JS + C.STATIC_CSS + C.FONTS[:1]
        pick = rng.integers(0, len(assets), m)
        kind = np.where(pick < len(C.STATIC_JS), K.JS, np.where(pick < len(assets) - 1, K.CSS, K.FONT))
        revalidate = np.repeat(~cold, counts)
        res = _cache(rng, m, 0.93)
        size = rng.lognormal(np.log(60_000), 0.9, m).astype(np.int64)
        parts.append(
            finish(
                rng,
                t,
                a,
                i,
                kind,
                [assets[p] for p in pick.tolist()],
                status=np.where(revalidate, 304, 200),
                body=np.where(revalidate, 0, size),
                result=res,
                origin_ms=25,
            )
        )
    # Thumbnails of the files listed, and the API calls the page makes.
    parts.append(thumbs(rng, *_expand(start, actor, ip, rng.poisson(3.0, n), 1.5, rng)))
    parts.append(api_reads(rng, *_expand(start, actor, ip, rng.poisson(1.0, n), 1.0, rng)))
    return Requests.concat(parts)


def thumbs(
    rng: np.random.Generator, t: np.ndarray, actor: np.ndarray, ip: list[str], hit_p: float = 0.85
) -> Requests:
    m = len(t)
    fid = C.popular_files(rng, m)
    res = _cache(rng, m, hit_p)
    status = _errors(rng, res, ((404, 0.003),))
    body = np.where(status == 200, rng.lognormal(np.log(24_000), 0.6, m).astype(np.int64), 180)
    return finish(
        rng,
        t,
        actor,
        ip,
        np.full(m, K.THUMB),
        [C.thumb_path(f) for f in fid.tolist()],
        status=status,
        body=body,
        result=res,
        origin_ms=45,
    )


def api_reads(rng: np.random.Generator, t: np.ndarray, actor: np.ndarray, ip: list[str]) -> Requests:
    m = len(t)
    pick = rng.integers(0, len(C.API_READ) + 1, m)
    fid = C.popular_files(rng, m)
    uri = [
        f"/api/v1/files/{C.share_token(f)}" if p == len(C.API_READ) else C.API_READ[p]
        for p, f in zip(pick.tolist(), fid.tolist(), strict=True)
    ]
    paged = (pick == 1) & (rng.random(m) < 0.5)
    pages = rng.integers(2, 9, m).tolist()
    query = [f"page={pg}&per_page=50" if pg_ else None for pg_, pg in zip(paged.tolist(), pages, strict=True)]
    res = np.full(m, R.MISS, np.int64)
    status = _errors(rng, res, _API_ERRORS)
    body = np.where(status == 200, rng.lognormal(np.log(2_500), 0.9, m).astype(np.int64), 90)
    return finish(
        rng,
        t,
        actor,
        ip,
        np.full(m, K.API_READ),
        uri,
        query,
        status=status,
        body=body,
        result=res,
        origin_ms=55,
    )


def app_sync(rng: np.random.Generator, start: np.ndarray, actor: np.ndarray, ip: list[str]) -> Requests:
    """App and sync-client refreshes: a few API calls and the thumbnails they list."""
    n = len(start)
    if n == 0:
        return Requests.empty()
    return Requests.concat(
        [
            api_reads(rng, *_expand(start, actor, ip, 1 + rng.poisson(1.2, n), 0.6, rng)),
            thumbs(rng, *_expand(start, actor, ip, rng.poisson(3.5, n), 2.0, rng)),
        ]
    )


def downloads(
    rng: np.random.Generator,
    start: np.ndarray,
    actor: np.ndarray,
    ip: list[str],
    file_id: np.ndarray,
    ranged: np.ndarray,
    *,
    chunk: int = 8 * 2**20,
    bw: np.ndarray | None = None,
    connections: int = 1,
    hit_p: float | None = None,
) -> Requests:
    """File downloads: one full GET, or for ranged clients consecutive byte ranges of ``chunk``.

    ``bw`` is each download's throughput in bytes/s; ``connections`` ranges are fetched in parallel.
    """
    n = len(start)
    if n == 0:
        return Requests.empty()
    size = C.FILE_SIZE[file_id]
    kind = C.FILE_KIND[file_id]
    if bw is None:
        bw = rng.lognormal(np.log(4e6), 0.9, n)
    parts_n = np.where(ranged & (size > chunk), -(-size // chunk), 1)
    idx = np.repeat(np.arange(n), parts_n)
    first = np.cumsum(parts_n) - parts_n
    part = np.arange(len(idx)) - first[idx]
    is_range = (parts_n > 1)[idx]
    rs = np.where(is_range, part * chunk, -1)
    re_ = np.where(is_range, np.minimum(rs + chunk, size[idx]) - 1, -1)
    body = np.where(is_range, re_ - rs + 1, size[idx])
    bwi = np.asarray(bw, dtype=np.float64)[idx]
    # Parallel connections share the bandwidth; ranges start one after another on each connection.
    per_conn = bwi / connections
    slot = part // connections
    t = start[idx] + slot * (chunk / per_conn) + rng.uniform(0, 0.05, len(idx))
    m = len(idx)
    fid = file_id[idx]
    popular = fid < 2_000
    res = _cache(rng, m, 0.0) if hit_p is None else _cache(rng, m, hit_p)
    if hit_p is None:
        res = np.where(popular & (rng.random(m) < 0.9), R.HIT, res).astype(np.int64)
    status = np.where(is_range, 206, 200)
    err = rng.random(m)
    status = np.where(err < 0.004, 404, np.where(err < 0.006, 403, status))
    res = np.where(status >= 400, R.ERROR, res).astype(np.int64)
    body = np.where(status >= 400, 210, body)
    # Browsers sometimes abandon a download: CloudFront logs the bytes it sent.
    abort = (~is_range) & (status == 200) & (rng.random(m) < 0.015)
    clen = np.where(status >= 400, -1, body)
    body = np.where(abort, (body * rng.random(m)).astype(np.int64), body)
    res = np.where(abort, R.CLIENT_ABORT, res).astype(np.int64)
    uri = [C.download_path(f) for f in fid.tolist()]
    return finish(
        rng,
        t,
        actor[idx],
        [ip[i] for i in idx.tolist()],
        kind[idx],
        uri,
        status=status,
        body=body,
        result=res,
        origin_ms=80,
        bw=per_conn,
        content_len=clen,
        range_start=np.where(status >= 400, -1, rs),
        range_end=np.where(status >= 400, -1, re_),
    )


def login(
    rng: np.random.Generator,
    start: np.ndarray,
    actor: np.ndarray,
    ip: list[str],
    fails: np.ndarray,
    browser: np.ndarray,
    *,
    gap: float = 6.0,
) -> Requests:
    """A login: the form (browsers), ``fails`` wrong passwords (401) a few seconds apart, then success."""
    n = len(start)
    if n == 0:
        return Requests.empty()
    parts = []
    b = np.flatnonzero(browser)
    if len(b):
        parts.append(
            finish(
                rng,
                start[b],
                actor[b],
                [ip[i] for i in b.tolist()],
                np.full(len(b), K.PAGE),
                ["/login"] * len(b),
                status=200,
                body=rng.lognormal(np.log(9_000), 0.2, len(b)).astype(np.int64),
                result=np.full(len(b), R.MISS),
                origin_ms=90,
            )
        )
    tries = fails + 1
    idx = np.repeat(np.arange(n), tries)
    k = np.arange(len(idx)) - (np.cumsum(tries) - tries)[idx]
    t = start[idx] + 1.5 + k * rng.uniform(0.5 * gap, 1.5 * gap, len(idx))
    ok = k == fails[idx]
    status = np.where(ok, 200, 401)
    res = np.where(ok, R.MISS, R.ERROR).astype(np.int64)
    parts.append(auth(rng, t, actor[idx], [ip[i] for i in idx.tolist()], status, res))
    return Requests.concat(parts)


def auth(
    rng: np.random.Generator,
    t: np.ndarray,
    actor: np.ndarray,
    ip: list[str],
    status: np.ndarray,
    result: np.ndarray,
    path: str = "/api/auth/login",
) -> Requests:
    m = len(t)
    body = np.where(status == 200, rng.integers(380, 460, m), rng.integers(60, 90, m))
    return finish(
        rng,
        t,
        actor,
        ip,
        np.full(m, K.AUTH),
        [path] * m,
        status=status,
        body=body,
        result=result,
        origin_ms=180,
        req_body=rng.integers(60, 140, m),
    )


def uploads(rng: np.random.Generator, start: np.ndarray, actor: np.ndarray, ip: list[str]) -> Requests:
    """Multipart uploads: 5 MiB parts PUT one after another (request bytes, tiny responses)."""
    n = len(start)
    if n == 0:
        return Requests.empty()
    parts_n = 1 + rng.geometric(0.5, n)
    idx = np.repeat(np.arange(n), parts_n)
    k = np.arange(len(idx)) - (np.cumsum(parts_n) - parts_n)[idx]
    up_bw = rng.lognormal(np.log(1.5e6), 0.7, n)[idx]
    part_bytes = 5 * 2**20
    t = start[idx] + (k + 1) * part_bytes / up_bw
    m = len(idx)
    up = rng.integers(10**9, 10**10, n)[idx]
    uri = [f"/api/v1/uploads/{u:x}" for u in up.tolist()]
    query = [f"partNumber={p + 1}" for p in k.tolist()]
    res = np.full(m, R.MISS, np.int64)
    status = _errors(rng, res, ((500, 0.002), (503, 0.002)))
    return finish(
        rng,
        t,
        actor[idx],
        [ip[i] for i in idx.tolist()],
        np.full(m, K.UPLOAD),
        uri,
        query,
        status=status,
        body=np.full(m, 120),
        result=res,
        origin_ms=120,
        req_body=part_bytes,
    )


def misc(rng: np.random.Generator, start: np.ndarray, actor: np.ndarray, ip: list[str]) -> Requests:
    """Favicons and the odd mistyped or expired link (404)."""
    n = len(start)
    if n == 0:
        return Requests.empty()
    typo = rng.random(n) < 0.35
    bad = rng.integers(0, 2**32, n).tolist()
    uri = [f"/s/{b:08x}" if ty else "/favicon.ico" for ty, b in zip(typo.tolist(), bad, strict=True)]
    res = np.where(typo, R.ERROR, R.HIT).astype(np.int64)
    return finish(
        rng,
        start,
        actor,
        ip,
        np.where(typo, K.PAGE, K.FAVICON),
        uri,
        status=np.where(typo, 404, 200),
        body=np.where(typo, 1_800, 15_086),
        result=res,
    )
