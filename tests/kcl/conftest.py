"""One local stack (moto + Hypercorn, h2c) per test session for everything that needs AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackInfo, StackSpec


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)
    log = Path(tmp_path_factory.mktemp("stack")) / "local-stack.log"
    with LocalStackProcess(StackSpec(stream_name="cfguard-test", shards=1), log_path=log) as info:
        yield info
