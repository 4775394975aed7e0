"""The per-key HyperLogLog: stable hashing and its error at the cardinalities the rules use."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from detectors.sketch import REGISTERS, estimate, hash_texts, register_and_rank


def sketch_of(values: list[str]) -> np.ndarray:
    regs = np.zeros((1, REGISTERS), dtype=np.uint8)
    idx, rank = register_and_rank(hash_texts(values))
    np.maximum.at(regs[0], idx, rank)
    return regs


def test_hash_is_stable_across_processes_and_none_is_dash() -> None:
    h = hash_texts(["/index.html", None, "-", "/index.html"])
    assert h[0] == h[3] and h[1] == h[2]
    # crc32 + fmix32: fixed values, not Python's per-process randomised hash()
    assert int(hash_texts(["/index.html"])[0]) == int(h[0]) and h.dtype == np.uint32
    code = "from detectors.sketch import hash_texts; print(int(hash_texts(['/index.html'])[0]))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert int(out.stdout) == int(h[0])


def test_empty_sketch_estimates_zero_and_duplicates_do_not_count() -> None:
    assert estimate(np.zeros((1, REGISTERS), dtype=np.uint8))[0] == 0.0
    assert estimate(sketch_of(["/a"] * 1000))[0] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(("n", "tolerance"), [(10, 0.15), (100, 0.25), (1000, 0.35), (100_000, 0.35)])
def test_error_is_within_the_documented_bounds(n: int, tolerance: float) -> None:
    errors = []
    for trial in range(20):
        est = estimate(sketch_of([f"/t{trial}/p{i}" for i in range(n)]))[0]
        errors.append(est / n - 1)
    errors = np.array(errors)
    assert np.abs(errors).max() <= tolerance * 2
    assert np.sqrt((errors**2).mean()) <= tolerance  # RMS relative error


def test_merge_is_register_max() -> None:
    a = sketch_of([f"/a{i}" for i in range(300)])
    b = sketch_of([f"/a{i}" for i in range(150, 450)])
    both = sketch_of([f"/a{i}" for i in range(450)])
    assert np.array_equal(np.maximum(a, b), both)
