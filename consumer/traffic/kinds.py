"""Request kinds: what differs between a page view, an asset, an API call and a file download.

Per-request columns only hold what varies (path, status, sizes, timings); everything a kind fixes
(method, host, cache behaviour, content type, accept) lives here and is rendered from the kind index.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consumer.traffic.vocab import API_HOST, WEB_HOST


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    method: str
    host: str
    behavior: str  # cache-behavior-path-pattern
    content_type: str  # as CloudFront logs it (already encoded)
    accept: str  # the accept header a browser sends for it (apps send */* or application/json)
    subresource: bool  # fetched by a page: browsers send a referer and sec-fetch-dest
    fetch_dest: str = "empty"


_HTML_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
)
_IMG_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


class K(IntEnum):
    PAGE = 0
    JS = 1
    CSS = 2
    FONT = 3
    THUMB = 4
    API_READ = 5
    API_WRITE = 6
    UPLOAD = 7
    DL_ZIP = 8
    DL_MP4 = 9
    DL_PDF = 10
    DL_BIN = 11
    LOGIN_PAGE = 12
    AUTH = 13
    HEALTH = 14
    FAVICON = 15
    PROBE = 16
    PRO_API = 17


KINDS: tuple[Kind, ...] = (
    Kind("page", "GET", WEB_HOST, "*", "text/html;%20charset=utf-8", _HTML_ACCEPT, False, "document"),
    Kind("js", "GET", WEB_HOST, "/static/*", "application/javascript", "*/*", True, "script"),
    Kind("css", "GET", WEB_HOST, "/static/*", "text/css", "text/css,*/*;q=0.1", True, "style"),
    Kind("font", "GET", WEB_HOST, "/static/*", "font/woff2", "*/*", True, "font"),
    Kind("thumb", "GET", WEB_HOST, "/thumbs/*", "image/webp", _IMG_ACCEPT, True, "image"),
    Kind("api_read", "GET", API_HOST, "/api/*", "application/json", "application/json", True),
    Kind("api_write", "POST", API_HOST, "/api/*", "application/json", "application/json", True),
    Kind("upload", "PUT", API_HOST, "/api/*", "application/json", "*/*", True),
    Kind("dl_zip", "GET", WEB_HOST, "/d/*", "application/zip", _HTML_ACCEPT, False, "document"),
    Kind("dl_mp4", "GET", WEB_HOST, "/d/*", "video/mp4", "*/*", False, "video"),
    Kind("dl_pdf", "GET", WEB_HOST, "/d/*", "application/pdf", _HTML_ACCEPT, False, "document"),
    Kind("dl_bin", "GET", WEB_HOST, "/d/*", "application/octet-stream", _HTML_ACCEPT, False, "document"),
    Kind("login_page", "GET", WEB_HOST, "*", "text/html;%20charset=utf-8", _HTML_ACCEPT, False, "document"),
    Kind("auth", "POST", API_HOST, "/api/auth/*", "application/json", "application/json", True),
    Kind("health", "GET", API_HOST, "/health", "text/plain;%20charset=utf-8", "*/*", False),
    Kind("favicon", "GET", WEB_HOST, "*", "image/x-icon", _IMG_ACCEPT, True, "image"),
    Kind("probe", "GET", WEB_HOST, "*", "text/html", "*/*", False, "document"),
    Kind("pro_api", "POST", API_HOST, "/api/*", "application/json", "application/json", False),
)
DOWNLOADS: tuple[K, ...] = (K.DL_ZIP, K.DL_MP4, K.DL_PDF, K.DL_BIN)
DOWNLOAD_EXT: dict[K, str] = {K.DL_ZIP: "zip", K.DL_MP4: "mp4", K.DL_PDF: "pdf", K.DL_BIN: "iso"}


class R(IntEnum):
    """Edge result (x-edge-result-type, x-edge-response-result-type, detailed type)."""

    HIT = 0
    REFRESH_HIT = 1
    MISS = 2
    ERROR = 3  # an error status from the origin or the edge
    ORIGIN_ERROR = 4  # 5xx from the origin
    CLIENT_ABORT = 5  # the viewer went away mid-response
    LIMIT = 6  # edge rate limit (429)


# (x-edge-response-result-type, x-edge-result-type, x-edge-detailed-result-type)
RESULTS: tuple[tuple[str, str, str], ...] = (
    ("Hit", "Hit", "Hit"),
    ("RefreshHit", "RefreshHit", "RefreshHit"),
    ("Miss", "Miss", "Miss"),
    ("Error", "Error", "Error"),
    ("Error", "Error", "OriginError"),
    ("Error", "Error", "ClientCommError"),
    ("LimitExceeded", "LimitExceeded", "LimitExceeded"),
)
