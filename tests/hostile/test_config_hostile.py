"""A config from an untrusted source: refused with a ConfigError (exit 2), never a hang, a crash or code.

YAML aliases expanding exponentially, deep nesting, Python tags, oversized files, and regexes that
backtrack catastrophically on a crafted URI (refused at validation; see consumer/regex_check.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer.cli import main as cli_main
from consumer.config import MAX_CONFIG_BYTES, ConfigError, load_config
from consumer.keys import KeySpec
from consumer.regex_check import check_backtracking
from detectors.config import RuleSpec


def billion_laughs(levels: int = 9, where: str = "") -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for i in range(levels):
        lines.append(f"b{i}: &b{i} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = f"b{i}"
    if where:
        lines.append(f"{where}: *{prev}")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["", "detectors", "keys"])
def test_billion_laughs_is_refused_quickly(tmp_path: Path, where: str) -> None:
    p = tmp_path / "bomb.yaml"
    p.write_text(billion_laughs(9, where))  # 9**10 = 3.5 billion strings once expanded
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"expands to more than 100000 values"):
        load_config(p, environ={})
    assert time.perf_counter() - t0 < 10


@pytest.mark.timeout(30)
def test_alias_bomb_in_an_environment_override_is_refused() -> None:
    nested = billion_laughs(8).replace("\n", "\n  ")
    with pytest.raises(ConfigError, match="CFGUARD__STATE__MAX_KEYS"):
        load_config(None, environ={"CFGUARD__STATE__MAX_KEYS": "x:\n  " + nested})
    small = "&d [cs-user-agent, cs-referer]"  # a small alias use is fine: it expands to a few values
    assert load_config(None, environ={"CFGUARD__INPUT__DECODE": small}).input.decode == (
        "cs-user-agent",
        "cs-referer",
    )


def test_deep_nesting_is_a_config_error_not_a_recursion_crash(tmp_path: Path) -> None:
    p = tmp_path / "deep.yaml"
    p.write_text("state: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(p, environ={})
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(None, environ={"CFGUARD__STATE__MAX_KEYS": "[" * 5000})


def test_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    p = tmp_path / "tags.yaml"
    p.write_text(f'state: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p, environ={})
    p.write_text("state: !!python/object:collections.OrderedDict {}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p, environ={})
    assert not marker.exists()


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    p = tmp_path / "huge.yaml"
    p.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(p, environ={})


def test_cli_exits_2_on_a_hostile_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bomb.yaml"
    p.write_text(billion_laughs(9, "detectors"))
    log = tmp_path / "in.log"
    log.write_text("")
    assert cli_main(["replay", "--config", str(p), "--quiet", str(log)]) == 2
    assert "expands to more than" in capsys.readouterr().err


CATASTROPHIC = [r"(a+)+$", r"^/(\w+\s?)*$", r"(x+x+)+y", r"/(?:a|b+)*c", r"((ab)*)*z"]


@pytest.mark.parametrize("rx", CATASTROPHIC)
def test_catastrophic_regexes_are_refused_in_detector_paths_and_uri_keys(rx: str) -> None:
    with pytest.raises(ValidationError, match="backtrack catastrophically"):
        RuleSpec(name="r", key="ip", metric="requests", threshold=1, path=rx)
    with pytest.raises(ValidationError, match="backtrack catastrophically"):
        KeySpec(name="k", source="uri-regex", param="(" + rx + ")")


@pytest.mark.timeout(30)
def test_refused_shapes_really_blow_up_and_the_suggested_rewrites_do_not() -> None:
    import re

    uri = "/" + "a" * 24 + "!"
    t0 = time.perf_counter()
    assert re.search(r"^/(a+)+$", uri[:18] + "!") is None  # 2**16 steps already
    slow = time.perf_counter() - t0
    for fixed in (r"^/(a++)+$", r"^/(?>a+)+$", r"^/(a+)++$"):
        check_backtracking(fixed)
        t0 = time.perf_counter()
        assert re.search(fixed, uri) is None
        assert time.perf_counter() - t0 < max(slow, 0.01)
    # The shipped defaults pass the check (they are validated on every load).
    load_config(None, environ={})
