"""The ML detector's adaptive threshold: a rolling quantile of recent model scores.

A fixed threshold on a model score is meaningless across models and drifts with traffic; a quantile
of the scores the model gives the current population is not. Every score is recorded, flagged or
not: a rank statistic needs the whole population, and an attacker's extreme scores weigh no more
than any score above the quantile. Two alternatives were tried and rejected: excluding flagged
scores ratchets the threshold down (each removed tail lowers the next quantile); recording them
censored at the current quantile locks it (once more than 1 - q of the scores sit at the quantile it
can never rise again, and a threshold set too low early keeps flagging several % of ordinary keys).
The price: abusive vectors making up more than 1 - q of the last ``window`` scores lift the
threshold to their level (they are still never learned).
"""

from __future__ import annotations

import math

from river import stats

#: A threshold is never below this, so ``score / threshold`` is always defined.
MIN_THRESHOLD = 1e-12


class AdaptiveThreshold:
    """``max(floor, factor * quantile_q(last window scores))`` once enough scores were seen."""

    def __init__(self, q: float, window: int, factor: float = 1.0, floor: float = 0.0) -> None:
        self.q = q
        self.window = window
        self.factor = factor
        self.floor = floor
        self._quantile = stats.RollingQuantile(q=q, window_size=window)
        self.n = 0
        # Enough scores that the q-quantile is above at least ~1 observed score.
        self.min_scores = min(window, max(100, math.ceil(1.0 / (1.0 - q))))

    @property
    def ready(self) -> bool:
        return self.n >= self.min_scores

    def quantile(self) -> float:
        v = self._quantile.get()
        return 0.0 if v is None else float(v)

    def value(self) -> float:
        """The current threshold in model-score units (meaningful once ``ready``)."""
        return max(self.floor, self.factor * self.quantile(), MIN_THRESHOLD)

    def record(self, score: float) -> None:
        self._quantile.update(score)
        self.n += 1
