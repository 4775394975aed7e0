"""Configuration of the online-ML detector (``type: ml``): which features, which river model, and
how the adaptive threshold behaves. Everything is validated at load time so a bad config names the
field instead of failing later in the stream.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from detectors.spec_base import Strict

#: Per-key window metrics fed to the model when the config does not list any: engine metric names.
#: The detector log1p-transforms every feature, so counts spanning 1..1e10 fit one scale.
DEFAULT_FEATURES: tuple[str, ...] = (
    "requests",
    "bytes_sent",
    "status_4xx",
    "auth_failures",
    "not_found",
    "cache_misses",
    "distinct_uris",
    "distinct_user_agents",
    "range_requests",
)

#: Ratios of two features, fed to the model as features of their own (0 when the denominator is 0):
#: bytes per request is what tells a bulk downloader from a busy video player, the 4xx share a
#: scanner from a user with a broken bookmark.
DEFAULT_RATIOS: tuple[str, ...] = ("bytes_sent/requests", "status_4xx/requests")

_WINDOW_RE = re.compile(r"^([1-9][0-9]*)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FEATURE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def window_seconds(window: str) -> int:
    """``"5m"`` -> 300. Raises ValueError on anything but ``<positive int><s|m|h|d>``."""
    m = _WINDOW_RE.match(window)
    if m is None:
        raise ValueError(f"window {window!r} is not <positive integer><s|m|h|d>, e.g. '5m' or '1h'")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


class HalfSpaceTreesModel(Strict):
    """river ``anomaly.HalfSpaceTrees``: mass-based random trees; fast, forgets (two windows of
    ``window_size`` vectors), features must lie in [0, 1] (the detector scales them)."""

    kind: Literal["half_space_trees"] = "half_space_trees"
    n_trees: int = Field(25, ge=1, le=200)
    height: int = Field(6, ge=1, le=15)
    window_size: int = Field(250, ge=10, le=100_000)
    seed: int | None = Field(None, description="overrides the detector's seed for this model")


class LODAModel(Strict):
    """river ``anomaly.LODA``: sparse random projections, each summarised by a streaming histogram.
    Sees joint deviations that axis-aligned trees need depth to isolate and separates the test
    abusers by far wider margins, but is slower (one histogram lookup per projection) and never
    forgets: after traffic drifts its histograms cover both regimes and it loses sensitivity (in
    tests, a 40 GB download went unflagged once everyone was 3x busier). Prefer HalfSpaceTrees where
    traffic drifts."""

    kind: Literal["loda"] = "loda"
    n_bins: int = Field(10, ge=2, le=1000)
    n_random_cuts: int = Field(50, ge=1, le=1000)
    seed: int | None = Field(None, description="overrides the detector's seed for this model")


def _model_kind(v: object) -> str:
    """``model.kind``, defaulting to half_space_trees so ``model: {n_trees: 25}`` just works."""
    if isinstance(v, dict):
        return v.get("kind", "half_space_trees")
    return getattr(v, "kind", "half_space_trees")


ModelSpec = Annotated[
    Annotated[HalfSpaceTreesModel, Tag("half_space_trees")] | Annotated[LODAModel, Tag("loda")],
    Discriminator(_model_kind),
]


class MLSpec(Strict):
    """One shared river anomaly model over per-key window feature vectors.

    The engine calls the detector when a key's window of length ``window`` closes (event time) and
    the key made at least ``min_requests`` requests in it. Nothing is emitted before ``warmup``
    vectors were learned; after that a vector is flagged when its model score reaches
    ``max(score_threshold_floor, threshold_factor * quantile(recent scores, quantile))``, and the
    finding's score is model score / that threshold. Model scores are on a ratio scale (inverse
    tree mass for HalfSpaceTrees, inverse density for LODA: see ``detectors.ml_models``), so a
    finding's score of 3 reads "three times rarer than what sits at the threshold".
    ``score_threshold_floor`` is in those model-score units.
    """

    type: Literal["ml"] = "ml"
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    mode: Literal["block", "alert", "shadow"] = "alert"
    window: str = "5m"
    features: tuple[str, ...] = DEFAULT_FEATURES
    ratios: tuple[str, ...] = DEFAULT_RATIOS
    model: ModelSpec = Field(default_factory=HalfSpaceTreesModel)
    min_requests: int = Field(10, ge=1)
    warmup: int = Field(2000, ge=1, description="vectors learned before the detector may emit anything")
    quantile: float = Field(0.999, gt=0.5, lt=1.0)
    quantile_window: int = Field(
        20_000, ge=100, le=1_000_000, description="recent scores the adaptive threshold is taken over"
    )
    threshold_factor: float = Field(
        1.0, ge=1.0, le=100.0, description="multiplies the score quantile: >1 gives fewer alerts"
    )
    score_threshold_floor: float = Field(
        0.0, ge=0.0, description="the threshold never goes below this model score"
    )
    top_features: int = Field(3, ge=1, le=32, description="contributing features reported per finding")
    seed: int = 42

    @field_validator("window")
    @classmethod
    def _window_ok(cls, v: str) -> str:
        window_seconds(v)
        return v

    @field_validator("features")
    @classmethod
    def _features_ok(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one feature is needed")
        bad = [f for f in v if not _FEATURE_RE.match(f)]
        if bad:
            raise ValueError(f"features are snake_case engine metric names, got {bad}")
        dup = sorted({f for f in v if v.count(f) > 1})
        if dup:
            raise ValueError(f"duplicate features {dup}")
        return v

    @field_validator("ratios")
    @classmethod
    def _ratios_ok(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        features = info.data.get("features")
        if features is None:  # features already failed validation
            return v
        for r in v:
            parts = r.split("/")
            if len(parts) != 2 or not all(_FEATURE_RE.match(p) for p in parts):
                raise ValueError(f"ratio {r!r} is not 'metric/metric'")
            missing = [p for p in parts if p not in features]
            if missing:
                raise ValueError(f"ratio {r!r} uses {missing}, which must be listed in features")
        if len(set(v)) != len(v):
            raise ValueError("duplicate ratios")
        return v

    @field_validator("warmup")
    @classmethod
    def _warmup_covers_model(cls, v: int, info: ValidationInfo) -> int:
        # HalfSpaceTrees scores 0 until its first window of reference mass is complete, and the
        # adaptive threshold needs scores of a trained model: warm-up must outlast both.
        model = info.data.get("model")
        if isinstance(model, HalfSpaceTreesModel) and v < 2 * model.window_size:
            raise ValueError(
                f"warmup ({v}) must be >= 2 * model.window_size ({2 * model.window_size}): "
                "HalfSpaceTrees has no reference mass before its first window ends"
            )
        return v

    @property
    def model_features(self) -> tuple[str, ...]:
        """What the model sees: the features, then the ratios."""
        return self.features + self.ratios

    @property
    def window_s(self) -> int:
        return window_seconds(self.window)

    @property
    def model_seed(self) -> int:
        return self.seed if self.model.seed is None else self.model.seed
