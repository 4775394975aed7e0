"""Rule detectors: a metric (or a ratio of two) over a window against a fixed threshold."""

from __future__ import annotations

import numpy as np

from detectors.base import Need, Reemitter, WindowDetector, number
from detectors.config import RatioSpec, RuleSpec
from detectors.finding import Finding
from detectors.metrics import CATALOG
from detectors.store import Channel, StoreView
from detectors.windows import window_label


def _split(metrics: set[str]) -> tuple[frozenset[str], frozenset[str]]:
    sums = frozenset(m for m in metrics if CATALOG[m].kind == "sum")
    return sums, frozenset(metrics - sums)


class _Windowed(WindowDetector):
    spec: RuleSpec | RatioSpec

    def __init__(self, spec: RuleSpec | RatioSpec) -> None:
        self.spec = spec
        self.channel = Channel(spec.path, spec.status)
        self.window_s = spec.window_s
        self.emitter = Reemitter(spec.reemit_factor)

    def reset(self, slots: np.ndarray) -> None:
        self.emitter.reset(slots)

    def adopt(self, old: WindowDetector) -> bool:
        """Thresholds, modes and minimums may change: the record of what was already emitted holds
        as long as the counted windows are the same (key, filter, window)."""
        o = old.spec
        if (o.key, o.window, o.path, o.status) != (
            self.spec.key,
            self.spec.window,
            self.spec.path,
            self.spec.status,
        ):
            return False
        self.emitter.last = old.emitter.last  # type: ignore[attr-defined]
        return True

    def _finding(self, view: StoreView, i: int, score: float, evidence: dict[str, object]) -> Finding:
        start, end = view.window_bounds(i)
        if self.spec.sliding:
            t = float(view.t[i])
            evidence.update(sliding=True, aligned_window_start=start)
            start, end = t - self.window_s, t
        evidence.update(window_start=start, window_end=end, **self.channel.describe())
        return Finding(
            key=view.key_of(i),
            key_type=view.key_type,
            detector=self.spec.name,
            score=float(score),
            threshold=float(self.spec.threshold),
            window=window_label(self.window_s),
            window_s=self.window_s,
            event_time=float(view.t[i]),
            mode=self.spec.mode,
            evidence=evidence,
        )


class RuleDetector(_Windowed):
    """Score = metric / threshold over the key's current window, once ``min_requests`` is met."""

    spec: RuleSpec

    def needs(self) -> list[Need]:
        sums, distincts = _split({self.spec.metric, "requests"})
        return [Need(self.channel, self.window_s, sums, distincts)]

    def evaluate(self, view: StoreView) -> list[Finding]:
        sp = self.spec
        if sp.sliding:
            value, prev, weight = view.sliding(sp.metric)
            requests = view.sliding("requests")[0]
        else:
            value = view.running(sp.metric)
            requests = view.running("requests")
        distinct = CATALOG[sp.metric].kind == "distinct"
        with np.errstate(invalid="ignore"):
            ok = value >= sp.threshold
            if distinct and ok.any():  # find the crossing record itself, not the group's last one
                value = view.refine_distinct(sp.metric, np.unique(view.grp[ok]))
                ok = value >= sp.threshold
            if sp.min_requests:
                ok &= requests >= sp.min_requests
        out = []
        for i, score in self.emitter.select(view, ok, value / sp.threshold):
            ev: dict[str, object] = {
                "metric": sp.metric,
                "value": number(value[i]),
                "requests": number(requests[i]),
            }
            if distinct:  # a sketch estimate: an integer, and say so
                ev["value"] = round(float(value[i]))
                ev["estimated"] = True
            if sp.sliding:
                ev["current_window_value"] = number(view.running(sp.metric)[i])
                ev["previous_window_value"] = number(prev[i])
                ev["previous_weight"] = number(weight[i])
            out.append(self._finding(view, i, score, ev))
        return out


class RatioDetector(_Windowed):
    """Score = (numerator / denominator) / threshold, once the denominator reaches ``min_requests``
    and the numerator ``min_numerator`` (a ratio over three requests means nothing)."""

    spec: RatioSpec

    def needs(self) -> list[Need]:
        sums, distincts = _split({self.spec.numerator, self.spec.denominator, "requests"})
        return [Need(self.channel, self.window_s, sums, distincts)]

    def evaluate(self, view: StoreView) -> list[Finding]:
        sp = self.spec
        if sp.sliding:
            num = view.sliding(sp.numerator)[0]
            den = view.sliding(sp.denominator)[0]
        else:
            num = view.running(sp.numerator)
            den = view.running(sp.denominator)
        ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        ok = (den >= sp.min_requests) & (num >= sp.min_numerator) & (ratio >= sp.threshold)
        out = []
        for i, score in self.emitter.select(view, ok, ratio / sp.threshold):
            ev = {
                "numerator": sp.numerator,
                "denominator": sp.denominator,
                "numerator_value": number(num[i]),
                "denominator_value": number(den[i]),
                "ratio": number(ratio[i]),
                "requests": number(view.running("requests")[i]),
            }
            out.append(self._finding(view, i, score, ev))
        return out
