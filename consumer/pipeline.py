"""One shard's (or one replay's) chain: parse -> keys -> detectors -> actions.

The KCL processor and the replay command both drive exactly this object, so a replay of recorded
records makes the same decisions as the live consumer that saw them.
"""

from __future__ import annotations

import logging
import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from actions.decision import Decision
from actions.runner import ActionRunner
from consumer.config import Config
from consumer.keys import KeyExtractor
from consumer.quarantine import Quarantine
from consumer.realtime import ParseResult, RealtimeParser
from consumer.standard import StandardParser
from detectors.batch import RecordBatch
from detectors.engine import Engine
from detectors.finding import Finding

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


@dataclass
class PipelineCounters:
    records: int = 0
    parsed: int = 0
    malformed: int = 0
    findings: int = 0
    decisions_by_detector: Counter[str] = field(default_factory=Counter)
    decisions_by_action: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        out = {
            "records": self.records,
            "parsed": self.parsed,
            "malformed": self.malformed,
            "findings": self.findings,
        }
        out.update({f"decisions.{k}": v for k, v in sorted(self.decisions_by_detector.items())})
        return out


class Pipeline:
    """Wires the parser, key extraction, the detector engine and the action runner."""

    def __init__(
        self,
        cfg: Config,
        *,
        engine: Engine,
        actions: ActionRunner,
        quarantine: Quarantine | None = None,
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.actions = actions
        self.keys = KeyExtractor(cfg.keys)
        self.quarantine = quarantine or Quarantine(cfg.quarantine.path, cfg.quarantine.max_samples)
        wanted = {"timestamp"} | self.keys.required_fields() | set(engine.required_fields())
        missing = sorted(wanted - set(cfg.input.fields))
        if missing:
            # The config validator checks keys; detectors' needs are only known once built.
            raise ValueError(
                f"detectors need field(s) {', '.join(missing)} that input.fields does not include"
            )
        self.parser = RealtimeParser(
            cfg.input.fields, wanted, decode=cfg.input.decode, max_line_bytes=cfg.input.max_line_bytes
        )
        self.wanted = frozenset(wanted)
        self.dry_run_override: bool | None = None  # from_config's dry_run, kept for reconfigured()
        self.counters = PipelineCounters()

    def parser_for(self, fields: Sequence[str]) -> RealtimeParser:
        """A parser for real-time lines written with another field list (e.g. a file's ``#Fields``)."""
        missing = sorted(self.wanted - set(fields))
        if missing:
            raise ValueError(f"the input lacks field(s) the keys and detectors need: {', '.join(missing)}")
        inp = self.cfg.input
        decode = [f for f in inp.decode if f in fields]
        return RealtimeParser(fields, self.wanted, decode=decode, max_line_bytes=inp.max_line_bytes)

    def standard_parser(self) -> StandardParser:
        """A parser for standard (S3, W3C) access logs that yields the same columns."""
        inp = self.cfg.input
        return StandardParser(self.wanted, decode=inp.decode, max_line_bytes=inp.max_line_bytes)

    @classmethod
    def from_config(
        cls, cfg: Config, *, dry_run: bool | None = None, quarantine: Quarantine | None = None
    ) -> Pipeline:
        engine = Engine.from_config(cfg.detectors, cfg.state, [k.name for k in cfg.keys])
        actions = ActionRunner(cfg.actions, dry_run=dry_run)
        pipeline = cls(cfg, engine=engine, actions=actions, quarantine=quarantine)
        pipeline.dry_run_override = dry_run
        return pipeline

    def reconfigured(self, cfg: Config) -> Pipeline:
        """A pipeline for a new (validated) config that carries this one's state: the detectors'
        windows, baselines and models where they still apply, the guard's cooldowns, offences and
        breaker. Raises (and leaves this pipeline as it was) if the new one can't be built."""
        new = Pipeline.from_config(cfg, dry_run=self.dry_run_override, quarantine=self.quarantine)
        self.flush()
        new.restore(self.snapshot())
        new.counters = self.counters
        for name in new.keys.missing:  # key types may have been added or removed
            new.keys.missing[name] += self.keys.missing.get(name, 0)
            new.keys.keyed[name] += self.keys.keyed.get(name, 0)
        self.actions.close()
        return new

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[Decision]:
        """One batch of raw real-time lines (one Kinesis record's payload each)."""
        return self.process_parsed(self.parser.parse(lines), len(lines), source)

    def accept(self, result: ParseResult, n_input: int, source: str = "") -> RecordBatch | None:
        """Count a parsed batch, quarantine its bad lines, extract its keys; None if nothing is left."""
        c = self.counters
        c.records += n_input
        for reason, line in result.malformed:
            self.quarantine.add(reason, line, source)
        c.malformed += len(result.malformed)
        batch = result.batch
        c.parsed += len(batch)
        if not len(batch):
            return None
        self.keys.extract(batch)
        return batch

    def process_parsed(self, result: ParseResult, n_input: int, source: str = "") -> list[Decision]:
        """A batch parsed elsewhere (e.g. standard access logs) through the same detectors and actions."""
        batch = self.accept(result, n_input, source)
        if batch is None:
            return []
        return self._decide(self.engine.process(batch))

    def _decide(self, findings: list[Finding]) -> list[Decision]:
        """Findings to the actions, counted by detector and action (also the detect stage's path)."""
        if not findings:
            return []
        c = self.counters
        c.findings += len(findings)
        decisions = self.actions.submit(findings)
        for d in decisions:
            c.decisions_by_detector[d.detector] += 1
            c.decisions_by_action[d.action] += 1
        return decisions

    def flush(self) -> None:
        self.actions.flush()

    def close(self) -> None:
        self.actions.close()
        self.quarantine.close()

    def snapshot(self) -> bytes:
        state = {
            "version": SNAPSHOT_VERSION,
            "engine": self.engine.snapshot(),
            "actions": self.actions.snapshot(),
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes) -> None:
        state = pickle.loads(blob)
        if not isinstance(state, dict) or state.get("version") != SNAPSHOT_VERSION:
            raise ValueError("snapshot has an unknown format or version")
        self.engine.restore(state["engine"])
        self.actions.restore(state["actions"])

    def stats(self) -> dict[str, object]:
        return {
            **self.counters.as_dict(),
            "malformed_by_reason": dict(self.quarantine.counts),
            "keys_missing": dict(self.keys.missing),
            "keys_extracted": dict(self.keys.keyed),
            "engine": self.engine.stats(),
            "actions": self.actions.stats(),
        }
