"""Detector configuration: one validated spec per detector kind (a discriminated union on ``type``).

The online-ML spec (``type: ml``) lives in ``detectors.ml_spec``. Adding a kind: a spec class (added
to ``DetectorSpec``) and a detector class registered in ``detectors.registry``. Every spec has
``type``, ``name``, ``key`` (a key type from the config's ``keys``) and ``mode``; bad values are
refused at load time with a message naming them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from consumer.regex_check import check_backtracking
from detectors.metrics import check_metric
from detectors.ml_spec import MLSpec
from detectors.spec_base import Strict
from detectors.windows import window_seconds

Mode = Literal["block", "alert", "shadow"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class StateConfig(Strict):
    """Bounds of the per-key state, in event time."""

    max_keys: int = Field(1_000_000, gt=0, description="per key type; least-recently-seen keys are evicted")
    idle_timeout_s: int = Field(
        90_000, gt=0, description="a key not seen for this long (event time) is forgotten"
    )
    allowed_lateness_s: int = Field(
        60, ge=0, description="records older than the newest minus this are dropped"
    )
    max_future_s: int = Field(
        86_400,
        gt=0,
        description="records this far ahead of the stream's event time are dropped as corrupt (counted)",
    )


class _WindowedSpec(Strict):
    name: str = Field(pattern=_NAME)
    key: str = Field(min_length=1)
    mode: Mode = "alert"
    window: str = "1m"
    path: str | None = Field(
        None, description="only requests whose cs-uri-stem matches this regex (re.search) count"
    )
    status: tuple[int, ...] | None = Field(None, description="only requests with these sc-status count")

    @field_validator("window")
    @classmethod
    def _window_ok(cls, v: str) -> str:
        window_seconds(v)
        return v

    @field_validator("path")
    @classmethod
    def _path_ok(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"path {v!r} is not a valid regular expression: {exc}") from None
            check_backtracking(v)
        return v

    @field_validator("status")
    @classmethod
    def _status_ok(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            bad = [s for s in v if not 100 <= s <= 599]
            if bad or not v:
                raise ValueError(f"status must list HTTP status codes 100..599, got {list(v)}")
            return tuple(sorted(set(v)))
        return v

    @property
    def window_s(self) -> int:
        return window_seconds(self.window)


class RuleSpec(_WindowedSpec):
    """``metric`` over ``window`` reaches ``threshold`` (score = value / threshold)."""

    type: Literal["rule"] = "rule"
    metric: str
    threshold: float = Field(gt=0)
    min_requests: int = Field(0, ge=0, description="requests (after the filters) needed before it scores")
    reemit_factor: float = Field(
        2.0, gt=1.0, description="re-emit in the same window when the score grows by this"
    )
    sliding: bool = Field(
        False,
        description="score the last `window` seconds (current window plus the previous one weighted by "
        "the part still inside) instead of the aligned window; sum metrics only",
    )

    @field_validator("metric")
    @classmethod
    def _metric_ok(cls, v: str) -> str:
        return check_metric(v)

    @model_validator(mode="after")
    def _sliding_sum_only(self) -> RuleSpec:
        if self.sliding:
            check_metric(self.metric, kind="sum")
        return self


class RatioSpec(_WindowedSpec):
    """``numerator / denominator`` over ``window`` reaches ``threshold`` once ``min_requests`` is met."""

    type: Literal["ratio"] = "ratio"
    numerator: str
    denominator: str = "requests"
    threshold: float = Field(gt=0)
    min_requests: int = Field(1, ge=1, description="denominator value needed before it scores")
    min_numerator: float = Field(0, ge=0, description="numerator value needed before it scores")
    reemit_factor: float = Field(2.0, gt=1.0)
    sliding: bool = Field(False, description="both sides as sliding-window estimates (see RuleSpec.sliding)")

    @field_validator("numerator", "denominator")
    @classmethod
    def _metric_ok(cls, v: str) -> str:
        return check_metric(v, kind="sum")

    @model_validator(mode="after")
    def _different(self) -> RatioSpec:
        if self.numerator == self.denominator:
            raise ValueError(f"numerator and denominator are both {self.numerator!r}")
        return self


class BaselineSpec(_WindowedSpec):
    """``metric`` over ``window`` against the key's own history: EWMA mean/variance of the metric
    learned at each window close; score = value / max(mean + k * std, min_value)."""

    type: Literal["baseline"] = "baseline"
    window: str = "1h"
    metric: str = "requests"
    k: float = Field(4.0, gt=0)
    alpha: float = Field(0.1, gt=0, lt=1, description="EWMA weight of the newest window")
    min_history: int = Field(6, ge=1, le=60_000, description="closed windows learned before it may score")
    min_value: float = Field(1.0, gt=0, description="never flags a value below this (tiny histories)")
    reemit_factor: float = Field(2.0, gt=1.0)

    @field_validator("metric")
    @classmethod
    def _metric_ok(cls, v: str) -> str:
        return check_metric(v)


DetectorSpec = Annotated[RuleSpec | RatioSpec | BaselineSpec | MLSpec, Field(discriminator="type")]
