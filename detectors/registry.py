"""The one place a detector kind is registered: spec class -> factory building its detector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors.base import WindowDetector
from detectors.baseline import BaselineDetector
from detectors.config import BaselineSpec, RatioSpec, RuleSpec
from detectors.ml import MLDetector
from detectors.ml_spec import MLSpec
from detectors.rules import RatioDetector, RuleDetector
from detectors.windowclose import WindowCloseAdapter

KINDS: dict[type, Callable[[Any], WindowDetector]] = {
    RuleSpec: RuleDetector,
    RatioSpec: RatioDetector,
    BaselineSpec: BaselineDetector,
    MLSpec: lambda spec: _ml(spec),
}


def _ml(spec: MLSpec) -> WindowDetector:
    """The online-ML detector scores each key's closed windows: the adapter feeds it their figures."""
    metrics = (*spec.features, *spec.ratios)  # the adapter passes a ratio's two metrics
    return WindowCloseAdapter(spec, MLDetector(spec), metrics, spec.window_s, spec.min_requests)


def register(spec_cls: type, factory: Callable[[Any], WindowDetector]) -> None:
    KINDS[spec_cls] = factory


def build(spec: Any) -> WindowDetector:
    factory = KINDS.get(type(spec))
    if factory is None:
        raise ValueError(f"no detector registered for spec type {type(spec).__name__} (type={spec.type!r})")
    return factory(spec)
