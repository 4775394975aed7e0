"""MLSpec validation: good configs load with the documented defaults, bad ones name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detectors.ml_spec import DEFAULT_FEATURES, HalfSpaceTreesModel, LODAModel, MLSpec, window_seconds


def _error_locs(**kw) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        MLSpec(name="ml", key="user", **kw)
    return [".".join(str(p) for p in e["loc"]) for e in exc.value.errors()]


def test_defaults() -> None:
    s = MLSpec(name="ml", key="user")
    assert (s.type, s.mode, s.window, s.window_s) == ("ml", "alert", "5m", 300)
    assert s.features == DEFAULT_FEATURES
    assert isinstance(s.model, HalfSpaceTreesModel)
    assert (s.model.n_trees, s.model.height, s.model.window_size) == (25, 6, 250)
    assert s.model_seed == 42
    assert s.ratios == ("bytes_sent/requests", "status_4xx/requests")
    assert s.model_features == DEFAULT_FEATURES + s.ratios


def test_from_yaml_like_dict_with_loda_and_model_seed() -> None:
    s = MLSpec.model_validate(
        {
            "type": "ml",
            "name": "ml-ip",
            "key": "ip",
            "mode": "shadow",
            "window": "1h",
            "features": ["requests", "not_found"],
            "ratios": ["not_found/requests"],
            "model": {"kind": "loda", "n_bins": 20, "n_random_cuts": 30, "seed": 7},
            "warmup": 50,
            "quantile": 0.99,
            "seed": 1,
        }
    )
    assert isinstance(s.model, LODAModel) and s.model.n_bins == 20
    assert s.window_s == 3600 and s.model_seed == 7
    assert s.model_features == ("requests", "not_found", "not_found/requests")


def test_model_kind_defaults_to_half_space_trees() -> None:
    s = MLSpec(name="ml", key="user", model={"n_trees": 5, "window_size": 100}, warmup=200)
    assert isinstance(s.model, HalfSpaceTreesModel) and s.model.n_trees == 5


@pytest.mark.parametrize(
    ("kw", "loc"),
    [
        ({"window": "5 minutes"}, "window"),
        ({"window": "0m"}, "window"),
        ({"features": []}, "features"),
        ({"features": ["requests", "Bytes"]}, "features"),
        ({"features": ["requests", "bytes_sent/requests"]}, "features"),
        ({"ratios": ["bytes_sent/requests/x"]}, "ratios"),
        ({"ratios": ["bytes_received/requests"]}, "ratios"),  # bytes_received not in features
        ({"features": ["requests", "bytes_sent"], "ratios": ["bytes_sent/requests"] * 2}, "ratios"),
        ({"features": ["requests", "requests"]}, "features"),
        ({"warmup": 100}, "warmup"),  # < 2 * HalfSpaceTrees window_size (250)
        ({"quantile": 1.0}, "quantile"),
        ({"quantile": 0.3}, "quantile"),
        ({"mode": "kill"}, "mode"),
        ({"min_requests": 0}, "min_requests"),
        ({"threshold_factor": 0.5}, "threshold_factor"),
        ({"model": {"kind": "isolation_forest"}}, "model"),
        ({"model": {"kind": "loda", "n_trees": 3}}, "model.loda.n_trees"),
        ({"model": {"kind": "half_space_trees", "height": 0}}, "model.half_space_trees.height"),
        ({"thresold": 3}, "thresold"),
    ],
)
def test_bad_field_is_named(kw: dict, loc: str) -> None:
    assert loc in _error_locs(**kw)


def test_ratio_message_names_the_missing_feature() -> None:
    with pytest.raises(ValidationError, match=r"uses \['bytes_received'\], which must be listed in features"):
        MLSpec(name="ml", key="user", ratios=["bytes_received/requests"])


def test_warmup_message_explains() -> None:
    with pytest.raises(ValidationError, match=r"warmup \(100\) must be >= 2 \* model.window_size \(500\)"):
        MLSpec(name="ml", key="user", warmup=100)


def test_spec_is_frozen() -> None:
    s = MLSpec(name="ml", key="user")
    with pytest.raises(ValidationError):
        s.mode = "block"  # type: ignore[misc]


@pytest.mark.parametrize(("w", "s"), [("30s", 30), ("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400)])
def test_window_seconds(w: str, s: int) -> None:
    assert window_seconds(w) == s
