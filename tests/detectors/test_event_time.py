"""event_time.admit: which records count, the counters, and the watermark it returns."""

from __future__ import annotations

import math

import numpy as np

from detectors.event_time import admit


def counters() -> dict[str, int]:
    return dict.fromkeys(("records", "late_accepted", "late_dropped", "bad_time", "future_dropped"), 0)


def test_late_within_lateness_counts_beyond_it_is_dropped_and_nan_is_bad_time() -> None:
    c = counters()
    t = np.array([100.0, 110.0, 95.0, 70.0, math.nan, 111.0])
    ok, wm = admit(t, -math.inf, 30.0, 3600.0, c)
    # 95 is 15 s behind 110 (accepted), 70 is 40 s behind (dropped), NaN never counts
    assert ok.tolist() == [True, True, True, False, False, True]
    assert wm == 111.0
    assert c == {"records": 6, "late_accepted": 1, "late_dropped": 1, "bad_time": 1, "future_dropped": 0}


def test_lateness_is_measured_against_the_watermark_brought_in() -> None:
    c = counters()
    ok, wm = admit(np.array([50.0, 80.0]), 100.0, 30.0, 3600.0, c)
    assert ok.tolist() == [False, True] and wm == 100.0
    assert c["late_dropped"] == 1 and c["late_accepted"] == 1


def test_a_lone_far_future_record_is_dropped_but_a_whole_batch_jump_is_kept() -> None:
    c = counters()
    t = np.array([1000.0 + i for i in range(150)] + [1e9])
    ok, wm = admit(t, 990.0, 30.0, 3600.0, c)
    assert not ok[-1] and ok[:-1].all() and wm == 1149.0 and c["future_dropped"] == 1

    c = counters()
    jump = 1000.0 + 3 * 86400
    ok, wm = admit(np.array([jump, jump + 1]), 1000.0, 30.0, 3600.0, c)
    assert ok.all() and wm == jump + 1 and c["future_dropped"] == 0
