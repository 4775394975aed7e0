"""ML detector throughput and state size, per model type.

Feeds seeded per-key window vectors (tests/detectors/ml_traffic.py: ordinary users plus one abuser
per 2,000) through ``MLDetector.evaluate`` (score, threshold, learn or evidence) and reports vectors/s
after warm-up, the pickled detector size, the snapshot time, and what was flagged.

    python -m bench.ml_bench [--vectors 50000] [--out bench/results/ml.md]
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import time

from detectors.ml import MLDetector
from detectors.ml_spec import MLSpec
from tests.detectors.ml_traffic import abusive_vectors, normal_vectors

MODELS = {
    "half_space_trees (default: 25 trees, height 6, window 250)": {},
    "loda (50 cuts, 10 bins)": {"kind": "loda"},
}


NOTES = """
What the columns mean: `vectors` is per-key window vectors (one per key per closed window with at
least `min_requests`), not records: at 1,000,000 active keys and 5-minute windows that is ~3,300
vectors/s, so the default HalfSpaceTrees detector costs about a quarter of one core there. Each
vector is scored, compared with the rolling-quantile threshold and learned (or, when flagged,
explained by leave-one-out: one extra `score_one` per feature). `pickled_bytes` is the whole
detector (model, scaler, running moments, the 20,000-score quantile window): it does not depend on
the number of keys (tests/detectors/test_ml_detector.py checks byte-identical state for 20,000 keys
vs 3). Abusers are one per 2,000 ordinary vectors, cycling through bandwidth hog, scanner,
credential stuffing, scraper and flood (tests/detectors/ml_traffic.py); `fp_rate` is ordinary
vectors flagged, against a design rate of 1 - quantile = 0.1 %.

Profile (cProfile, HalfSpaceTrees default): ~55 % in river's tree walks (score + learn), ~20 % in the
scaler's P² quantile updates, the rest in feature extraction and bookkeeping.
"""


def _stream(n: int, seed: int) -> list[tuple[str, dict[str, float], bool]]:
    normal = normal_vectors(n, seed)
    out = []
    for i, v in enumerate(normal):
        out.append((f"user-{i}", v, False))
        if i % 2000 == 1999:
            kinds = list(abusive_vectors(seed + i).items())
            kind, a = kinds[(i // 2000) % len(kinds)]
            out.append((f"abuser-{kind}-{i}", a, True))
    return out


def bench(model: dict, n: int) -> dict[str, float | int | str]:
    spec = MLSpec(name="ml", key="user", model=model, warmup=2000)
    det = MLDetector(spec)
    warm = normal_vectors(spec.warmup, seed=100)
    for i, v in enumerate(warm):
        det.evaluate("user", f"warm-{i}", v, float(i), 300)
    stream = _stream(n, seed=200)
    abusers = sum(1 for _, _, bad in stream if bad)
    caught = false_pos = 0
    t0 = time.perf_counter()
    for i, (key, v, bad) in enumerate(stream):
        f = det.evaluate("user", key, v, float(i), 300)
        if f is not None:
            caught += bad
            false_pos += not bad
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    snap = det.snapshot()
    snap_ms = (time.perf_counter() - t1) * 1e3
    return {
        "vectors": len(stream),
        "vectors_per_s": round(len(stream) / dt),
        "us_per_vector": round(dt / len(stream) * 1e6, 1),
        "pickled_bytes": len(pickle.dumps(det)),
        "snapshot_bytes": len(snap),
        "snapshot_ms": round(snap_ms, 1),
        "abusers": abusers,
        "abusers_flagged": caught,
        "normal_flagged": false_pos,
        "fp_rate": f"{false_pos / (len(stream) - abusers):.4%}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vectors", type=int, default=50_000)
    ap.add_argument("--out", default=None, help="write a markdown table here")
    args = ap.parse_args()
    load = os.getloadavg()
    rows = []
    for label, model in MODELS.items():
        r = bench(model, args.vectors)
        rows.append((label, r))
        print(label, r, flush=True)
    load_after = os.getloadavg()
    if args.out:
        cols = list(rows[0][1])
        lines = [
            "# ML detector benchmark",
            "",
            f"`python -m bench.ml_bench --vectors {args.vectors}` on {platform.machine()}, "
            f"Python {platform.python_version()}, {os.cpu_count()} cores shared with other work: "
            f"load average {load[0]:.2f} before, {load_after[0]:.2f} after.",
            "",
            "| model | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        lines += [f"| {label} | " + " | ".join(str(r[c]) for c in cols) + " |" for label, r in rows]
        lines.append(NOTES)
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
