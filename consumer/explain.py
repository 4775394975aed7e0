"""The timeline of one key through the detectors of a replay: "why was this user blocked?".

``KeyTimeline.attach(pipeline)`` wraps two engine entry points on the instance (``process`` and the
window-close hooks) with functions that call the originals unchanged and then *read* the key's state
(``consumer.explain_probe``); decisions come from the replay loop. The replay itself is the same
loop as ``cfguard replay`` (``consumer.replay_loop``), so the timeline is of exactly those decisions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from actions.decision import Decision, iso8601
from consumer import explain_probe as probe
from consumer.pipeline import Pipeline
from detectors.batch import RecordBatch
from detectors.finding import Finding
from detectors.partials import KeyPartials
from detectors.store import Channel, ClosedWindows


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 6)


class KeyTimeline:
    def __init__(self, key: str, key_types: Sequence[str]) -> None:
        self.key = key
        self.key_types = tuple(key_types)
        self.records: dict[str, int] = defaultdict(int)
        self.first_t: dict[str, float] = {}
        self.last_t: dict[str, float] = {}
        # key type -> (store label, window id) -> window entry
        self.windows: dict[str, dict[tuple[str, int], dict[str, Any]]] = defaultdict(dict)
        self.scores: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        self.closes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.findings: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._engine: Any = None
        self.resolution = "record"

    # -- wiring -----------------------------------------------------------------------------------

    def attach(self, pipeline: Pipeline) -> None:
        """Observe ``pipeline``'s engine: after each raw batch (record resolution), or after each
        released bucket of partial rows (``evaluate: bucket`` and the two-stage topology, whose
        replay pipeline is a ``DetectPipeline``: figures then change once per bucket)."""
        bucket_engine = getattr(pipeline, "bucket_engine", None)
        engine = self._engine = pipeline.engine if bucket_engine is None else bucket_engine.engine
        self.resolution = "record" if bucket_engine is None else "bucket"
        if bucket_engine is None:
            process = engine.process

            def observed_process(batch: RecordBatch) -> list[Finding]:
                findings = process(batch)
                self._after_batch(batch, findings)
                return findings

            engine.process = observed_process
        else:
            apply_rows = engine._apply_rows

            def observed_rows(rows: dict[str, KeyPartials]) -> list[Finding]:
                findings = apply_rows(rows)
                self._after_rows(rows, findings)
                return findings

            engine._apply_rows = observed_rows
        subscribed = {i for idx in engine.subscribers.values() for i in idx}
        for i in sorted(subscribed):
            det = engine.detectors[i]
            if det.spec.key in self.key_types:
                det.on_close = self._observed_close(det.spec.name, det.on_close)

    def on_decisions(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.key == self.key and d.key_type in self.key_types:
                rec = d.to_record()
                rec["t"] = d.event_time
                rec.pop("decided_at", None)
                self.decisions[d.key_type].append(rec)

    # -- observation ------------------------------------------------------------------------------

    def _observed_close(self, name: str, on_close: Any) -> Any:
        def observed(closed: ClosedWindows, keys: list[str | None]) -> list[Finding]:
            out = on_close(closed, keys)
            slot = probe.slot_of(self._engine, closed.key_type, self.key)
            if slot is not None:
                ends = closed.end_times
                for j in np.flatnonzero(closed.slots == slot).tolist():
                    self.closes[closed.key_type].append(
                        {
                            "detector": name,
                            "t": float(ends[j]),
                            "window_start": float(closed.window_ids[j] * closed.window_s),
                            "figures": {m: _num(v[j]) for m, v in sorted(closed.metrics.items())},
                            "cut_short": closed.as_of is not None,
                        }
                    )
            return out

        return observed

    def _after_batch(self, batch: RecordBatch, findings: list[Finding]) -> None:
        for kt in self.key_types:
            keys = batch.keys.get(kt)
            if not keys or self.key not in keys:
                continue
            idx = [i for i, k in enumerate(keys) if k == self.key]
            times = batch.time[idx]
            self._seen(kt, len(idx), float(times.min()), float(times.max()))
        self._note(findings)

    def _after_rows(self, rows: dict[str, KeyPartials], findings: list[Finding]) -> None:
        """A released bucket: the key's rows carry its request counts per channel (the unfiltered
        channel's, when a detector counts every request, else the largest) and its last time."""
        layout = self._engine.partials.layout
        for kt in self.key_types:
            kp = rows.get(kt)
            if kp is None or self.key not in kp.keys:
                continue
            idx = [i for i, k in enumerate(kp.keys) if k == self.key]
            chans = [cl.channel for cl in layout.channels(kt)]
            counts = [float(kp.sums[c]["requests"][idx].sum()) for c in range(len(chans))]
            n = counts[chans.index(Channel())] if Channel() in chans else max(counts)
            first = float(kp.bucket[idx].min() * layout.bucket_s)
            self._seen(kt, int(n), first, float(kp.last_ms[idx].max()) / 1000.0)
        self._note(findings)

    def _seen(self, kt: str, n: int, first: float, last: float) -> None:
        self.records[kt] += n
        self.first_t[kt] = min(self.first_t.get(kt, first), first)
        self.last_t[kt] = max(self.last_t.get(kt, float("-inf")), last)
        self._observe(kt, last)

    def _note(self, findings: list[Finding]) -> None:
        for f in findings:
            if f.key == self.key and f.key_type in self.key_types:
                ev = f.evidence
                value = ev.get("value", ev.get("ratio", ev.get("model_score")))
                self.scores[f.key_type][f.detector].append(
                    {
                        "t": f.event_time,
                        "at": "finding",
                        "window_start": float(f.event_time // f.window_s * f.window_s),
                        "value": value,
                        "threshold": f.threshold,
                        "score": round(f.score, 6),
                        "eligible": True,
                    }
                )
                self.findings[f.key_type].append(
                    {
                        "t": f.event_time,
                        "time": iso8601(f.event_time),
                        "detector": f.detector,
                        "score": round(f.score, 6),
                        "threshold": f.threshold,
                        "window": f.window,
                        "mode": f.mode,
                        "evidence": f.evidence,
                    }
                )

    def _observe(self, kt: str, t: float) -> None:
        engine = self._engine
        slot = probe.slot_of(engine, kt, self.key)
        if slot is None:
            return
        wins = self.windows[kt]
        for store in engine.stores.values():
            if store.key_type != kt:
                continue
            wid = probe.current_window(store, slot)
            if wid is None:
                continue
            label = probe.store_label(store)
            # The previous window takes late records until it rolls out: refresh it (or add it, when
            # it opened and closed inside one batch) from the store's previous-window values.
            prev = probe.window_values(store, slot, "prev")
            if prev["requests"] > 0:
                self._window(wins, label, wid - 1, store.window_s)["figures"] = {
                    m: _num(v) for m, v in prev.items()
                }
            entry = self._window(wins, label, wid, store.window_s)
            entry["last_seen"] = t
            entry["figures"] = {m: _num(v) for m, v in probe.window_values(store, slot, "cur").items()}
        for i, det in enumerate(engine.detectors):
            if det.spec.key != kt:
                continue
            r = probe.running_score(engine, i, slot, t)
            if r is None:
                continue
            store = probe.detector_store(engine, i)
            wid = probe.current_window(store, slot)
            r = {k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()}
            self.scores[kt][det.spec.name].append(
                {"t": t, "at": "batch_end", "window_start": float(wid * store.window_s), **r}
            )

    @staticmethod
    def _window(
        wins: dict[tuple[str, int], dict[str, Any]], label: str, wid: int, window_s: int
    ) -> dict[str, Any]:
        entry = wins.get((label, wid))
        if entry is None:
            start = float(wid * window_s)
            entry = wins[(label, wid)] = {"counts": label, "start": start, "end": start + window_s}
        return entry

    # -- result -----------------------------------------------------------------------------------

    def seen(self) -> list[str]:
        return [kt for kt in self.key_types if self.records.get(kt)]

    def to_dict(self) -> dict[str, Any]:
        engine = self._engine
        out: dict[str, Any] = {"key": self.key, "resolution": self.resolution, "key_types": {}}
        for kt in self.seen():
            detectors = [
                {"name": d.spec.name, "type": d.spec.type, "mode": d.spec.mode, "window": d.spec.window}
                for d in engine.detectors
                if d.spec.key == kt
            ]
            windows = sorted(
                self.windows[kt].values(), key=lambda w: (w["end"] - w["start"], w["counts"], w["start"])
            )
            out["key_types"][kt] = {
                "records": self.records[kt],
                "first_seen": iso8601(self.first_t[kt]),
                "last_seen": iso8601(self.last_t[kt]),
                "detectors": detectors,
                "windows": windows,
                "scores": {
                    name: sorted(s, key=lambda p: p["t"]) for name, s in sorted(self.scores[kt].items())
                },
                "window_closes": sorted(self.closes[kt], key=lambda c: (c["t"], c["detector"])),
                "findings": self.findings[kt],
                "decisions": self.decisions[kt],
            }
        return out
