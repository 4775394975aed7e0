"""Detection quality of the shipped defaults, end to end: generated traffic (``consumer.traffic``, all
abuse scenarios and hard negatives) through the real ``Pipeline`` with the embedded default config
(dry-run actions). Every labelled abuser is flagged, the ones that must be blocked are blocked, no hard
negative and no ordinary key gets any decision (accomplices are neither), and each scenario is detected
within its bound after it starts. Two seeds and two rates, so the thresholds are not tuned to one run.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import pytest

from consumer.config import load_config
from consumer.pipeline import Pipeline
from consumer.traffic import Generator

#: (key type, scenario) whose labelled keys must get an actual ``block`` decision; the others
#: (an IP that may be a NAT, a shared API key, origin load) may be flagged by an alert.
MUST_BLOCK = {
    ("user", "bandwidth_hog"),
    ("user", "credential_stuffing"),
    ("user", "scraper"),
    ("ip", "request_flood"),
    ("ip", "scanner"),
    ("ip", "credential_stuffing"),  # mode=one_ip
    ("user", "api_free_rider"),  # mode=no_key: a free account refused on the paid API
}

#: Seconds from a scenario's start to its first decision (any of its keys), with the reason.
TTD_BOUND_S = {
    "request_flood": 90,  # 1-minute sliding window at 2x the threshold: ~30 s
    "scanner": 60,  # 150 distinct 403/404 paths at 8/s: ~20 s
    "credential_stuffing": 60,  # 20 login failures at 4/s: ~7 s
    "origin_exhaustion": 330,  # one 5-minute window must close on >= 600 requests: ~120 s
    "api_free_rider": 330,  # 900 requests in a 5-minute window at 6/s: ~150 s
    "bandwidth_hog": 600,  # 10 GB at 30 MB/s: ~335 s
    "scraper": 600,  # 600 requests (92% misses) in 5 minutes from its IP: ~200 s
}

#: The other modes of two scenarios: credential stuffing from one IP with a fresh cookie per attempt,
#: the API free-rider as a free account from one IP (75% refused) instead of a leaked shared key.
VARIANTS = "credential_stuffing:mode=one_ip,api_free_rider:mode=no_key,scanner,request_flood"
CASES = [
    (7, 20.0, 3600.0, None),
    (3, 100.0, 1800.0, None),
    (11, 60.0, 2400.0, None),
    (9, 40.0, 1800.0, VARIANTS),
]


def run(seed: int, rate: float, duration_s: float, scenarios: str | None):
    gen = Generator(seed=seed, rate=rate, scenarios=scenarios)
    pipeline = Pipeline.from_config(load_config(None, environ={}), dry_run=True)
    decisions = []
    for lines in gen.batches(duration_s):
        decisions += pipeline.process(lines, "generated")
    decisions += pipeline.flush() or []
    pipeline.close()
    return gen.labels(duration_s), decisions


@pytest.fixture(
    scope="module", params=CASES, ids=lambda c: f"seed{c[0]}-rate{int(c[1])}" + ("-variants" if c[3] else "")
)
def outcome(request):
    return run(*request.param)


def test_every_abuser_is_flagged_and_the_dangerous_ones_blocked(outcome) -> None:
    labels, decisions = outcome
    actions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in decisions:
        actions[(d.key_type, d.key)].add(d.action)
    abusers = [(kt, k, name) for kt in ("user", "ip", "api_key") for k, name in labels.get(kt, {}).items()]
    kinds = {sc["name"] for sc in labels["scenarios"] if sc["abuse"]}
    assert {name for *_, name in abusers} == kinds and kinds <= set(TTD_BOUND_S)
    if len(kinds) < len(TTD_BOUND_S):
        assert labels["generator"]["seed"] == 9  # only the variants case leaves kinds out
    for kt, key, name in abusers:
        assert actions.get((kt, key)), f"{name} {kt} not flagged"
        if (kt, name) in MUST_BLOCK:
            assert "block" in actions[(kt, key)], f"{name} {kt} not blocked: {actions[(kt, key)]}"


def test_no_hard_negative_and_no_ordinary_key_is_flagged(outcome) -> None:
    labels, decisions = outcome
    abusers = {(kt, k) for kt in ("user", "ip", "api_key") for k in labels.get(kt, {})}
    accomplices = {(kt, k) for kt, keys in labels["accomplices"].items() for k in keys}
    hard = {(kt, k): name for kt, keys in labels["hard_negatives"].items() for k, name in keys.items()}
    assert {"nat_office", "monitor", "heavy_downloader"} <= set(hard.values())
    wrong = sorted(
        {
            (hard.get((d.key_type, d.key), "ordinary"), d.key_type, d.detector)
            for d in decisions
            if (d.key_type, d.key) not in abusers | accomplices
        }
    )
    assert wrong == []


def test_each_scenario_is_detected_within_its_bound(outcome) -> None:
    labels, decisions = outcome
    first: dict[tuple[str, str], float] = {}
    for d in decisions:
        k = (d.key_type, d.key)
        first[k] = min(first.get(k, d.event_time), d.event_time)
    for sc in labels["scenarios"]:
        if not sc["abuse"]:
            continue
        keys = [(kt, k) for kt, ks in sc["keys"].items() for k in ks if k in labels.get(kt, {})]
        ttd = min(first[k] for k in keys) - sc["start"]
        print(f"time-to-detect {sc['name']}: {ttd:.0f} s", file=sys.stderr)
        assert 0 <= ttd <= TTD_BOUND_S[sc["name"]], (sc["name"], ttd)
