"""The table printed by ``cfguard tune`` and its JSON report (format ``cfguard-tune-report/1``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

FORMAT = "cfguard-tune-report/1"


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{100 * x:.1f}%"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def print_table(sweep: dict[str, Any], out: TextIO) -> None:
    rows = sweep["rows"]
    rec = sweep.get("recommended")
    labelled = bool(rows) and "true_positives" in rows[0]
    kts = sorted({kt for r in rows for kt in r["blocked"]} | {kt for r in rows for kt in r["keys_seen"]})
    head = ["", sweep["param"], "flagged", *[f"blocked {kt}" for kt in kts]]
    if labelled:
        head += ["TP", "FP", "FP hard", "precision", "recall", "false-block", "TTD med s", "TTD max s"]
    table = [head]
    for i, r in enumerate(rows):
        mark = "*" if rec is not None and rec["index"] == i else ""
        line = [mark, _fmt(r["value"]), str(r["flagged"]), *[str(r["blocked"].get(kt, 0)) for kt in kts]]
        if labelled:
            ttd = r["time_to_detect_s"]
            line += [
                str(r["true_positives"]),
                str(r["false_positives"]),
                str(r["false_positives_hard_negative"]),
                _fmt(r["precision"], pct=True),
                _fmt(r["recall"], pct=True),
                _fmt(r["false_block_rate"], pct=True),
                _fmt(ttd["median"]),
                _fmt(ttd["max"]),
            ]
        table.append(line)
    widths = [max(len(row[c]) for row in table) for c in range(len(head))]
    out.write(f"sweep {sweep['detector']}.{sweep['param']} (key type {sweep['key_type']})\n")
    for row in table:
        out.write("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) + "\n")
    if not labelled:
        out.write("  no labels: no precision, recall or recommendation\n")
    elif rec is None:
        out.write(
            f"  no value catches abuse with a false-block rate <= {sweep['max_false_block_rate']:g}: "
            "no recommendation\n"
        )
    else:
        out.write(
            f"  recommended: {sweep['detector']}.{sweep['param']} = {_fmt(rec['value'])} "
            f"({rec['true_positives']} abusive keys caught, {rec['false_positives']} innocent blocked)\n"
        )


def build(
    inputs: list[str],
    config: str | None,
    labels: str | None,
    max_false_block_rate: float,
    sweeps: list[dict[str, Any]],
    elapsed_s: float,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "inputs": inputs,
        "config": config,
        "labels": labels,
        "max_false_block_rate": max_false_block_rate,
        "innocent": "hard negatives and unlabelled keys; accomplices count on neither side",
        "caught": "the swept detector acted on the key (block, alert or shadow as its mode says)",
        "sweeps": sweeps,
        "elapsed_s": round(elapsed_s, 3),
    }


def write_json(path: str | Path, report: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
