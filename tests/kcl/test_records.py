"""Decoding the daemon's records: base64, KPL de-aggregation, positions compared as numbers."""

from __future__ import annotations

from aws_kinesis_agg.aggregator import RecordAggregator

from consumer.kcl.records import decode, parse_position, position
from tests.kcl.protocol import line, record


def test_plain_records_and_positions() -> None:
    d = decode([record(9, line(1, "a")), record(10, line(2, "b"))], after=None)
    assert d.lines == [line(1, "a"), line(2, "b")]
    assert d.positions == [(9, 0), (10, 0)]  # as ints: "9" > "10" as strings


def test_kpl_aggregated_record_is_split_with_sub_sequence_numbers() -> None:
    agg = RecordAggregator()
    for i in range(5):
        agg.add_user_record(f"pk{i}", line(i, f"10.0.0.{i}"))
    _pk, _ehk, data = agg.clear_and_get().get_contents()
    rec = record(123, data)
    d = decode([rec], after=None)
    assert d.lines == [line(i, f"10.0.0.{i}") for i in range(5)]
    assert d.positions == [(123, i) for i in range(5)]
    # Restored state covered (123, 2): only sub-records 3 and 4 remain.
    d = decode([rec], after=(123, 2))
    assert d.positions == [(123, 3), (123, 4)] and d.skipped == 3


def test_bad_base64_is_counted_not_fatal() -> None:
    bad = record(5, b"x")
    bad["data"] = "***not base64***"
    d = decode([bad, record(6, line(1, "a"))], after=None)
    assert d.undecodable == 1 and d.positions == [(6, 0)]


def test_fake_magic_prefix_is_kept_whole() -> None:
    from aws_kinesis_agg import MAGIC

    data = MAGIC + b"not protobuf at all, and a wrong digest.................."
    d = decode([record(1, data)], after=None)
    assert d.lines == [data]


def test_parse_position() -> None:
    assert parse_position(None, 0) is None
    assert parse_position("TRIM_HORIZON", 0) is None
    assert parse_position("SHARD_END", 0) is None
    assert parse_position("4959", 3) == (4959, 3)
    assert position("12", None) == (12, 0)
