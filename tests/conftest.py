"""Fixtures shared by the tests that start real nodes on loopback."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workers as fake  # noqa: E402
from exathunk import broker, client  # noqa: E402


@pytest.fixture
def cluster():
    """Start workers and brokers on demand; everything is stopped afterwards."""
    started = []

    def worker(library=None, **behaviour):
        handle = fake.start_worker(library, **behaviour)
        started.append(handle)
        return handle

    def start_broker(workers, **options):
        options.setdefault("seed", 7)
        handle = broker.start("127.0.0.1", 0, workers=[(w.host, w.port) for w in workers],
                              **options)
        started.append(handle)
        return handle

    clients = []

    def connect(handle):
        c = client.connect(handle.host, handle.port, timeout=10)
        clients.append(c)
        return c

    yield worker, start_broker, connect
    for c in clients:
        c.close()
    for handle in reversed(started):
        handle.stop(timeout=2)
