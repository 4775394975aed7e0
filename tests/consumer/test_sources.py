"""Replay inputs: kind detection, gzip, recorded Kinesis records, and damage that must not stop a run."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from consumer.quarantine import Quarantine
from consumer.sources import detect_kind, open_input

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference-logs"
LINE = b"1671005351.148\t27.0.3.156\t0.001\t200\t2212\tGET\thttps\n"


def _ref(name: str) -> Path:
    path = REFERENCE / name
    assert path.exists(), f"reference sample missing: {path} (shared/ must sit beside the repository)"
    return path


def _recorded(records: list[bytes]) -> bytes:
    out = []
    for i, data in enumerate(records):
        out.append(
            json.dumps(
                {
                    "shard_id": "shardId-000000000000",
                    "sequence_number": str(1000 + i),
                    "partition_key": f"pk{i}",
                    "approximate_arrival_time": 1671005356.48 + i,
                    "data": base64.b64encode(data).decode(),
                }
            ).encode()
            + b"\n"
        )
    return b"".join(out)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("01_realtime_claygregory_kinesis-1-0.txt", "realtime"),
        ("04_standard_crowdsec_hub_aws-cloudfront-logs.log", "standard"),
        ("05_standard_clo_cloudfront.log", "standard"),
        ("06_realtime_clo_kinesis_lambda_event.json", "lambda-event"),
        ("07_realtime_clo_kinesis_record_data.bin", "realtime"),
        ("08_standard_logstash_aws_spec_cloudfront.tsv", "standard"),
    ],
)
def test_reference_samples_are_recognised(name: str, kind: str) -> None:
    assert open_input(_ref(name)).kind == kind


def test_realtime_header_is_read_and_not_passed_on_as_a_line() -> None:
    src = open_input(_ref("01_realtime_claygregory_kinesis-1-0.txt"))
    assert src.header_fields is not None and src.header_fields[:3] == [
        "timestamp",
        "c-ip",
        "time-to-first-byte",
    ]
    lines = list(src.lines())
    assert len(lines) == 1 and lines[0].startswith(b"16073743")


def test_lambda_event_yields_the_record_payload_and_its_metadata() -> None:
    src = open_input(_ref("06_realtime_clo_kinesis_lambda_event.json"))
    (rec,) = list(src.records())
    assert rec.partition_key == "8bc2091b-cbed-43f4-9a01-d20a7854d38c"
    assert rec.shard_id == "shardId-000000000000"
    assert rec.arrival_time == pytest.approx(1671005356.48)
    assert rec.data == _ref("07_realtime_clo_kinesis_record_data.bin").read_bytes()
    (line,) = list(src.lines())
    assert line.split(b"\t")[1] == b"27.0.3.156" and line.count(b"\t") == 44


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "no-extension"
    path.write_bytes(gzip.compress(LINE * 5))
    src = open_input(path)
    assert (src.kind, src.compressed) == ("realtime", True)
    assert [len(b) for b in src.batches(2)] == [2, 2, 1]


def test_recorded_records_are_deaggregated_and_bad_ones_quarantined(tmp_path: Path) -> None:
    agg = RecordAggregator()
    for i in range(3):
        agg.add_user_record(f"k{i}", LINE.replace(b"2212", str(i).encode()))
    _pk, _ehk, aggregated = agg.clear_and_get().get_contents()
    path = tmp_path / "rec.jsonl.gz"
    body = _recorded([LINE, aggregated]) + b'{"data": "not base64!!"}\n' + b"{broken json\n"
    path.write_bytes(gzip.compress(body))
    q = Quarantine()
    src = open_input(path, quarantine=q)
    assert src.kind == "recorded"
    lines = list(src.lines())
    assert [line.split(b"\t")[4] for line in lines] == [b"2212", b"0", b"1", b"2"]
    assert q.counts == {"bad_recorded_record": 2}


def test_truncated_gzip_keeps_what_was_readable_and_counts_the_damage(tmp_path: Path) -> None:
    blob = gzip.compress(b"".join(LINE.replace(b"2212", str(i).encode()) for i in range(20000)))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    q = Quarantine()
    src = open_input(path, quarantine=q)
    assert src.kind == "realtime"
    lines = list(src.lines())
    assert 0 < len(lines) < 20000
    assert q.counts == {"truncated_input": 1}


def test_over_long_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "long.tsv"
    path.write_bytes(LINE + b"x" * 3_000_000 + b"\n" + LINE)
    q = Quarantine()
    lines = list(open_input(path, quarantine=q, max_line_bytes=1_048_576).lines())
    assert lines == [LINE, LINE]
    assert q.counts == {"too_long": 1}


def test_empty_and_binary_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert open_input(empty).kind == "empty"
    assert list(open_input(empty).batches(10)) == []
    binary = tmp_path / "bin"
    binary.write_bytes(bytes(range(256)) * 40)
    src = open_input(binary)
    # Garbage is handed to the real-time parser, which counts it as malformed; the source never raises.
    assert src.kind == "realtime"
    assert sum(len(line) for line in src.lines()) == 256 * 40


def test_detect_kind_on_headerless_standard_and_recorded() -> None:
    assert detect_kind(b"2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\n") == "standard"
    assert detect_kind(b'{"data": "YQ=="}\n') == "recorded"
    assert detect_kind(b"\n\n  \n") == "empty"


def test_quarantine_keeps_a_bounded_escaped_sample(tmp_path: Path) -> None:
    path = tmp_path / "q" / "bad.jsonl"
    q = Quarantine(path, max_samples=2)
    q.add("field_count", b'evil\n{"forged": 1}\x1b[31m', "s3://x")
    q.add("too_long", b"y" * 10_000, "f")
    q.add("field_count", b"third", "f")
    q.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["line"] == 'evil\n{"forged": 1}\x1b[31m' and rows[0]["source"] == "s3://x"
    assert rows[1]["length"] == 10_000 and len(rows[1]["line"]) == 4096
    assert q.counts == {"field_count": 2, "too_long": 1}
