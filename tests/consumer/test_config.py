"""Configuration: validated before use, errors name the field and the value, env overrides apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.config import Config, ConfigError, env_overrides, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cfguard.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_example_config_is_valid_and_matches_its_documented_keys() -> None:
    cfg = load_config(EXAMPLE, environ={})
    assert [k.name for k in cfg.keys] == ["ip", "user", "api_key"]
    assert cfg.detectors, "the example config ships detectors"
    assert main(["config", "validate", str(EXAMPLE)]) == 0


def test_embedded_default_is_valid() -> None:
    cfg = load_config(None, environ={})
    assert isinstance(cfg, Config)
    assert cfg.input.fields[0] == "timestamp"


def test_unknown_field_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _write(tmp_path, "input:\n  feilds: [timestamp]\n")
    assert main(["config", "validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert "input.feilds" in err
    assert "Extra inputs are not permitted" in err


def test_bad_value_is_named_with_its_value(tmp_path: Path) -> None:
    p = _write(tmp_path, "input:\n  batch_size: -5\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, environ={})
    assert "input.batch_size" in str(exc.value)
    assert "-5" in str(exc.value)


def test_unknown_cloudfront_field_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "input:\n  fields: [timestamp, c-ip, sc-bytez]\n")
    with pytest.raises(ConfigError, match="sc-bytez"):
        load_config(p, environ={})


def test_fields_are_put_in_cloudfront_order(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "input:\n  fields: [cs-cookie, sc-bytes, c-ip, timestamp]\n"
        "keys:\n  - {name: ip, source: c-ip}\ndetectors: []\n",
    )
    cfg = load_config(p, environ={})
    assert cfg.input.fields == ("timestamp", "c-ip", "sc-bytes", "cs-cookie")


def test_key_needing_a_field_not_logged_is_refused(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "input:\n  fields: [timestamp, c-ip]\nkeys:\n  - {name: user, source: cookie, param: uid}\n"
        "detectors: []\n",
    )
    with pytest.raises(ConfigError, match="cs-cookie"):
        load_config(p, environ={})


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "a: [1,\n"), environ={})
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(_write(tmp_path, "- 1\n"), environ={})


def test_env_overrides_nested_values() -> None:
    env = {"CFGUARD__INPUT__BATCH_SIZE": "123", "CFGUARD__QUARANTINE__MAX_SAMPLES": "7", "OTHER": "x"}
    assert env_overrides(env) == {"input": {"batch_size": 123}, "quarantine": {"max_samples": 7}}
    cfg = load_config(EXAMPLE, environ=env)
    assert cfg.input.batch_size == 123
    assert cfg.quarantine.max_samples == 7


def test_invalid_env_override_names_the_variable() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(EXAMPLE, environ={"CFGUARD__INPUT__BATCH_SIZE": "lots"})
    assert "input.batch_size" in str(exc.value)
    assert "CFGUARD__INPUT__BATCH_SIZE" in str(exc.value)


def test_config_is_frozen() -> None:
    cfg = load_config(None, environ={})
    with pytest.raises(Exception, match="frozen"):
        cfg.input.batch_size = 5  # type: ignore[misc]


def test_show_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(EXAMPLE), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["keys"][0]["name"] == "ip"
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert {"input", "keys", "detectors", "actions", "kcl"} <= set(schema["properties"])


def test_decoding_a_field_a_key_reads_raw_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "input:\n  decode: [cs-cookie]\n")
    with pytest.raises(ConfigError, match="cs-cookie, which a cookie/header/query key reads raw"):
        load_config(p, environ={})
