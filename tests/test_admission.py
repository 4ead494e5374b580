"""Admission control (exathunk.admission): a full connection table closes its least
recently active idle connection for a new client; per-client quotas of pending thunks
keep one client's flood from costing another its results or its submits; unfetched
results expire by age, and fetching one then is the declared Expired error."""

import threading
import time

import pytest

from exathunk import admission, server, wire
from exathunk.client import connect
from exathunk.errors import Expired, RemoteError

T = wire.thrift


def test_pick_victim_is_the_least_recently_active_idle_connection():
    activity = {"a": 5.0, "b": 1.0, "c": 3.0}
    assert admission.pick_victim(activity, set()) == "b"
    assert admission.pick_victim(activity, {"b"}) == "c"
    assert admission.pick_victim(activity, {"a", "b", "c"}) is None


def test_a_new_client_is_served_when_idle_connections_hold_the_cap():
    with server.start(workers=2, max_connections=8) as node:
        holders = [connect(node.host, node.port, timeout=5) for _ in range(8)]
        try:
            for i, c in enumerate(holders):
                assert c.evaluate(f"(+ {i} 1)") == i + 1
            # Every slot is held by a connection that is idle now.
            deadline = time.monotonic() + 5     # the last reply's thread may still be
            while node.server.busy() and time.monotonic() < deadline:   # finishing up
                time.sleep(0.01)
            assert node.server.busy() == 0
            assert len(node.server._conns) == 8
            fresh = connect(node.host, node.port, timeout=5)
            try:
                assert fresh.evaluate("(* 6 7)") == 42
            finally:
                fresh.close()
            assert node.server.evicted >= 1
            # The first holder was the least recently active: it was closed.  Its next
            # call is a clean RemoteError or, reconnecting, an answer; never a hang.
            try:
                assert holders[0].evaluate("(+ 1 1)") == 2
            except RemoteError:
                assert holders[0].evaluate("(+ 1 1)") == 2
        finally:
            for c in holders:
                c.close()
