"""The shipped default detector set, for the default key types ``ip`` (c-ip) and ``user`` (cookie uid).

Thresholds are set for a content site where an ordinary user makes well under one request per second
and downloads at most a few GB a day, and where one IP may be a corporate NAT with hundreds of users:
per-IP rules therefore only catch what no crowd of ordinary users produces (floods, scans, credential
stuffing, cache-busting), and the volume rules (bandwidth, scraping, baseline) work per user.
Request floods and the hourly bandwidth rule score the last minute/hour (``sliding``), so a burst
straddling a window boundary still counts whole; the daily cap is per UTC day.
"""

from __future__ import annotations

from detectors.config import BaselineSpec, DetectorSpec, RatioSpec, RuleSpec

GB = 1_000_000_000
#: Authentication endpoints: credential stuffing counts failures on these paths only.
LOGIN_PATHS = r"(?i)(log-?in|sign-?in|logon|/auth|/session|oauth2?/token|wp-login\.php|xmlrpc\.php)"


def default_detectors() -> list[DetectorSpec]:
    return [
        # Request floods: 100 req/s sustained for a minute from one IP; 20 req/s from one user.
        RuleSpec(
            name="request_flood_ip",
            key="ip",
            window="1m",
            metric="requests",
            threshold=6000,
            sliding=True,
            mode="block",
        ),
        RuleSpec(
            name="request_flood_user",
            key="user",
            window="1m",
            metric="requests",
            threshold=1200,
            sliding=True,
            mode="block",
        ),
        # Bandwidth hogs: per user per hour and per (UTC) day; per IP only at NAT-proof volume.
        RuleSpec(
            name="bandwidth_hog_hourly",
            key="user",
            window="1h",
            metric="bytes_sent",
            threshold=10 * GB,
            sliding=True,
            mode="block",
        ),
        RuleSpec(
            name="bandwidth_hog_daily",
            key="user",
            window="24h",
            metric="bytes_sent",
            threshold=50 * GB,
            mode="block",
        ),
        RuleSpec(
            name="bandwidth_hog_ip",
            key="ip",
            window="1h",
            metric="bytes_sent",
            threshold=100 * GB,
            mode="alert",
        ),
        # Scanners: 403/404 answers on many distinct paths within 5 minutes.
        RuleSpec(
            name="scanner_ip",
            key="ip",
            window="5m",
            metric="distinct_uris",
            status=(403, 404),
            threshold=150,
            min_requests=150,
            mode="block",
        ),
        # Credential stuffing: mostly failures on login paths, fast (ratio) or slow (hourly count).
        RatioSpec(
            name="credential_stuffing_ip",
            key="ip",
            window="5m",
            path=LOGIN_PATHS,
            numerator="auth_failures",
            threshold=0.5,
            min_requests=30,
            min_numerator=20,
            mode="block",
        ),
        RuleSpec(
            name="credential_stuffing_slow_ip",
            key="ip",
            window="1h",
            path=LOGIN_PATHS,
            metric="auth_failures",
            threshold=200,
            mode="block",
        ),
        # Scraping: distinct URIs per user per hour (per IP only far above what a NAT produces).
        RuleSpec(
            name="scraping_user",
            key="user",
            window="1h",
            metric="distinct_uris",
            threshold=3000,
            mode="block",
        ),
        RuleSpec(
            name="scraping_ip", key="ip", window="1h", metric="distinct_uris", threshold=30000, mode="alert"
        ),
        # Origin exhaustion: cache-busting, nearly every request a miss at >= 5 req/s for 5 minutes.
        RatioSpec(
            name="origin_exhaustion_ip",
            key="ip",
            window="5m",
            numerator="cache_misses",
            threshold=0.9,
            min_requests=1500,
            mode="alert",
        ),
        # A user suddenly far above its own hourly request volume.
        BaselineSpec(
            name="request_surge_user",
            key="user",
            window="1h",
            metric="requests",
            k=6.0,
            min_history=6,
            min_value=1500,
            mode="alert",
        ),
    ]
