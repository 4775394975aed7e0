from __future__ import annotations

import pytest

from consumer.pacing import Pacer, line_time


def test_pacer_waits_for_recorded_time_divided_by_speed() -> None:
    clock = {"t": 100.0}
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock["t"] += s

    p = Pacer(4.0, clock=lambda: clock["t"], sleep=sleep)
    p.wait_until(1000.0)  # the start: no wait
    p.wait_until(1008.0)  # 8 recorded seconds at 4x = 2 s
    clock["t"] += 5.0  # processing took longer than the pace: no wait
    p.wait_until(1012.0)
    p.wait_until(1001.0)  # earlier time: never waits
    assert slept == [pytest.approx(2.0)]


def test_bad_speed_and_line_time() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        Pacer(0)
    assert line_time(b"1671005351.148\t27.0.3.156\t...") == pytest.approx(1671005351.148)
    assert line_time(b"garbage\tline") is None
