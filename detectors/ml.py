"""Online-ML detector: one shared river anomaly model scores every key's closed-window metrics.

One model per detector, never per key (a river HalfSpaceTrees is ~1.2 MiB): a key is judged
against the population of keys, and the detector's memory does not depend on how many keys exist.

Per vector (the engine calls ``evaluate`` when a key's window closes, event time):
1. log1p every feature, scale into [0, 1] (``ml_scaling``), score with the model *before* learning.
2. Compare with the adaptive threshold, a rolling quantile of recent scores (``ml_threshold``).
3. At or above the threshold: a finding (after warm-up), and the vector is NOT learned: the
   model, the scaler and the running moments are left exactly as they were, so an abuser cannot
   teach the model that abuse is normal. river's ``ThresholdFilter(protect_anomaly_detector=False)``
   never learns at all (river 0.26.1), which is why this logic lives here.
4. Below: learned by the scaler, the model and the running moments behind the evidence.

Warm-up: the first ``spec.warmup`` learned vectors can never produce a finding, whatever their
score. Once the threshold has enough scores (model ready + ``1 / (1 - quantile)`` scores, ~1,250
vectors by default), vectors above it are kept out of the model during warm-up too (nothing is
emitted for them). Before that, everything is learned: abusers making up a sizeable share of the
very first vectors are learned as normal until the model forgets them (HalfSpaceTrees keeps two
windows of mass; the scaler's range decays towards its running 99.9 % quantile).
"""

from __future__ import annotations

import logging
import math
import pickle
from typing import Any

from detectors.finding import Finding
from detectors.ml_contrib import RunningMoments
from detectors.ml_models import build_model, positive_score, ready_after
from detectors.ml_scaling import LogRangeScaler
from detectors.ml_spec import MLSpec
from detectors.ml_threshold import AdaptiveThreshold

log = logging.getLogger(__name__)

_SNAPSHOT_VERSION = 1


def _state_fingerprint(spec: MLSpec) -> dict[str, Any]:
    """The config fields the learned state depends on; others (mode, quantile...) may change."""
    return {"features": list(spec.model_features), "model": spec.model.model_dump(), "seed": spec.model_seed}


class MLDetector:
    """Scores per-key window feature vectors with one shared river model; see the module doc."""

    def __init__(self, spec: MLSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.window_s = spec.window_s
        self._features = spec.model_features
        self._metrics = spec.features
        self._parts = [(f.split("/")[0], f.split("/")[1] if "/" in f else None) for f in self._features]
        self._ready_after = ready_after(spec)
        self._model = build_model(spec)
        self._scaler = LogRangeScaler(self._features)
        self._moments = RunningMoments(len(self._features))
        self._threshold = self._new_threshold()
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "scored",
                "learned",
                "flagged",
                "emitted",
                "warmup_suppressed",
                "invalid_values",
                "missing_features",
                "below_min_requests",
            ),
            0,
        )
        self._warned_missing: set[str] = set()

    def _new_threshold(self) -> AdaptiveThreshold:
        s = self.spec
        return AdaptiveThreshold(s.quantile, s.quantile_window, s.threshold_factor, s.score_threshold_floor)

    # -- the engine's entry point ---------------------------------------------------------------

    @property
    def learned(self) -> int:
        return self._counters["learned"]

    @property
    def warming_up(self) -> bool:
        return self._counters["learned"] < self.spec.warmup

    def evaluate(
        self, key_type: str, key: str, features: dict[str, float], event_time: float, window_s: int
    ) -> Finding | None:
        """Judge one key's closed window; learn it unless it is flagged. Returns a finding or None."""
        if window_s != self.window_s:
            raise ValueError(
                f"ML detector {self.name!r} has window {self.spec.window} "
                f"({self.window_s} s), called with window_s={window_s}"
            )
        requests = features.get("requests")
        if requests is not None and requests < self.spec.min_requests:
            # The engine filters on min_requests; this keeps a stray call from teaching the model.
            self._counters["below_min_requests"] += 1
            return None
        raw = self._raw(features)
        logs = [math.log1p(v) for v in raw]
        x = self._scaler.transform(logs)
        score = positive_score(self.spec, self._model.score_one(x))
        self._counters["scored"] += 1

        model_ready = self._counters["learned"] >= self._ready_after
        flagged = False
        threshold = 0.0
        if model_ready and self._threshold.ready:
            threshold = self._threshold.value()
            flagged = score >= threshold
        if model_ready:
            self._threshold.record(score)

        if not flagged:
            self._learn(logs)
            return None
        self._counters["flagged"] += 1
        if self.warming_up:
            self._counters["warmup_suppressed"] += 1
            return None
        self._counters["emitted"] += 1
        return Finding(
            key=key,
            key_type=key_type,
            detector=self.name,
            score=score / threshold,
            threshold=threshold,
            window=self.spec.window,
            window_s=self.window_s,
            event_time=event_time,
            mode=self.spec.mode,
            evidence=self._evidence(raw, logs, x, score, threshold),
        )

    # -- internals ------------------------------------------------------------------------------

    def _value(self, features: dict[str, float], name: str) -> float | None:
        """A metric's value; None when missing. NaN, infinite and negative values count as 0."""
        v = features.get(name)
        if v is None:
            self._counters["missing_features"] += 1
            if name not in self._warned_missing:
                self._warned_missing.add(name)
                log.warning(
                    "ML detector %r: metric %r missing from the engine's metrics; using 0", self.name, name
                )
            return None
        v = float(v)
        if not math.isfinite(v) or v < 0.0:
            self._counters["invalid_values"] += 1
            return None
        return v

    def _raw(self, features: dict[str, float]) -> list[float]:
        """Each configured feature's value (ratios computed; 0 for a zero denominator)."""
        values = {m: self._value(features, m) or 0.0 for m in self._metrics}
        out = []
        for num, den in self._parts:
            if den is None:
                out.append(values[num])
            else:
                b = values[den]
                out.append(values[num] / b if b > 0.0 else 0.0)
        return out

    def _learn(self, logs: list[float]) -> None:
        self._scaler.learn(logs)
        self._moments.learn(logs)
        self._model.learn_one(self._scaler.transform(logs))
        self._counters["learned"] += 1

    def _evidence(
        self, raw: list[float], logs: list[float], x: dict[str, float], score: float, threshold: float
    ) -> dict[str, Any]:
        contributions = []
        for i, name in enumerate(self._features):
            typical_log = self._moments.mean[i]
            x_typical = dict(x)
            x_typical[name] = self._scaler.transform_one(i, typical_log)
            loo = positive_score(self.spec, self._model.score_one(x_typical))
            contributions.append(
                {
                    "feature": name,
                    "value": round(raw[i], 6),
                    "typical": round(math.expm1(typical_log), 3),
                    "deviation": round(self._moments.deviation(i, logs[i]), 3),
                    "score_drop": round((score - loo) / score, 4) if score > 0 else 0.0,
                }
            )
        contributions.sort(key=lambda c: (-c["score_drop"], -abs(c["deviation"]), c["feature"]))
        return {
            "model": self.spec.model.kind,
            "model_score": score,
            "features": {name: round(v, 6) for name, v in zip(self._features, raw, strict=True)},
            "top_features": contributions[: self.spec.top_features],
            "learned_vectors": self._counters["learned"],
        }

    # -- state ----------------------------------------------------------------------------------

    def clone(self) -> MLDetector:
        """A fresh, untrained detector with the same configuration (river's ``clone`` semantics)."""
        return MLDetector(self.spec)

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {f"ml.{self.name}.{k}": v for k, v in self._counters.items()}
        out[f"ml.{self.name}.threshold"] = self._threshold.value() if self._threshold.ready else 0.0
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": _SNAPSHOT_VERSION,
            "spec": self.spec.model_dump(mode="json"),
            "fingerprint": _state_fingerprint(self.spec),
            "model": self._model,
            "scaler": self._scaler,
            "moments": self._moments,
            "threshold": self._threshold,
            "counters": dict(self._counters),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(MLSpec.model_validate(state["spec"]))  # type: ignore[misc]
        self._load(state)

    def _check(self, state: dict[str, Any]) -> None:
        if state.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(
                f"ML detector {self.name!r}: snapshot version {state.get('version')!r}, "
                f"expected {_SNAPSHOT_VERSION}"
            )
        mine = _state_fingerprint(self.spec)
        if state["fingerprint"] != mine:
            changed = sorted(k for k in mine if state["fingerprint"].get(k) != mine[k])
            raise ValueError(
                f"ML detector {self.name!r}: snapshot was taken with different {changed}; "
                "its learned state does not apply to this config"
            )

    def _load(self, state: dict[str, Any]) -> None:
        self._check(state)
        self._model = state["model"]
        self._scaler = state["scaler"]
        self._moments = state["moments"]
        self._counters.update(state["counters"])
        old = state["threshold"]
        # quantile, its window, factor and floor may change between runs: keep the scores only if
        # they are still measured the same way.
        if (old.q, old.window) == (self.spec.quantile, self.spec.quantile_window):
            old.factor, old.floor = self.spec.threshold_factor, self.spec.score_threshold_floor
            self._threshold = old

    def snapshot(self) -> bytes:
        """The learned state as bytes (independent of this live detector)."""
        return pickle.dumps(self.__getstate__(), protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, obj: bytes) -> None:
        """Load a ``snapshot()``; the current spec must match the learned state (features, model)."""
        state = pickle.loads(obj)
        self._check(state)  # before touching anything: a refused snapshot leaves this detector as it was
        self.__init__(self.spec)  # type: ignore[misc]
        self._load(state)
