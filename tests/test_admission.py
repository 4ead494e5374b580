"""Admission control (exathunk.admission): a full connection table closes its least
recently active idle connection for a new client; per-client quotas of pending thunks
keep one client's flood from costing another its results or its submits; unfetched
results expire by age, and fetching one then is the declared Expired error."""

import threading
import time

import pytest

from exathunk import admission, server, wire
from exathunk import client as client_module
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
            # The least recently active holder was closed: its client sees that its
            # pooled connection was closed and reconnects, so every holder's next call
            # is answered (the reconnect closes another idle holder, and so on).
            # (A client peeks only at connections pooled longer than PEEK_AFTER.)
            time.sleep(client_module.PEEK_AFTER + 0.1)
            for i, c in enumerate(holders):
                assert c.evaluate(f"(+ {i} 2)") == i + 2
        finally:
            for c in holders:
                c.close()


def submit(client, source):
    return client._invoke("submitEvalRequest", evalRequest=wire.make_request(source))


def get(client, thunk):
    return wire.varcont_to_value(client._invoke("thunkGet", thunk=thunk))


def test_a_flood_is_refused_by_its_quota_and_never_costs_another_client_its_result():
    with server.start(workers=2, max_thunks=500, max_thunks_per_client=100) as node:
        a = connect(node.host, node.port, timeout=10)
        b = connect(node.host, node.port, timeout=10)
        try:
            kept = submit(b, "(+ 40 2)")
            accepted = refused = 0
            for i in range(2000):
                try:
                    submit(a, f"(+ {i} 1)")
                    accepted += 1
                except wire.Overloaded as err:
                    refused += 1
                    assert "quota" in err.message
            assert accepted == 100 and refused == 1900
            # B was not evicted, and B is not refused for A's flood.
            assert get(b, kept) == 42
            assert get(b, submit(b, "(* 6 7)")) == 42
        finally:
            a.close()
            b.close()


def test_a_full_table_refuses_the_heaviest_client_and_evicts_nobody():
    # Quotas larger than the table: the table fills before any quota does.
    with server.start(workers=2, max_thunks=200, max_thunks_per_client=10_000) as node:
        a = connect(node.host, node.port, timeout=10)
        b = connect(node.host, node.port, timeout=10)
        try:
            kept = submit(b, "(+ 40 2)")
            refused = 0
            for i in range(1000):
                try:
                    submit(a, f"(+ {i} 1)")
                except wire.Overloaded:
                    refused += 1
            assert refused > 0
            assert get(b, kept) == 42
            assert get(b, submit(b, "(* 6 7)")) == 42
        finally:
            a.close()
            b.close()


def test_an_unfetched_result_expires_by_age_and_fetching_it_is_expired():
    with server.start(workers=2, thunk_ttl=0.2) as node:
        c = connect(node.host, node.port, timeout=10)
        try:
            old = submit(c, "(+ 1 2)")
            time.sleep(0.5)
            with pytest.raises(Expired):
                c._invoke("thunkGet", thunk=old)
            # An id never issued is still UnknownThunk, not Expired.
            with pytest.raises(RemoteError) as info:
                c._invoke("thunkGet", thunk=T.RemoteThunk(id="ffff-000000000000"))
            assert not isinstance(info.value, Expired)
            out = c._invoke("thunkWaitAny", thunks=[old], timeoutMs=0)
            assert [o.error.kind for o in out] == ["Expired"]
            # Expiry released the quota it held.
            assert sum(node.handler._quota.counts.values()) == 0
        finally:
            c.close()


def test_a_broker_refuses_a_flooding_client_by_its_quota_and_serves_the_others(cluster):
    worker, start_broker, connect_to = cluster
    b = start_broker([worker()], max_thunks=500, max_thunks_per_client=100)
    a, other = connect_to(b), connect_to(b)
    kept = submit(other, "(+ 40 2)")
    accepted = refused = 0
    for _ in range(1000):
        try:
            submit(a, "(+ 1 1)")
            accepted += 1
        except wire.Overloaded as err:
            refused += 1
            assert "quota" in err.message
    assert accepted == 100 and refused == 900
    deadline = time.monotonic() + 10
    while True:
        try:
            assert get(other, kept) == 42
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert submit(other, "(* 6 7)").id


def test_a_broker_result_expires_by_age(cluster):
    worker, start_broker, connect_to = cluster
    b = start_broker([worker()], thunk_ttl=0.2)
    c = connect_to(b)
    old = submit(c, "(+ 1 2)")
    deadline = time.monotonic() + 10
    while b.handler._thunks[old.id].finished_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    with pytest.raises(Expired):
        c._invoke("thunkGet", thunk=old)
