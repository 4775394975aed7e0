"""PLACEHOLDER owned by the detectors work: the default detector set."""

from __future__ import annotations

from detectors.config import DetectorSpec


def default_detectors() -> list[DetectorSpec]:
    return []
