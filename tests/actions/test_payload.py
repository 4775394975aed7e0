"""The block payload: built from a decision, validated by the model the handler uses, bounded."""

from __future__ import annotations

import json

import pytest

from actions.lambda_action import build_payload
from actions.payload import MAX_EVIDENCE_BYTES, BlockPayload
from actions.runner import ActionRunner
from tests.actions.helpers import FakeWall, cfg, finding


def decide(**kw):  # type: ignore[no-untyped-def]
    return ActionRunner(cfg(), dry_run=True, clock=FakeWall()).submit([finding(**kw)])[0]


def test_payload_round_trips_through_the_handler_model() -> None:
    d = decide()
    p = build_payload(d)
    assert set(p) >= {
        "key", "key_type", "detector", "score", "threshold", "window", "evidence", "block_duration_s",
        "event_time", "decided_at", "idempotency_key",
    }  # fmt: skip
    back = BlockPayload.model_validate(json.loads(json.dumps(p)))
    assert back.key == "203.0.113.7" and back.block_duration_s == 600
    assert p["event_time"] == d.to_record()["event_time"].replace(".000Z", "Z")
    assert back.event_time.timestamp() == d.event_time
    assert p["idempotency_key"] == d.idempotency_key


def test_big_evidence_is_trimmed_to_fit() -> None:
    d = decide(
        evidence={"requests": 9000, "top_uris": [f"/p/{i}" * 20 for i in range(2000)], "note": "x" * 999}
    )
    p = build_payload(d)
    assert len(json.dumps(p["evidence"])) <= MAX_EVIDENCE_BYTES
    assert p["evidence"]["requests"] == 9000 and p["evidence"]["_trimmed"] == ["top_uris"]
    assert len(p["evidence"]["note"]) == 256
    assert d.evidence["top_uris"]  # the decision record keeps it all


@pytest.mark.parametrize(
    "bad",
    [
        {"score": float("nan")},
        {"score": float("inf")},
        {"key": ""},
        {"key_type": "Bad Type"},
        {"detector": ""},
        {"mode": "nuke"},
    ],
)
def test_undeliverable_findings_are_refused_and_counted(bad: dict[str, object]) -> None:
    r = ActionRunner(cfg(), dry_run=True, clock=FakeWall())
    args = {"key": "203.0.113.7", **bad}
    key = args.pop("key")
    d = r.submit([finding(key, **args)])[0]  # type: ignore[arg-type]
    assert d.action == "refused" and d.reason in ("invalid_finding", "unknown_mode")
    assert r.stats()[f"guard.refused.{d.reason}"] == 1
