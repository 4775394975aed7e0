"""The labels ``tune`` scores against: the traffic generator's format (docs/tune.md, docs/traffic.md).

Abusive keys are ``labels[key_type]``; everything else seen in the recording is innocent, whether
it is listed in ``hard_negatives`` or not listed at all. ``accomplices`` (e.g. the proxies of a
credential-stuffing run) are neither: counted apart, never as a true or a false positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.traffic import labels as traffic_labels


@dataclass(frozen=True)
class KeyLabels:
    """The labels of one key type."""

    abusive: dict[str, str]  # key -> scenario
    hard_negatives: dict[str, str]  # key -> scenario
    accomplices: dict[str, str]  # key -> scenario
    start: dict[str, float]  # abusive key -> its scenario's start (event time)


def load(path: str | Path) -> dict[str, Any]:
    try:
        return traffic_labels.load(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"labels {path}: {exc}") from None


def for_key_type(labels: dict[str, Any], key_type: str, scenarios: set[str] | None = None) -> KeyLabels:
    """``scenarios``: only these abuse scenarios count as abuse to catch (other abusive keys: neither
    side); at least one of them must label keys of this key type."""
    abusive = dict(labels.get(key_type) or {})
    if not isinstance(abusive, dict):
        raise ValueError(f"labels: {key_type!r} must map keys to scenario names")
    hard = dict((labels.get("hard_negatives") or {}).get(key_type) or {})
    acc = dict((labels.get("accomplices") or {}).get(key_type) or {})
    if scenarios is not None:
        known = set(abusive.values())
        if not scenarios & known:
            raise ValueError(
                f"labels: no {key_type!r} keys for scenario(s) {', '.join(sorted(scenarios))} "
                f"(labelled: {', '.join(sorted(known)) or 'none'})"
            )
        other = {k: s for k, s in abusive.items() if s not in scenarios}
        abusive = {k: s for k, s in abusive.items() if s in scenarios}
        acc = {**other, **acc}
    start: dict[str, float] = {}
    for entry in labels.get("scenarios") or []:
        if not entry.get("abuse"):
            continue
        for k in (entry.get("keys") or {}).get(key_type, []):
            if k in abusive and entry.get("start") is not None:
                start.setdefault(k, float(entry["start"]))
    return KeyLabels(abusive, hard, acc, start)


def abuse_scenarios(labels: dict[str, Any]) -> set[str]:
    """Every abuse scenario name that labels keys of some key type."""
    skip = {"format", "generator", "hard_negatives", "accomplices", "scenarios"}
    return {s for name, m in labels.items() if name not in skip and isinstance(m, dict) for s in m.values()}
