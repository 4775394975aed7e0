from __future__ import annotations

import io

from consumer.dashboard import Dashboard, TopKeys, View

BLOCK = {
    "action": "block", "key_type": "ip", "key": "203.0.113.9", "detector": "request_flood_ip",
    "score": 1.25, "reason": "threshold", "event_time": "2026-11-26T20:00:05.000Z",
    "evidence": {"requests": 1250, "window": "1m"},
}  # fmt: skip


def view() -> View:
    return View(elapsed_s=12, duration_s=90, phase="streaming", sent=5000, processed=4200, send_rate=200,
                process_rate=180, millis_behind=1500, shards={"shardId-0": {"records": 4200}},
                top_ips=[("203.0.113.9", 900)], decisions=[BLOCK], lambda_calls=1, blocklist=1)  # fmt: skip


def test_tty_frame_redraws_in_place_with_every_figure() -> None:
    out = io.StringIO()
    Dashboard(out, tty=True).show(view())
    text = out.getvalue()
    assert text.startswith("\x1b[H\x1b[2J")
    for expected in ["5,000", "4,200", "lag 1.5 s", "backlog 800", "shardId-0: 4,200", "1 invocations",
                     "203.0.113.9", "request_flood_ip", "1.25x", "requests=1,250"]:  # fmt: skip
        assert expected in text, expected


def test_plain_mode_prints_each_decision_once_and_periodic_lines() -> None:
    out = io.StringIO()
    d = Dashboard(out, tty=False, plain_every_s=5)
    v = view()
    d.show(v, now=100.0)
    d.show(v, now=101.0)  # same decision, within 5 s: nothing new
    d.show(v, now=106.0)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("decision:") for line in lines) == 1
    assert sum(line.startswith("[") for line in lines) == 2
    assert "\x1b" not in out.getvalue()


def test_top_keys_slide() -> None:
    t = TopKeys(ticks=2)
    t.add([b"1.0\t10.0.0.1\tx\n"] * 3)
    t.add([b"1.0\t10.0.0.2\tx\n"] * 2)
    assert t.top() == [("10.0.0.1", 3), ("10.0.0.2", 2)]
    t.add([b"1.0\t10.0.0.2\tx\n"])
    assert t.top() == [("10.0.0.2", 3)]
