"""The local spool file: durable appends, last-copy-wins per idempotency key, atomic rewrites that
keep entries appended meanwhile, and torn lines (a crash mid-write) skipped and counted."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from actions.spool import Spool


def entry(k: str, **kw: object) -> dict[str, object]:
    return {"idempotency_key": k, "payload": {"key": k}, "attempts": 0, **kw}


def test_append_and_read_back(tmp_path: Path) -> None:
    s = Spool(tmp_path / "sub" / "spool.jsonl")
    s.append(entry("a"))
    s.append(entry("b"))
    s.append(entry("a", attempts=3))  # the same block spooled again: one entry, the last copy
    assert [(e["idempotency_key"], e["attempts"]) for e in s.entries()] == [("a", 3), ("b", 0)]
    assert len(s) == 2
    # a fresh Spool on the same file (a restart) sees the same entries
    assert len(Spool(tmp_path / "sub" / "spool.jsonl")) == 2


def test_update_removes_done_and_replaces_changed(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.jsonl")
    for k in "abc":
        s.append(entry(k))
    s.update({"a"}, {"b": entry("b", attempts=1), "zz": entry("zz")})  # zz: not in the spool, ignored
    assert [(e["idempotency_key"], e["attempts"]) for e in s.entries()] == [("b", 1), ("c", 0)]
    lines = (tmp_path / "spool.jsonl").read_text().splitlines()
    assert len(lines) == 2 and not (tmp_path / "spool.jsonl.tmp").exists()


def test_torn_line_is_skipped_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "spool.jsonl"
    s = Spool(p)
    s.append(entry("a"))
    with open(p, "a") as f:
        f.write('{"idempotency_key": "b", "payl')  # crash mid-write
    assert [e["idempotency_key"] for e in s.entries()] == ["a"]
    assert s.corrupt_lines == 1
    s.append(entry("c"))  # starts on a new line: the torn fragment does not swallow it
    assert [e["idempotency_key"] for e in s.entries()] == ["a", "c"]
    s.update(set(), {})  # the rewrite drops the fragment
    assert [json.loads(x)["idempotency_key"] for x in p.read_text().splitlines()] == ["a", "c"]


def test_entry_needs_key_and_payload(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="idempotency_key and payload"):
        Spool(tmp_path / "s.jsonl").append({"payload": {}})


def test_concurrent_appends_and_updates_lose_nothing(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.jsonl")
    for i in range(50):
        s.append(entry(f"old{i}"))

    def writer() -> None:
        for i in range(200):
            s.append(entry(f"new{i}"))

    t = threading.Thread(target=writer)
    t.start()
    for i in range(50):
        s.update({f"old{i}"}, {})
    t.join()
    keys = {e["idempotency_key"] for e in s.entries()}
    assert keys == {f"new{i}" for i in range(200)}


def _child_appends(path: str, prefix: str, n: int) -> None:
    s = Spool(Path(path))
    for i in range(n):
        s.append(entry(f"{prefix}{i}"))


def test_processes_sharing_one_spool_lose_nothing(tmp_path: Path) -> None:
    """One spool file per host, one consumer process per shard: another process's appends survive
    this process's rewrites (the flock), where a thread lock alone would lose some."""
    import multiprocessing

    p = tmp_path / "spool.jsonl"
    s = Spool(p)
    for i in range(100):
        s.append(entry(f"old{i}"))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_child_appends, args=(str(p), f"p{j}-", 150)) for j in range(2)]
    for proc in procs:
        proc.start()
    for i in range(100):
        s.update({f"old{i}"}, {})
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert {e["idempotency_key"] for e in s.entries()} == {f"p{j}-{i}" for j in range(2) for i in range(150)}
