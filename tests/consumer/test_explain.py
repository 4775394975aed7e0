"""``cfguard explain`` on generated traffic: a flooding IP's window figures, scores and decisions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from consumer.cli import main
from tests.consumer.tune_fixtures import load_labels, make


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("explain")
    rec, labels, cfg = make(tmp)
    cfg.write_text(cfg.read_text().replace("threshold: 6000", "threshold: 800"))
    lab = load_labels(labels)
    return {"rec": rec, "cfg": cfg, "labels": lab}


def _flood(case: dict, fastest: bool) -> str:
    """The fastest (80/s) or slowest (20/s) flooding IP: the one with the most / fewest records."""
    floods = [k for k, s in case["labels"]["ip"].items() if s == "request_flood"]
    counts: dict[str, int] = {}
    with gzip.open(case["rec"], "rt") as f:
        for line in f:
            ip = line.split("\t", 2)[1]
            if ip in floods:
                counts[ip] = counts.get(ip, 0) + 1
    return (max if fastest else min)(counts, key=counts.__getitem__)


def _timeline(case: dict, key: str, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["explain", key, str(case["rec"]), "-c", str(case["cfg"]), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_abuser_window_figures_scores_and_decision(case: dict, capsys: pytest.CaptureFixture[str]) -> None:
    key = _flood(case, fastest=False)
    doc = _timeline(case, key, capsys)
    assert doc["key"] == key and list(doc["key_types"]) == ["ip"]
    tl = doc["key_types"]["ip"]
    one_min = [w for w in tl["windows"] if w["counts"] == "1m"]
    # The key's per-minute figures add up to its records (1m windows count every request).
    assert sum(w["figures"]["requests"] for w in one_min) == tl["records"]
    assert all(w["end"] - w["start"] == 60 for w in one_min)
    # About 20 requests/s: full minutes hold 1,100..1,300 requests.
    full = one_min[1:-1]
    assert full and all(1000 < w["figures"]["requests"] < 1400 for w in full)
    # The rule's score series reaches 1.0 at a finding whose value is the threshold.
    series = tl["scores"]["request_flood_ip"]
    first = next(p for p in series if p["score"] >= 1.0)
    assert first["at"] == "finding" and first["value"] == 800 and first["threshold"] == 800
    assert any(p["at"] == "batch_end" for p in series)
    # First decision: a block (dry-run) with the guard's reason; later ones refused in cooldown.
    decisions = [d for d in tl["decisions"] if d["detector"] == "request_flood_ip"]
    assert decisions[0]["action"] == "block" and decisions[0]["reason"] == "threshold"
    assert decisions[0]["t"] == first["t"]
    assert {d["reason"] for d in decisions[1:]} <= {"cooldown"}
    assert len(tl["findings"]) >= len(decisions)
    # The baseline learns at each 1-minute close: the closes carry the window's final figures.
    closes = [c for c in tl["window_closes"] if c["detector"] == "ip_surge"]
    assert closes
    by_start = {w["start"]: w["figures"]["requests"] for w in one_min}
    for c in closes:
        assert c["figures"]["requests"] == by_start[c["window_start"]]


def test_text_output_names_windows_scores_and_reasons(case: dict, capsys: pytest.CaptureFixture[str]) -> None:
    key = _flood(case, fastest=True)
    assert main(["explain", key, str(case["rec"]), "-c", str(case["cfg"]), "--key-type", "ip"]) == 0
    out = capsys.readouterr().out
    assert f"key {key} (ip):" in out
    assert "[1m]  requests=" in out
    assert "request_flood_ip" in out and "reached 1.0 at" in out
    assert "block   reason: threshold, 600 s" in out
    assert "refused reason: cooldown" in out


def test_hard_negative_is_seen_but_not_blocked(case: dict, capsys: pytest.CaptureFixture[str]) -> None:
    nat = next(k for k, s in case["labels"]["hard_negatives"]["ip"].items() if s == "nat_office")
    tl = _timeline(case, nat, capsys)["key_types"]["ip"]
    assert tl["records"] > 1000
    assert not [d for d in tl["decisions"] if d["action"] == "block"]
    peak = max(p["score"] for p in tl["scores"]["request_flood_ip"])
    assert 0.3 < peak < 1.0


def test_unknown_key_exits_1(case: dict, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["explain", "203.0.113.250", str(case["rec"]), "-c", str(case["cfg"])])
    assert rc == 1
    assert "'203.0.113.250' does not appear in the recordings as ip or user" in capsys.readouterr().err


def test_unknown_key_type_exits_2(case: dict, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["explain", "x", str(case["rec"]), "-c", str(case["cfg"]), "--key-type", "asn"])
    assert rc == 2
    assert "'asn' is not configured" in capsys.readouterr().err


def test_explain_sees_exactly_the_replay_decisions(
    case: dict, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Observing the engine changes nothing: the key's decisions equal a plain replay's."""
    key = _flood(case, fastest=True)
    out = tmp_path / "decisions.jsonl"
    assert main(["replay", str(case["rec"]), "-c", str(case["cfg"]), "--decisions-out", str(out), "-q"]) == 0
    capsys.readouterr()
    replayed = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [
        (d["detector"], d["event_time"], d["action"], d["reason"], d["score"])
        for d in replayed
        if d["key"] == key
    ]
    tl = _timeline(case, key, capsys)["key_types"]["ip"]
    explained = [
        (d["detector"], d["event_time"], d["action"], d["reason"], d["score"]) for d in tl["decisions"]
    ]
    assert mine and explained == mine


def test_bucket_resolution_configs_are_told_the_timeline_is_per_record(
    case: dict, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = _flood(case, fastest=True)
    cfg = tmp_path / "bucket.yaml"
    cfg.write_text(case["cfg"].read_text() + "\ntopology:\n  evaluate: bucket\n  hold_s: 2\n")
    assert main(["explain", key, str(case["rec"]), "-c", str(cfg), "--json"]) == 0
    captured = capsys.readouterr()
    assert "decides per 1 s bucket after a 2 s hold" in captured.err
    assert json.loads(captured.out)["resolution"] == "record"
    assert main(["explain", key, str(case["rec"]), "-c", str(case["cfg"]), "--json"]) == 0
    assert "bucket" not in capsys.readouterr().err
