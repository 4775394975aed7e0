"""``cfguard replay`` end to end: real inputs through the real pipeline, summary and exit codes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from consumer.cli import main

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference-logs"


def _sample07() -> list[bytes]:
    path = REFERENCE / "07_realtime_clo_kinesis_record_data.bin"
    assert path.exists(), f"reference sample missing: {path} (shared/ must sit beside the repository)"
    return path.read_bytes().rstrip(b"\n").split(b"\t")


def _line(t: float, ip: str, uid: str | None, status: int = 200, size: int = 2212) -> bytes:
    f = _sample07()
    f[0], f[1], f[3], f[4] = f"{t:.3f}".encode(), ip.encode(), str(status).encode(), str(size).encode()
    f[18] = f"uid={uid}".encode() if uid else b"-"
    return b"\t".join(f) + b"\n"


def test_replay_counts_parsed_malformed_and_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [_line(1671005351.0 + i, f"10.0.0.{i % 7}", f"u{i % 3}" if i % 4 else None) for i in range(40)]
    lines += [b"garbage line\n", b"1671005351.0\tnot-enough-fields\n", b"\xff\xfe\x00binary\n"]
    src = tmp_path / "rt.tsv.gz"
    src.write_bytes(gzip.compress(b"".join(lines)))
    summary = tmp_path / "summary.json"
    quarantine = tmp_path / "bad.jsonl"
    rc = main(["replay", str(src), "--summary-out", str(summary), "--quarantine", str(quarantine)])
    assert rc == 0
    s = json.loads(summary.read_text())
    assert (s["records"], s["parsed"], s["malformed"]) == (43, 40, 3)
    assert sum(s["malformed_by_reason"].values()) == 3
    assert s["keys"]["ip"]["records_with_key"] == 40
    assert s["keys"]["user"]["records_with_key"] == 30
    assert s["keys"]["user"]["records_without_key"] == 10
    assert s["records_per_s"] > 0 and "decisions" in s
    assert len(quarantine.read_text().splitlines()) == 3
    assert "cfguard replay summary" in capsys.readouterr().out


def test_replay_reads_standard_logs_and_lambda_events(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    rc = main(
        [
            "replay",
            str(REFERENCE / "05_standard_clo_cloudfront.log"),
            str(REFERENCE / "06_realtime_clo_kinesis_lambda_event.json"),
            "--summary-out",
            str(summary),
            "-q",
        ]
    )
    assert rc == 0
    s = json.loads(summary.read_text())
    assert s["inputs"] == {
        str(REFERENCE / "05_standard_clo_cloudfront.log"): "standard",
        str(REFERENCE / "06_realtime_clo_kinesis_lambda_event.json"): "lambda-event",
    }
    assert (s["records"], s["parsed"], s["malformed"]) == (3, 3, 0)


def test_replay_refuses_an_invalid_config_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("input:\n  batch_size: 0\n")
    src = tmp_path / "x.tsv"
    src.write_bytes(_line(1671005351.0, "10.0.0.1", "u1"))
    assert main(["replay", str(src), "--config", str(cfg)]) == 2
    assert "input.batch_size" in capsys.readouterr().err


def test_replay_of_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nope.tsv")]) == 2
    assert "input not found" in capsys.readouterr().err


def test_replay_of_empty_and_truncated_inputs_exits_zero(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    blob = gzip.compress(b"".join(_line(1671005351.0 + i, "10.0.0.1", "u1") for i in range(3000)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    summary = tmp_path / "s.json"
    assert main(["replay", str(empty), str(cut), "--summary-out", str(summary), "-q"]) == 0
    s = json.loads(summary.read_text())
    assert s["malformed_by_reason"].get("truncated_input") == 1
    assert 0 < s["parsed"] < 3000


def test_replay_reads_an_s3_prefix_in_time_order(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cf-logs")
    standard = (REFERENCE / "05_standard_clo_cloudfront.log").read_bytes()
    # Uploaded newest first: the replay must still read the 21:00 file before the 22:00 one.
    s3.put_object(Bucket="cf-logs", Key="cf/E2EX.2022-11-01-22.bbbb.gz", Body=gzip.compress(standard))
    s3.put_object(Bucket="cf-logs", Key="cf/E2EX.2022-11-01-21.aaaa.gz", Body=gzip.compress(standard))
    s3.put_object(Bucket="cf-logs", Key="other/E2EX.2022-11-01-20.cccc.gz", Body=b"not ours")
    summary = tmp_path / "s.json"
    assert main(["replay", "s3://cf-logs/cf/", "--summary-out", str(summary), "-q"]) == 0
    s = json.loads(summary.read_text())
    assert list(s["inputs"]) == [
        "s3://cf-logs/cf/E2EX.2022-11-01-21.aaaa.gz",
        "s3://cf-logs/cf/E2EX.2022-11-01-22.bbbb.gz",
    ]
    assert set(s["inputs"].values()) == {"standard"}
    assert (s["parsed"], s["malformed"]) == (4, 0)
    assert main(["replay", "s3://cf-logs/nothing-here/", "-q"]) == 2
