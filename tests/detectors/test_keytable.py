"""The key table: hash index against a dict model under churn, and restore in another process."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from detectors.keytable import KeyTable, key_hashes

REPO = Path(__file__).resolve().parents[2]


def test_index_matches_a_dict_model_under_allocation_and_release_churn() -> None:
    rng = np.random.default_rng(3)
    table = KeyTable(max_keys=5000)
    model: dict[str, int] = {}
    for step in range(60):
        batch = list({f"key-{i}" for i in rng.integers(0, 20_000, 400).tolist()})
        found = table.find(key_hashes(batch))
        assert [int(s) for s in found] == [model.get(k, -1) for k in batch]
        new = [k for k, s in zip(batch, found.tolist(), strict=True) if s < 0]
        if len(new) > table.room():
            victims = np.array(
                sorted(rng.choice(sorted(model.values()), len(new) - table.room() + 50, replace=False))
            )
            inverse = {s: k for k, s in model.items()}
            table.release(victims)
            for s in victims.tolist():
                del model[inverse[s]]
        slots = table.allocate(new)
        model.update(zip(new, slots.tolist(), strict=True))
        assert len(table) == len(model) and len(set(model.values())) == len(model)
        if step % 10 == 0:
            table = pickle.loads(pickle.dumps(table))  # the index is rebuilt on unpickling
    assert table.live_keys() == set(model)
    assert all(table.slot_of(k) == s for k, s in model.items())
    assert table.slot_of("never-seen") is None and "never-seen" not in table


def test_released_slots_are_reused_lowest_first() -> None:
    table = KeyTable(max_keys=10)
    table.allocate([f"k{i}" for i in range(6)])
    table.release(np.array([4, 1]))
    assert table.allocate(["x", "y", "z"]).tolist() == [1, 4, 6]


_CHILD = """
import json, pickle, sys, dataclasses
sys.path.insert(0, {repo!r})
from detectors.engine import Engine
from detectors.config import StateConfig
from detectors.defaults import default_detectors
from tests.detectors.generated import KEY_TYPES, generate
traffic = generate()
e = Engine.from_config(default_detectors(), StateConfig(), list(KEY_TYPES))
e.restore(open(sys.argv[1], "rb").read())
out = [dataclasses.asdict(f) for b in traffic[len(traffic) // 2:] for f in e.process(b)]
print(json.dumps(out, sort_keys=True))
"""


def test_snapshot_restored_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    from detectors.config import StateConfig
    from detectors.defaults import default_detectors
    from detectors.engine import Engine
    from tests.detectors.generated import KEY_TYPES, generate
    from tests.detectors.helpers import as_json

    traffic = generate()
    e = Engine.from_config(default_detectors(), StateConfig(), list(KEY_TYPES))
    half = len(traffic) // 2
    for b in traffic[:half]:
        e.process(b)
    snap = tmp_path / "engine.snap"
    snap.write_bytes(e.snapshot())
    here = as_json([f for b in traffic[half:] for f in e.process(b)])
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(repo=str(REPO)), str(snap)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert proc.stdout.strip() == here
    assert '"detector": "api_key_overuse"' in here  # the second half has findings to compare
