"""Replay inputs in S3: ``s3://bucket/prefix`` is every object under the prefix, in time order.

CloudFront standard logs land as ``[prefix/]<distribution>.<YYYY-MM-DD-HH>.<id>.gz``: objects are
ordered by that hour (then by last-modified time and key), so a replay sees the traffic in event
order across files. Each object is streamed to a temporary file, replayed, and removed: memory stays
flat whatever the object's size. The S3 client is the SDK's default (region, credentials, and
``AWS_ENDPOINT_URL_S3`` for a local stand-in).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

_HOUR = re.compile(r"\.(\d{4}-\d{2}-\d{2}-\d{2})\.")


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def split_url(url: str) -> tuple[str, str]:
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/prefix address: {url!r}")
    return bucket, prefix


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def list_objects(url: str, client: Any | None = None) -> list[str]:
    """The object keys under the prefix, in time order (see the module docstring)."""
    client = client or _client()
    bucket, prefix = split_url(url)
    found: list[tuple[str, datetime, str]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/"):
                continue
            m = _HOUR.search(key.rsplit("/", 1)[-1])
            found.append((m.group(1) if m else "", obj["LastModified"], key))
    found.sort()
    return [key for _hour, _modified, key in found]


@contextmanager
def local_copy(bucket: str, key: str, client: Any | None = None) -> Iterator[Path]:
    client = client or _client()
    with tempfile.NamedTemporaryFile(prefix="cfguard-s3-", delete=False) as tmp:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        shutil.copyfileobj(body, tmp, 1 << 20)
    try:
        yield Path(tmp.name)
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def check(url: str, client: Any | None = None) -> str | None:
    """None when the prefix holds objects, else why it can't be replayed."""
    try:
        keys = list_objects(url, client)
    except ValueError as exc:
        return str(exc)
    except Exception as exc:  # botocore's errors: missing bucket, no credentials, no network
        return f"cannot list {url}: {exc}"
    return None if keys else f"no objects under {url}"
