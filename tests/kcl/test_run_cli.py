"""``cfguard run``: properties from the config, exit codes for bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.kcl.properties import parse_properties


def test_print_properties(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kcl:\n  stream_name: prod-logs\n  application_name: cfguard-prod\n  region: eu-west-1\n"
        "  worker_id: task-1\n  retrieval_mode: FANOUT\n  efo_consumer_name: cfguard-efo\n"
    )
    assert main(["run", "--config", str(cfg), "--print-properties"]) == 0
    props = parse_properties(capsys.readouterr().out)
    assert props["executableName"] == f"{sys.executable} -m consumer.kcl.app --config {cfg.resolve()}"
    assert props["streamName"] == "prod-logs" and props["applicationName"] == "cfguard-prod"
    assert props["regionName"] == "eu-west-1" and props["workerId"] == "task-1"
    assert props["retrievalMode"] == "FANOUT" and props["fanoutConfig.consumerName"] == "cfguard-efo"
    assert props["shutdownGraceMillis"] == "20000"


def test_bad_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kcl:\n  initial_position: YESTERDAY\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "kcl.initial_position" in capsys.readouterr().err


def test_config_is_required() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2


def test_pipeline_the_processors_cannot_build_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kcl:\n  pipeline_factory: consumer.nowhere:build\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "consumer.nowhere" in capsys.readouterr().err


def test_a_remote_config_source_reaches_the_processors_as_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from consumer.kcl.daemon import processor_command

    for source in ("ssm:/cfguard/config", "s3://bucket/cfguard.yaml"):
        assert processor_command(source)[-2:] == ["--config", source]
    local = processor_command(tmp_path / "c.yaml")
    assert local[-1] == str((tmp_path / "c.yaml").resolve())
