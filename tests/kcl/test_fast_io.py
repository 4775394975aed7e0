"""The msgspec reader of the daemon's messages decides exactly as amazon_kclpy's decoding does."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from amazon_kclpy import dispatch, messages
from aws_kinesis_agg.aggregator import RecordAggregator
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.kcl.fast_io import FastIOHandler, FastProcessRecordsInput, KinesisRecord
from consumer.kcl.records import decode
from tests.kcl.protocol import checkpoint_reply, initialize, line, record

SEQ = 49_600_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000  # 56 digits


def _aggregated(n: int) -> bytes:
    agg = RecordAggregator()
    for i in range(n):
        agg.add_user_record(f"pk{i}", line(i, f"10.0.0.{i}"))
    return agg.clear_and_get().get_contents()[2]


def _message(records: list[dict[str, Any]], behind: int | None = 7) -> bytes:
    return json.dumps({"action": "processRecords", "records": records, "millisBehindLatest": behind}).encode()


def _both(msg: bytes) -> tuple[Any, Any]:
    handler = FastIOHandler(io.BytesIO(), io.StringIO(), io.StringIO())
    return handler.load_action(msg), json.loads(msg, object_hook=dispatch.message_decode)


_data = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 4).map(_aggregated),
    st.just(b"\xf3\x89\x9a\xc2garbage after the KPL magic"),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_data, st.sampled_from([None, 0, 3])), max_size=12),
    st.one_of(st.none(), st.tuples(st.integers(0, 14), st.integers(0, 4))),
)
def test_records_decode_as_amazon_kclpys(items: list[tuple[bytes, int | None]], after: Any) -> None:
    recs = []
    for i, (data, sub) in enumerate(items):
        r = record(SEQ + i, data)
        r["subSequenceNumber"] = sub
        recs.append(r)
    fast, ref = _both(_message(recs))
    assert isinstance(fast, FastProcessRecordsInput) and isinstance(ref, messages.ProcessRecordsInput)
    assert all(type(r) is KinesisRecord for r in fast.records)
    assert fast.millis_behind_latest == ref.millis_behind_latest == 7
    assert fast.action == ref.action == "processRecords"
    cut = None if after is None else (SEQ + after[0], after[1])
    got, want = decode(fast.records, cut), decode(ref.records, cut)
    assert (got.lines, got.positions, got.skipped, got.undecodable) == (
        want.lines,
        want.positions,
        want.skipped,
        want.undecodable,
    )
    if recs:  # what the processor reads of the last record
        for name in ("sequenceNumber", "subSequenceNumber"):
            assert fast.records[-1].get(name) == ref.records[-1].get(name)


def test_a_record_that_is_not_base64_sends_the_message_down_the_reference_path() -> None:
    bad = record(SEQ + 1, b"x")
    bad["data"] = "***not base64***"
    msg = _message([record(SEQ, line(1, "a")), bad, record(SEQ + 2, line(2, "b"))])
    fast, _ = _both(msg)
    assert type(fast) is messages.ProcessRecordsInput  # amazon_kclpy's own
    d = decode(fast.records, None)
    assert d.undecodable == 1 and d.lines == [line(1, "a"), line(2, "b")]
    assert d.positions == [(SEQ, 0), (SEQ + 2, 0)]


def test_other_messages_and_text_lines_are_amazon_kclpys() -> None:
    handler = FastIOHandler(io.BytesIO(), io.StringIO(), io.StringIO())
    init = handler.load_action(json.dumps(initialize("shardId-000000000001", "7")))
    assert isinstance(init, messages.InitializeInput) and init.shard_id == "shardId-000000000001"
    reply = handler.load_action(json.dumps(checkpoint_reply(error="ThrottlingException")).encode())
    assert isinstance(reply, messages.CheckpointInput) and reply.error == "ThrottlingException"
    text = _message([record(SEQ, line(1, "a"))]).decode()
    fast = handler.load_action(text)
    assert isinstance(fast, FastProcessRecordsInput) and fast.records[0].data == line(1, "a")
    assert base64.b64encode(fast.records[0].data).decode() == json.loads(text)["records"][0]["data"]


def test_written_lines_are_what_the_daemon_reads() -> None:
    out = io.StringIO()
    FastIOHandler(io.BytesIO(), out, io.StringIO()).write_action({"action": "status", "responseFor": "x"})
    assert out.getvalue() == '\n{"action": "status", "responseFor": "x"}\n'
