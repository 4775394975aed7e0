"""Feature scaling for the ML detector: log1p, then a robust running range learned from the vectors
the model learns, mapped into [0, 1] with headroom, clipped.

Why this scaling: window metrics are counts spanning 1..1e10 with heavy tails, so log1p first; river
HalfSpaceTrees builds its random splits over [0, 1] per feature, so every feature must lie in
[0, 1]. The range of each feature is a running min/max of the learned vectors that forgets: each
learned vector pulls the max 1/``FORGET`` of the way down towards the running 99.9 % quantile (and
the min up towards the 0.1 % one; river's P² ``stats.Quantile``, constant memory). It behaves like
a min/max (the whole normal population inside the learned range, so ordinary tails do not look
new), but a few abusive vectors learned at start-up, before the threshold existed, stop stretching
the scale after a few ``FORGET`` vectors; flagged vectors are never learned at all.
The learned range maps to [0, ``HEADROOM``]; values beyond it land
in (``HEADROOM``, 1] (up to as far again as the learned log-span) and are clipped at 1: half of
every feature's axis is room for the unseen, where the trees' random splits isolate it. A feature
that has not varied yet gets a span of ``MIN_SPAN`` (a 10 % change), so its first departure from a
constant still registers.
"""

from __future__ import annotations

from collections.abc import Sequence

from river import stats

HEADROOM = 0.5
MIN_SPAN = 0.1
LOW_Q = 0.001
HIGH_Q = 0.999
FORGET = 2000


class LogRangeScaler:
    """Per-feature forgetting min/max of log1p(value); ``transform`` maps into [0, 1]."""

    def __init__(self, features: Sequence[str]) -> None:
        self.features: tuple[str, ...] = tuple(features)
        self._lo_q = [stats.Quantile(LOW_Q) for _ in self.features]
        self._hi_q = [stats.Quantile(HIGH_Q) for _ in self.features]
        self.lo: list[float] = [0.0] * len(self.features)
        self.hi: list[float] = [0.0] * len(self.features)
        self.span: list[float] = [MIN_SPAN] * len(self.features)
        self.n = 0

    def learn(self, logs: Sequence[float]) -> None:
        """Update the range with ``logs`` (log1p values, in ``features`` order)."""
        lo, hi, span = self.lo, self.hi, self.span
        first = self.n == 0
        for i, v in enumerate(logs):
            ql, qh = self._lo_q[i], self._hi_q[i]
            ql.update(v)
            qh.update(v)
            if first:
                lo[i] = hi[i] = v
            else:
                a = lo[i] + (ql.get() - lo[i]) / FORGET
                b = hi[i] - (hi[i] - qh.get()) / FORGET
                lo[i] = v if v < a else a
                hi[i] = v if v > b else b
            span[i] = max(hi[i] - lo[i], MIN_SPAN)
        self.n += 1

    def transform(self, logs: Sequence[float]) -> dict[str, float]:
        """log1p values -> {feature: value in [0, 1]}; before any learning the origin is 0."""
        out: dict[str, float] = {}
        for name, v, lo, span in zip(self.features, logs, self.lo, self.span, strict=True):
            s = (v - lo) * HEADROOM / span
            out[name] = 0.0 if s < 0.0 else (1.0 if s > 1.0 else s)
        return out

    def transform_one(self, i: int, log_value: float) -> float:
        """One feature (by position) of ``transform``."""
        s = (log_value - self.lo[i]) * HEADROOM / self.span[i]
        return 0.0 if s < 0.0 else (1.0 if s > 1.0 else s)
