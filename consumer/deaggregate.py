"""KPL de-aggregation: one Kinesis record may carry many user records (Kinesis Producer Library format).

CloudFront itself writes one request per record, but a stream fed by a KPL producer (a re-publisher,
a replay) may aggregate. The protobuf format is read by ``aws_kinesis_agg`` (AWS's own library); this
module only adapts its Lambda-shaped interface to raw bytes, and keeps plain records on a fast path.
"""

from __future__ import annotations

import base64

from aws_kinesis_agg import MAGIC
from aws_kinesis_agg.deaggregator import iter_deaggregate_records


def user_records(data: bytes) -> list[tuple[int | None, bytes]]:
    """``[(sub_sequence_number, payload)]``: ``None`` sub-sequence for a plain (non-aggregated) record.

    A record that only looks aggregated (bad checksum or protobuf) is returned whole, as the KPL's
    own consumers do: its content then goes to the parser, which quarantines it if it is garbage.
    """
    if not data.startswith(MAGIC):
        return [(None, data)]
    envelope = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "sequenceNumber": "0",
            "approximateArrivalTimestamp": 0,
            "partitionKey": "",
            "data": base64.b64encode(data),
        }
    }
    out: list[tuple[int | None, bytes]] = []
    for rec in iter_deaggregate_records([envelope]):
        k = rec["kinesis"]
        out.append((k.get("subSequenceNumber"), base64.b64decode(k["data"])))
    return out
