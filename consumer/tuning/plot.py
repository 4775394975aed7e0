"""The trade-off picture: per sweep, abuse caught (recall) and innocent keys blocked vs the parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_png(path: str | Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    sweeps = report["sweeps"]
    fig, axes = plt.subplots(len(sweeps), 1, figsize=(9, 4.8 * len(sweeps)), squeeze=False, dpi=110)
    try:
        for ax, sw in zip(axes[:, 0], sweeps, strict=True):
            _one(ax, sw)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def _one(ax: Any, sw: dict[str, Any]) -> None:
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    rows = sw["rows"]
    xs = [r["value"] for r in rows]
    labelled = bool(rows) and "true_positives" in rows[0]
    title = f"{sw['detector']}.{sw['param']}  (key type {sw['key_type']})"
    rec = sw.get("recommended")
    if rec is not None:
        total = rows[rec["index"]].get("abusive_keys_seen")
        title += (
            f"\nrecommended {rec['value']:g}: {rec['true_positives']}/{total} abusive keys caught, "
            f"{rec['false_positives']} innocent flagged"
        )
    elif labelled:
        title += f"\nno value catches abuse at false-block rate <= {sw['max_false_block_rate']:g}"
    ax.set_title(title, fontsize=10.5)
    ax.set_xlabel(sw["param"])
    ax.grid(True, alpha=0.3)
    if labelled:
        recall = [float("nan") if r["recall"] is None else 100 * r["recall"] for r in rows]
        ax.plot(xs, recall, "o-", color="tab:blue", label="abusive keys caught (recall %)")
        ax.set_ylabel("recall %", color="tab:blue")
        ax.set_ylim(-5, 105)
        ax2 = ax.twinx()
        fp = [r["false_positives"] for r in rows]
        hard = [r["false_positives_hard_negative"] for r in rows]
        ax2.plot(xs, fp, "s--", color="tab:red", markersize=7, label="innocent keys flagged")
        ax2.plot(xs, hard, "^:", color="tab:orange", markersize=5, label="... of which hard negatives")
        ax2.set_ylabel("innocent keys flagged", color="tab:red")
        top = max(1, *fp)
        ax2.set_ylim(-0.05 * top, top * 1.1)
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        over = [r["false_block_rate"] > sw["max_false_block_rate"] for r in rows]
        for x, bad in zip(xs, over, strict=True):
            if bad:
                lo, hi = _cell(xs, x)
                ax.axvspan(max(lo, min(xs)), min(hi, max(xs)), color="tab:red", alpha=0.1, linewidth=0)
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    else:
        flagged = [r["flagged"] for r in rows]
        ax.plot(xs, flagged, "o-", color="tab:blue", label="keys flagged")
        ax.set_ylabel("keys flagged")
        handles = ax.get_legend_handles_labels()[0]
    if rec is not None:
        ax.axvline(rec["value"], color="tab:green", linewidth=2, alpha=0.8)
        line = ax.get_lines()[-1]
        line.set_label(f"recommended = {rec['value']:g}")
        handles.append(line)
    if labelled:
        handles.append(Patch(color="tab:red", alpha=0.15, label="false-block rate above the maximum"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=9)


def _cell(xs: list[Any], x: Any) -> tuple[float, float]:
    """The span around one sampled value: halfway to its neighbours."""
    i = xs.index(x)
    lo = x - (x - xs[i - 1]) / 2 if i > 0 else x - (xs[1] - x) / 2 if len(xs) > 1 else x - 0.5
    hi = x + (xs[i + 1] - x) / 2 if i + 1 < len(xs) else x + (x - xs[i - 1]) / 2 if len(xs) > 1 else x + 0.5
    return lo, hi
