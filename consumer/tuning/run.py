"""One candidate: a full dry-run replay through the real Pipeline, keeping what the scoring needs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from actions.decision import Decision
from consumer.config import Config
from consumer.quarantine import Quarantine
from consumer.rekey.factory import replay_pipeline
from consumer.replay_loop import run_inputs
from detectors.batch import RecordBatch

ACTED = frozenset({"block", "alert", "shadow"})  # what the detector's mode does; "refused" is not


@dataclass
class Outcome:
    """What one replay decided: per detector and key, the first acted decision's event time."""

    records: int = 0
    first_acted: dict[str, dict[tuple[str, str], float]] = field(default_factory=lambda: defaultdict(dict))
    blocked: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key type -> keys
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key type -> keys
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # reason -> decisions

    def add(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.action in ACTED:
                per = self.first_acted[d.detector]
                k = (d.key_type, d.key)
                if k not in per or d.event_time < per[k]:
                    per[k] = d.event_time
                if d.action == "block":
                    self.blocked[d.key_type].add(d.key)
            else:
                self.refused[d.reason] += 1


def replay_outcome(cfg: Config, paths: list[str]) -> Outcome:
    """Replays ``paths`` with actions in dry-run (nothing is invoked, no spool, no quarantine file),
    through the pipeline ``cfg``'s deployment decides with (``replay_pipeline``: bucket resolution
    for ``evaluate: bucket`` and the two-stage topology), as ``cfguard replay`` does."""
    pipeline = replay_pipeline(cfg, dry_run=True, quarantine=Quarantine(None, 0))
    out = Outcome()
    extract = pipeline.keys.extract

    def observed_extract(batch: RecordBatch) -> None:
        # Observation only: the extractor fills batch.keys, then the keys seen are noted.
        extract(batch)
        for kt, keys in batch.keys.items():
            out.seen[kt].update(keys)

    pipeline.keys.extract = observed_extract  # type: ignore[method-assign]
    try:
        run_inputs(pipeline, paths, on_decisions=out.add)
        pipeline.flush()
    finally:
        pipeline.close()
    for keys in out.seen.values():
        keys.discard(None)  # type: ignore[arg-type]
    out.records = pipeline.counters.records
    return out
