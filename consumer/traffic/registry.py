"""Scenario names and the ``name:param=value:param=value`` syntax of the command line."""

from __future__ import annotations

import dataclasses

from consumer.traffic.base import Scenario
from consumer.traffic.negatives import NEGATIVES
from consumer.traffic.scenarios import ABUSE

SCENARIOS: dict[str, type[Scenario]] = {cls.name: cls for cls in ABUSE + NEGATIVES}
ABUSE_NAMES: tuple[str, ...] = tuple(cls.name for cls in ABUSE)
NEGATIVE_NAMES: tuple[str, ...] = tuple(cls.name for cls in NEGATIVES)


def _convert(cls: type[Scenario], name: str, raw: str) -> object:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    if name not in fields:
        raise ValueError(f"{cls.name}: unknown parameter {name!r} (known: {', '.join(sorted(fields))})")
    default = fields[name].default
    if raw.lower() in ("none", "null") and name == "duration_s":
        return None
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(float(raw)) if float(raw).is_integer() else int(raw)
        if isinstance(default, float) or default is None:
            return float(raw)
    except ValueError:
        kind = type(default).__name__
        raise ValueError(f"{cls.name}: parameter {name}={raw!r} is not a valid {kind}") from None
    return raw


def parse_one(text: str) -> Scenario:
    """``"credential_stuffing:mode=one_ip:rate=3"`` -> a configured scenario."""
    name, *params = [p.strip() for p in text.strip().split(":")]
    cls = SCENARIOS.get(name)
    if cls is None:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    kwargs: dict[str, object] = {}
    for p in params:
        if "=" not in p:
            raise ValueError(f"{name}: expected param=value, got {p!r}")
        k, v = p.split("=", 1)
        kwargs[k.strip()] = _convert(cls, k.strip(), v.strip())
    return cls(**kwargs)  # type: ignore[arg-type]


def parse_list(text: str | None, default: tuple[str, ...]) -> list[Scenario]:
    """A comma-separated list; ``all`` = every name in ``default``, ``none`` or empty = nothing."""
    if text is None or text.strip().lower() == "all":
        return [SCENARIOS[n]() for n in default]
    if text.strip().lower() in ("", "none"):
        return []
    return [parse_one(part) for part in text.split(",") if part.strip()]
