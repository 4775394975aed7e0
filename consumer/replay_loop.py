"""The one loop that drives recorded inputs through a Pipeline: ``replay``, ``tune`` and ``explain``
all run exactly this code, so what they report is what a replay decides."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from actions.decision import Decision
from consumer.pacing import Pacer, line_time
from consumer.pipeline import Pipeline
from consumer.realtime import ParseResult
from consumer.sources import InputSource, open_input

OnDecisions = Callable[[list[Decision]], None]


class InputMismatch(ValueError):
    """An input whose ``#Fields`` header does not fit the config (exit 2 in the commands)."""


def parse_function(pipeline: Pipeline, source: InputSource) -> Callable[[list[bytes]], ParseResult] | None:
    """None: the pipeline's own parser (the configured real-time fields) fits this input."""
    if source.kind == "standard":
        return pipeline.standard_parser().parse
    fields = source.header_fields
    if source.kind == "realtime" and fields and tuple(fields) != pipeline.cfg.input.fields:
        try:
            return pipeline.parser_for(fields).parse
        except ValueError as exc:
            raise InputMismatch(f"{source.path}: its #Fields header does not fit the config: {exc}") from None
    return None


def run_inputs(
    pipeline: Pipeline,
    paths: Sequence[str],
    *,
    pacer: Pacer | None = None,
    on_decisions: OnDecisions | None = None,
    on_batch_done: Callable[[], None] | None = None,
) -> dict[str, str]:
    """Every input in order, in batches of ``input.batch_size``; returns each path's input kind.

    The caller flushes and closes the pipeline (so it can do so in a ``finally``).
    """
    kinds: dict[str, str] = {}
    batch_size = pipeline.cfg.input.batch_size
    for path in paths:
        source = open_input(path, quarantine=pipeline.quarantine)
        kinds[path] = source.kind
        parse = parse_function(pipeline, source)
        for lines in source.batches(batch_size):
            if pacer is not None:
                pacer.wait_until(line_time(lines[0]))
            if parse is None:
                decisions = pipeline.process(lines, path)
            else:
                n_records = sum(1 for line in lines if not line.startswith(b"#"))
                decisions = pipeline.process_parsed(parse(lines), n_records, path)
            if on_decisions is not None and decisions:
                on_decisions(decisions)
            if on_batch_done is not None:
                on_batch_done()
    return kinds
