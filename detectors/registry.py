"""The one place a detector kind is registered: spec class -> factory building its detector."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from detectors.base import WindowDetector
from detectors.baseline import BaselineDetector
from detectors.config import BaselineSpec, RatioSpec, RuleSpec
from detectors.rules import RatioDetector, RuleDetector

KINDS: dict[type, Callable[[Any], WindowDetector]] = {
    RuleSpec: RuleDetector,
    RatioSpec: RatioDetector,
    BaselineSpec: BaselineDetector,
}


def register(spec_cls: type, factory: Callable[[Any], WindowDetector]) -> None:
    KINDS[spec_cls] = factory


def build(spec: Any) -> WindowDetector:
    factory = KINDS.get(type(spec))
    if factory is None:
        raise ValueError(f"no detector registered for spec type {type(spec).__name__} (type={spec.type!r})")
    return factory(spec)


def _register_ml() -> None:
    """The online-ML kind lives in detectors/ml.py (its own work item); wired here when present."""
    if (
        importlib.util.find_spec("detectors.ml") is None
        or importlib.util.find_spec("detectors.ml_spec") is None
    ):
        return
    from detectors.ml import MLDetector  # type: ignore[import-not-found]
    from detectors.ml_spec import MLSpec  # type: ignore[import-not-found]
    from detectors.windowclose import WindowCloseAdapter

    def factory(spec: Any) -> WindowDetector:
        return WindowCloseAdapter(spec, MLDetector(spec), spec.features, spec.window_s, spec.min_requests)

    register(MLSpec, factory)


_register_ml()
