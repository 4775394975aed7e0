"""Reading the MultiLangDaemon's messages without the per-record Python work of ``amazon_kclpy``.

Each ``processRecords`` message is one JSON line holding every record of the batch, its data in
base64 (~1.7 KB of JSON per 1.2 KB CloudFront line). ``amazon_kclpy`` decodes it with ``json`` and
an ``object_hook`` that builds a ``Record`` per record (a ``datetime`` included), and the data then
needs a ``base64`` call each: together ~9.5 µs per record measured here, three times what parsing
and detecting the line costs (``bench/results/kcl.md``). ``msgspec`` decodes the message into typed
structs, base64 included, in C: ~2.4 µs per record.

Only the fast path is new: a message that does not fit the structs exactly (another action, a
record whose data is not valid base64, a missing field) goes through ``amazon_kclpy``'s own decoding,
unchanged, so a damaged record is still counted and skipped on its own (``consumer.kcl.records``).
The rest of the protocol (responses, checkpoints) is ``amazon_kclpy``'s.
"""

from __future__ import annotations

import json
from typing import IO, Any, Literal

import msgspec
from amazon_kclpy import dispatch, kcl, messages


class KinesisRecord(msgspec.Struct, frozen=True):
    """One record of a ``processRecords`` message, its data already decoded from base64."""

    data: bytes
    sequenceNumber: str
    subSequenceNumber: int | None = None
    partitionKey: str | None = None
    approximateArrivalTimestamp: int | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """Dict-style access, as for ``amazon_kclpy``'s ``Record`` (``"data"`` is the decoded bytes)."""
        return getattr(self, name, default)


class _ProcessRecords(msgspec.Struct):
    action: Literal["processRecords"]
    records: list[KinesisRecord]
    millisBehindLatest: int | None = None


_DECODER = msgspec.json.Decoder(_ProcessRecords)


class FastProcessRecordsInput(messages.ProcessRecordsInput):
    """``amazon_kclpy``'s ``ProcessRecordsInput`` over ``KinesisRecord`` structs."""

    def __init__(self, msg: _ProcessRecords) -> None:
        super().__init__(
            {"records": msg.records, "millisBehindLatest": msg.millisBehindLatest, "action": msg.action}
        )


class FastIOHandler:
    """The protocol I/O ``KCLProcess`` and its ``Checkpointer`` use (``amazon_kclpy``'s ``_IOHandler``
    interface): reads bytes or text lines, ``processRecords`` through ``msgspec``, any other message
    with ``amazon_kclpy``'s decoding."""

    def __init__(self, input_file: IO[Any], output_file: IO[str], error_file: IO[str]) -> None:
        self.input_file = input_file
        self.output_file = output_file
        self.error_file = error_file

    def read_line(self) -> str | bytes:
        return self.input_file.readline()

    def load_action(self, line: str | bytes) -> Any:
        try:
            return FastProcessRecordsInput(_DECODER.decode(line))
        except msgspec.MsgspecError:
            return json.loads(line, object_hook=dispatch.message_decode)

    def write_line(self, line: str) -> None:
        # Newlines around: the daemon skips anything between messages (as amazon_kclpy writes them).
        self.output_file.write(f"\n{line}\n")
        self.output_file.flush()

    def write_error(self, error_message: str) -> None:
        self.error_file.write(f"{error_message}\n")
        self.error_file.flush()

    def write_action(self, response: dict[str, Any]) -> None:
        self.write_line(json.dumps(response))


def kcl_process(
    processor: Any, input_file: IO[Any], output_file: IO[str], error_file: IO[str]
) -> kcl.KCLProcess:
    """A ``KCLProcess`` whose messages are read by :class:`FastIOHandler` (``input_file`` may be binary:
    no UTF-8 decoding of the ~MB lines)."""
    process = kcl.KCLProcess(processor, input_file=input_file, output_file=output_file, error_file=error_file)
    process.io_handler = FastIOHandler(input_file, output_file, error_file)
    process.checkpointer = kcl.Checkpointer(process.io_handler)
    return process
