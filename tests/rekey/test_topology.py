"""The topology section: explicit roles, the multi-shard refusal, the approximation's scaling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.config import Config, ConfigError, load_config
from consumer.kcl.properties import parse_properties
from consumer.pipeline import Pipeline
from consumer.rekey.config import TopologyConfig, check_stream
from consumer.rekey.factory import ApproximatePipeline, build_pipeline, effective_kcl, with_role
from consumer.rekey.stages import DetectPipeline
from detectors.config import RuleSpec


def test_default_is_single_stage_on_one_shard() -> None:
    cfg = load_config(None, environ={})
    assert cfg.topology.role == "single" and cfg.topology.raw_input == "single_shard"
    assert type(build_pipeline(cfg, dry_run=True)) is Pipeline


def test_a_random_multi_shard_stream_is_refused_in_single_stage_mode(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("topology:\n  raw_input: random\n  raw_shards: 4\n")
    with pytest.raises(ConfigError, match="accept_approximation") as exc:
        load_config(f, environ={})
    assert "topology" in str(exc.value) and "rekey" in str(exc.value)
    with pytest.raises(ValueError, match="1/N of each user"):
        check_stream(TopologyConfig(raw_input="random"), 4)
    with pytest.raises(ValueError, match="1/N of each user"):
        check_stream(TopologyConfig(), 4)  # declared single-shard, but the stream has 4
    check_stream(TopologyConfig(raw_input="keyed"), 4)
    check_stream(TopologyConfig(role="rekey", raw_input="random"), 4)
    check_stream(TopologyConfig(), 1)
    with pytest.raises(ValueError, match="raw_shards is 2 but the stream has 4"):
        check_stream(TopologyConfig(raw_input="random", raw_shards=2, accept_approximation=True), 4)


def test_inconsistent_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="single_shard but raw_shards"):
        TopologyConfig(raw_shards=3)
    with pytest.raises(ValueError, match="needs raw_shards"):
        TopologyConfig(raw_input="random", accept_approximation=True)
    with pytest.raises(ValueError, match="only applies to role single"):
        TopologyConfig(role="detect", raw_input="random", raw_shards=4, accept_approximation=True)


def test_accepted_approximation_scales_thresholds_and_says_so() -> None:
    cfg = Config.model_validate(
        {"topology": {"raw_input": "random", "raw_shards": 4, "accept_approximation": True}}
    )
    p = build_pipeline(cfg, dry_run=True)
    assert isinstance(p, ApproximatePipeline)
    flood = next(d.spec for d in p.engine.detectors if d.spec.name == "request_flood_ip")
    orig = next(s for s in cfg.detectors if s.name == "request_flood_ip")
    assert isinstance(orig, RuleSpec)
    assert flood.threshold == orig.threshold / 4
    note = p.stats()["topology"]
    assert "divided by 4" in note["approximation"]
    assert any(s.startswith("request_flood_ip: threshold") for s in note["scaled"])


def test_roles_pick_pipeline_stream_and_application(tmp_path: Path) -> None:
    cfg = Config.model_validate(
        {"kcl": {"stream_name": "raw", "application_name": "cfg"}, "topology": {"partials_stream": "parts"}}
    )
    assert isinstance(build_pipeline(with_role(cfg, "detect"), dry_run=True), DetectPipeline)
    k = effective_kcl(with_role(cfg, "rekey"))
    assert (k.stream_name, k.application_name, k.snapshots.store) == ("raw", "cfg-rekey", "none")
    k = effective_kcl(with_role(cfg, "detect"))
    assert (k.stream_name, k.application_name) == ("parts", "cfg")


def test_run_role_renders_the_stage_properties(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "kcl:\n  stream_name: raw-logs\n  application_name: app\ntopology:\n  partials_stream: parts\n"
    )
    assert main(["run", "--config", str(f), "--role", "rekey", "--print-properties"]) == 0
    props = parse_properties(capsys.readouterr().out)
    assert (props["streamName"], props["applicationName"]) == ("raw-logs", "app-rekey")
    assert props["executableName"] == f"{sys.executable} -m consumer.kcl.app --config {f.resolve()}"
    assert main(["run", "--config", str(f), "--role", "detect", "--print-properties"]) == 0
    props = parse_properties(capsys.readouterr().out)
    assert (props["streamName"], props["applicationName"]) == ("parts", "app")


def test_partials_need_lateness_of_a_bucket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("state:\n  allowed_lateness_s: 0\ntopology:\n  role: detect\n")
    assert main(["run", "--config", str(f)]) == 2  # refused before Java starts
    assert "allowed_lateness_s" in capsys.readouterr().err


def test_run_refuses_a_multi_shard_stream_in_single_stage_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from consumer.rekey import factory

    monkeypatch.setattr(factory, "open_shards", lambda kcl: 4)
    f = tmp_path / "c.yaml"
    f.write_text("kcl:\n  stream_name: raw-logs\n")
    assert main(["run", "--config", str(f)]) == 2  # before Java starts
    err = capsys.readouterr().err
    assert "invalid topology" in err and "4 shards" in err and "raw_input: keyed" in err
