"""Parse-only throughput of the CloudFront log parsers, and of the alternatives that were measured.

    python bench/parse_bench.py                       # generate 1,000,000 lines, measure, print
    python bench/parse_bench.py --write bench/results/parse.md
    python bench/parse_bench.py --input lines.tsv --lines 200000

The input is read in batches (``--batch`` lines, like one KCL ``processRecords`` call) and only the
``parse()`` calls are timed: reading the file is not part of the figure. Lines are generated
deterministically by :mod:`bench.linegen` (45 fields of sample 07) unless ``--input`` is given; the
standard-log figure uses the same requests rewritten in the W3C layout.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.linegen import LineMaker
from consumer.fields import ALL_45, BY_NAME, POSITION, Kind
from consumer.realtime import RealtimeParser
from consumer.standard import DEFAULT_FIELDS, StandardParser, realtime_name

#: The fields the brief names for the default detectors (a superset of what they read today).
BRIEF_FIELDS = (
    "timestamp", "c-ip", "sc-status", "sc-bytes", "cs-bytes", "cs-method", "cs-uri-stem", "time-taken",
    "cs-user-agent", "cs-cookie", "x-edge-result-type", "x-edge-response-result-type", "sc-range-start",
)  # fmt: skip


def engine_fields() -> tuple[str, ...] | None:
    """What the shipped default detectors and default keys read (None if they cannot be built)."""
    try:
        from consumer.config import load_config
        from consumer.keys import KeyExtractor
        from detectors.defaults import default_detectors
        from detectors.engine import Engine

        cfg = load_config(None)
        engine = Engine.from_config(default_detectors(), cfg.state, [k.name for k in cfg.keys])
        names = {"timestamp"} | set(engine.required_fields()) | KeyExtractor(cfg.keys).required_fields()
        return tuple(n for n in ALL_45 if n in names)
    except Exception as exc:  # the bench still runs on a tree where the engine is in flux
        print(f"(default detectors not measurable: {exc})", file=sys.stderr)
        return None


# ------------------------------------------------------------------------------ input files
def generate(path: Path, n: int, seed: int) -> None:
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as f:
        for chunk in _chunks(LineMaker(seed).lines(n), 10_000):
            f.write(b"".join(chunk))
    tmp.replace(path)


def to_standard(src: Path, dst: Path) -> None:
    """The same requests in the standard (W3C) layout, with its header."""
    names = [realtime_name(w) for w in DEFAULT_FIELDS]
    tmp = dst.with_suffix(".partial")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        fout.write(b"#Version: 1.0\n#Fields: " + " ".join(DEFAULT_FIELDS).encode() + b"\n")
        for line in fin:
            parts = line.rstrip(b"\n").split(b"\t")
            ts = datetime.fromtimestamp(float(parts[0]), UTC)
            out = [ts.strftime("%Y-%m-%d").encode(), ts.strftime("%H:%M:%S").encode()]
            out += [parts[POSITION[n]] if n else b"-" for n in names[2:]]
            fout.write(b"\t".join(out) + b"\n")
    tmp.replace(dst)  # only a complete file is reused


def _chunks(it, size: int) -> Iterator[list]:
    it = iter(it)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def batches(path: Path, size: int, limit: int) -> Iterator[list[bytes]]:
    with open(path, "rb") as f:
        yield from _chunks(itertools.islice(f, limit), size)


# ------------------------------------------------------------------------------ alternatives
def split_zip_parser(fields: tuple[str, ...]) -> Callable[[list[bytes]], object]:
    """Baseline: per-line ``split`` with the field count checked, then one column per wanted field."""
    n_fields = len(ALL_45)
    idx = [(POSITION[f], f, BY_NAME[f].kind) for f in fields]

    def parse(lines: list[bytes]) -> dict:
        rows = []
        bad = []
        for line in lines:
            parts = line.rstrip(b"\r\n").split(b"\t")
            if len(parts) == n_fields:
                rows.append(parts)
            else:
                bad.append(("field_count", line))
        cols = list(zip(*rows, strict=True)) if rows else [()] * n_fields
        out: dict[str, object] = {}
        for i, name, kind in idx:
            col = cols[i]
            if kind is Kind.TEXT:
                out[name] = [None if v == b"-" else v.decode() for v in col]
            else:
                out[name] = np.array([math.nan if v == b"-" else float(v) for v in col])
        return out

    return parse


def arrow_parser(fields: tuple[str, ...], *, strict: bool = False) -> Callable[[list[bytes]], object] | None:
    """pyarrow's CSV reader, one thread. ``strict``: numbers read as text and checked with the same
    rule as ours (digits, one '.' for FLOAT) before the cast; otherwise arrow's float parser decides
    (it also takes '1e3', '+5', 'nan', 'inf'...)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pcomp
        import pyarrow.csv as pcsv
    except ImportError:
        return None
    numeric = {f for f in fields if BY_NAME[f].kind is not Kind.TEXT}
    types = {f: (pa.float64() if f in numeric and not strict else pa.string()) for f in fields}
    patterns = {Kind.INT: r"^[0-9]+$", Kind.FLOAT: r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"}
    bad: list[object] = []

    def skip(row: object) -> str:
        bad.append(row)
        return "skip"

    read = pcsv.ReadOptions(column_names=list(ALL_45), use_threads=False, block_size=1 << 24)
    opts = pcsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, invalid_row_handler=skip)
    conv = pcsv.ConvertOptions(
        include_columns=list(fields), column_types=types, null_values=["-"], strings_can_be_null=True
    )

    def parse(lines: list[bytes]) -> dict:
        table = pcsv.read_csv(
            io.BytesIO(b"".join(lines)), read_options=read, parse_options=opts, convert_options=conv
        )
        out: dict[str, object] = {}
        for f in fields:
            col = table.column(f)
            if f not in numeric:
                out[f] = col.to_pylist()
            elif strict:
                ok = pcomp.match_substring_regex(col, patterns[BY_NAME[f].kind])
                if not pcomp.all(pcomp.fill_null(ok, True)).as_py():
                    raise ValueError(f"bad number in {f}")  # a real parser would redo this batch per line
                out[f] = pcomp.cast(col, pa.float64()).to_numpy()
            else:
                out[f] = col.to_numpy()
        return out

    return parse


def polars_parser(fields: tuple[str, ...]) -> Callable[[list[bytes]], object] | None:
    """polars' CSV reader on one thread (``POLARS_MAX_THREADS=1`` must be set before the import)."""
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    try:
        import polars as pl
    except ImportError:
        return None
    idx = [POSITION[f] for f in fields]

    def parse(lines: list[bytes]) -> dict:
        df = pl.read_csv(
            io.BytesIO(b"".join(lines)), separator="\t", has_header=False, quote_char=None, columns=idx,
            infer_schema=False, null_values="-",
        )  # fmt: skip
        df.columns = list(fields)
        out: dict[str, object] = {}
        for f in fields:
            col = df.get_column(f)
            out[f] = col.to_list() if BY_NAME[f].kind is Kind.TEXT else col.cast(pl.Float64).to_numpy()
        return out

    return parse


# ------------------------------------------------------------------------------ measuring
def measure(
    parse: Callable[[list[bytes]], object], path: Path, batch: int, limit: int
) -> tuple[int, float, float]:
    """(lines, wall seconds, CPU seconds of this process) spent inside ``parse``. One untimed call
    first: loading the compiled kernels (or compiling them) is start-up, measured by :func:`cold_start`."""
    n = 0
    wall = cpu = 0.0
    parse(next(batches(path, batch, batch)))
    for lines in batches(path, batch, limit):
        c0, t0 = time.process_time(), time.perf_counter()
        parse(lines)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n += len(lines)
    return n, wall, cpu


def cold_start(path: Path) -> tuple[float, float]:
    """Seconds to import the parser and parse one batch in a fresh process: with an empty numba
    cache (the kernels are compiled) and again with the cache that run left (they are loaded)."""
    import subprocess
    import tempfile

    script = (
        "import time; t = time.perf_counter(); import itertools; "
        "from consumer.realtime import RealtimeParser; from consumer.fields import ALL_45; "
        f"lines = list(itertools.islice(open({str(path)!r}, 'rb'), 1000)); "
        "RealtimeParser(ALL_45, ['timestamp', 'c-ip', 'cs-headers']).parse(lines); "
        "print(time.perf_counter() - t)"
    )
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            proc = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                cwd=Path(__file__).resolve().parents[1],
            )  # fmt: skip
            out.append(float(proc.stdout.strip()))
    return out[0], out[1]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, help="real-time lines to read (default: generate)")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines to generate / read")
    ap.add_argument("--batch", type=int, default=1000, help="lines per parse() call")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cfguard-parse-bench"))
    ap.add_argument("--baseline-lines", type=int, default=200_000, help="lines for the slower alternatives")
    ap.add_argument("--write", type=Path, help="write the results as Markdown here")
    args = ap.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.input
    if src is None:
        src = args.workdir / f"realtime-{args.lines}-{args.seed}.tsv"
        if not src.exists():
            t0 = time.perf_counter()
            generate(src, args.lines, args.seed)
            print(f"generated {src} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    std = args.workdir / (src.stem + "-standard.log")
    if not std.exists() or std.stat().st_mtime < src.stat().st_mtime:
        to_standard(src, std)

    cold, warm = cold_start(src)
    print(f"start-up (import + first 1000-line parse): {cold:.1f} s compiling, {warm:.1f} s from the cache")
    args.start_up = (cold, warm)
    engine = engine_fields()
    runs: list[tuple[str, str, Callable[[list[bytes]], object], Path, int]] = []
    if engine:
        runs.append(
            ("RealtimeParser", f"default detectors + keys ({len(engine)}: {', '.join(engine)})",
             RealtimeParser(ALL_45, engine).parse, src, args.lines)
        )  # fmt: skip
        if "cs-headers" in engine:
            seven = tuple(f for f in engine if f != "cs-headers")
            runs.append(
                ("RealtimeParser", f"the same without cs-headers ({len(seven)})",
                 RealtimeParser(ALL_45, seven).parse, src, args.lines)
            )  # fmt: skip
    runs += [
        ("RealtimeParser", f"brief's default set ({len(BRIEF_FIELDS)} fields)",
         RealtimeParser(ALL_45, BRIEF_FIELDS).parse, src, args.lines),
        ("RealtimeParser", "all 45 fields", RealtimeParser(ALL_45, ALL_45).parse, src, args.lines),
        ("StandardParser", f"brief's default set ({len(BRIEF_FIELDS)} fields)",
         StandardParser(BRIEF_FIELDS).parse, std, args.lines),
        ("StandardParser", "all fields of the layout", StandardParser().parse, std, args.lines),
        ("split + zip per line (baseline)", f"brief's default set ({len(BRIEF_FIELDS)} fields)",
         split_zip_parser(BRIEF_FIELDS), src, args.baseline_lines),
    ]  # fmt: skip
    polars = polars_parser(BRIEF_FIELDS)
    if polars is not None:
        label = f"brief's default set ({len(BRIEF_FIELDS)} fields)"
        runs.append(
            ("polars.read_csv (1 thread, numbers unchecked)", label, polars, src, args.baseline_lines)
        )
    for label, fields in (
        (f"brief's default set ({len(BRIEF_FIELDS)} fields)", BRIEF_FIELDS),
        (f"default detectors + keys ({len(engine)})", engine) if engine else (None, None),
    ):
        if fields is None:
            continue
        for strict in (False, True):
            arrow = arrow_parser(fields, strict=strict)
            if arrow is not None:
                kind = "numbers checked as ours" if strict else "numbers unchecked"
                runs.append((f"pyarrow.csv ({kind})", label, arrow, src, args.baseline_lines))  # fmt: skip

    rows = []
    for name, what, parse, path, limit in runs:
        load0 = os.getloadavg()[0]
        n, wall, cpu = measure(parse, path, args.batch, limit)
        load1 = os.getloadavg()[0]
        rate, cpu_rate = n / wall, n / cpu if cpu else float("inf")
        rows.append((name, what, n, rate, cpu_rate, load0, load1))
        print(
            f"{name:34s} {what[:60]:60s} {n:>9,d} lines {rate:>10,.0f} rec/s wall {cpu_rate:>10,.0f} CPU"
            f"  load {load0:.2f}->{load1:.2f}"
        )

    if args.write:
        write_markdown(args, rows, src)
    return 0


def write_markdown(args: argparse.Namespace, rows: list[tuple], src: Path) -> None:
    size = src.stat().st_size
    lines = [
        "# Parse benchmark",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine()}",
        "- The machine is shared with other jobs: the 1-minute load average (2 cores) before and after "
        "each run is listed.",
        f"- Input: {src.name}, {size / 1e6:,.0f} MB, mean {size / max(args.lines, 1):,.0f} bytes per line "
        f"(45 fields, `bench/linegen.py`, seed {args.seed}); standard-log runs use the same requests "
        "in the W3C layout.",
        f"- Batches of {args.batch} lines per `parse()` call; only `parse()` is timed, on one core "
        "(after one untimed call per parser).",
        "- Start-up of a fresh process (import + first parse, numba kernels): "
        f"{args.start_up[0]:.1f} s with an empty cache (compiling), "
        f"{args.start_up[1]:.1f} s with the cache filled.",
        "- Command: `python bench/parse_bench.py --write bench/results/parse.md`",
        "",
        "| parser | fields converted | lines | records/s (wall) | records/s (CPU time) | load before -> after"
        " |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, what, n, rate, cpu_rate, l0, l1 in rows:
        lines.append(f"| {name} | {what} | {n:,} | {rate:,.0f} | {cpu_rate:,.0f} | {l0:.2f} -> {l1:.2f} |")
    lines.append("")
    args.write.parent.mkdir(parents=True, exist_ok=True)
    existing = args.write.read_text() if args.write.exists() else ""
    notes = existing.split("<!-- notes -->", 1)[1] if "<!-- notes -->" in existing else "\n"
    args.write.write_text("\n".join(lines) + "\n<!-- notes -->" + notes)


if __name__ == "__main__":
    raise SystemExit(main())
