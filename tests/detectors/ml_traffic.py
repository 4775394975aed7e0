"""Seeded per-key window metrics (what the engine hands the ML detector at a 5-minute window close):
a population of ordinary users of four kinds, and abusers of each kind the product targets.

The figures follow what CloudFront logs of ordinary sites show per user and 5 minutes: tens of
requests, tens of KB per page asset, a few 4xx (mostly 404), a cache-miss share, mostly distinct
URIs, one or two user agents; video players issue range requests for MB-sized segments; API clients
hit few URIs often, uncached.
"""

from __future__ import annotations

import numpy as np

FEATURES = (
    "requests",
    "bytes_sent",
    "status_4xx",
    "auth_failures",
    "not_found",
    "cache_misses",
    "distinct_uris",
    "distinct_user_agents",
    "range_requests",
)

# kind: (share, median requests, log-sigma requests, median bytes/request, p4xx, p_auth_fail,
#        p_cache_miss, distinct_uri_share, p_range)
_PROFILES = {
    "browser": (0.60, 30, 0.8, 30_000, 0.02, 0.002, 0.25, 0.6, 0.01),
    "video": (0.15, 60, 0.5, 1_000_000, 0.01, 0.0, 0.10, 0.9, 0.9),
    "api": (0.15, 100, 0.7, 2_000, 0.01, 0.001, 0.80, 0.05, 0.0),
    "mobile": (0.10, 40, 0.6, 10_000, 0.015, 0.002, 0.30, 0.4, 0.02),
}


def normal_vectors(n: int, seed: int) -> list[dict[str, float]]:
    """``n`` ordinary users' window metrics (only keys with >= 10 requests, as the engine sends)."""
    rng = np.random.default_rng(seed)
    kinds = list(_PROFILES)
    shares = np.array([_PROFILES[k][0] for k in kinds])
    out = []
    for kind_i in rng.choice(len(kinds), size=n, p=shares / shares.sum()):
        _, med_req, sig, med_bytes, p4, pauth, pmiss, uri_share, prange = _PROFILES[kinds[kind_i]]
        req = max(10, int(rng.lognormal(np.log(med_req), sig)))
        status_4xx = int(rng.binomial(req, p4))
        auth = int(min(status_4xx, rng.binomial(req, pauth)))
        out.append(
            {
                "requests": float(req),
                "bytes_sent": float(req * med_bytes * rng.lognormal(0.0, 0.6)),
                "status_4xx": float(status_4xx),
                "auth_failures": float(auth),
                "not_found": float(rng.binomial(status_4xx - auth, 0.7)),
                "cache_misses": float(rng.binomial(req, pmiss)),
                "distinct_uris": float(max(1, min(req, rng.binomial(req, uri_share) + 1))),
                "distinct_user_agents": float(1 + rng.binomial(1, 0.08)),
                "range_requests": float(rng.binomial(req, prange)),
            }
        )
    return out


def abusive_vectors(seed: int) -> dict[str, dict[str, float]]:
    """One vector per abuse kind, with figures of a real incident of that kind (5-minute window)."""
    rng = np.random.default_rng(seed)
    j = lambda x: float(int(x * rng.uniform(0.9, 1.1)))  # noqa: E731 - jitter a figure by +-10 %
    return {
        # one account pulling ~40 GB in 5 minutes with a download manager
        "bandwidth_hog": {
            "requests": j(400),
            "bytes_sent": j(40e9),
            "status_4xx": 0.0,
            "auth_failures": 0.0,
            "not_found": 0.0,
            "cache_misses": j(350),
            "distinct_uris": j(20),
            "distinct_user_agents": 1.0,
            "range_requests": j(400),
        },
        # a vulnerability scanner: nearly every request a 404 on a new path
        "scanner": {
            "requests": j(900),
            "bytes_sent": j(900 * 600),
            "status_4xx": j(860),
            "auth_failures": j(20),
            "not_found": j(830),
            "cache_misses": j(880),
            "distinct_uris": j(890),
            "distinct_user_agents": 1.0,
            "range_requests": 0.0,
        },
        # credential stuffing: one login URI, mostly 401/403, rotating user agents
        "credential_stuffing": {
            "requests": j(500),
            "bytes_sent": j(500 * 400),
            "status_4xx": j(470),
            "auth_failures": j(460),
            "not_found": 0.0,
            "cache_misses": j(500),
            "distinct_uris": 2.0,
            "distinct_user_agents": j(40),
            "range_requests": 0.0,
        },
        # a scraper walking the catalogue
        "scraper": {
            "requests": j(4000),
            "bytes_sent": j(4000 * 40_000),
            "status_4xx": j(40),
            "auth_failures": 0.0,
            "not_found": j(35),
            "cache_misses": j(3000),
            "distinct_uris": j(3900),
            "distinct_user_agents": 1.0,
            "range_requests": 0.0,
        },
        # a request flood on a handful of URIs
        "flood": {
            "requests": j(60_000),
            "bytes_sent": j(60_000 * 5_000),
            "status_4xx": j(100),
            "auth_failures": 0.0,
            "not_found": j(50),
            "cache_misses": j(1_000),
            "distinct_uris": 3.0,
            "distinct_user_agents": 1.0,
            "range_requests": 0.0,
        },
    }
