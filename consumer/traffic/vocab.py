"""What the generated traffic is made of: edges, networks, clients, and CloudFront's URL encoding.

Values are modelled on real CloudFront real-time log records (``shared/reference-logs`` 01 and 07):
edge codes are real CloudFront POP names, header blocks are written as CloudFront writes them
(``name:value`` lines joined by ``%0A`` with a trailing ``%0A``, lower-case names over HTTP/2 and
HTTP/3, as sent over HTTP/1.1), and free text is percent-encoded the way CloudFront does it (spaces,
quotes, control and non-ASCII bytes; ``;``, ``,``, ``(``, ``=`` left as they are).
"""

from __future__ import annotations

from dataclasses import dataclass

# The service behind the distribution: a file-sharing site and its API.
DIST_ID = "E2QWRUHAPOMQZL"
DIST_DNS = "d3k9qz1x7r2m4p.cloudfront.net"
WEB_HOST = "www.filedrop.example"
API_HOST = "api.filedrop.example"


@dataclass(frozen=True, slots=True)
class Region:
    """Clients of one country: the edges they reach, their access networks (ASN, IPv4 /8s, IPv6 /32s)."""

    country: str
    weight: float
    edges: tuple[str, ...]
    asns: tuple[int, ...]
    v4_first_octets: tuple[int, ...]
    v6_prefixes: tuple[int, ...]  # first 32 bits of the ISPs' IPv6 allocations
    v6_share: float


REGIONS: tuple[Region, ...] = (
    Region(
        "US",
        0.34,
        (
            "IAD89-C1",
            "IAD66-P1",
            "JFK50-P2",
            "EWR52-C4",
            "ORD58-P4",
            "DFW56-P1",
            "LAX50-C1",
            "SFO5-P1",
            "SEA19-C1",
            "ATL59-P1",
            "MIA3-C2",
        ),
        (7922, 7018, 701, 21928, 20115, 22773),
        (24, 47, 68, 73, 98, 99, 108, 174),
        (0x26001700, 0x26012C00, 0x26078700, 0x2603300A),
        0.45,
    ),
    Region(
        "GB",
        0.08,
        ("LHR61-P1", "LHR50-C1", "MAN50-C1"),
        (2856, 5089, 5378),
        (31, 81, 86, 90, 109),
        (0x2A001234, 0x2A0023C6),
        0.3,
    ),
    Region(
        "DE",
        0.08,
        ("FRA56-P5", "FRA60-P2", "MUC50-C1", "HAM50-C1"),
        (3320, 3209, 6805),
        (79, 84, 87, 91, 93),
        (0x200300E7, 0x2A028108),
        0.5,
    ),
    Region(
        "FR",
        0.06,
        ("CDG52-P1", "CDG50-C1", "MRS52-P1"),
        (3215, 12322, 15557),
        (2, 78, 82, 90, 176),
        (0x2A01CB00, 0x2A01E0A0),
        0.45,
    ),
    Region("NL", 0.03, ("AMS54-C1", "AMS1-C1"), (1136, 33915), (62, 77, 83, 145), (0x2A02A440,), 0.3),
    Region(
        "JP",
        0.07,
        ("NRT57-C1", "NRT20-C4", "KIX56-C1"),
        (2516, 4713, 17676),
        (27, 60, 106, 126, 153),
        (0x24009800, 0x240B0010),
        0.35,
    ),
    Region(
        "IN",
        0.09,
        ("BOM78-P1", "DEL54-C1", "MAA50-C1", "BLR50-C1"),
        (55836, 24560, 45609),
        (49, 103, 106, 117, 157),
        (0x24094060, 0x24044000),
        0.6,
    ),
    Region(
        "BR",
        0.06,
        ("GRU3-C1", "GIG51-C1"),
        (28573, 18881, 26599),
        (177, 179, 186, 187, 189),
        (0x28040014, 0x2804D800),
        0.4,
    ),
    Region(
        "CA",
        0.04,
        ("YUL62-C1", "YTO50-C1", "YVR52-P1"),
        (812, 577, 6327),
        (24, 70, 99, 142),
        (0x26073F00,),
        0.3,
    ),
    Region(
        "AU", 0.04, ("SYD62-P1", "MEL50-C2"), (1221, 4804, 7545), (1, 101, 110, 121, 124), (0x20018003,), 0.35
    ),
    Region("SG", 0.03, ("SIN2-P1", "SIN52-C2"), (9506, 4773), (42, 116, 118, 175), (0x24001700,), 0.3),
    Region("KR", 0.03, ("ICN54-C1", "ICN57-P1"), (4766, 9318), (1, 14, 58, 112, 175), (0x20010E60,), 0.3),
    Region("PL", 0.02, ("WAW51-P1",), (5617, 12741), (31, 83, 89, 178), (0x2A01110F,), 0.3),
    Region("ES", 0.03, ("MAD53-P2", "BCN50-C1"), (3352, 12479), (80, 83, 88, 95), (0x2A0C5A80,), 0.3),
)

# Networks of data centres and proxy providers (bots, monitors, prefetchers, rented proxies).
HOSTING_ASNS: tuple[int, ...] = (16509, 14061, 24940, 16276, 9009, 14618, 396982, 20473)


@dataclass(frozen=True, slots=True)
class Client:
    """A client program: its user agent, protocol, TLS and the headers it sends in that order."""

    name: str
    ua: str
    proto: str  # cs-protocol-version
    tls: str
    cipher: str
    accept_encoding: str
    lang: str | None  # accept-language, None = not sent
    browser: bool  # fetches pages and assets; False = app/tool calling the API and files
    ranged: bool  # downloads large files in byte ranges
    chrome_hints: str | None = None  # the sec-ch-ua value of Chromium browsers


_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
_CH_CHROME = '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"'
_CH_EDGE = '"Chromium";v="124", "Microsoft Edge";v="124", "Not-A.Brand";v="99"'

CLIENTS: tuple[Client, ...] = (
    Client(
        "chrome-win",
        _WIN + "Chrome/124.0.0.0 Safari/537.36",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br, zstd",
        "en-US,en;q=0.9",
        True,
        False,
        _CH_CHROME,
    ),
    Client(
        "chrome-mac",
        _MAC + "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br, zstd",
        "en-GB,en;q=0.9,de;q=0.8",
        True,
        False,
        _CH_CHROME,
    ),
    Client(
        "chrome-android",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "HTTP/3.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br, zstd",
        "en-IN,en;q=0.9,hi;q=0.8",
        True,
        False,
        _CH_CHROME,
    ),
    Client(
        "edge-win",
        _WIN + "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        "gzip, deflate, br, zstd",
        "de-DE,de;q=0.9,en;q=0.8",
        True,
        False,
        _CH_EDGE,
    ),
    Client(
        "safari-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br",
        "ja-JP,ja;q=0.9",
        True,
        False,
    ),
    Client(
        "safari-mac",
        _MAC + "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br",
        "fr-FR,fr;q=0.9",
        True,
        False,
    ),
    Client(
        "firefox-linux",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_CHACHA20_POLY1305_SHA256",
        "gzip, deflate, br, zstd",
        "en-US,en;q=0.5",
        True,
        False,
    ),
    Client(
        "app-ios",
        "FileDrop/5.12.1 (iPhone; iOS 17.4.1; Scale/3.00)",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br",
        "en-US;q=1.0",
        False,
        True,
    ),
    Client(
        "app-android",
        "okhttp/4.12.0",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip",
        None,
        False,
        True,
    ),
    Client(
        "sync-desktop",
        "FileDropSync/3.4.0 (Windows NT 10.0; x64) libcurl/8.6.0",
        "HTTP/1.1",
        "TLSv1.2",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "gzip, deflate",
        None,
        False,
        True,
    ),
)
# Share of normal users per client (same order as CLIENTS).
CLIENT_WEIGHTS: tuple[float, ...] = (0.22, 0.10, 0.14, 0.06, 0.12, 0.05, 0.03, 0.12, 0.11, 0.05)

# Clients of the special populations.
TOOLS: dict[str, Client] = {
    "aria2": Client(
        "aria2",
        "aria2/1.37.0",
        "HTTP/1.1",
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        "deflate, gzip",
        None,
        False,
        True,
    ),
    "python": Client(
        "python",
        "python-requests/2.31.0",
        "HTTP/1.1",
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        "gzip, deflate",
        None,
        False,
        False,
    ),
    "go": Client(
        "go",
        "Go-http-client/2.0",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip",
        None,
        False,
        False,
    ),
    "scanner": Client(
        "scanner",
        _WIN + "Chrome/87.0.4280.88 Safari/537.36",
        "HTTP/1.1",
        "TLSv1.2",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "gzip",
        None,
        False,
        False,
    ),
    "curl": Client(
        "curl", "curl/8.5.0", "HTTP/2.0", "TLSv1.3", "TLS_AES_256_GCM_SHA384", "-", None, False, False
    ),
    "monitor": Client(
        "monitor",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "HTTP/1.1",
        "TLSv1.2",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "gzip",
        None,
        False,
        False,
    ),
    "googlebot": Client(
        "googlebot",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.155 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "HTTP/1.1",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, deflate, br",
        None,
        False,
        False,
    ),
    "prefetch": Client(
        "prefetch",
        "Mozilla/5.0 (compatible; FileDropEdgeWarmer/1.2; +https://www.filedrop.example/bot)",
        "HTTP/2.0",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "gzip, br",
        None,
        False,
        False,
    ),
}

_SAFE = frozenset(range(0x21, 0x7F)) - {
    ord("%"),
    ord('"'),
    ord("\\"),
    ord("<"),
    ord(">"),
    ord("`"),
    ord("{"),
    ord("}"),
    ord("|"),
    ord("^"),
}


#: ASCII characters CloudFront percent-encodes, for ``str.translate``.
_ASCII_ESCAPES = {b: f"%{b:02X}" for b in range(0x80) if b not in _SAFE}


def cf_encode(text: str) -> str:
    """Percent-encode free text as CloudFront writes it in real-time logs (space -> %20, ...)."""
    if text.isascii():
        return text.translate(_ASCII_ESCAPES)
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode("utf-8"))
