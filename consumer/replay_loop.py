"""The one loop that drives recorded inputs through a Pipeline: ``replay``, ``tune`` and ``explain``
all run exactly this code, so what they report is what a replay decides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from actions.decision import Decision
from consumer import s3_inputs
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
    for path in paths:
        if not s3_inputs.is_s3(path):
            kinds[path] = _run_one(pipeline, Path(path), path, pacer, on_decisions, on_batch_done)
            continue
        bucket, _prefix = s3_inputs.split_url(path)
        for key in s3_inputs.list_objects(path):
            name = f"s3://{bucket}/{key}"
            with s3_inputs.local_copy(bucket, key) as local:
                kinds[name] = _run_one(pipeline, local, name, pacer, on_decisions, on_batch_done)
    # End of the recording: a bucket-resolution pipeline still holds its last buckets for
    # stragglers that cannot come any more; apply them (what the live stage does on newer data).
    drain = getattr(pipeline, "drain", None)
    if drain is not None:
        decisions = drain()
        if on_decisions is not None and decisions:
            on_decisions(decisions)
        if on_batch_done is not None:
            on_batch_done()
    return kinds


def missing_inputs(paths: Sequence[str]) -> list[str]:
    """Why each unusable input can't be read (a local file that does not exist, an empty S3 prefix)."""
    out = []
    for path in paths:
        if s3_inputs.is_s3(path):
            problem = s3_inputs.check(path)
            if problem:
                out.append(problem)
        elif not Path(path).exists():
            out.append(f"input not found: {path}")
    return out


def _run_one(
    pipeline: Pipeline,
    path: Path,
    name: str,
    pacer: Pacer | None,
    on_decisions: OnDecisions | None,
    on_batch_done: Callable[[], None] | None,
) -> str:
    source = open_input(path, quarantine=pipeline.quarantine)
    parse = parse_function(pipeline, source)
    for lines in source.batches(pipeline.cfg.input.batch_size):
        if pacer is not None:
            pacer.wait_until(line_time(lines[0]))
        if parse is None:
            decisions = pipeline.process(lines, name)
        else:
            n_records = sum(1 for line in lines if not line.startswith(b"#"))
            decisions = pipeline.process_parsed(parse(lines), n_records, name)
        if on_decisions is not None and decisions:
            on_decisions(decisions)
        if on_batch_done is not None:
            on_batch_done()
    return source.kind
