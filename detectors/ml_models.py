"""The river anomaly models the ML detector can use, built from their config, and each model's
score put on one convention: positive, larger = more anomalous, so ``score / threshold`` is a ratio.
"""

from __future__ import annotations

import math

from river import anomaly

from detectors.ml_spec import HalfSpaceTreesModel, LODAModel, MLSpec

# Each model's raw score is put on a ratio scale, so that ``score / threshold`` reads "this many
# times rarer than what sits at the threshold":
# - HalfSpaceTrees returns 1 - mass / max_mass, which crowds every score into [0.95, 1) (the mass a
#   vector's path collects is small next to the theoretical maximum): a blatant scanner then scores
#   1.01 x the threshold. 1 / (1 - raw) = max_mass / mass is the inverse mass; it is bounded by
#   2 ** (height + 1) - 1 because the root always carries a full window of mass.
# - LODA returns the mean of -log(density) over its projections, negative where densities exceed 1.
#   exp(raw) = 1 / geometric-mean density; river floors densities at 1e-12, so it is at most 1e12.


def build_model(spec: MLSpec) -> anomaly.base.AnomalyDetector:
    m = spec.model
    seed = spec.model_seed
    if isinstance(m, HalfSpaceTreesModel):
        # limits default to [0, 1] per feature: the detector's scaler guarantees that range.
        return anomaly.HalfSpaceTrees(
            n_trees=m.n_trees, height=m.height, window_size=m.window_size, seed=seed
        )
    if isinstance(m, LODAModel):
        return anomaly.LODA(n_bins=m.n_bins, n_random_cuts=m.n_random_cuts, seed=seed)
    raise TypeError(f"unknown ML model config {type(m).__name__}")  # pragma: no cover - union is closed


def ready_after(spec: MLSpec) -> int:
    """Vectors a model must learn before its scores describe the data (and may feed the threshold).

    HalfSpaceTrees scores 0 for everything during its first window (no reference mass yet); LODA's
    histograms need some points before a density means anything.
    """
    m = spec.model
    if isinstance(m, HalfSpaceTreesModel):
        return m.window_size
    return 10 * m.n_bins


def positive_score(spec: MLSpec, raw: float) -> float:
    """The model's raw score on the ratio scale described above (positive, larger = rarer)."""
    if isinstance(spec.model, LODAModel):
        return math.exp(raw)
    return 1.0 / max(1.0 - float(raw), 1e-12)
