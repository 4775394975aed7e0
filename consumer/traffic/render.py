"""Columnar requests -> CloudFront real-time log lines (45 fields, tab-separated, trailing newline).

Everything that only depends on (client, request kind) is rendered once per pair and cached; random
per-line values (request ids, ports, request-size jitter) are drawn for a whole batch with numpy.
The Python loop that remains only concatenates.
"""

from __future__ import annotations

import base64

import numpy as np

from consumer.traffic.events import Actors, Requests
from consumer.traffic.kinds import KINDS, RESULTS
from consumer.traffic.vocab import DIST_DNS, DIST_ID, Client, cf_encode

_NL = "%0A"


def _pair_parts(client: Client, kind_idx: int) -> tuple:
    """The constant parts of a line for one client fetching one kind of resource."""
    kind = KINDS[kind_idx]
    h2 = client.proto != "HTTP/1.1"
    accept = kind.accept if client.browser else ("application/json" if "json" in kind.accept else "*/*")
    referer = "https://www.filedrop.example/files" if (client.browser and kind.subresource) else None
    headers: list[tuple[str, str]] = [("host", kind.host)]
    if client.chrome_hints:
        headers += [
            ("sec-ch-ua", client.chrome_hints),
            ("sec-ch-ua-mobile", "?1" if "Mobile" in client.ua else "?0"),
            ("sec-ch-ua-platform", '"Android"' if "Android" in client.ua else '"Windows"'),
        ]
    headers += [("user-agent", client.ua), ("accept", accept)]
    if client.browser:
        headers += [
            ("sec-fetch-site", "same-site" if kind.host.startswith("api.") else "same-origin"),
            ("sec-fetch-mode", "navigate" if kind.fetch_dest == "document" else "cors"),
            ("sec-fetch-dest", kind.fetch_dest),
        ]
        if referer:
            headers.append(("referer", referer))
    if client.accept_encoding != "-":
        headers.append(("accept-encoding", client.accept_encoding))
    if client.lang:
        headers.append(("accept-language", client.lang))
    if kind.method in ("POST", "PUT"):
        headers.append(
            ("content-type", "application/json" if kind.method == "POST" else "application/octet-stream")
        )
    if not h2:
        headers.insert(1, ("connection", "keep-alive"))

    def name(n: str) -> str:
        return n if h2 else "-".join(p.capitalize() for p in n.split("-"))

    block = "".join(f"{name(n)}:{cf_encode(v)}{_NL}" for n, v in headers)
    names = "".join(f"{name(n)}{_NL}" for n, _ in headers)
    raw_len = sum(len(n) + len(v) + 4 for n, v in headers) + len(kind.method) + 20
    # HTTP/2 and HTTP/3 compress headers (HPACK/QPACK): repeated ones cost a few bytes each.
    base_cs = max(30, raw_len // 9) if h2 else raw_len
    return (
        kind.method,
        kind.host,
        client.proto,
        cf_encode(client.ua),
        cf_encode(referer) if referer else "-",
        client.tls,
        client.cipher,
        kind.content_type,
        cf_encode(client.accept_encoding),
        cf_encode(accept),
        kind.behavior,
        block,
        names,
        len(headers),
        name("cookie"),
        name("range"),
        name("x-api-key"),
        base_cs,
        h2,
    )


def request_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` 56-character ids shaped like CloudFront's x-edge-request-id (40 bytes, URL-safe base64)."""
    if n == 0:
        return []
    body = base64.urlsafe_b64encode(rng.integers(0, 256, n * 39, dtype=np.uint8).tobytes()).decode("ascii")
    tail_a = rng.integers(0, 64, n)
    tail_b = rng.integers(0, 4, n)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return [
        f"{body[i * 52 : (i + 1) * 52]}{alphabet[a]}{'AQgw'[b]}=="
        for i, a, b in zip(range(n), tail_a.tolist(), tail_b.tolist(), strict=True)
    ]


def _num(values: np.ndarray) -> list[str]:
    return ["-" if v < 0 else str(v) for v in values.tolist()]


def _sec(values: np.ndarray) -> list[str]:
    return ["-" if v != v else f"{v:.3f}" for v in values.tolist()]


class Renderer:
    """Renders batches for one actor table; caches the per-(client, kind) parts."""

    def __init__(self, actors: Actors) -> None:
        self.actors = actors
        self._pairs: dict[tuple[int, int], tuple] = {}
        self._client_arr = np.empty(0, np.int64)

    def _clients_of(self, actor: np.ndarray) -> np.ndarray:
        if len(self._client_arr) != len(self.actors):
            self._client_arr = np.asarray(self.actors.client, dtype=np.int64)
        return self._client_arr[actor]

    def render(self, req: Requests, rng: np.random.Generator) -> list[bytes]:
        n = len(req)
        if n == 0:
            return []
        a = self.actors
        clients = a.clients
        pairs = self._pairs
        cl = self._clients_of(req.actor).tolist()
        kinds = req.kind.tolist()
        pair_list = []
        for c, k in zip(cl, kinds, strict=True):
            p = pairs.get((c, k))
            if p is None:
                p = pairs[(c, k)] = _pair_parts(clients[c], k)
            pair_list.append(p)
        ids = request_ids(rng, n)
        ports = rng.integers(1024, 65536, n).tolist()
        jitter = rng.integers(0, 24, n).tolist()
        ts = [f"{v:.3f}" for v in req.t.tolist()]
        ttfb = [f"{v:.3f}" for v in req.ttfb.tolist()]
        taken = [f"{v:.3f}" for v in req.taken.tolist()]
        has_origin = req.result != 0
        fbl_a = np.maximum(req.ttfb - 0.001, 0.0005)
        fbl = _sec(np.where(has_origin, fbl_a, np.nan))
        lbl = _sec(np.where(has_origin, np.maximum(req.taken - 0.001, fbl_a), np.nan))
        clen = _num(req.content_len)
        rs_l = req.range_start.tolist()
        re_l = req.range_end.tolist()
        out: list[bytes] = []
        append = out.append
        cookies, edges, countries, asns, xffs, keys = a.cookie, a.edge, a.country, a.asn, a.xff, a.api_key
        for i, p, actor, ip, uri, query, status, scb, res, rs, re_, body in zip(
            range(n),
            pair_list,
            req.actor.tolist(),
            req.ip,
            req.uri,
            req.query,
            req.status.tolist(),
            req.sc_bytes.tolist(),
            req.result.tolist(),
            rs_l,
            re_l,
            req.body.tolist(),
            strict=True,
        ):
            (
                method,
                host,
                proto,
                ua,
                referer,
                tls,
                cipher,
                ctype,
                acc_enc,
                accept,
                behavior,
                hdrs,
                names,
                count,
                ck_name,
                rg_name,
                key_name,
                base_cs,
                h2,
            ) = p
            cookie = cookies[actor]
            key = keys[actor]
            if cookie != "-":
                hdrs = f"{hdrs}{ck_name}:{cookie}{_NL}"
                names = f"{names}{ck_name}{_NL}"
                count += 1
            if rs >= 0:
                hdrs = f"{hdrs}{rg_name}:bytes={rs}-{re_}{_NL}"
                names = f"{names}{rg_name}{_NL}"
                count += 1
            if key is not None:
                hdrs = f"{hdrs}{key_name}:{key}{_NL}"
                names = f"{names}{key_name}{_NL}"
                count += 1
            cs_bytes = base_cs + body + jitter[i] + (0 if h2 else len(cookie) + 8)
            stem = f"{uri}?{query}" if query else uri
            rtype, etype, dtype = RESULTS[res]
            xff = xffs[actor] or "-"
            append(
                f"{ts[i]}\t{ip}\t{ttfb[i]}\t{status}\t{scb}\t{method}\thttps\t{DIST_DNS}\t{stem}\t{cs_bytes}\t"
                f"{edges[actor]}\t{ids[i]}\t{host}\t{taken[i]}\t{proto}\t{'IPv6' if ':' in ip else 'IPv4'}\t"
                f"{ua}\t{referer}\t{cookie}\t{query or '-'}\t{rtype}\t{xff}\t{tls}\t{cipher}\t{etype}\t-\t-\t"
                f"{ctype}\t{clen[i]}\t{'-' if rs < 0 else rs}\t{'-' if rs < 0 else re_}\t"
                f"{ports[i]}\t{dtype}\t"
                f"{countries[actor]}\t{acc_enc}\t{accept}\t{behavior}\t{hdrs}\t{names}\t{count}\t"
                f"{DIST_ID}\t{DIST_DNS}\t{fbl[i]}\t{lbl[i]}\t"
                f"{asns[actor]}\n".encode()
            )
        return out
