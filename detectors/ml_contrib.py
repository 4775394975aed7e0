"""Which features made an ML finding: cheap, and only computed for flagged vectors (rare).

Two figures per feature, both reported:
- ``deviation``: (log1p(value) - running mean) / running std of the learned vectors, in log units
  (std floored at ``MIN_STD`` so a feature that never varied cannot divide by zero). Says how
  unusual the value is on its own.
- ``score_drop``: leave-one-out on the model itself: the share of the anomaly score that goes away
  when this one feature is reset to its typical (running-mean) value. Says how much the model's
  verdict rests on it, joint effects included. Costs one extra ``score_one`` per feature, per finding.
Features are ranked by ``score_drop``, then by ``deviation``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_STD = 0.25  # log1p units: a ~28 % change


class RunningMoments:
    """Exponentially weighted mean and variance of the log1p features of learned vectors.

    The weight is 1/n for the first ``horizon`` vectors (an exact mean) and 1/horizon afterwards, so
    "typical" follows slow drift in the traffic.
    """

    __slots__ = ("horizon", "mean", "n", "var")

    def __init__(self, n_features: int, horizon: int = 5000) -> None:
        self.horizon = horizon
        self.n = 0
        self.mean = [0.0] * n_features
        self.var = [0.0] * n_features

    def learn(self, logs: Sequence[float]) -> None:
        self.n += 1
        a = 1.0 / min(self.n, self.horizon)
        mean, var = self.mean, self.var
        for i, v in enumerate(logs):
            d = v - mean[i]
            mean[i] += a * d
            var[i] = (1.0 - a) * (var[i] + a * d * d)

    def deviation(self, i: int, log_value: float) -> float:
        return (log_value - self.mean[i]) / max(math.sqrt(self.var[i]), MIN_STD)

    def __getstate__(self) -> tuple:
        return (self.horizon, self.n, self.mean, self.var)

    def __setstate__(self, state: tuple) -> None:
        self.horizon, self.n, self.mean, self.var = state
