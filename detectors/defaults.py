"""The shipped default detector set, for the default key types ``ip`` (c-ip), ``user`` (cookie uid) and
``api_key`` (the ``x-api-key`` header).

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
        # Request floods: 20 req/s sustained for a minute from one IP. Ordinary IPs peak at ~80/min,
        # a 300-user office NAT at ~520/min (2.3x margin); a flood of 40 req/s makes 2,400/min.
        RuleSpec(
            name="request_flood_ip",
            key="ip",
            window="1m",
            metric="requests",
            threshold=1200,
            sliding=True,
            mode="block",
        ),
        # 20 req/s from one user (ordinary users peak at ~80/min: 15x margin).
        RuleSpec(
            name="request_flood_user",
            key="user",
            window="1m",
            metric="requests",
            threshold=1200,
            sliding=True,
            mode="block",
        ),
        # Bandwidth hogs: per user per hour and per (UTC) day. Ordinary users peak at ~0.6 GB/h and the
        # heaviest legitimate downloader does 2.5 GB/h / 40 GB/day (4x / 1.25x margin; the daily cap is
        # the product's fair-use cap). A hog at 30 MB/s crosses 10 GB in ~6 minutes.
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
        # Per IP only an alert (a NAT may hide many users): the 300-user NAT pulls ~5 GB/h (5x margin).
        RuleSpec(
            name="bandwidth_hog_ip",
            key="ip",
            window="1h",
            metric="bytes_sent",
            threshold=25 * GB,
            sliding=True,
            mode="alert",
        ),
        # Scanners: 403/404 answers on many distinct paths within 5 minutes. Ordinary IPs get at most
        # ~5 such paths in 5 minutes, the NAT ~25 (6x margin); a wordlist scanner at 8/s gets ~480.
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
        # Credential stuffing from one IP: mostly failures on login paths, fast (ratio) or slow (count).
        # Ordinary IPs and the NAT fail a login at most ~3 times in 5 minutes (7x margin on 20).
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
        # Credential stuffing with one account's cookie jar over rotating proxy IPs: no IP sees enough,
        # the uid does. A user who mistypes fails 3 times (password_retry); 20 in 5 minutes is 7x that.
        RuleSpec(
            name="credential_stuffing_user",
            key="user",
            window="5m",
            path=LOGIN_PATHS,
            metric="auth_failures",
            threshold=20,
            mode="block",
        ),
        # Refused over and over on any path (e.g. a free account calling the paid API: 403 after 403).
        # Ordinary users get at most ~3 401/403 in 5 minutes, the 300-user NAT ~6: 60 is a 10x margin;
        # the free-rider at 6 req/s (75% refused) gets ~1,350. Per IP only an alert (NAT).
        RuleSpec(
            name="refused_flood_user",
            key="user",
            window="5m",
            metric="auth_failures",
            threshold=60,
            mode="block",
        ),
        RuleSpec(
            name="refused_flood_ip",
            key="ip",
            window="5m",
            metric="auth_failures",
            threshold=60,
            mode="alert",
        ),
        # Scraping: distinct URIs per user per hour: ordinary users reach ~560 (5x margin on 3,000).
        RuleSpec(
            name="scraping_user",
            key="user",
            window="1h",
            metric="distinct_uris",
            threshold=3000,
            mode="block",
        ),
        # Per IP (scrapers without a cookie, or rotating cookies): a 300-user NAT reaches ~2,600
        # distinct URIs an hour and a search crawler 1,800, so only an alert at 6,000 (2.3x margin);
        # a scraper at 3 pages/s gets there in ~35 minutes.
        RuleSpec(
            name="scraping_ip", key="ip", window="1h", metric="distinct_uris", threshold=6000, mode="alert"
        ),
        # Origin exhaustion: cache-busting, nearly every request a miss at >= 2 req/s for 5 minutes.
        # Ordinary IPs make at most ~240 requests in 5 minutes, an uptime monitor 150 (all misses):
        # min_requests=600 keeps both out (2.5x / 4x); the NAT makes ~2,200 but only ~37% misses.
        RatioSpec(
            name="origin_exhaustion_ip",
            key="ip",
            window="5m",
            numerator="cache_misses",
            threshold=0.9,
            min_requests=600,
            mode="alert",
        ),
        # A leaked API key shared by many servers: request volume per key. The generator has no ordinary
        # api_key traffic to measure; 3 req/s sustained for 5 minutes is the fair use of one paid
        # integration (a leaked key used from 25 servers makes ~1,800).
        RuleSpec(
            name="api_key_overuse",
            key="api_key",
            window="5m",
            metric="requests",
            threshold=900,
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
