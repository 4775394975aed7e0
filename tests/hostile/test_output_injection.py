"""Hostile key values (cookies, query arguments, headers, x-forwarded-for) cannot forge a line or break
the JSON of anything cfguard writes: alert lines, decision lines, block payloads, quarantine samples
and log records. Assertions are on the bytes written: one JSON object per line, printable ASCII only.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from actions.alert import AlertSink
from actions.config import AlertConfig
from actions.lambda_action import build_payload
from actions.pseudonym import Pseudonymiser
from consumer.config import Config
from consumer.fields import CATALOG
from consumer.pipeline import Pipeline
from consumer.quarantine import Quarantine
from tests.hostile._settings import fuzz_settings

T0 = 1_764_158_400.0
NASTY = [
    "a\nb",
    "a\r\nFAKE 2026-11-26 ERROR forged line",
    "\x1b[31mred\x1b[0m\x07",
    "\x00nul",
    'quote"brace}{"x":1',
    "\\u000a",
    "line\u2028sep\u2029para\u0085nel",
    "\u202eevil-bidi",
    "\ud800" if False else "\U0001f600emoji",
    "%ZZ%%%0",
    "%",
    "x" * 100_000,
]
_hostile = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.text(st.sampled_from('\r\n\t\x1b\x00%\\";={}[] \u2028\x85\x7fA'), min_size=1, max_size=30),
)


def _config(tmp_path: Path, *, log_keys: bool = False) -> Config:
    rule = {"type": "rule", "window": "1m", "metric": "requests", "threshold": 2, "mode": "block"}
    return Config.model_validate(
        {
            "input": {"max_line_bytes": 1_048_576},
            "keys": [
                {"name": "ip", "source": "c-ip"},
                {"name": "user", "source": "cookie", "param": "uid"},
                {"name": "q", "source": "query", "param": "u"},
                {"name": "hdr", "source": "header", "param": "x-id"},
                {"name": "fwd", "source": "x-forwarded-for", "xff_from_right": 1},
                {"name": "path", "source": "uri-regex", "param": "^/u/([^/]+)"},
            ],
            "detectors": [
                {**rule, "name": f"flood_{k}", "key": k} for k in ("user", "q", "hdr", "fwd", "path")
            ],
            "actions": {"alert": {"log_keys": log_keys}, "guard": {"cooldown_s": 0}},
            "quarantine": {"path": str(tmp_path / "quarantine.jsonl")},
        }
    )


def _line(t: float, value: str, ip: str = "203.0.113.7") -> bytes:
    f = {c.name: "-" for c in CATALOG}
    enc = quote(value, safe="")
    f.update(
        {
            "timestamp": f"{t:.3f}",
            "c-ip": ip,
            "sc-status": "200",
            "cs-method": "GET",
            "cs-uri-stem": "/u/" + enc,
            # CloudFront logs the query as the client sent it (form-encoded), percent-encoded once more.
            "cs-uri-query": quote("u=" + enc, safe="=&"),
            "cs-cookie": "uid=" + enc,
            "cs-headers": quote("x-id:", safe="") + enc,
            "x-forwarded-for": "198.51.100.1, " + enc,
            "sc-bytes": "100",
        }
    )
    return ("\t".join(f[c.name] for c in CATALOG) + "\n").encode("utf-8", "surrogatepass")


def assert_json_lines(data: bytes, expected: int | None = None) -> list[dict]:
    """Each line one JSON object of printable ASCII: nothing a log reader or terminal could misread."""
    assert data == b"" or data.endswith(b"\n")
    lines = data.split(b"\n")[:-1] if data else []
    out = []
    for raw in lines:
        assert all(0x20 <= b < 0x7F for b in raw), raw[:200]
        obj = json.loads(raw)
        assert isinstance(obj, dict)
        out.append(obj)
    if expected is not None:
        assert len(out) == expected
    return out


SETTINGS = fuzz_settings(40)


@SETTINGS
@given(values=st.lists(_hostile, min_size=1, max_size=6, unique=True))
def test_hostile_keys_reach_every_output_as_escaped_json(tmp_path_factory, values: list[str]) -> None:
    tmp = tmp_path_factory.mktemp("inj")
    cfg = _config(tmp)
    q = Quarantine(cfg.quarantine.path, 1000)
    pipe = Pipeline.from_config(cfg, dry_run=True, quarantine=q)
    lines = [_line(T0 + i * 0.01 + j, v) for j, v in enumerate(values) for i in range(3)]
    # Raw control bytes where an attacker-written recording could put them: parsed or counted.
    lines += [b"\x1b[2J" + _line(T0, "x")[4:], _line(T0, "y").replace(b"\t", b"\r\t", 1), b"\x00" * 50]
    decisions = pipe.process(lines, "hostile\nsource\x1b")
    pipe.close()
    st_ = pipe.stats()
    assert st_["records"] == st_["parsed"] + st_["malformed"] == len(lines)

    sink_out = io.StringIO()
    sink = AlertSink(None, Pseudonymiser(AlertConfig()), stream=sink_out)
    decision_lines = io.StringIO()
    payloads = []
    for d in decisions:
        decision_lines.write(json.dumps(d.to_record(), sort_keys=True) + "\n")  # as `replay` writes them
        if d.action in ("block", "alert"):
            sink.emit(d)
        if d.action == "block":
            payloads.append(json.dumps(build_payload(d), sort_keys=True).encode("utf-8"))  # Lambda body
    recs = assert_json_lines(decision_lines.getvalue().encode(), len(decisions))
    alerts = assert_json_lines(sink_out.getvalue().encode(), sink.written)
    keys = {d.key for d in decisions}
    # The round trip is exact: escaping changed the bytes, not the keys.
    assert {r["key"] for r in recs} == keys == {a["who"]["key"] for a in alerts} | (keys - {
        d.key for d in decisions if d.action in ("block", "alert")})  # fmt: skip
    for body in payloads:
        (obj,) = assert_json_lines(body + b"\n", 1)
        assert obj["key"] in keys
    # Query keys are exactly the values that went in (decoded once, never split into line fragments).
    q_keys = {d.key for d in decisions if d.key_type == "q"}
    assert {v for v in values if len(v) <= 256} <= q_keys <= set(values) | {"x", "y"}
    qfile = Path(cfg.quarantine.path)
    samples = assert_json_lines(qfile.read_bytes() if qfile.exists() else b"")
    assert len(samples) == st_["malformed"]
    assert all(s["source"] == "hostile\nsource\x1b" for s in samples)


def test_over_long_key_values_are_counted_as_missing_not_kept(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    pipe = Pipeline.from_config(cfg, dry_run=True)
    assert pipe.process([_line(T0 + i, "x" * 100_000) for i in range(3)]) == []
    s = pipe.stats()
    assert s["malformed"] == 0
    assert s["keys_missing"] == {"ip": 0, "user": 3, "q": 3, "hdr": 3, "fwd": 3, "path": 3}


def test_clear_keys_in_log_records_cannot_forge_a_line(tmp_path: Path, caplog) -> None:
    """``log_keys: true`` puts keys in clear in the repeat-block log line: control characters are escaped."""
    cfg = _config(tmp_path, log_keys=True)
    pipe = Pipeline.from_config(cfg, dry_run=True)
    evil = "u1\r\n2026-11-26 00:00:00 CRITICAL forged: \x1b[2Jall clear\u2028"
    caplog.set_level(logging.INFO, logger="actions.runner")
    # Two bursts far apart in event time: the second is a repeat block, which is logged with the key.
    pipe.process([_line(T0 + i, evil) for i in range(3)])
    pipe.process([_line(T0 + 4000 + i, evil) for i in range(3)])
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logged = [fmt.format(r) for r in caplog.records if "repeat block" in r.getMessage()]
    assert logged, "the repeat block was not logged"
    for text in logged:
        assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert any("of q u1\\r\\n2026" in text for text in logged)  # the key is there, escaped
