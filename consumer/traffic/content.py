"""The service's content: shared files (Zipf popularity, heavy-tailed sizes), pages, assets, API paths.

A file's size, type and name are fixed functions of its id, so every range request for a file agrees
with the others and a popular file is the same object for everybody.
"""

from __future__ import annotations

import numpy as np

from consumer.traffic.kinds import DOWNLOAD_EXT, DOWNLOADS, K

N_FILES = 200_000
_NAMES = (
    "holiday-photos",
    "project-assets",
    "backup-2024-05",
    "dataset-v3",
    "lecture-03",
    "invoice-8812",
    "thesis-final",
    "mixtape",
    "ubuntu-24.04-desktop-amd64",
    "game-mod-pack",
    "raw-footage",
    "scan-0042",
    "presentation",
    "build-artifacts",
    "family-video",
    "podcast-ep17",
)
_TABLE = np.random.default_rng(20240501)
#: Median 4 MiB, heavy tail (p99.9 ~0.6 GB), capped at 4 GiB.
FILE_SIZE = (
    np.minimum(np.exp(np.log(4 * 2**20) + 1.6 * _TABLE.standard_normal(N_FILES)), 4 * 2**30).astype(np.int64)
    + 1024
)
FILE_KIND = _TABLE.choice(np.asarray(DOWNLOADS, dtype=np.int64), N_FILES, p=(0.45, 0.2, 0.2, 0.15))
del _TABLE

STATIC_JS = tuple(
    f"/static/js/{n}.{h}.js"
    for n, h in (("app", "3f9a1c"), ("vendor", "8d21e0"), ("viewer", "c07b44"), ("upload", "1e5d9f"))
)
STATIC_CSS = ("/static/css/app.5b2e71.css", "/static/css/viewer.9a0c13.css")
FONTS = ("/static/fonts/inter-var.woff2", "/static/fonts/inter-italic.woff2")
PAGES = ("/", "/files", "/shared", "/recent", "/account", "/pricing", "/help", "/settings")
API_READ = ("/api/v1/me", "/api/v1/files", "/api/v1/quota", "/api/v1/notifications", "/api/v1/shares")


def popular_files(rng: np.random.Generator, n: int) -> np.ndarray:
    """File ids with a Zipf-like popularity (id 0 the most requested)."""
    return np.minimum((rng.pareto(0.9, n) * 40).astype(np.int64), N_FILES - 1)


def share_token(file_id: int) -> str:
    return f"{(file_id * 2654435761) & 0xFFFFFFFF:08x}"


def download_path(file_id: int) -> str:
    kind = K(int(FILE_KIND[file_id]))
    return f"/d/{share_token(file_id)}/{_NAMES[file_id % len(_NAMES)]}.{DOWNLOAD_EXT[kind]}"


def thumb_path(file_id: int) -> str:
    return f"/thumbs/{share_token(file_id)}/320.webp"


def share_page(file_id: int) -> str:
    return f"/s/{share_token(file_id)}"
