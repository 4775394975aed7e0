"""Determinism by seed, the live mode's pacing, the ``generate`` command and the bundled sample."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from consumer.commands import generate as generate_cmd
from consumer.traffic import Generator, generate
from consumer.traffic import sample as S
from consumer.traffic.labels import FORMAT, load
from consumer.traffic.metrics import key_figures
from consumer.traffic.registry import parse_list, parse_one


def _lines(**kw) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [line for batch in generate(**kw) for line in batch]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = _lines(seed=1, duration_s=90, rate=50)
    assert a == _lines(seed=1, duration_s=90, rate=50)
    b = _lines(seed=2, duration_s=90, rate=50)
    assert a != b and abs(len(a) - len(b)) < 0.2 * len(a)


def test_batch_size_does_not_change_the_lines() -> None:
    a = _lines(seed=1, duration_s=60, rate=50, batch_size=100)
    assert a == _lines(seed=1, duration_s=60, rate=50, batch_size=5000)
    assert all(len(batch) <= 100 for batch in generate(seed=1, duration_s=60, rate=50, batch_size=100))


def test_switching_a_scenario_off_leaves_the_others_unchanged() -> None:
    def requests(scenarios: str) -> set[tuple[bytes, ...]]:
        out = set()
        for line in _lines(seed=9, duration_s=120, rate=30, scenarios=scenarios, negatives="none"):
            f = line.split(b"\t")
            out.add((f[0], f[1], f[3], f[8]))  # time, ip, status, uri (ids and ports are per batch)
        return out

    with_scan = requests("scanner,scraper")
    without = requests("scraper")
    assert without < with_scan
    extra = with_scan - without
    assert len(extra) > 500 and all(r[2] in (b"404", b"403", b"301", b"200") for r in extra)


def test_rate_and_diurnal_level() -> None:
    quiet = _lines(
        seed=1, duration_s=120, rate=100, scenarios="none", negatives="none", start=1_764_158_400 - 4 * 3600
    )  # 08:00 UTC: the trough
    busy = _lines(
        seed=1, duration_s=120, rate=100, scenarios="none", negatives="none", start=1_764_158_400 + 8 * 3600
    )  # 20:00 UTC: the peak
    assert 0.55 * 12_000 < len(quiet) < 0.8 * 12_000
    assert 1.2 * 12_000 < len(busy) < 1.5 * 12_000


def test_live_mode_paces_on_the_clock_with_event_time_now() -> None:
    now = [1_764_158_400.0 + 8 * 3600]  # 20:00 UTC: ordinary traffic at 1.35x its mean rate
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    gen = Generator(
        seed=3, start=now[0], rate=200, scenarios="request_flood:start_s=0:rate=50", negatives="none"
    )
    batches = []
    for batch in gen.live(0.5, clock=lambda: now[0], sleep=sleep, duration_s=10):
        ts = [float(line.split(b"\t", 1)[0]) for line in batch]
        assert all(t <= now[0] for t in ts), "nothing from the future"
        assert ts == sorted(ts)
        batches.append(ts)
    assert len(batches) == 20 and sum(slept) == pytest.approx(10.0)
    total = sum(len(b) for b in batches)
    assert 0.8 * 3_200 < total < 1.2 * 3_200  # (1.35 x 200 + 50) records/s for 10 s
    assert batches[-1][-1] > now[0] - 1.0


def test_scenario_syntax_and_errors() -> None:
    s = parse_one("credential_stuffing:mode=one_ip:rate=3:start_s=10:duration_s=none")
    assert (s.mode, s.rate, s.start_s, s.duration_s) == ("one_ip", 3.0, 10.0, None)
    assert [x.name for x in parse_list("scanner,monitor", ())] == ["scanner", "monitor"]
    assert parse_list("none", ("scanner",)) == []
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        parse_one("nope")
    with pytest.raises(ValueError, match="unknown parameter 'speed'"):
        parse_one("scanner:speed=3")
    with pytest.raises(ValueError, match="not a valid float"):
        parse_one("scanner:rate=fast")
    with pytest.raises(ValueError, match="mode must be"):
        Generator(scenarios="credential_stuffing:mode=sideways")
    with pytest.raises(ValueError, match="rate must be > 0"):
        Generator(rate=0)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    generate_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv])
    return args.func(args)


def test_command_writes_records_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, lab = tmp_path / "t.tsv.gz", tmp_path / "t.json"
    assert _cli(["--out", str(out), "--records", "5000", "--seed", "4", "--labels-out", str(lab)]) == 0
    lines = gzip.open(out).read().splitlines(keepends=True)
    assert len(lines) == 5000 and all(line.count(b"\t") == 44 for line in lines)
    assert "5,000 lines" in capsys.readouterr().err
    labels = load(lab)
    assert labels["format"] == FORMAT and labels["generator"]["seed"] == 4
    plain = tmp_path / "t.tsv"
    assert _cli(["--out", str(plain), "--records", "5000", "--seed", "4"]) == 0
    assert plain.read_bytes() == b"".join(lines)
    assert _cli(["--out", str(plain), "--duration", "5", "--scenarios", "bogus"]) == 2
    assert "unknown scenario 'bogus'" in capsys.readouterr().err
    assert _cli(["--out", str(plain), "--duration", "5", "--start", "yesterday"]) == 2
    assert _cli(["--out", str(tmp_path / "no" / "such" / "dir.tsv"), "--records", "5"]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_generate_is_a_cfguard_command(tmp_path: Path) -> None:
    from consumer.cli import main

    out = tmp_path / "c.tsv"
    assert main(["generate", "--out", str(out), "--records", "300", "--scenarios", "none"]) == 0
    assert len(out.read_bytes().splitlines()) == 300


def test_bundled_sample_is_reproducible_from_its_documented_command(tmp_path: Path) -> None:
    out, lab = tmp_path / "s.tsv.gz", tmp_path / "s.json"
    assert _cli(["--out", str(out), "--labels-out", str(lab), *S.ARGS]) == 0
    assert gzip.open(out).read() == gzip.open(S.path()).read()
    assert json.loads(lab.read_text()) == json.loads(S.labels_path().read_text())
    assert S.path().stat().st_size < 1_500_000
    assert (
        f"cfguard generate {' '.join(S.ARGS[:4])}"
        in (Path(__file__).resolve().parents[2] / "docs" / "traffic.md").read_text()
    )


def test_bundled_sample_contains_every_scenario_strongly() -> None:
    lines = gzip.open(S.path()).read().splitlines(keepends=True)
    assert 12_000 < len(lines) < 20_000
    labels = load(S.labels_path())
    figs = key_figures(lines)

    def abuser(kt: str, name: str) -> str:
        return next(k for k, v in labels[kt].items() if v == name)

    hog = figs["user"][abuser("user", "bandwidth_hog")]
    assert hog.bytes_sent > 10e9  # over a 10 GB/h cap within the 4 minutes
    flood = figs["ip"][abuser("ip", "request_flood")]
    assert flood.max_per_minute > 6000  # over 100 req/s for a minute
    nat = figs["ip"][next(k for k, v in labels["hard_negatives"]["ip"].items() if v == "nat_office")]
    assert flood.max_per_minute > 20 * nat.max_per_minute
    scan = figs["ip"][abuser("ip", "scanner")]
    assert scan.distinct_paths > 300 and (scan.not_found + scan.auth_fail) / scan.requests > 0.9
    stuffer = figs["user"][abuser("user", "credential_stuffing")]
    one_ip = figs["ip"][abuser("ip", "credential_stuffing")]
    assert stuffer.auth_fail > 250 and stuffer.distinct_ips > 150 and one_ip.auth_fail > 200
    scraper = figs["user"][abuser("user", "scraper")]
    assert scraper.distinct_paths > 3000
    buster = figs["ip"][abuser("ip", "origin_exhaustion")]
    assert buster.requests > 1500 and buster.misses / buster.requests > 0.95
    (key,) = labels["api_key"]
    assert figs["api_key"][key].requests > 150 and figs["api_key"][key].distinct_ips == 20
    assert figs["ip"][abuser("ip", "api_free_rider")].auth_fail > 30
    for kt, table in labels["hard_negatives"].items():
        for k in table:
            assert k in figs[kt], f"hard negative {kt} {k} missing from the sample"
    ordinary = [
        f
        for k, f in figs["user"].items()
        if k not in labels["user"]
        and k not in labels["hard_negatives"]["user"]
        and k not in labels["accomplices"]["user"]
    ]
    assert max(f.bytes_sent for f in ordinary) < hog.bytes_sent / 100
    assert max(f.distinct_paths for f in ordinary) < scraper.distinct_paths / 20


def test_default_detectors_on_the_sample_block_abusers_and_spare_every_negative() -> None:
    """The sample through the real pipeline with the embedded default config (actions dry-run)."""
    from consumer.config import load_config
    from consumer.pipeline import Pipeline

    labels = load(S.labels_path())
    pipeline = Pipeline.from_config(load_config(None, environ={}), dry_run=True)
    lines = gzip.open(S.path()).read().splitlines(keepends=True)
    decided: dict[tuple[str, str], set[str]] = {}
    for i in range(0, len(lines), 2000):
        for d in pipeline.process(lines[i : i + 2000], "sample"):
            decided.setdefault((d.key_type, d.key), set()).add(d.detector)
    pipeline.flush()
    pipeline.close()
    names = {}
    for (kt, key), detectors in decided.items():
        assert key not in labels["hard_negatives"].get(kt, {}), f"hard negative {kt} {key}: {detectors}"
        assert key in labels.get(kt, {}), f"ordinary {kt} {key} flagged by {detectors}"
        names[labels[kt][key]] = names.get(labels[kt][key], set()) | detectors
    # What the default set covers (user-key stuffing through rotating proxies and the API
    # free-rider need detectors or key types the defaults do not have).
    assert {
        "bandwidth_hog",
        "request_flood",
        "scanner",
        "credential_stuffing",
        "scraper",
        "origin_exhaustion",
    } <= set(names)
    assert "request_flood_ip" in names["request_flood"]
    assert "bandwidth_hog_hourly" in names["bandwidth_hog"]
    assert "scraping_user" in names["scraper"]
