"""Per-key tumbling-window aggregates of one (key type, filter, window length), in slot-indexed arrays.

Windows are aligned to the epoch (a 1h window is 14:00-15:00 UTC, a 24h window a UTC day), so a
finding can say exactly which window it counted. Each key keeps its current window and the previous
one: the previous one takes records up to the allowed lateness and feeds the "window closed" hook
(detectors that learn per closed window: baselines, ML). A record whose window is older than the
previous one is counted in ``late_dropped`` and not aggregated.

A batch is grouped by (slot, window) with one stable sort; sums are cumulative sums per group, so
every record sees the exact running value of its key's window (a rule fires at exactly the record
that crosses), and the state update is a handful of vectorised gathers/scatters per metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from detectors.kernels import group_plan, sum_update, window_breaks
from detectors.metrics import CATALOG, BatchValues
from detectors.sketch import REGISTERS, estimate

SENTINEL = -(2**30)  # "no window"; +/- a few stays within int32


class Channel(NamedTuple):
    """Which requests a store counts: all, or those matching a path regex and/or statuses."""

    path: str | None = None
    status: tuple[int, ...] | None = None

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.path is not None:
            out["path"] = self.path
        if self.status is not None:
            out["status"] = list(self.status)
        return out


@dataclass
class ClosedWindows:
    """Windows that closed in event time for some keys of one store, with their final metrics."""

    key_type: str
    channel: Channel
    window_s: int
    slots: np.ndarray
    window_ids: np.ndarray
    metrics: dict[str, np.ndarray]  # float64, aligned with ``slots``
    as_of: float | None = None  # set when windows are delivered before their end (evicted keys)

    @property
    def end_times(self) -> np.ndarray:
        """Event time of each closed window: its end, or ``as_of`` for a window cut short."""
        ends = (self.window_ids + 1).astype(np.float64) * self.window_s
        return ends if self.as_of is None else np.minimum(ends, self.as_of)


@dataclass
class StoreView:
    """One batch's records of one store, sorted by (slot, window, arrival), with running values."""

    key_type: str
    channel: Channel
    window_s: int
    keys: list[str | None]  # slot -> key of the key table
    t: np.ndarray
    slot: np.ndarray
    wid: np.ndarray
    grp: np.ndarray  # group index of each record
    _running: dict[str, np.ndarray] = field(default_factory=dict)
    _previous: dict[str, np.ndarray] = field(default_factory=dict)  # per group: value of window w-1
    _sliding: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    # distinct metrics: per record (register, rank); per group the stored window's registers (row in
    # ``base_rows`` or -1) and the floor of a previous-window estimate
    _distinct: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )

    def running(self, metric: str) -> np.ndarray:
        """Value of the key's window after each record (distinct metrics: only at a group's last record,
        NaN elsewhere)."""
        return self._running[metric]

    def refine_distinct(self, metric: str, groups: np.ndarray) -> np.ndarray:
        """The running estimate at every record of ``groups`` (not only their last one), so a
        threshold is crossed at the record that crosses it whatever the batch boundaries: a replay
        batched differently from the live run decides at the same event time. Per group: the
        cumulative register maximum over its records on top of the stored window's registers. Only
        called for the few groups whose final estimate reaches a threshold."""
        r = self.running(metric)
        if metric not in self._distinct:  # partial rows: already estimated after every row
            return r
        idx, rank, base_of_group, base_rows, floor = self._distinct[metric]
        starts = np.searchsorted(self.grp, groups, side="left")
        ends = np.searchsorted(self.grp, groups, side="right")
        for g, lo, hi in zip(groups.tolist(), starts.tolist(), ends.tolist(), strict=True):
            regs = np.zeros((hi - lo, REGISTERS), dtype=np.uint8)
            regs[np.arange(hi - lo), idx[lo:hi]] = rank[lo:hi]
            regs = np.maximum.accumulate(regs, axis=0)
            if base_of_group[g] >= 0:
                regs = np.maximum(regs, base_rows[base_of_group[g]])
            r[lo:hi] = np.maximum(estimate(regs), floor[g])
        return r

    def sliding(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sliding-window estimate after each record: ``current + previous * (1 - elapsed / W)``,
        the standard two-window approximation of the last W seconds (the previous window's records
        assumed evenly spread). Returns (estimate, previous window value, its weight), per record.
        Sum metrics only. The previous window's value is as of the end of this batch."""
        hit = self._sliding.get(metric)
        if hit is not None:
            return hit
        cur = self.running(metric)
        prev = self._previous[metric][self.grp]
        start = self.wid.astype(np.float64) * self.window_s
        weight = np.clip(1.0 - (self.t - start) / self.window_s, 0.0, 1.0)
        out = (cur + prev * weight, prev, weight)
        self._sliding[metric] = out
        return out

    def key_of(self, i: int) -> str:
        return self.keys[int(self.slot[i])]  # type: ignore[return-value]

    def window_bounds(self, i: int) -> tuple[float, float]:
        w = int(self.wid[i])
        return float(w * self.window_s), float((w + 1) * self.window_s)


class WindowStore:
    def __init__(
        self,
        key_type: str,
        channel: Channel,
        window_s: int,
        sums: set[str],
        distincts: set[str],
        subscribed: bool,
        capacity: int,
    ) -> None:
        self.key_type = key_type
        self.channel = channel
        self.window_s = window_s
        self.sums = tuple(sorted(set(sums) | {"requests"}))
        self.distincts = tuple(sorted(distincts))
        self.capacity = capacity
        self.cur_id = np.full(capacity, SENTINEL, dtype=np.int32)
        self.cur = {m: np.zeros(capacity, dtype=CATALOG[m].dtype) for m in self.sums}
        self.prev = {m: np.zeros(capacity, dtype=CATALOG[m].dtype) for m in self.sums}
        self.regs = {m: np.zeros((capacity, REGISTERS), dtype=np.uint8) for m in self.distincts}
        self.prev_est = {m: np.zeros(capacity, dtype=np.float32) for m in self.distincts}
        self.emitted = np.full(capacity, SENTINEL, dtype=np.int32) if subscribed else None
        self.closed_upto = SENTINEL
        self.late_dropped = 0  # records whose window had already rolled out of this store
        self.windows_closed = 0

    @property
    def subscribed(self) -> bool:
        return self.emitted is not None

    def nbytes(self) -> int:
        arrays = [self.cur_id, *self.cur.values(), *self.prev.values(), *self.regs.values()]
        arrays += list(self.prev_est.values())
        if self.emitted is not None:
            arrays.append(self.emitted)
        return sum(a.nbytes for a in arrays)

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return

        def ext(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((capacity, *a.shape[1:]), fill, dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        self.cur_id = ext(self.cur_id, SENTINEL)
        self.cur = {m: ext(a, 0) for m, a in self.cur.items()}
        self.prev = {m: ext(a, 0) for m, a in self.prev.items()}
        self.regs = {m: ext(a, 0) for m, a in self.regs.items()}
        self.prev_est = {m: ext(a, 0) for m, a in self.prev_est.items()}
        if self.emitted is not None:
            self.emitted = ext(self.emitted, SENTINEL)
        self.capacity = capacity

    def reset(self, slots: np.ndarray) -> None:
        """Forget these slots (their key was evicted or the slot is handed to a new key)."""
        self.cur_id[slots] = SENTINEL
        if self.emitted is not None:
            self.emitted[slots] = SENTINEL

    # -- the closed-window hook -------------------------------------------------------------------

    def _closed(self, slots: np.ndarray, wids: np.ndarray, which: str) -> ClosedWindows:
        metrics: dict[str, np.ndarray] = {}
        if which == "cur":
            for m in self.sums:
                metrics[m] = self.cur[m][slots].astype(np.float64)
            for m in self.distincts:
                metrics[m] = estimate(self.regs[m][slots])
        else:
            for m in self.sums:
                metrics[m] = self.prev[m][slots].astype(np.float64)
            for m in self.distincts:
                metrics[m] = self.prev_est[m][slots].astype(np.float64)
        assert self.emitted is not None
        self.emitted[slots] = wids
        self.windows_closed += int(slots.size)
        return ClosedWindows(
            self.key_type, self.channel, self.window_s, slots, wids.astype(np.int64), metrics
        )

    def _due(
        self, slots: np.ndarray, cid: np.ndarray, prev_ok: np.ndarray, cur_ok: np.ndarray
    ) -> list[ClosedWindows]:
        """Emit the not yet emitted previous (then current) windows where ``prev_ok``/``cur_ok``."""
        assert self.emitted is not None
        valid = cid != SENTINEL
        em = self.emitted[slots].astype(np.int64)
        prev_due = valid & prev_ok & (cid - 1 > em) & (self.prev["requests"][slots] > 0)
        cur_due = valid & cur_ok & (cid > em)
        out = []
        if prev_due.any():
            out.append(self._closed(slots[prev_due], cid[prev_due] - 1, "prev"))
        if cur_due.any():
            out.append(self._closed(slots[cur_due], cid[cur_due], "cur"))
        return out

    def close_until(self, closed_upto: int, n_slots: int) -> list[ClosedWindows]:
        """Windows with id <= ``closed_upto`` are final (watermark minus lateness passed their end)."""
        if self.emitted is None or closed_upto <= self.closed_upto:
            return []
        self.closed_upto = closed_upto
        slots = np.arange(n_slots)
        cid = self.cur_id[:n_slots].astype(np.int64)
        return self._due(slots, cid, cid - 1 <= closed_upto, cid <= closed_upto)

    def close_released(self, slots: np.ndarray, as_of: float) -> list[ClosedWindows]:
        """Keys about to be forgotten: their open windows are delivered as they are, at ``as_of``."""
        if self.emitted is None or slots.size == 0:
            return []
        cid = self.cur_id[slots].astype(np.int64)
        yes = np.ones(slots.size, dtype=bool)
        out = self._due(slots, cid, yes, yes)
        for cw in out:
            cw.as_of = as_of
        return out

    # -- the batch update -------------------------------------------------------------------------

    def update(
        self,
        slot_all: np.ndarray,
        t_all: np.ndarray,
        bv: BatchValues,
        sel: np.ndarray,
        keys: list[str | None],
        *,
        by_slot: bool = False,
        pre: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[StoreView | None, list[ClosedWindows]]:
        """Aggregate the records ``sel`` (indices into the batch) into the windows. ``sel`` is in
        arrival order, or (``by_slot``) already stably sorted by slot: then only a slot whose
        records are not in window order costs a sort. ``pre``: the slot, time and window id of
        each record of ``sel`` when the caller has them already."""
        n = int(sel.size)
        if n == 0:
            return None, []
        W = self.window_s
        if pre is not None:
            s0, t0, w0 = pre
        else:
            s0 = slot_all[sel]
            t0 = t_all[sel]
            w0 = np.floor_divide(t0, W).astype(np.int64)
        gstart, ordered = window_breaks(s0, w0) if by_slot else (None, False)
        if ordered:
            s, w, t, rec = s0, w0, t0, sel
        else:
            wmin = int(w0.min())
            span = int(w0.max()) - wmin + 1
            sort_key = s0 if span == 1 else s0 * span + (w0 - wmin)
            order = np.argsort(sort_key, kind="stable")
            s, w, t, rec = s0[order], w0[order], t0[order], sel[order]
            gstart = window_breaks(s, w)[0]
        closing = self.emitted is not None
        emitted = self.emitted if self.emitted is not None else self.cur_id
        # Per group (slot, window) and per key: what the state holds and where each window goes. Windows
        # this batch rolls out of the state for good are delivered to the closed-window hook with their
        # final values: windows of this batch's groups older than the new previous window (``ga``: a
        # batch may span several windows), and stored windows that get no record in this batch
        # (``bp``: the previous one, ``bc``: the current one).
        (
            has_old, gend, gs, gw, c, grp, ustart, uend, us, uc, unc, g_u, is_cur, is_prev,
            new_cur, new_prev, same, one, ga, bp, bc,
        ) = group_plan(s, w, gstart, self.cur_id, emitted, self.prev["requests"], closing, SENTINEL)
        if has_old:
            old = (gw < c - 1) & (c != SENTINEL)
            keep = np.repeat(~old, gend - gstart)
            self.late_dropped += int(n - keep.sum())
            return self.update(slot_all, t_all, bv, rec[keep], keys, by_slot=True)
        G = gs.size
        if closing:
            c_slots = np.concatenate((gs[ga], us[bp], us[bc]))
            c_wids = np.concatenate((gw[ga], uc[bp] - 1, uc[bc]))
            c_metrics: dict[str, np.ndarray] = {}

        view = StoreView(self.key_type, self.channel, W, keys, t, s, w, grp)
        for m in self.sums:
            cur, prev = self.cur[m], self.prev[m]
            v = bv.value(m)
            if closing:  # stored windows closing without records here: their values before the update
                stored = (prev[us[bp]], cur[us[bc]])
            if v.dtype == np.float64 and v.flags.c_contiguous:
                run, base, gtot, pb = sum_update(
                    v, rec, gstart, gend, gw, c, us, ustart, uend, unc, same, one, cur, prev
                )
            else:
                run, base, gtot, pb = _sum_update_numpy(
                    v, rec, gstart, gend, gs, gw, c, grp, ustart, g_u, new_cur, new_prev, same, one, cur, prev
                )
            view._running[m] = run
            view._previous[m] = pb
            if closing:
                c_metrics[m] = np.concatenate((base[ga] + gtot[ga], *stored)).astype(np.float64)
        for m in self.distincts:
            regs, pest = self.regs[m], self.prev_est[m]
            comb = np.zeros((G, REGISTERS), dtype=np.uint8)
            if isinstance(bv, BatchValues):
                idx_all, rank_all = bv.ranks(m)
                idx, rank = idx_all[rec], rank_all[rec]
                np.maximum.at(comb.reshape(-1), grp * REGISTERS + idx, rank)
            else:  # partial rows carry whole sketches: merge register-wise
                np.maximum.at(comb, grp, bv.registers(m)[rec])
            cg = np.flatnonzero(is_cur)
            base_rows = regs[gs[cg]]
            comb[cg] = np.maximum(comb[cg], base_rows)
            est_g = estimate(comb)
            pg = np.flatnonzero(is_prev)
            floor = np.zeros(G)
            if pg.size:
                floor[pg] = pest[gs[pg]]
                est_g[pg] = np.maximum(floor[pg], est_g[pg])
            base_of_group = np.full(G, -1, dtype=np.int64)
            base_of_group[cg] = np.arange(cg.size)
            if isinstance(bv, BatchValues):  # (partial rows get their running estimate per row below)
                view._distinct[m] = (idx, rank, base_of_group, base_rows, floor)
            if closing:
                c_metrics[m] = np.concatenate((est_g[ga], pest[us[bp]], estimate(regs[us[bc]])))
            if isinstance(bv, BatchValues):
                running = np.full(n, np.nan)
                running[gend - 1] = est_g
            else:  # partial rows: the estimate after every row, so it does not depend on batching
                running = _running_estimates(bv.registers(m)[rec], grp, is_cur, regs[gs], pest[gs], is_prev)
            view._running[m] = running
            npe = np.where(same, pest[us].astype(np.float64), 0.0)
            if one.any():
                npe[one] = estimate(regs[us[one]])
            npe[g_u[new_prev]] = est_g[new_prev]
            regs[us[~same]] = 0
            regs[gs[new_cur]] = comb[new_cur]
            pest[us] = npe
        self.cur_id[us] = unc
        closed: list[ClosedWindows] = []
        if closing and c_slots.size:
            o = np.lexsort((c_wids, c_slots))
            c_slots, c_wids = c_slots[o], c_wids[o]
            assert self.emitted is not None
            np.maximum.at(self.emitted, c_slots, c_wids.astype(np.int32))
            self.windows_closed += int(c_slots.size)
            mets = {m: v[o] for m, v in c_metrics.items()}
            closed.append(ClosedWindows(self.key_type, self.channel, W, c_slots, c_wids, mets))
        return view, closed


def _sum_update_numpy(
    v: np.ndarray,
    rec: np.ndarray,
    gstart: np.ndarray,
    gend: np.ndarray,
    gs: np.ndarray,
    gw: np.ndarray,
    c: np.ndarray,
    grp: np.ndarray,
    ustart: np.ndarray,
    g_u: np.ndarray,
    new_cur: np.ndarray,
    new_prev: np.ndarray,
    same: np.ndarray,
    one: np.ndarray,
    cur: np.ndarray,
    prev: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``kernels.sum_update`` in numpy, for values that are not float64 (kept in their own dtype)."""
    us = gs[ustart]
    vals = v[rec]
    cs = np.cumsum(vals)
    cur_g, prev_g = cur[gs], prev[gs]
    base = np.where(gw == c, cur_g, np.where(gw == c - 1, prev_g, 0)).astype(np.float64)
    gtot = cs[gend - 1] - cs[gstart] + vals[gstart]
    # value of window w-1 of each group's key: stored (w-1 is the key's current or previous
    # window) plus this batch's records for it (the group just before, same key, window w-1)
    pb = np.where(gw - 1 == c, cur_g, np.where(gw - 1 == c - 1, prev_g, 0)).astype(np.float64)
    adjacent = np.zeros(gs.size, dtype=bool)
    adjacent[1:] = (gs[1:] == gs[:-1]) & (gw[1:] == gw[:-1] + 1)
    pb[1:] += np.where(adjacent[1:], gtot[:-1], 0.0)
    old_cur = cur_g[ustart].astype(np.float64)  # gs[ustart] == us: no second gather
    ncv = np.where(same, old_cur, 0.0)
    npv = np.where(same, prev_g[ustart].astype(np.float64), np.where(one, old_cur, 0.0))
    ncv[g_u[new_cur]] += gtot[new_cur]
    npv[g_u[new_prev]] += gtot[new_prev]
    cur[us] = ncv
    prev[us] = npv
    offset = cs[gstart] - vals[gstart]
    run = base[grp] + cs - offset[grp]
    return run, base, gtot, pb


def _running_estimates(
    rows: np.ndarray,
    grp: np.ndarray,
    is_cur: np.ndarray,
    stored: np.ndarray,
    prev_est: np.ndarray,
    is_prev: np.ndarray,
) -> np.ndarray:
    """Distinct-count estimate after each partial row: the running register-wise max within its
    group (plus the stored window's registers when the group continues the current window)."""
    G = stored.shape[0]
    start = np.where(is_cur[:, None], stored, 0).astype(np.int64)
    off = (np.arange(G, dtype=np.int64) * 64)[:, None]
    # Groups are contiguous and ascending: offsetting each group by 64 x its index makes one
    # cumulative max along the rows restart at every group (ranks are below 64).
    first = np.r_[True, grp[1:] != grp[:-1]]
    vals = rows.astype(np.int64) + off[grp]
    vals[first] = np.maximum(vals[first], start[grp[first]] + off[grp[first]])
    acc = np.maximum.accumulate(vals, axis=0) - off[grp]
    est = estimate(acc.astype(np.uint8))
    pg = is_prev[grp]
    if pg.any():
        est[pg] = np.maximum(prev_est[grp[pg]], est[pg])
    return est
