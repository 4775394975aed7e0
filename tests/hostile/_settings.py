"""Example counts for the hostile-input property tests: CI runs the defaults, a fuzzing campaign sets
``CFGUARD_FUZZ_EXAMPLES`` (e.g. 5000) to run every target that many times (bench/results/fuzz.md)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def fuzz_settings(default: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("CFGUARD_FUZZ_EXAMPLES", default)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
