"""The bundled sample ``consumer/data/sample-realtime.tsv.gz`` and the exact command that makes it.

Four minutes of traffic from ~900 ordinary users with every abuse scenario (both modes of the
credential stuffing and API free-rider scenarios) at strengths sensible thresholds catch, and every
hard negative. Size budget: < 1.5 MB gzipped; each line costs ~105 bytes compressed, ~48 of them
the random x-edge-request-id, hence ~13,000 lines rather than more.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SCENARIOS = ",".join(
    (
        "bandwidth_hog:start_s=20:duration_s=210:bytes_per_s=6e7:chunk_bytes=67108864",
        "request_flood:start_s=60:duration_s=62:rate=106",
        "scanner:start_s=40:duration_s=90:rate=4",
        "credential_stuffing:start_s=50:duration_s=100:rate=3:mode=rotating_ips:ips=300",
        "credential_stuffing:start_s=100:duration_s=90:rate=3:mode=one_ip",
        "scraper:start_s=10:duration_s=225:rate=15",
        "origin_exhaustion:start_s=30:duration_s=200:rate=8:ips=1",
        "api_free_rider:start_s=20:duration_s=200:rate=1:mode=shared_key:ips=20",
        "api_free_rider:start_s=120:duration_s=60:rate=1:mode=no_key",
    )
)
NEGATIVES = ",".join(
    (
        "heavy_downloader",
        "nat_office:users=50",
        "monitor:interval_s=3",
        "password_retry:users=5:fails=3:every_s=400",
        "cdn_prefetcher:rate=0.7",
        "search_crawler:rate=0.4",
    )
)
#: ``cfguard generate`` + these arguments (plus ``--out`` and ``--labels-out``) makes the sample.
ARGS: tuple[str, ...] = (
    "--seed",
    "20251126",
    "--start",
    "2025-11-26T19:00:00Z",
    "--duration",
    "240",
    "--rate",
    "6.5",
    "--scenarios",
    SCENARIOS,
    "--negatives",
    NEGATIVES,
)
DATA = "sample-realtime.tsv.gz"
LABELS = "sample-realtime.labels.json"


def path() -> Path:
    """Where the installed sample is."""
    return Path(str(resources.files("consumer") / "data" / DATA))


def labels_path() -> Path:
    return Path(str(resources.files("consumer") / "data" / LABELS))
