"""``--sweep DETECTOR.PARAM=FROM:TO:STEPS``: parsing, candidate values and candidate configs."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from consumer.config import Config


class SweepError(ValueError):
    """A sweep the user wrote wrongly, or a candidate config that does not validate."""


@dataclass(frozen=True)
class Sweep:
    detector: str
    param: str  # may be dotted for nested settings, e.g. ``model.n_trees``
    start: float
    stop: float
    steps: int
    text: str

    @property
    def label(self) -> str:
        return f"{self.detector}.{self.param}"


def parse_sweep(text: str, detector_names: list[str]) -> Sweep:
    """``request_flood_ip.threshold=1000:8000:8``: STEPS values from FROM to TO, both included.

    Detector names may contain dots, so the longest configured name before ``.PARAM`` wins.
    """
    if "=" not in text:
        raise SweepError(f"--sweep {text!r}: expected DETECTOR.PARAM=FROM:TO:STEPS (no '=')")
    target, _, rng = text.partition("=")
    target = target.strip()
    names = sorted((n for n in detector_names if target.startswith(n + ".")), key=len, reverse=True)
    if not names:
        head = target.split(".", 1)[0] if "." in target else target
        if "." not in target:
            raise SweepError(f"--sweep {text!r}: expected DETECTOR.PARAM before '=', got {target!r}")
        raise SweepError(
            f"--sweep {text!r}: unknown detector {head!r} (configured: {', '.join(detector_names)})"
        )
    detector = names[0]
    param = target[len(detector) + 1 :]
    if not param:
        raise SweepError(f"--sweep {text!r}: no parameter after {detector!r}.")
    parts = rng.split(":")
    if len(parts) != 3:
        raise SweepError(f"--sweep {text!r}: range {rng!r} must be FROM:TO:STEPS")
    try:
        start, stop = float(parts[0]), float(parts[1])
    except ValueError:
        raise SweepError(
            f"--sweep {text!r}: FROM and TO must be numbers, got {parts[0]!r}:{parts[1]!r}"
        ) from None
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise SweepError(f"--sweep {text!r}: FROM and TO must be finite")
    try:
        steps = int(parts[2])
    except ValueError:
        raise SweepError(f"--sweep {text!r}: STEPS must be an integer, got {parts[2]!r}") from None
    if steps < 1 or steps > 1000:
        raise SweepError(f"--sweep {text!r}: STEPS must be 1..1000, got {steps}")
    if steps == 1 and start != stop:
        raise SweepError(f"--sweep {text!r}: one step needs FROM == TO")
    return Sweep(detector, param, start, stop, steps, text)


def _detector_dict(data: dict[str, Any], name: str) -> dict[str, Any]:
    for d in data["detectors"]:
        if d["name"] == name:
            return d
    raise SweepError(f"no detector named {name!r} in the config")


def _current(cfg: Config, sweep: Sweep) -> Any:
    node: Any = _detector_dict(cfg.model_dump(mode="json"), sweep.detector)
    for part in sweep.param.split("."):
        if not isinstance(node, dict) or part not in node:
            raise SweepError(
                f"--sweep {sweep.text!r}: detector {sweep.detector!r} has no parameter {sweep.param!r}"
            )
        node = node[part]
    return node


def candidate_values(cfg: Config, sweep: Sweep) -> list[float | int]:
    """Evenly spaced values; integers (rounded, deduplicated) when the parameter is an integer."""
    current = _current(cfg, sweep)
    if isinstance(current, bool) or not isinstance(current, int | float | type(None)):
        raise SweepError(f"--sweep {sweep.text!r}: {sweep.label} is not numeric (it is {current!r})")
    if sweep.steps == 1:
        raw = [sweep.start]
    else:
        step = (sweep.stop - sweep.start) / (sweep.steps - 1)
        raw = [sweep.start + i * step for i in range(sweep.steps)]
    if isinstance(current, int):
        out: list[float | int] = []
        for v in raw:
            iv = round(v)
            if iv not in out:
                out.append(iv)
        return out
    return [float(f"{v:.10g}") for v in raw]


def candidate_config(cfg: Config, sweep: Sweep, value: float | int) -> Config:
    """A copy of ``cfg`` with the parameter set, validated like any config (errors name the candidate)."""
    data = copy.deepcopy(cfg.model_dump(mode="json"))
    node: Any = _detector_dict(data, sweep.detector)
    parts = sweep.param.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SweepError(f"candidate {sweep.label}={value} is not a valid config: {msgs}") from None
