"""examples/cfguard.yaml shows the shipped defaults: same key types and the same detectors with the
same settings as ``detectors.defaults`` / ``consumer.config._default_keys``. Documented differences:
the example adds the ML detector in shadow mode (``EXAMPLE_ONLY``); nothing else may differ."""

from __future__ import annotations

from pathlib import Path

from consumer.config import _default_keys, load_config
from detectors.defaults import default_detectors

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cfguard.yaml"
#: Detectors the example shows on top of the defaults (shadow-mode ML: opt-in, learns before it acts).
EXAMPLE_ONLY = {"unusual_user_ml"}


def test_example_keys_are_the_default_keys() -> None:
    assert load_config(EXAMPLE, environ={}).keys == _default_keys()


def test_example_detectors_are_the_defaults_plus_the_documented_extras() -> None:
    example = {d.name: d for d in load_config(EXAMPLE, environ={}).detectors}
    defaults = {d.name: d for d in default_detectors()}
    assert set(example) - set(defaults) == EXAMPLE_ONLY
    assert set(defaults) - set(example) == set()
    for name, spec in defaults.items():
        assert example[name].model_dump() == spec.model_dump(), name
    assert example["unusual_user_ml"].mode == "shadow"
