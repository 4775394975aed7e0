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


def header_name(name: str, h2: bool) -> str:
    """Header names as logged: lower case over HTTP/2 and HTTP/3, as clients send them over HTTP/1.1."""
    return name if h2 else "-".join(p.capitalize() for p in name.split("-"))


# Columns fixed by (client, kind), already joined where adjacent in the line.
_P_METHOD, _P_HOST, _P_PROTO, _P_UA_REF, _P_TLS, _P_CTYPE, _P_ACCEPT, _P_HDRS, _P_NAMES = range(9)


def _pair_parts(client: Client, kind_idx: int) -> tuple[tuple[str, ...], int, int, bool]:
    """The parts of a line one client fetching one kind of resource fixes.

    Returns (string columns indexed by ``_P_*``, request bytes without cookie and body, header count
    without cookie/range/key, HTTP/2-or-3).
    """
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
    block = "".join(f"{header_name(n, h2)}:{cf_encode(v)}{_NL}" for n, v in headers)
    names = "".join(f"{header_name(n, h2)}{_NL}" for n, _ in headers)
    raw_len = sum(len(n) + len(v) + 4 for n, v in headers) + len(kind.method) + 20
    # HTTP/2 and HTTP/3 compress headers (HPACK/QPACK): repeated ones cost a few bytes each.
    base_cs = max(30, raw_len // 9) if h2 else raw_len
    cols = (
        f"{kind.method}\thttps\t{DIST_DNS}",
        kind.host,
        client.proto,
        f"{cf_encode(client.ua)}\t{cf_encode(referer) if referer else '-'}",
        f"{client.tls}\t{client.cipher}",
        f"-\t-\t{kind.content_type}",
        f"{cf_encode(client.accept_encoding)}\t{cf_encode(accept)}\t{kind.behavior}",
        block,
        names,
    )
    return cols, base_cs, len(headers), h2


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


def _take(values: np.ndarray, idx: np.ndarray) -> list[str]:
    return values[idx].tolist()  # type: ignore[no-any-return]


class Renderer:
    """Renders batches for one actor table.

    Column by column: values fixed by (client, kind) or by the actor come from object arrays indexed
    with numpy, numbers are converted in bulk, and each line is one ``"\t".join``.
    """

    def __init__(self, actors: Actors) -> None:
        self.actors = actors
        self._pair_of: dict[tuple[int, int], int] = {}
        self._pair_cols: list[list[str]] = [[] for _ in range(9)]
        self._pair_num: list[tuple[int, int, bool]] = []
        self._pair_arrays: tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray] | None = None
        self._lut = np.full((0, len(KINDS)), -1, np.int64)
        self._n_actors = -1
        self._actor_arrays: dict[str, np.ndarray] = {}

    def _pairs(self, client: np.ndarray, kind: np.ndarray) -> np.ndarray:
        n_clients = len(self.actors.clients)
        if self._lut.shape[0] < n_clients:
            lut = np.full((n_clients, len(KINDS)), -1, np.int64)
            lut[: self._lut.shape[0]] = self._lut
            self._lut = lut
        pid = self._lut[client, kind]
        missing = pid < 0
        if missing.any():
            for c, k in set(zip(client[missing].tolist(), kind[missing].tolist(), strict=True)):
                cols, base_cs, n_hdr, h2 = _pair_parts(self.actors.clients[c], k)
                for j, v in enumerate(cols):
                    self._pair_cols[j].append(v)
                self._pair_num.append((base_cs, n_hdr, h2))
                self._lut[c, k] = len(self._pair_num) - 1
            self._pair_arrays = None
            pid = self._lut[client, kind]
        if self._pair_arrays is None:
            self._pair_arrays = (
                [np.asarray(c, dtype=object) for c in self._pair_cols],
                np.asarray([x[0] for x in self._pair_num], np.int64),
                np.asarray([x[1] for x in self._pair_num], np.int64),
                np.asarray([x[2] for x in self._pair_num], bool),
            )
        return pid

    def prepare(self) -> None:
        """Build the per-actor columns now (actors added later are appended on the next render)."""
        self._actors()

    def _actor_columns(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """The rendered columns of actors ``lo..hi-1``."""
        a = self.actors
        h2_of = np.asarray([c.proto != "HTTP/1.1" for c in a.clients], bool)
        client = np.asarray(a.client[lo:hi], np.int64)
        h2 = h2_of[client]
        hdr, names, count = [], [], []
        for i, (cookie, key) in enumerate(zip(a.cookie[lo:hi], a.api_key[lo:hi], strict=True)):
            h, nm, k = "", "", 0
            if cookie != "-":
                ck = header_name("cookie", bool(h2[i]))
                h, nm, k = f"{ck}:{cookie}{_NL}", f"{ck}{_NL}", 1
            if key is not None:
                kn = header_name("x-api-key", bool(h2[i]))
                h, nm, k = f"{h}{kn}:{key}{_NL}", f"{nm}{kn}{_NL}", k + 1
            hdr.append(h)
            names.append(nm)
            count.append(k)
        return {
            "client": client,
            "edge": np.asarray(a.edge[lo:hi], dtype=object),
            "cookie": np.asarray(a.cookie[lo:hi], dtype=object),
            "xff": np.asarray([x or "-" for x in a.xff[lo:hi]], dtype=object),
            "country": np.asarray(a.country[lo:hi], dtype=object),
            "asn_nl": np.asarray([f"{x}\n" for x in a.asn[lo:hi]], dtype=object),  # the last field
            "hdr": np.asarray(hdr, dtype=object),
            "names": np.asarray(names, dtype=object),
            "count": np.asarray(count, np.int64),
            # HTTP/1.1 sends the cookie and key headers uncompressed.
            "cs_extra": np.where(h2, 0, np.asarray([len(x) for x in hdr], np.int64)),
        }

    def _actors(self) -> dict[str, np.ndarray]:
        """Per-actor columns, grown in place (capacity doubles) as scenarios add actors."""
        total = len(self.actors)
        done = max(self._n_actors, 0)
        if done == total:
            return self._actor_arrays
        new = self._actor_columns(done, total)
        cols = self._actor_arrays
        if not cols or len(cols["client"]) < total:
            capacity = max(total, 2 * done)
            grown = {}
            for name, col in new.items():
                g = np.empty(capacity, dtype=col.dtype)
                if cols:
                    g[:done] = cols[name][:done]
                grown[name] = g
            cols = grown
        for name, col in new.items():
            cols[name][done:total] = col
        self._actor_arrays = cols
        self._n_actors = total
        return cols

    def render(self, req: Requests, rng: np.random.Generator) -> list[bytes]:
        n = len(req)
        if n == 0:
            return []
        act = self._actors()
        actor = req.actor
        pid = self._pairs(act["client"][actor], req.kind)
        assert self._pair_arrays is not None
        pcols, p_cs, p_count, _ = self._pair_arrays
        ranged = req.range_start >= 0
        cs_bytes = p_cs[pid] + act["cs_extra"][actor] + req.body + rng.integers(0, 24, n)
        count = p_count[pid] + act["count"][actor] + ranged
        # Header blocks: (client, kind) part + the actor's cookie/key lines (+ a range line).
        hdr_arr = pcols[_P_HDRS][pid] + act["hdr"][actor]
        names_arr = pcols[_P_NAMES][pid] + act["names"][actor]
        for i in np.flatnonzero(ranged).tolist():
            rn = "range" if hdr_arr[i].startswith("host") else "Range"  # HTTP/2 names are lower case
            hdr_arr[i] = f"{hdr_arr[i]}{rn}:bytes={req.range_start[i]}-{req.range_end[i]}{_NL}"
            names_arr[i] = f"{names_arr[i]}{rn}{_NL}"
        hdrs, names = hdr_arr.tolist(), names_arr.tolist()
        has_origin = req.result != 0
        fbl_a = np.maximum(req.ttfb - 0.001, 0.0005)
        res_l = req.result.tolist()
        query = req.query
        ip = req.ip
        cols = (
            [f"{v:.3f}" for v in req.t.tolist()],
            ip,
            [f"{v:.3f}" for v in req.ttfb.tolist()],
            list(map(str, req.status.tolist())),
            list(map(str, req.sc_bytes.tolist())),
            _take(pcols[_P_METHOD], pid),
            [f"{u}?{q}" if q else u for u, q in zip(req.uri, query, strict=True)],
            list(map(str, cs_bytes.tolist())),
            _take(act["edge"], actor),
            request_ids(rng, n),
            _take(pcols[_P_HOST], pid),
            [f"{v:.3f}" for v in req.taken.tolist()],
            _take(pcols[_P_PROTO], pid),
            ["IPv6" if ":" in x else "IPv4" for x in ip],
            _take(pcols[_P_UA_REF], pid),
            _take(act["cookie"], actor),
            [q or "-" for q in query],
            [_RTYPE[r] for r in res_l],
            _take(act["xff"], actor),
            _take(pcols[_P_TLS], pid),
            [_ETYPE[r] for r in res_l],
            _take(pcols[_P_CTYPE], pid),
            _num(req.content_len),
            _num(req.range_start),
            _num(req.range_end),
            list(map(str, rng.integers(1024, 65536, n).tolist())),
            [_DTYPE[r] for r in res_l],
            _take(act["country"], actor),
            _take(pcols[_P_ACCEPT], pid),
            hdrs,
            names,
            list(map(str, count.tolist())),
            [_DIST] * n,
            _sec(np.where(has_origin, fbl_a, np.nan)),
            _sec(np.where(has_origin, np.maximum(req.taken - 0.001, fbl_a), np.nan)),
            _take(act["asn_nl"], actor),
        )
        join = "\t".join
        return [join(row).encode() for row in zip(*cols, strict=True)]


_RTYPE = tuple(r[0] for r in RESULTS)
_ETYPE = tuple(r[1] for r in RESULTS)
_DTYPE = tuple(r[2] for r in RESULTS)
_DIST = f"{DIST_ID}\t{DIST_DNS}"
