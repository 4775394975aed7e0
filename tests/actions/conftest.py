from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.actions.aws import MotoServer, set_fake_credentials


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    set_fake_credentials()
    server = MotoServer().start()
    yield server
    server.stop()
