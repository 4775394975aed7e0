"""KCL properties rendered from the kcl: section, and the daemon command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer.kcl.config import KclConfig
from consumer.kcl.jars import daemon_command, jars_dir
from consumer.kcl.properties import parse_properties, render_properties


def test_local_stack_properties() -> None:
    cfg = KclConfig(
        stream_name="s1",
        application_name="app1",
        region="eu-west-1",
        kinesis_endpoint="http://127.0.0.1:4566",
        dynamodb_endpoint="http://127.0.0.1:4566",
        worker_id="w-1",
        initial_position="LATEST",
        shutdown_grace_ms=15000,
        extra_properties={"maxLeasesForWorker": "4"},
    )
    props = parse_properties(render_properties(cfg, ["/usr/bin/python3", "-m", "consumer.kcl.app"]))
    assert props == {
        "executableName": "/usr/bin/python3 -m consumer.kcl.app",
        "streamName": "s1",
        "applicationName": "app1",
        "AWSCredentialsProvider": "DefaultAWSCredentialsProviderChain",
        "processingLanguage": "python/3",
        "regionName": "eu-west-1",
        "initialPositionInStream": "LATEST",
        "workerId": "w-1",
        "retrievalMode": "POLLING",
        "shutdownGraceMillis": "15000",
        "failoverTimeMillis": "10000",
        "shardSyncIntervalMillis": "60000",
        "metricsLevel": "NONE",
        "maxRecords": "10000",
        "idleTimeBetweenReadsInMillis": "1000",
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "kinesisEndpoint": "http://127.0.0.1:4566",
        "dynamoDBEndpoint": "http://127.0.0.1:4566",
        "maxLeasesForWorker": "4",
    }


def test_efo_properties_and_defaults() -> None:
    props = parse_properties(
        render_properties(KclConfig(retrieval_mode="FANOUT", efo_consumer_name="c1"), "x")
    )
    assert props["retrievalMode"] == "FANOUT" and props["fanoutConfig.consumerName"] == "c1"
    assert "maxRecords" not in props and "kinesisEndpoint" not in props
    assert props["workerId"]  # host name by default


def test_bad_kcl_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="efo_consumer_name"):
        KclConfig(efo_consumer_name="c1")
    with pytest.raises(ValidationError, match="bucket"):
        KclConfig.model_validate({"snapshots": {"store": "s3"}})
    with pytest.raises(ValidationError, match="shutdown_grace_ms"):
        KclConfig(shutdown_grace_ms=0)


def test_daemon_command_uses_installed_jars(tmp_path: Path) -> None:
    props = tmp_path / "app.properties"
    props.write_text("x=1\n")
    cmd = daemon_command(props, "java", ("-Daws.cborEnabled=false",))
    assert cmd[1] == "-Daws.cborEnabled=false"
    assert cmd[3] == f"{jars_dir()}/*:{tmp_path}"
    assert cmd[4:] == ["software.amazon.kinesis.multilang.MultiLangDaemon", "--properties-file", str(props)]
    assert any(p.name.startswith("amazon-kinesis-client-multilang-") for p in jars_dir().iterdir())
