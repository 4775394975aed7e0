"""Finding/config builders shared by the actions tests."""

from __future__ import annotations

from typing import Any

from actions.config import ActionsConfig
from detectors.finding import Finding

T0 = 1_700_000_000.0


def finding(key: str = "203.0.113.7", *, t: float = T0, mode: str = "block", **kw: Any) -> Finding:
    base: dict[str, Any] = {
        "key_type": "ip",
        "detector": "rps",
        "score": 2.5,
        "threshold": 100.0,
        "window": "1m",
        "window_s": 60,
        "evidence": {"requests": 250, "status_4xx": 3},
    }
    base.update(kw)
    return Finding(key=key, event_time=t, mode=mode, **base)  # type: ignore[arg-type]


def cfg(**sections: Any) -> ActionsConfig:
    return ActionsConfig.model_validate(sections)


class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
