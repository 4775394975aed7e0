"""A moto server over HTTP (werkzeug, in-process) for tests that talk to AWS APIs with real boto3 clients
(Kinesis tools, S3/SSM config sources, the re-keying stage). The KCL tests use the h2c local stack."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
