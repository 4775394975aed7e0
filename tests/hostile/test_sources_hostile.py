"""Hostile replay inputs: the recorded-stream reader and kind detection never raise, and count damage.

Every non-blank input line of a recording comes out either as a record or as a quarantine count;
a hostile file (deep JSON, giant numbers, odd types, truncated gzip) ends in counts, never in a
traceback that stops a replay.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

from aws_kinesis_agg import MAGIC
from hypothesis import given
from hypothesis import strategies as st

from consumer.quarantine import Quarantine
from consumer.sources import detect_kind, open_input
from tests.hostile._settings import fuzz_settings

SETTINGS = fuzz_settings(200)
DEEP = b"[" * 100_000 + b"]" * 100_000
REAL = (
    b"1764158400.123\t203.0.113.9\t200\tGET\thttps\td1.cloudfront.net\t/index.html\t-\tHIO52-P4\t"
    b"abc==\t0.001\tHTTP/2.0\tIPv4\tcurl/8\t-\t-\t-\tHit\t-\t-\tHit\t0.001\t-\t-\t-\t-\t-\t-\t-\t-\t"
    b"-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n"
)


def _consume(path: Path) -> tuple[str, int, Quarantine]:
    q = Quarantine()
    source = open_input(path, quarantine=q)
    n = sum(len(b) for b in source.batches(64))
    return source.kind, n, q


def _recorded(data: bytes, **meta: object) -> bytes:
    return (json.dumps({"data": base64.b64encode(data).decode(), **meta}) + "\n").encode()


def test_deeply_nested_json_is_counted_not_raised(tmp_path: Path) -> None:
    p = tmp_path / "deep.jsonl"
    p.write_bytes(_recorded(REAL) + DEEP + b"\n" + _recorded(REAL))
    kind, n, q = _consume(p)
    assert (kind, n, dict(q.counts)) == ("recorded", 2, {"bad_recorded_record": 1})
    # Deep nesting on the first line: kind detection survives it (a JSON-less file reads as real-time).
    assert detect_kind(b'{"data": ' + DEEP + b"}\n") == "realtime"


def test_lambda_event_deeply_nested_or_wrongly_typed_is_counted(tmp_path: Path) -> None:
    cases = {
        b'{"Records": ' + DEEP + b"}": "bad_lambda_event",
        b'{"Records": 5}': "bad_lambda_event",
        b'{"Records": "abc"}': "bad_lambda_event",
        b'{"Records": [7, {"kinesis": []}, {"eventID": 1, "kinesis": {"data": "@@"}}]}': (
            "bad_recorded_record"
        ),
    }
    for i, (content, reason) in enumerate(cases.items()):
        p = tmp_path / f"ev{i}.json"
        p.write_bytes(content)
        kind, n, q = _consume(p)
        assert kind == "lambda-event" and n == 0 and set(q.counts) == {reason}, content[:40]


def test_odd_metadata_types_are_dropped_not_trusted(tmp_path: Path) -> None:
    p = tmp_path / "meta.jsonl"
    p.write_bytes(
        _recorded(REAL, approximate_arrival_time=10**400, shard_id={"a": 1}, sequence_number=5)
        + _recorded(REAL, approximate_arrival_time=float("nan"), partition_key=["x"])
        + _recorded(REAL, approximate_arrival_time=True)
    )
    q = Quarantine()
    recs = list(open_input(p, quarantine=q).records())
    assert [r.arrival_time for r in recs] == [None, None, None]
    assert {(r.shard_id, r.sequence_number, r.partition_key) for r in recs} == {(None, None, None)}
    ev = tmp_path / "ev.json"
    item = {"eventID": 12, "kinesis": {"data": base64.b64encode(REAL).decode(), "sequenceNumber": 9,
                                        "approximateArrivalTimestamp": 10**400}}  # fmt: skip
    ev.write_text(json.dumps({"Records": [item]}))
    (rec,) = open_input(ev, quarantine=q).records()
    assert (rec.shard_id, rec.sequence_number, rec.arrival_time, rec.data) == (None, None, None, REAL)
    assert q.total == 0


_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**400), 10**400), st.floats(), st.text(max_size=20)
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_b64 = st.one_of(
    st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=200).map(lambda b: base64.b64encode(MAGIC + b).decode()),  # KPL-looking garbage
    st.text(max_size=40),  # mostly invalid base64
)
_record_obj = st.fixed_dictionaries(
    {"data": st.one_of(_b64, _json)},
    optional={
        "approximate_arrival_time": _json,
        "shard_id": _json,
        "sequence_number": _json,
        "partition_key": _json,
    },
)
_record_line = st.one_of(
    _record_obj.map(lambda o: json.dumps(o).encode()),
    _record_obj.map(lambda o: json.dumps(o).encode()[: len(json.dumps(o)) // 2]),  # cut mid-object
    _json.map(lambda o: json.dumps(o).encode()),
    # (a "#Fields:" line near the top makes a file a log with a header, by design: not generated here)
    st.binary(max_size=120).filter(lambda b: b"\n" not in b and b"\r" not in b and b"#" not in b),
)


@SETTINGS
@given(lines=st.lists(_record_line, min_size=1, max_size=12), gz=st.booleans())
def test_random_and_near_valid_recordings_never_raise_and_count_everything(
    tmp_path_factory, lines: list[bytes], gz: bool
) -> None:
    first = _recorded(REAL).rstrip(b"\n")  # so the file is detected as a recording
    content = b"\n".join([first, *lines]) + b"\n"
    p = tmp_path_factory.mktemp("rec") / "r.jsonl"
    p.write_bytes(gzip.compress(content) if gz else content)
    q = Quarantine()
    source = open_input(p, quarantine=q)
    assert source.kind == "recorded"
    recs = list(source.records())
    non_blank = sum(1 for x in content.split(b"\n") if x.strip())
    assert len(recs) + q.counts["bad_recorded_record"] == non_blank
    for r in recs:
        assert r.arrival_time is None or r.arrival_time == r.arrival_time  # finite or absent
        assert all(v is None or isinstance(v, str) for v in (r.shard_id, r.sequence_number, r.partition_key))
    list(source.lines())  # de-aggregation of KPL-looking garbage never raises either


@SETTINGS
@given(head=st.binary(max_size=400) | st.lists(_record_line, max_size=3).map(b"\n".join))
def test_detect_kind_never_raises(head: bytes) -> None:
    assert detect_kind(head) in {"realtime", "standard", "recorded", "lambda-event", "empty"}


def test_truncated_gzip_at_every_offset(tmp_path: Path) -> None:
    lines = [_recorded(REAL, sequence_number=str(i)) for i in range(6)]
    for kind_file, payload in (("recorded", b"".join(lines)), ("realtime", REAL * 6)):
        whole = gzip.compress(payload, mtime=0)
        for cut in range(len(whole)):
            p = tmp_path / f"{kind_file}-{cut}.gz"
            p.write_bytes(whole[:cut])
            kind, n, q = _consume(p)
            assert n <= 6
            if cut >= 2:
                # Cut short: the damage is counted, whatever was readable was read.
                assert q.counts["truncated_input"] + q.counts["bad_recorded_record"] >= 1 or n == 6, cut
        p = tmp_path / f"{kind_file}-whole.gz"
        p.write_bytes(whole)
        kind, n, q = _consume(p)
        assert (kind, n, q.total) == (kind_file, 6, 0)
