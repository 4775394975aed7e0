"""The one YAML configuration file, validated before anything uses it.

Every section is a frozen pydantic model with ``extra="forbid"``: a typo is an error, not a silently
ignored setting. Deployment values can be overridden from the environment with
``CFGUARD__SECTION__FIELD=value`` (double underscores separate the path; the value is read as YAML).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from actions.config import ActionsConfig
from consumer import fields as catalog
from consumer.kcl.config import KclConfig
from consumer.keys import KeySpec
from consumer.metrics import MetricsConfig
from consumer.rekey.config import TopologyConfig
from detectors.config import DetectorSpec, StateConfig
from detectors.defaults import default_detectors

ENV_PREFIX = "CFGUARD__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Section):
    """What the CloudFront real-time log config sends."""

    fields: tuple[str, ...] = Field(
        catalog.ALL_45,
        description="the real-time log config's field list (any order; CloudFront's order is used)",
    )
    decode: tuple[str, ...] = Field((), description="URL-encoded fields to percent-decode while parsing")
    max_line_bytes: int = Field(65_536, ge=256, le=1_048_576)
    batch_size: int = Field(8192, ge=1, le=100_000, description="records per batch when replaying files")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        ordered = catalog.ordered(list(v))
        if "timestamp" not in ordered:
            raise ValueError("must include 'timestamp' (detection runs in event time)")
        return ordered

    @model_validator(mode="after")
    def _decode_known(self) -> InputConfig:
        bad = [f for f in self.decode if f not in self.fields]
        if bad:
            raise ValueError(f"decode lists field(s) not in input.fields: {', '.join(bad)}")
        return self


class QuarantineConfig(_Section):
    """Where a bounded sample of malformed lines goes (every one is counted regardless)."""

    path: Path | None = None
    max_samples: int = Field(1000, ge=0)


def _default_keys() -> tuple[KeySpec, ...]:
    return (
        KeySpec(name="ip", source="c-ip", ipv6_prefix=64),
        KeySpec(name="user", source="cookie", param="uid"),
        KeySpec(name="api_key", source="header", param="x-api-key"),
    )


class Config(_Section):
    input: InputConfig = InputConfig()
    keys: tuple[KeySpec, ...] = Field(default_factory=_default_keys, min_length=1)
    detectors: tuple[DetectorSpec, ...] = Field(default_factory=lambda: tuple(default_detectors()))
    state: StateConfig = StateConfig()
    actions: ActionsConfig = ActionsConfig()
    kcl: KclConfig = KclConfig()
    quarantine: QuarantineConfig = QuarantineConfig()
    metrics: MetricsConfig = MetricsConfig()
    topology: TopologyConfig = TopologyConfig()

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        names = [k.name for k in self.keys]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"keys: key type name(s) used twice: {', '.join(dup)}")
        missing_fields = sorted({k.field for k in self.keys} - set(self.input.fields))
        if missing_fields:
            raise ValueError(
                f"keys need field(s) {', '.join(missing_fields)} that input.fields does not include"
            )
        raw_needed = sorted(
            {k.field for k in self.keys if k.source in ("cookie", "header", "query")} & set(self.input.decode)
        )
        if raw_needed:
            # Cookie/header/query keys decode the one value they pick; a pre-decoded field would be
            # decoded twice (and its separators could no longer be told from the data).
            raise ValueError(
                f"input.decode lists {', '.join(raw_needed)}, which a cookie/header/query key reads raw: "
                "remove it from decode"
            )
        det_names = [d.name for d in self.detectors]
        dup = sorted({n for n in det_names if det_names.count(n) > 1})
        if dup:
            raise ValueError(f"detectors: name(s) used twice: {', '.join(dup)}")
        for d in self.detectors:
            if d.key not in names:
                raise ValueError(
                    f"detectors: {d.name!r} uses key type {d.key!r}, which is not configured in keys "
                    f"(configured: {', '.join(names)})"
                )
        return self


class ConfigError(Exception):
    """An invalid configuration: the message names the field and the bad value."""


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        where = loc or "(top level)"
        lines.append(f"  {where}: {err['msg']} (got {shown})")
    return "\n".join(lines)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``CFGUARD__A__B=value`` variables; values parsed as YAML scalars/lists."""
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        value = _safe_load(raw, f"environment variable {name}") if raw.strip() else raw
        node = tree
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"environment variable {name}: conflicts with another override")
            node = nxt
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


#: A config is a few KB; anything near this is not one.
MAX_CONFIG_BYTES = 1_048_576
#: Values (scalars, lists, mappings) a config may expand to: YAML aliases can make a small file
#: expand exponentially ("billion laughs"), and validation and error messages walk the expansion.
MAX_CONFIG_NODES = 100_000


def _check_expansion(data: object, origin: str) -> None:
    """ConfigError if ``data`` expands to more than ``MAX_CONFIG_NODES`` values (stops counting there)."""
    seen = 0
    stack = [data]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{origin} expands to more than {MAX_CONFIG_NODES} values (YAML aliases?): refused"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _safe_load(text: str, origin: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{origin} is nested too deeply") from None
    _check_expansion(data, origin)
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {p} is larger than {MAX_CONFIG_BYTES} bytes: refused")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    return parse_yaml(text, f"config file {p}")


def parse_yaml(text: str, origin: str) -> dict[str, Any]:
    """The top-level mapping of a config document (from a file, S3 or SSM)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{origin} is larger than {MAX_CONFIG_BYTES} bytes: refused")
    data = _safe_load(text, origin)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """The effective configuration: file (or the embedded default) plus environment overrides."""
    data = read_yaml(path) if path is not None else {}
    origin = str(path) if path is not None else "embedded default"
    return config_from_data(data, origin, environ)


def config_from_data(data: dict[str, Any], origin: str, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed document plus the environment's overrides (as ``load_config`` does)."""
    overrides = env_overrides(os.environ if environ is None else environ)
    if overrides:
        data = _merge(data, overrides)
    if overrides:
        origin += " + " + ", ".join(sorted(k for k in (environ or os.environ) if k.startswith(ENV_PREFIX)))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from None


def config_to_yaml(cfg: Config) -> str:
    data = cfg.model_dump(mode="json", exclude_none=False)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
