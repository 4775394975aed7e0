"""``cfguard tune`` on generated traffic: sweeps through the real pipeline, scored against labels."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from consumer.cli import main
from tests.consumer.tune_fixtures import load_labels, make


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("tune")
    rec, labels, cfg = make(tmp)
    out_json, out_png = tmp / "report.json", tmp / "report.png"
    rc = main(
        [
            "tune", str(rec), "--config", str(cfg), "--labels", str(labels),
            "--sweep", "request_flood_ip.threshold=200:2000:10",
            "--out-json", str(out_json), "--out-png", str(out_png), "-q",
        ]
    )  # fmt: skip
    assert rc == 0
    return {"report": json.loads(out_json.read_text()), "png": out_png, "labels": load_labels(labels)}


def test_recommended_threshold_catches_every_flood_and_no_hard_negative(tuned: dict) -> None:
    sweep = tuned["report"]["sweeps"][0]
    rec = sweep["recommended"]
    assert rec is not None
    row = sweep["rows"][rec["index"]]
    floods = {k for k, s in tuned["labels"]["ip"].items() if s == "request_flood"}
    assert len(floods) == 3
    assert row["true_positives"] == 3 and row["recall"] == 1.0
    assert row["false_positives"] == 0 and row["hard_negatives_blocked"] == []
    assert row["blocked"]["ip"] == 3
    # The NAT office (hard negative) is blocked at the lowest thresholds: the sweep sees the trade-off.
    assert sweep["rows"][0]["false_positives_hard_negative"] == 1
    assert sweep["rows"][0]["hard_negatives_blocked"] == ["nat_office"]
    # The slowest flood (20/s = 1200/min) escapes the highest thresholds.
    assert sweep["rows"][-1]["true_positives"] == 2
    # Ties are resolved to the middle of the values that do as well.
    assert rec["value"] == rec["tied_values"][(len(rec["tied_values"]) - 1) // 2]
    assert 600 <= rec["value"] <= 1200


def test_report_fields(tuned: dict) -> None:
    rep = tuned["report"]
    assert rep["format"] == "cfguard-tune-report/1"
    assert rep["max_false_block_rate"] == 0.0
    sweep = rep["sweeps"][0]
    assert (sweep["detector"], sweep["param"], sweep["key_type"]) == ("request_flood_ip", "threshold", "ip")
    assert [r["value"] for r in sweep["rows"]] == [200 + 200 * i for i in range(10)]
    for r in sweep["rows"]:
        assert r["true_positives"] + r["false_positives"] + r["accomplices_flagged"] == r["flagged"]
        assert r["abusive_keys"] == r["abusive_keys_seen"] == 3
        assert r["innocent_keys_seen"] > 100
        ttd = r["time_to_detect_s"]
        assert ttd["n"] == r["true_positives"]
        if ttd["n"]:
            assert 0 < ttd["median"] <= ttd["max"] < 240
    # Time to detect grows with the threshold (a flood needs longer to reach it).
    meds = [r["time_to_detect_s"]["median"] for r in sweep["rows"][:6]]
    assert meds == sorted(meds)
    # 200 requests at 80/s: the fastest flood is caught within seconds of its start.
    assert sweep["rows"][0]["time_to_detect_s"]["median"] < 15
    assert sweep["rows"][0]["per_scenario"]["request_flood"] == {"caught": 3, "labelled": 3, "seen": 3}


def test_png_is_written(tuned: dict) -> None:
    data = tuned["png"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 600 <= width <= 2000 and 300 <= height <= 1500
    assert len(data) > 20_000  # lines, labels and legend, not an empty canvas


def test_without_labels_counts_flagged_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec, _, cfg = make(tmp_path)
    out = tmp_path / "r.json"
    rc = main(["tune", str(rec), "-c", str(cfg), "--sweep", "request_flood_ip.threshold=100:6000:2",
               "--out-json", str(out)])  # fmt: skip
    assert rc == 0
    rows = json.loads(out.read_text())["sweeps"][0]["rows"]
    assert [r["flagged"] for r in rows] == [4, 0]
    assert "true_positives" not in rows[0]
    assert "no labels" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ("request_flood_ip.threshold", "no '='"),
        ("request_flood_ip=1:2:3", "DETECTOR.PARAM"),
        ("nosuch.threshold=1:2:3", "'nosuch'"),
        ("request_flood_ip.threshold=1:2", "FROM:TO:STEPS"),
        ("request_flood_ip.threshold=a:2:3", "'a'"),
        ("request_flood_ip.threshold=1:2:x", "'x'"),
        ("request_flood_ip.threshold=1:2:0", "STEPS must be 1..1000"),
        ("request_flood_ip.nosuch=1:2:3", "no parameter 'nosuch'"),
        ("request_flood_ip.metric=1:2:3", "not numeric"),
        ("request_flood_ip.threshold=-5:10:2", "candidate request_flood_ip.threshold=-5.0"),
    ],
)
def test_bad_sweeps_exit_2_naming_the_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sweep: str, named: str
) -> None:
    cfg = tmp_path / "cfg.yaml"
    from tests.consumer.tune_fixtures import CONFIG

    cfg.write_text(CONFIG)
    rec = tmp_path / "rec.tsv"
    rec.write_text("")
    assert main(["tune", str(rec), "-c", str(cfg), "--sweep", sweep]) == 2
    err = capsys.readouterr().err
    assert named in err, err


def test_scenarios_restricts_the_abuse_to_catch(tmp_path: Path) -> None:
    """With --scenarios, other scenarios' abusive keys count on neither side; unknown names: exit 2."""
    rec, labels, cfg = make(tmp_path)
    data = json.loads(labels.read_text())
    # Relabel the fastest flood as another scenario: it no longer counts as abuse to catch.
    other = sorted(k for k, s in data["ip"].items() if s == "request_flood")[0]
    data["ip"][other] = "other_abuse"
    labels.write_text(json.dumps(data))
    out = tmp_path / "r.json"
    rc = main(["tune", str(rec), "-c", str(cfg), "--labels", str(labels), "--scenarios", "request_flood",
               "--sweep", "request_flood_ip.threshold=600:600:1", "--out-json", str(out), "-q"])  # fmt: skip
    assert rc == 0
    sweep = json.loads(out.read_text())["sweeps"][0]
    row = sweep["rows"][0]
    assert sweep["scenarios"] == ["request_flood"]
    assert (row["true_positives"], row["false_positives"], row["accomplices_flagged"]) == (2, 0, 1)
    assert row["abusive_keys"] == 2 and row["recall"] == 1.0
    assert main(["tune", str(rec), "-c", str(cfg), "--labels", str(labels), "--scenarios", "nosuch",
                 "--sweep", "request_flood_ip.threshold=600:600:1"]) == 2  # fmt: skip


def test_shipped_sample_and_example_config(tmp_path: Path) -> None:
    """The shipped generated sample (every scenario, every hard negative) with the example config:
    each recommended threshold catches every key of its detector's scenario and no hard negative."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "r.json"
    rc = main(
        [
            "tune", str(root / "consumer/data/sample-realtime.tsv.gz"),
            "-c", str(root / "examples/cfguard.yaml"),
            "--labels", str(root / "consumer/data/sample-realtime.labels.json"),
            "--sweep", "request_flood_ip.threshold=500:6000:4",
            "--sweep", "bandwidth_hog_hourly.threshold=1e9:2e10:6",
            "--out-json", str(out), "-q",
        ]
    )  # fmt: skip
    assert rc == 0
    flood, hog = json.loads(out.read_text())["sweeps"]
    for sweep, scenario in ((flood, "request_flood"), (hog, "bandwidth_hog")):
        rec = sweep["recommended"]
        assert rec is not None, sweep["detector"]
        row = sweep["rows"][rec["index"]]
        assert row["per_scenario"][scenario]["caught"] == row["per_scenario"][scenario]["seen"] >= 1
        assert row["false_positives"] == 0 and row["hard_negatives_blocked"] == []
    # The hourly bandwidth cap above the hog's volume catches nobody.
    assert hog["rows"][-1]["flagged"] == 0
