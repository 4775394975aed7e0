"""The template's alarms and dashboard read the processors' metrics as they are emitted: dimensions
``Role`` + ``Shard`` (``consumer.metrics``), and for the parse-error rate only the role whose
processors parse raw lines: both stages emit ``pipeline.records`` under the same name (rekey: raw
lines, detect: partial records), so a sum over roles is not the parse error rate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consumer.config import Config
from consumer.kcl.config import KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from consumer.metrics import MetricsConfig, emf_line, flatten, is_gauge
from consumer.rekey.stages import DetectPipeline, RekeyPipeline
from consumer.rekey.streams import StaticView
from consumer.traffic import generate
from tests.infra.cfn_yaml import load_template
from tests.infra.test_template_stages import TEMPLATE, service_config, stack
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.protocol import drive, initialize

TOPOLOGIES = ["two-stage", "single-stage"]
# SELECT SUM("metric") FROM SCHEMA("namespace", Role, Shard) WHERE Role = 'role'
SELECT = re.compile(
    r'^SELECT (?P<fn>SUM|MAX|AVG|MIN)\("(?P<metric>[^"]+)"\) '
    r'FROM SCHEMA\("(?P<ns>[^"]+)", (?P<dims>[\w, ]+)\)'
    r"(?: WHERE (?P<where>.*))?$"
)
SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]+)\} (?P<terms>[^']*)', '\w+', \d+\)")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def emitted_dimensions() -> list[str]:
    """The dimension set the processors' EMF lines declare."""
    doc = json.loads(emf_line("ns", "shardId-0", {"records": 1.0}, 0, "rekey"))
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    (dims,) = directive["Dimensions"]
    return list(dims)


def raw_parsing_role(s: Any) -> str:
    """The stage of the service whose KCL application reads the raw log stream."""
    stages = [service_config(s, svc) for svc in s.of_type("AWS::ECS::Service")]
    raw = [stage for _, stage, _, kcl in stages if kcl.stream_name == s.names["LogStream"]]
    assert len(raw) == 1, raw
    return raw[0]


def roles_selected(where: str | None) -> list[str]:
    assert where is not None, "the query does not select a role"
    clauses = re.findall(r"\bRole\s*(=|!=|IN|LIKE)\s*'?(\w*)'?", where)
    assert all(op == "=" for op, _ in clauses), where
    return [role for _, role in clauses]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_parse_error_alarm_selects_exactly_the_role_that_parses_raw_lines(
    template: dict[str, Any], topology: str
) -> None:
    s = stack(template, Topology=topology)
    expected = raw_parsing_role(s)
    assert expected == {"two-stage": "rekey", "single-stage": "single"}[topology]
    alarm = s.props("ParseErrorRateAlarm")
    queries = [m for m in alarm["Metrics"] if "SELECT" in m.get("Expression", "")]
    assert {SELECT.match(q["Expression"])["metric"] for q in queries} == {  # type: ignore[index]
        s.params["ParseErrorMetric"],
        s.params["RecordsMetric"],
    }
    for q in queries:
        m = SELECT.match(q["Expression"])
        assert m is not None, q["Expression"]
        assert m["ns"] == s.params["MetricsNamespace"]
        assert [d.strip() for d in m["dims"].split(",")] == emitted_dimensions()
        assert roles_selected(m["where"]) == [expected], q["Expression"]
    # the rate combines only those two queries
    (rate,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert set(re.findall(r"[a-z]+", rate["Expression"])) == {q["Id"] for q in queries}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_dashboard_searches_match_the_emitted_dimensions(template: dict[str, Any], topology: str) -> None:
    s = stack(template, Topology=topology)
    expected = raw_parsing_role(s)
    body = json.loads(s.props("Dashboard")["DashboardBody"])
    searches = [
        (w["properties"]["title"], m)
        for w in body["widgets"]
        for row in w["properties"]["metrics"]
        for x in row
        if isinstance(x, dict)
        for m in SEARCH.finditer(x["expression"])
    ]
    assert len(searches) == 3
    for title, m in searches:
        schema = [p.strip() for p in m["schema"].split(",")]
        assert schema == [s.params["MetricsNamespace"], *emitted_dimensions()], title
        terms = m["terms"]
        metric = re.search(r'MetricName="([^"]+)"', terms)
        assert metric is not None
        if metric[1] in (s.params["ParseErrorMetric"], s.params["RecordsMetric"]):
            assert re.findall(r'Role="(\w+)"', terms) == [expected], terms


class Sink:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def put(self, records: Any) -> Any:
        self.records += [d for _, d in records]
        return SimpleNamespace(failed=0)


def test_only_the_rekey_stage_counts_raw_lines_and_parse_errors() -> None:
    """Why the alarm selects one role: in a two-stage run the rekey stage counts the raw lines and
    the parse errors; the detect stage counts the partial records it reads as ``records`` and no
    parse error. Summed over both roles, the rate is diluted below the true one."""
    base = {"topology": {"evaluate": "bucket", "partials_stream": "p"}}
    cfg_rk = Config.model_validate({**base, "topology": {**base["topology"], "role": "rekey"}})
    cfg_det = Config.model_validate({**base, "topology": {**base["topology"], "role": "detect"}})
    sink = Sink()
    rk = RekeyPipeline.from_config(cfg_rk, publisher=sink, view=StaticView())
    det = DetectPipeline.from_config(cfg_det, dry_run=True)
    lines = [x for b in generate(seed=3, duration_s=120, rate=20, batch_size=500) for x in b]
    bad = [b"not\ta\tcloudfront\tline"] * 3
    rk.process(lines[:100] + bad + lines[100:], "shardId-0")
    det.process(sink.records, "shardId-0")
    rekey, detect = flatten(rk.stats()), flatten(det.stats())
    assert (rekey["records"], rekey["malformed"]) == (len(lines) + 3, 3)
    assert (detect["records"], detect["malformed"]) == (len(sink.records), 0)
    assert 0 < len(sink.records) < len(lines)
    true_rate = 3 / (len(lines) + 3)
    assert rekey["malformed"] / rekey["records"] == pytest.approx(true_rate)
    summed = (rekey["malformed"] + detect["malformed"]) / (rekey["records"] + detect["records"])
    assert summed < true_rate * 0.99  # what the alarm computed before it selected a role


class _Down:
    """A snapshot store nobody can read (a wrong bucket) for its first ``n`` tries."""

    def __init__(self, n: int) -> None:
        self.n = n

    def positions(self, shard_id: str) -> list[tuple[int, int]]:
        self.n -= 1
        if self.n >= 0:
            raise OSError("NoSuchBucket")
        return []


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_restore_alarm_watches_the_wait_gauge_the_processors_emit(
    template: dict[str, Any], topology: str, tmp_path: Path
) -> None:
    s = stack(template, Topology=topology)
    alarm = s.props("RestoreStalledAlarm")
    (query,) = alarm["Metrics"]
    m = SELECT.match(query["Expression"])
    assert m is not None, query["Expression"]
    assert (m["fn"], m["ns"], m["where"]) == ("MAX", s.params["MetricsNamespace"], None)  # every role
    assert [d.strip() for d in m["dims"].split(",")] == emitted_dimensions()
    assert query["ReturnData"] is True
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        s.params["RestoreWaitThresholdSeconds"],
        "GreaterThanThreshold",
    )
    assert is_gauge(m["metric"])  # a level (MAX of it is the longest wait), not a per-interval delta
    # a processor waiting for its store emits that metric, growing with the wait
    t = [0.0]

    def sleep(x: float) -> None:
        t[0] += x

    emf = tmp_path / "emf.jsonl"
    proc = ShardProcessor(
        KclConfig(snapshots=SnapshotConfig(store="local", path=tmp_path / "s")),
        lambda: CountingPipeline(threshold=100),
        _Down(12),  # type: ignore[arg-type]
        metrics=MetricsConfig(interval_s=60, emf_path=emf),
        role="detect",
        clock=lambda: t[0],
        sleep=sleep,
        wall_clock=lambda: t[0],
    )
    drive(proc, [initialize(seq="1000")])
    waits = [r[m["metric"]] for r in map(json.loads, emf.read_text().splitlines())]
    # 12 failed tries (0.5 s doubling to 30 s: at 0, 0.5 ... 61.5, 91.5 ... 181.5 s), a line per 60 s
    assert waits == [0.0, 61.5, 121.5, 181.5]
