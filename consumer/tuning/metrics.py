"""Per-candidate figures: keys flagged and blocked, and against labels precision, recall, time to detect."""

from __future__ import annotations

import statistics
from typing import Any

from consumer.tuning.labels import KeyLabels
from consumer.tuning.run import Outcome


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def score(
    value: float | int, outcome: Outcome, detector: str, key_type: str, labels: KeyLabels | None
) -> dict[str, Any]:
    """The figures of one candidate value. A key is *caught* when the swept detector acted on it
    (block, alert or shadow, as its mode says); refusals (allowlist, cooldown, breaker) do not count."""
    acted = {k: t for (kt, k), t in outcome.first_acted.get(detector, {}).items() if kt == key_type}
    row: dict[str, Any] = {
        "value": value,
        "flagged": len(acted),
        "blocked": {kt: len(keys) for kt, keys in sorted(outcome.blocked.items())},
        "keys_seen": {kt: len(keys) for kt, keys in sorted(outcome.seen.items())},
        "refused": dict(sorted(outcome.refused.items())),
    }
    if labels is None:
        return row
    seen = outcome.seen.get(key_type, set())
    tp_keys = [k for k in acted if k in labels.abusive]
    fp_keys = [k for k in acted if k not in labels.abusive and k not in labels.accomplices]
    fp_hard = [k for k in fp_keys if k in labels.hard_negatives]
    innocent_seen = len([k for k in seen if k not in labels.abusive and k not in labels.accomplices])
    abusive_seen = [k for k in labels.abusive if k in seen]
    ttd = sorted(acted[k] - labels.start[k] for k in tp_keys if k in labels.start)
    per_scenario: dict[str, dict[str, int]] = {}
    for k, s in labels.abusive.items():
        e = per_scenario.setdefault(s, {"caught": 0, "labelled": 0, "seen": 0})
        e["labelled"] += 1
        e["seen"] += k in seen
        e["caught"] += k in acted
    tp, fp = len(tp_keys), len(fp_keys)
    row.update(
        {
            "true_positives": tp,
            "false_positives": fp,
            "false_positives_hard_negative": len(fp_hard),
            "false_positives_unlabelled": fp - len(fp_hard),
            "hard_negatives_blocked": sorted({labels.hard_negatives[k] for k in fp_hard}),
            "accomplices_flagged": len([k for k in acted if k in labels.accomplices]),
            "abusive_keys": len(labels.abusive),
            "abusive_keys_seen": len(abusive_seen),
            "innocent_keys_seen": innocent_seen,
            "missed": len(abusive_seen) - tp,
            "precision": _r(tp / (tp + fp)) if tp + fp else None,
            "recall": _r(tp / len(abusive_seen)) if abusive_seen else None,
            "false_block_rate": _r(fp / innocent_seen, 6) if innocent_seen else 0.0,
            "time_to_detect_s": {
                "median": _r(statistics.median(ttd), 3) if ttd else None,
                "max": _r(ttd[-1], 3) if ttd else None,
                "n": len(ttd),
            },
            "per_scenario": dict(sorted(per_scenario.items())),
        }
    )
    return row


def recommend(rows: list[dict[str, Any]], max_false_block_rate: float) -> dict[str, Any] | None:
    """The value catching the most abuse with a false-block rate <= the maximum.

    Ties (same abuse caught, same false blocks) go to the middle of the tied values: the most
    margin on both sides of a choice the recording cannot tell apart. None without labels or when
    no value stays within the maximum, or none catches anything.
    """
    ok = [
        (i, r)
        for i, r in enumerate(rows)
        if "true_positives" in r and r["false_block_rate"] <= max_false_block_rate
    ]
    if not ok:
        return None
    best_tp = max(r["true_positives"] for _, r in ok)
    if best_tp == 0:
        return None  # nothing caught anywhere: no value to recommend
    best = [(i, r) for i, r in ok if r["true_positives"] == best_tp]
    least_fp = min(r["false_positives"] for _, r in best)
    best = [(i, r) for i, r in best if r["false_positives"] == least_fp]
    i, r = best[(len(best) - 1) // 2]
    return {
        "value": r["value"],
        "index": i,
        "true_positives": r["true_positives"],
        "false_positives": r["false_positives"],
        "recall": r["recall"],
        "tied_values": [x["value"] for _, x in best],
    }
