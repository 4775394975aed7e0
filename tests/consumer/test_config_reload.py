"""Live threshold tuning: a changed config is validated and swapped in without losing state."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml

from consumer.config import load_config
from consumer.config_source import ConfigWatcher
from consumer.pipeline import Pipeline

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference-logs"


def _lines(n: int, t0: float, ip: str) -> list[bytes]:
    f = (REFERENCE / "07_realtime_clo_kinesis_record_data.bin").read_bytes().rstrip(b"\n").split(b"\t")
    out = []
    for i in range(n):
        g = list(f)
        g[0], g[1] = f"{t0 + i * 0.1:.3f}".encode(), ip.encode()
        out.append(b"\t".join(g) + b"\n")
    return out


def _write(path: Path, threshold: float, extra: dict | None = None) -> None:
    doc = {
        "keys": [{"name": "ip", "source": "c-ip"}],
        "detectors": [
            {
                "name": "flood",
                "type": "rule",
                "key": "ip",
                "metric": "requests",
                "window": "1m",
                "threshold": threshold,
                "mode": "block",
            }
        ],
        **(extra or {}),
    }
    path.write_text(yaml.safe_dump(doc))
    st = path.stat()  # make the change visible even within the file system's mtime resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_lower_threshold_applies_to_windows_already_open(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    _write(cfg_path, 100)
    clock = {"t": 0.0}
    pipeline = Pipeline.from_config(load_config(cfg_path, environ={}), dry_run=True)
    watcher = ConfigWatcher(str(cfg_path), pipeline.cfg, poll_s=5, environ={}, clock=lambda: clock["t"])
    assert pipeline.process(_lines(60, 1_700_000_000, "10.0.0.9")) == []  # 60 < 100
    _write(cfg_path, 50)
    assert watcher.poll() is None  # not yet due
    clock["t"] = 6
    new_cfg = watcher.poll()
    assert new_cfg is not None and new_cfg.detectors[0].threshold == 50
    pipeline = pipeline.reconfigured(new_cfg)
    # The window already holds 60 requests: the next one (61 >= 50) blocks at once.
    decisions = pipeline.process(_lines(1, 1_700_000_006.5, "10.0.0.9"))
    assert [(d.key, d.action, d.evidence["value"]) for d in decisions] == [("10.0.0.9", "block", 61)]
    assert pipeline.counters.records == 61
    assert watcher.reloads == 1


def test_an_invalid_new_config_is_refused_and_the_old_one_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg_path = tmp_path / "c.yaml"
    _write(cfg_path, 100)
    clock = {"t": 0.0}
    current = load_config(cfg_path, environ={})
    watcher = ConfigWatcher(str(cfg_path), current, poll_s=1, environ={}, clock=lambda: clock["t"])
    _write(cfg_path, -3)
    clock["t"] = 2
    with caplog.at_level(logging.ERROR):
        assert watcher.poll() is None
    assert "refused, the current one stays" in caplog.text and "threshold" in caplog.text
    assert watcher.current is current and watcher.refused == 1
    _write(cfg_path, 100, {"kcl": {"stream_name": "another-stream"}})
    watcher.request()  # SIGHUP: check now
    with caplog.at_level(logging.ERROR):
        assert watcher.poll() is None
    assert "the kcl section changed" in caplog.text and watcher.refused == 2


def test_ssm_and_s3_sources(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import boto3

    for k, v in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)

    def client(service: str):  # type: ignore[no-untyped-def]
        return boto3.client(service, endpoint_url=moto_endpoint)

    local = tmp_path / "c.yaml"
    _write(local, 100)
    ssm = client("ssm")
    ssm.put_parameter(Name="/cfguard/config", Value=local.read_text(), Type="String")
    current = load_config(local, environ={})
    clock = {"t": 0.0}
    w = ConfigWatcher(
        "ssm:/cfguard/config", current, poll_s=1, environ={}, clock=lambda: clock["t"], client_factory=client
    )
    _write(local, 70)
    ssm.put_parameter(Name="/cfguard/config", Value=local.read_text(), Type="String", Overwrite=True)
    clock["t"] = 2
    new = w.poll()
    assert new is not None and new.detectors[0].threshold == 70

    s3 = client("s3")
    s3.create_bucket(Bucket="cfg")
    s3.put_object(Bucket="cfg", Key="cfguard.yaml", Body=local.read_bytes())
    w3 = ConfigWatcher(
        "s3://cfg/cfguard.yaml", new, poll_s=1, environ={}, clock=lambda: clock["t"], client_factory=client
    )
    _write(local, 40)
    s3.put_object(Bucket="cfg", Key="cfguard.yaml", Body=local.read_bytes())
    clock["t"] = 4
    new3 = w3.poll()
    assert new3 is not None and new3.detectors[0].threshold == 40
