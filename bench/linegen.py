"""A small, deterministic maker of realistic CloudFront real-time log lines (45 fields of sample 07).

Only for the parse benchmark and parser tests: realistic shapes (IPv4/IPv6, browser and bot user
agents, cookies, URL-encoded ``cs-headers`` joined by ``%0A``, ``-`` where CloudFront writes it),
not realistic traffic. The traffic generator in ``consumer/traffic/`` is the full one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from urllib.parse import quote

_UAS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.97",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.43 Mobile Safari/537.36",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "okhttp/4.12.0",
)
_PATHS = (
    "/",
    "/index.html",
    "/favicon.ico",
    "/static/js/main.3f9a1c.js",
    "/static/css/app.css",
    "/api/v1/items",
    "/api/v1/login",
    "/images/hero.webp",
    "/video/seg-00042.ts",
    "/downloads/app.dmg",
    "/locales/en/common.json",
    "/search",
    "/wp-login.php",
    "/.env",
    "/product/12345/reviews",
)
_EDGES = ("NRT57-C1", "IAD89-P1", "FRA56-P5", "LHR61-C2", "CDG50-P2", "SFO53-P7", "GRU3-C1")
_COUNTRIES = ("US", "JP", "DE", "GB", "FR", "BR", "IN", "NL", "-")
_RESULTS = ("Hit", "Miss", "RefreshHit", "Error", "LimitExceeded")
_CTYPES = ("text/html", "application/json", "image/webp", "application/javascript", "video/MP2T", "-")
_METHODS = ("GET", "GET", "GET", "GET", "POST", "HEAD", "OPTIONS", "PUT")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _enc(text: str) -> str:
    """CloudFront-style URL encoding of a field value (spaces, quotes, control bytes, % ...)."""
    return quote(text, safe="/:;,=?&*()+!$'@[]~._-")


class LineMaker:
    """Deterministic 45-field lines: ``LineMaker(seed).lines(n)``."""

    def __init__(self, seed: int = 7, *, clients: int = 5000, dist: str = "E32QJQ394BWBEI") -> None:
        self.rng = random.Random(seed)
        r = self.rng
        self.clients = []
        for i in range(clients):
            if i % 5 == 0:
                a, b, c = r.randrange(65536), r.randrange(65536), r.randrange(1, 65536)
                ip = f"2001:db8:{a:x}:{b:x}::{c:x}"
                ver = "IPv6"
            else:
                ip = f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
                ver = "IPv4"
            ua = r.choice(_UAS)
            cookie = "-" if i % 4 == 0 else f"session={r.getrandbits(64):016x}; uid=u{i}; theme=dark"
            self.clients.append((ip, ver, ua, cookie, r.choice(_COUNTRIES), r.randrange(1, 70000)))
        self.dist = dist
        self.host = f"d{r.getrandbits(40):x}.cloudfront.net"

    def line(self, ts: float) -> str:
        r = self.rng
        ip, ver, ua, cookie, country, asn = self.clients[int(r.paretovariate(1.2)) % len(self.clients)]
        method = r.choice(_METHODS)
        path = r.choice(_PATHS)
        query = r.choice(
            ("-", "-", "v=v1.2.0", f"q={r.choice(('shoes', 'red%20hat', 'a+b'))}&page={r.randrange(9)}")
        )
        status = r.choice((200, 200, 200, 200, 206, 304, 301, 403, 404, 500, 503))
        sc_bytes = r.randrange(200, 2_000_000) if status in (200, 206) else r.randrange(150, 900)
        result = r.choice(_RESULTS)
        ranged = status == 206
        start = r.randrange(0, 1_000_000) if ranged else None
        headers = [
            f"host:{self.host}",
            f"user-agent:{ua}",
            "accept:*/*",
            "accept-encoding:gzip, deflate, br",
            "accept-language:en-US,en;q=0.9",
        ]
        if cookie != "-":
            headers.append(f"cookie:{cookie}")
        if r.random() < 0.3:
            headers.append('sec-ch-ua:"Chromium";v="120", "Not?A_Brand";v="8"')
        names = [h.split(":", 1)[0] for h in headers]
        ttfb = round(r.uniform(0.001, 0.9), 3)
        fields = [
            f"{ts:.3f}",
            ip,
            f"{ttfb:.3f}",
            str(status),
            str(sc_bytes),
            method,
            r.choice(("https", "https", "http")),
            self.host,
            _enc(path + ("" if query == "-" else "?" + query)),
            str(r.randrange(40, 3000)),
            r.choice(_EDGES),
            "".join(r.choice(_B64) for _ in range(54)) + "==",
            self.host,
            f"{ttfb + round(r.uniform(0, 0.2), 3):.3f}",
            r.choice(("HTTP/2.0", "HTTP/1.1", "HTTP/3.0")),
            ver,
            _enc(ua),
            r.choice(("-", f"https://{self.host}/", "https://www.google.com/")),
            _enc(cookie) if cookie != "-" else "-",
            query,
            result,
            r.choice(("-", "-", "-", f"{ip}, 10.0.0.{r.randrange(1, 255)}")),
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            result,
            "-",
            "-",
            r.choice(_CTYPES),
            str(sc_bytes - 120) if r.random() < 0.5 else "-",
            str(start) if ranged else "-",
            str(start + 65535) if ranged else "-",
            str(r.randrange(1024, 65536)),
            result,
            country,
            _enc("gzip, deflate, br"),
            "*/*",
            "*",
            "".join(_enc(h) + "%0A" for h in headers),
            "".join(_enc(n) + "%0A" for n in names),
            str(len(headers)),
            self.dist,
            f"{self.host}",
            r.choice(("-", f"{r.uniform(0.01, 0.5):.3f}")),
            r.choice(("-", f"{r.uniform(0.01, 0.9):.3f}")),
            str(asn),
        ]
        return "\t".join(fields)

    def lines(self, n: int, start: float = 1_764_000_000.0, rate: float = 2000.0) -> Iterator[bytes]:
        """``n`` lines as Kinesis record payloads (bytes, trailing newline), ``rate`` per second."""
        step = 1.0 / rate
        for i in range(n):
            yield (self.line(start + i * step) + "\n").encode()
