"""The lazily decoded ``cs-headers`` column behaves as the list of its values would."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.fields import ALL_45
from consumer.realtime import CHUNK, RealtimeParser
from consumer.scan_texts import ScannedTexts
from detectors.batch import RecordBatch
from detectors.engine import _slice
from tests.consumer.test_scan import line


def _column(values: list[str | None]) -> ScannedTexts:
    fields = [b"-" if v is None else v.encode() for v in values]
    col = (
        RealtimeParser(ALL_45, ("cs-headers",))
        .parse([line(cs_headers=f) for f in fields])
        .batch.texts["cs-headers"]
    )
    assert isinstance(col, ScannedTexts)
    return col


def _values(n: int) -> list[str | None]:
    return [None if i % 7 == 3 else f"host:h{i}%0Ax-api-key:k{i % 5}%0A" for i in range(n)]


def test_values_indexing_iteration_and_missing_fields() -> None:
    values = _values(2 * CHUNK + 5)  # three chunks: three segments
    col = _column(values)
    assert len(col.segments) == 3 and len(col) == len(values)
    assert list(col) == values and col == values and values == col
    assert col[0] == values[0] and col[3] is None and col[-1] == values[-1]
    assert col[CHUNK] == values[CHUNK] and col[2 * CHUNK + 4] == values[2 * CHUNK + 4]
    assert col != values[:-1] and col != [*values[:-1], "other"]
    for bad in (len(values), -len(values) - 1):
        try:
            col[bad]
        except IndexError:
            pass
        else:
            raise AssertionError(f"index {bad} did not raise")


@settings(max_examples=200, deadline=None)
@given(st.integers(-40, 40), st.integers(-40, 40), st.sampled_from([None, 1, 2, -1, 3]))
def test_slices_are_the_lists_slices(start: int, stop: int, step: int | None) -> None:
    values = _values(37)
    col = _column(values)
    # Three segments of a small column: the same values parsed in three parse_columns chunks.
    multi = ScannedTexts(
        [(b, s[a:z], e[a:z]) for (b, s, e) in col.segments for a, z in ((0, 10), (10, 11), (11, 37))]
    )
    for c in (col, multi):
        assert list(c[start:stop:step]) == values[start:stop:step]


def test_pickles_as_its_values_without_the_buffers() -> None:
    values = _values(300)
    col = _column(values)
    data = pickle.dumps(col)
    assert pickle.loads(data) == values and type(pickle.loads(data)) is list
    assert len(data) < sum(len(v or "") for v in values) + 3000  # not the 300 whole lines


def test_engine_batch_slices_keep_the_values() -> None:
    values = _values(CHUNK + 50)
    col = _column(values)
    b = RecordBatch(time=np.zeros(len(values)), texts={"cs-headers": col})
    part = _slice(b, CHUNK - 20, CHUNK + 30)
    assert list(part.texts["cs-headers"]) == values[CHUNK - 20 : CHUNK + 30]
