"""The ML detector's adaptive threshold: a rolling quantile of recent model scores.

A fixed threshold on a model score is meaningless across models and drifts with traffic; a quantile
of the scores the model gives the current population is not. Flagged vectors are recorded censored
at the current quantile: they count as "at least this high" (so a quantile of the population stays
right: a rank statistic only needs the order) without letting an attacker's extreme scores, or many
attacking keys, push the threshold up. Excluding them instead would ratchet the threshold down (each
flagged tail removed lowers the next quantile).
"""

from __future__ import annotations

import math

from river import stats

#: A threshold is never below this, so ``score / threshold`` is always defined.
MIN_THRESHOLD = 1e-12
#: Scores after which the threshold already guards learning during warm-up.
USABLE_AFTER = 50


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
        """Enough scores to emit findings against."""
        return self.n >= self.min_scores

    @property
    def usable(self) -> bool:
        """Enough scores to keep outliers out of the model during warm-up (a rough, high threshold
        is fine there: nothing is emitted)."""
        return self.n >= USABLE_AFTER

    def quantile(self) -> float:
        v = self._quantile.get()
        return 0.0 if v is None else float(v)

    def value(self) -> float:
        """The current threshold in model-score units (meaningful once ``ready``)."""
        return max(self.floor, self.factor * self.quantile(), MIN_THRESHOLD)

    def record(self, score: float, flagged: bool) -> None:
        if flagged:
            score = min(score, self.quantile())
        self._quantile.update(score)
        self.n += 1
