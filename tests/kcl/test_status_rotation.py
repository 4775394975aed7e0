"""The status dir's decisions.jsonl stays bounded: rotated by size to decisions.jsonl.1 ... .N, safe
with several shard processes appending at once (no line lost, none duplicated, none torn), and the
readers (the demo's ``DecisionTail``, ``read_decisions``) still see every decision across rotations."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer.kcl.config import KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from consumer.kcl.status import (
    DECISIONS_FILE,
    DecisionLog,
    DecisionTail,
    StatusWriter,
    decision_files,
    read_decisions,
)
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.protocol import drive, initialize, line, process, record


def _line(writer: str, i: int) -> str:
    """90 bytes whatever ``i`` (< 10**6)."""
    return json.dumps({"w": writer, "i": i, "pad": "x" * (61 - len(str(i)))}) + "\n"


def _names(root: Path) -> list[str]:
    return [p.name for p in decision_files(root)]


def test_rotates_before_an_append_would_pass_the_bound_and_keeps_n_files(tmp_path: Path) -> None:
    size = len(_line("a", 0).encode())
    assert size == 90
    dlog = DecisionLog(tmp_path, max_bytes=10 * size, keep=3)
    for i in range(10):  # exactly at the bound: no rotation yet
        dlog.append([_line("a", i)])
    assert _names(tmp_path) == [DECISIONS_FILE] and dlog.rotations == 0
    assert (tmp_path / DECISIONS_FILE).stat().st_size == 10 * size
    dlog.append([_line("a", 10)])  # would pass it: rotated first
    assert _names(tmp_path) == [f"{DECISIONS_FILE}.1", DECISIONS_FILE]
    assert (tmp_path / f"{DECISIONS_FILE}.1").stat().st_size == 10 * size
    assert (tmp_path / DECISIONS_FILE).stat().st_size == size
    for i in range(11, 60):
        dlog.append([_line("a", i)])
    # 60 lines, 10 per file: .3 .2 .1 full, current 10 (lines 50-59); lines 0-19 rotated out
    assert _names(tmp_path) == [f"{DECISIONS_FILE}.{n}" for n in (3, 2, 1)] + [DECISIONS_FILE]
    assert dlog.rotations == 5
    for p in decision_files(tmp_path):
        assert p.stat().st_size <= 10 * size
    assert [d["i"] for d in read_decisions(tmp_path)] == list(range(20, 60))  # newest kept, in order


def test_a_batch_is_never_split_across_files(tmp_path: Path) -> None:
    dlog = DecisionLog(tmp_path, max_bytes=250, keep=5)
    dlog.append([_line("a", 0)])
    dlog.append([_line("a", i) for i in (1, 2)])  # 90 + 180 > 250: rotate, then the batch whole
    assert [json.loads(x)["i"] for x in (tmp_path / f"{DECISIONS_FILE}.1").read_text().splitlines()] == [0]
    assert [json.loads(x)["i"] for x in (tmp_path / DECISIONS_FILE).read_text().splitlines()] == [1, 2]
    dlog.append([_line("a", i) for i in range(3, 7)])  # larger than the bound alone: one file
    assert [d["i"] for d in read_decisions(tmp_path)] == list(range(7))


def test_the_tail_follows_the_file_through_rotations(tmp_path: Path) -> None:
    dlog = DecisionLog(tmp_path, max_bytes=5 * 90, keep=4)
    tail = DecisionTail(tmp_path)
    assert tail.read() == []
    seen: list[int] = []
    n = 0
    for burst in (3, 1, 4, 7, 2, 12, 1):  # several rotations between some reads
        for _ in range(burst):
            dlog.append([_line("a", n)])
            n += 1
        seen += [d["i"] for d in tail.read()]
    assert seen == list(range(n)) and tail.missed_rotations == 0
    assert tail.read() == []


def test_a_tail_that_fell_behind_the_kept_files_says_so(tmp_path: Path) -> None:
    dlog = DecisionLog(tmp_path, max_bytes=2 * 90, keep=1)
    tail = DecisionTail(tmp_path)
    dlog.append([_line("a", 0)])
    assert [d["i"] for d in tail.read()] == [0]
    for i in range(1, 9):  # its file was rotated out (keep=1)
        dlog.append([_line("a", i)])
    # the rest of its own file (deleted, still open), then everything kept; 2-5 were lost to it
    assert [d["i"] for d in tail.read()] == [1, 6, 7, 8]
    assert tail.missed_rotations == 1
    dlog.append([_line("a", 9)])
    assert [d["i"] for d in tail.read()] == [9]


def _writer(root: str, name: str, n: int, max_bytes: int, keep: int) -> None:
    w = StatusWriter(Path(root), f"shard-{name}", decisions_max_bytes=max_bytes, decisions_keep=keep)
    w.decision_log = DecisionLog(Path(root), max_bytes, keep)  # below the config's minimum bound
    for i in range(0, n, 3):  # batches of 1-3 decisions
        w.decisions(
            [{"w": name, "i": j, "pad": "y" * 40} for j in range(i, min(i + 3, n))], {"shard_id": name}
        )


def test_concurrent_appends_from_several_processes_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """3 shard processes append 1,500 decisions each while the file rotates about every 30 lines and
    a tail reads along: every decision is in the kept files exactly once, each writer's in order, and
    the tail saw exactly the same."""
    n, writers = 1500, ["a", "b", "c"]
    max_bytes, keep = 4096, 1000  # keep everything: any loss is the rotation's fault
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n, max_bytes, keep)) for w in writers]
    tail = DecisionTail(tmp_path)
    seen: list[dict] = []
    for p in procs:
        p.start()
    while any(p.is_alive() for p in procs):
        seen += tail.read()
        time.sleep(0.005)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    seen += tail.read()
    kept = read_decisions(tmp_path)
    assert len(decision_files(tmp_path)) > 20  # it did rotate, many times
    for p in decision_files(tmp_path):
        assert p.stat().st_size <= max_bytes
    for got in (kept, seen):
        assert len(got) == len(writers) * n
        for w in writers:
            assert [d["i"] for d in got if d["w"] == w] == list(range(n))
            assert {d["shard_id"] for d in got if d["w"] == w} == {w}
    assert tail.missed_rotations == 0


def test_config_bounds_are_validated_and_reach_the_processor(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="status_decisions_max_bytes"):
        KclConfig(status_decisions_max_bytes=100)
    with pytest.raises(ValidationError, match="status_decisions_keep"):
        KclConfig(status_decisions_keep=0)
    cfg = KclConfig(
        snapshots=SnapshotConfig(store="none"),
        status_dir=tmp_path / "status",
        status_decisions_max_bytes=4096,
        status_decisions_keep=2,
    )
    proc = ShardProcessor(cfg, lambda: CountingPipeline(threshold=1), None)
    recs = [record(1000 + i, line(1_700_000_000, f"10.0.{i // 256}.{i % 256}")) for i in range(200)]
    drive(proc, [initialize(), *(process(recs[i : i + 10]) for i in range(0, 200, 10))])
    assert proc.status is not None
    assert (proc.status.decision_log.max_bytes, proc.status.decision_log.keep) == (4096, 2)
    names = _names(tmp_path / "status")
    assert names == [f"{DECISIONS_FILE}.2", f"{DECISIONS_FILE}.1", DECISIONS_FILE]
    kept = read_decisions(tmp_path / "status")
    assert 0 < len(kept) < 200  # the oldest were rotated out
    assert [d["key"] for d in kept] == [f"10.0.{i // 256}.{i % 256}" for i in range(200 - len(kept), 200)]
