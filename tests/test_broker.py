"""The broker end to end over loopback: real worker servers (tests/workers.py) that lie,
crash, run slow or die, and a broker that must hide all of it from its clients."""

import os
import sys
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workers as fake  # noqa: E402
from exathunk import broker, client  # noqa: E402
from exathunk.errors import EvaluationError, LimitExceeded, UnknownFunctionError  # noqa: E402
from exathunk.library import Library  # noqa: E402
from exathunk.market import ACTIVE, SHUT_OUT  # noqa: E402


def varied(i: int):
    """A small program and its value: five shapes, all distinct sources."""
    shape = i % 5
    if shape == 0:
        return "(+ (* %d 3) 7)" % i, i * 3 + 7
    if shape == 1:
        return '(concat "n" (show %d))' % i, "n%d" % i
    if shape == 2:
        return "(map (lambda (x) (* x %d)) (range 0 4))" % i, [x * i for x in range(4)]
    if shape == 3:
        return "(< %d 500)" % i, i < 500
    return "(/ (to-double %d) 4.0)" % i, i / 4.0


def address(handle):
    return "%s:%d" % (handle.host, handle.port)


def run_liar_scenario(c, market, liar, requests):
    """Evaluate varied requests; returns the index at which the liar was shut out."""
    shut_out_at = None
    for i in range(requests):
        source, expected = varied(i)
        assert c.evaluate(source) == expected, (i, source)
        if shut_out_at is None and market.workers[liar].state == SHUT_OUT:
            shut_out_at = i
    return shut_out_at


def test_a_liar_never_reaches_the_client_and_is_shut_out(cluster, tmp_path):
    worker, start_broker, connect = cluster
    honest = [worker(seed=1), worker(seed=2)]
    liar = worker(lie_rate=0.3, seed=3)
    b = start_broker(honest + [liar], db_path=str(tmp_path / "rep.sqlite3"))
    c = connect(b)
    shut_out_at = run_liar_scenario(c, b.handler.market, address(liar), 1000)
    assert shut_out_at is not None and shut_out_at < 200
    assert liar.handler.lies > 0           # it did lie, and no lie got through
    stats = c.stats()
    rows = {w["address"]: w for w in stats["workers"]}
    assert rows[address(liar)]["state"] == "SHUT_OUT"
    assert rows[address(liar)]["disagreed"] >= 1
    assert all(rows[address(h)]["state"] == "ACTIVE" for h in honest)
    assert stats["role"] == "broker"


def test_the_liar_stays_shut_out_after_a_broker_restart(cluster, tmp_path):
    worker, start_broker, connect = cluster
    db = str(tmp_path / "rep.sqlite3")
    honest = [worker(seed=4), worker(seed=5)]
    liar = worker(lie_rate=0.3, seed=6)
    b = start_broker(honest + [liar], db_path=db)
    c = connect(b)
    assert run_liar_scenario(c, b.handler.market, address(liar), 200) is not None
    b.stop(timeout=2)

    again = start_broker(honest + [liar], db_path=db, seed=8)
    assert again.handler.market.workers[address(liar)].state == SHUT_OUT
    served = liar.handler.served
    c2 = connect(again)
    for i in range(1000, 1100):
        source, expected = varied(i)
        assert c2.evaluate(source) == expected
    assert liar.handler.served == served    # not one request for the known liar


def test_a_slow_worker_gets_little_work_after_warm_up(cluster):
    worker, start_broker, connect = cluster
    fast = [worker(delay=0.002, seed=10), worker(delay=0.002, seed=11)]
    slow = worker(delay=0.010, seed=12)
    b = start_broker(fast + [slow])
    c = connect(b)
    for i in range(150):                  # warm-up
        source, expected = varied(i)
        assert c.evaluate(source) == expected
    before = {a: w.requests for a, w in b.handler.market.workers.items()}
    for i in range(150, 450):
        source, expected = varied(i)
        assert c.evaluate(source) == expected
    after = {a: w.requests - before[a] for a, w in b.handler.market.workers.items()}
    share = after[address(slow)] / sum(after.values())
    assert share < 0.15, after


def test_a_worker_killed_mid_run_loses_no_request(cluster):
    worker, start_broker, connect = cluster
    workers = [worker(delay=0.001, seed=20 + i) for i in range(3)]
    b = start_broker(workers, dispatch_timeout=5.0)
    c = connect(b)
    done = threading.Semaphore(0)

    def one(i):
        source, expected = varied(i)
        value = c.evaluate(source)
        done.release()
        return value == expected

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(one, i) for i in range(300)]
        for _ in range(100):
            assert done.acquire(timeout=30)
        fake.kill(workers[0])              # mid-run, with requests in flight
        results = [f.result(timeout=60) for f in futures]
    assert all(results)
    rows = {w["address"]: w for w in c.stats()["workers"]}
    assert rows[address(workers[0])]["failures"] >= 1


def test_crashing_answers_are_retried_elsewhere(cluster):
    worker, start_broker, connect = cluster
    flaky = worker(crash_rate=0.5, seed=30)
    steady = worker(seed=31)
    b = start_broker([flaky, steady])
    c = connect(b)
    for i in range(100):
        source, expected = varied(i)
        assert c.evaluate(source) == expected
    assert b.handler.market.workers[address(flaky)].failures >= 1


def test_a_function_offered_by_one_worker_is_routed_to_it(cluster):
    worker, start_broker, connect = cluster
    lib = Library()
    lib.register("secret", "(-> Int Int)", lambda x: x * 1000 + 1)
    plain = [worker(seed=40), worker(seed=41)]
    special = worker(library=lib, seed=42)
    # Only it offers "secret", so nobody could check it: the operator trusts it.
    b = start_broker(plain + [special], trusted=[address(special)])
    c = connect(b)
    served = special.handler.served
    for i in range(30):
        assert c.evaluate("(+ 1 (secret %d))" % i) == i * 1000 + 2
    assert special.handler.served - served == 30
    assert all(w.handler.served == 0 for w in plain)
    names = {d.name for d in c.func_defs()}
    assert "secret" in names and "map" in names
    with pytest.raises(UnknownFunctionError):
        c.evaluate("(nobody-has-this 1)")
    fut = c.submit("(nobody-has-this 2)")
    with pytest.raises(UnknownFunctionError):
        fut.result(timeout=10)


def test_results_are_cached_and_errors_vote_like_values(cluster):
    worker, start_broker, connect = cluster
    ws = [worker(seed=50), worker(seed=51)]
    b = start_broker(ws)
    c = connect(b)
    assert c.evaluate("(* 6 7)") == 42
    dispatched = b.handler.market.dispatched
    value, stats = c.evaluate_with_stats("(* 6 7)")
    assert value == 42 and stats["cached"]
    assert b.handler.market.dispatched == dispatched
    with pytest.raises(EvaluationError):
        c.evaluate('(error "no")')
    futures = c.submit_batch(["(+ 1 1)", "(+ 2 2)", "(head nil)"])
    assert futures[0].result(timeout=10) == 2 and futures[1].result(timeout=10) == 4
    with pytest.raises(EvaluationError):
        futures[2].result(timeout=10)
    assert c.evaluate_batch(["(+ 5 5)", "(+ 6 6)"]) == [10, 12]
    with pytest.raises(LimitExceeded) as caught:
        c.evaluate("(foldl + 0 (range 0 1000000))", max_steps=1000)
    assert caught.value.limit == "max_steps"


def test_workers_join_a_running_broker(cluster):
    worker, start_broker, connect = cluster
    b = start_broker([])
    c = connect(b)
    with pytest.raises(Exception):
        c.evaluate("(+ 1 2)")
    w1 = worker(seed=60)
    assert broker.join(b.host, b.port, w1.host, w1.port)
    assert c.evaluate("(+ 1 2)") == 3
    w2 = worker(seed=61)
    assert c.register_worker(w2.host, w2.port)
    w3 = worker(seed=62, join="%s:%d" % (b.host, b.port))    # exathunk serve --join
    for _ in range(100):
        rows = c.stats()["workers"]
        if len(rows) == 3:
            break
        time.sleep(0.05)
    assert {r["address"] for r in rows} == {address(w1), address(w2), address(w3)}
    assert all(r["state"] == "ACTIVE" for r in rows)
    for i in range(20):
        source, expected = varied(i)
        assert c.evaluate(source) == expected


def test_every_worker_dead_is_a_remote_error_not_a_hang(cluster):
    worker, start_broker, connect = cluster
    ws = [worker(seed=70), worker(seed=71)]
    b = start_broker(ws, dispatch_timeout=2.0)
    c = connect(b)
    assert c.evaluate("(+ 1 1)") == 2
    for w in ws:
        fake.kill(w)
    from exathunk.errors import RemoteError
    with pytest.raises(RemoteError):
        c.evaluate("(+ 40 2)")
    assert b.handler.market.workers[address(ws[0])].state == ACTIVE   # dead, not a liar


@pytest.mark.parametrize("forward", ["source", "compiled"])
def test_compiled_programs_and_forwarding_modes(cluster, forward):
    worker, start_broker, connect = cluster
    lib = Library()
    lib.register("secret", "(-> Int Int)", lambda x: x + 1)
    ws = [worker(seed=80), worker(library=lib, seed=81)]
    b = start_broker(ws, forward=forward, trusted=[address(ws[1])])   # sole "secret"
    graph_client = client.connect(b.host, b.port, timeout=10, mode="graph")
    try:
        for i in range(20):
            source, expected = varied(i)
            assert graph_client.evaluate(source) == expected
            assert connect(b).evaluate(source) == expected
        assert graph_client.evaluate("(secret 41)") == 42
        assert connect(b).evaluate("(secret 9)") == 10
    finally:
        graph_client.close()


def test_a_hung_worker_is_hedged_and_never_keeps_the_answer(cluster):
    worker, start_broker, connect = cluster
    prompt = [worker(seed=90), worker(seed=91), worker(seed=92)]
    hung = worker(delay=1.0, seed=93)
    b = start_broker(prompt + [hung], hedge_min=0.05)
    c = connect(b)
    nodes = []
    for i in range(40):
        source, expected = varied(i)
        value, stats = c.evaluate_with_stats(source)
        assert value == expected
        nodes.append(stats["node"])
    assert hung.handler.served >= 1                   # it was asked...
    assert address(hung) not in nodes                 # ...and never kept an answer waiting
    assert b.handler.counters["hedges"] >= 1


def test_an_oracle_node_checks_and_settles(cluster):
    worker, start_broker, connect = cluster
    oracle = worker(delay=0.02, seed=100)     # slow: the liar looks like the better deal
    liar = worker(lie_rate=1.0, seed=101)
    # verify_cost=0: a stranger is not priced by the checks it needs, so it gets work.
    b = start_broker([oracle, liar], oracles=[address(oracle)], verify_cost=0.0)
    c = connect(b)
    for i in range(20):
        source, expected = varied(i)
        assert c.evaluate(source) == expected
    market = b.handler.market
    assert market.workers[address(oracle)].trusted
    assert liar.handler.served >= 1 and liar.handler.lies >= 1
    assert market.workers[address(liar)].state == SHUT_OUT
    assert market.workers[address(liar)].lost >= 1


def test_a_cancelled_request_is_let_go_once_its_workers_answer(cluster):
    worker, start_broker, connect = cluster
    slow = worker(delay=0.3, seed=110)
    b = start_broker([slow])
    c = connect(b)
    fut = c.submit("(+ 40 2)")
    assert fut.cancel()
    with pytest.raises(CancelledError):
        fut.result(timeout=5)
    deadline = time.monotonic() + 5
    while b.handler._in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not b.handler._in_flight          # concluded, not stuck in flight
    assert b.handler.drain(1.0)              # so a drain does not wait for it


HASHABLE = "(class (Hashable a) (hash (-> a Int)))"


def offering(type_text, fn, extra=None):
    """A Library that declares Hashable and implements it in Python for one type."""
    lib = Library()
    lib.declare_class(HASHABLE)
    lib.register_instance("Hashable", type_text, hash=fn)
    if extra:
        extra(lib)
    return lib


def test_each_instance_goes_to_the_worker_that_offers_it(cluster):
    worker, start_broker, connect = cluster
    strings = worker(library=offering("String", len), seed=1)
    ints = worker(library=offering("Int", lambda n: 2 * n), seed=2)
    b = start_broker([strings, ints], hedge=False,            # each instance's sole
                     trusted=[address(strings), address(ints)])  # provider: trusted
    c = connect(b)
    for i in range(6):
        assert c.evaluate(f'(hash "{"x" * i}")') == i
        assert c.evaluate(f"(hash {i})") == 2 * i
    assert strings.handler.served == 6 and ints.handler.served == 6
    # A program's own instance needs only the class, which both declare.
    mine = ("(instance (Hashable Bool) (define (hash b) (if b 1 0)))\n"
            "(+ (hash true) (hash false))")
    assert c.evaluate(mine) == 1
    assert strings.handler.served + ints.handler.served >= 13   # (and perhaps checked)
    # Both instances in one program: no worker has both, so the worker that runs it
    # asks the broker for the other instance's calls (sub-thunks).
    before = strings.handler.served + ints.handler.served
    assert c.evaluate('(+ (hash "ab") (hash 3))') == 8
    assert strings.handler.served + ints.handler.served >= before + 2
    stats = c.stats()
    assert stats["splitRequests"] >= 1 and stats["subThunks"] >= 1
    # The broker advertises the class once and both instances.
    defs = c.class_defs()
    assert [k.name for k in defs.classes] == ["Hashable"]
    assert sorted(i.head for i in defs.instances) == ["Int", "String"]
    # An instance no worker offers is the program's type error, at its place.
    from exathunk.errors import TypeCheckError
    with pytest.raises(TypeCheckError) as info:
        c.evaluate("(hash 2.5)")
    assert "no instance Hashable Double" in info.value.message
    assert (info.value.line, info.value.column) == (1, 7)     # the argument


def test_one_function_name_at_two_types_on_two_workers(cluster):
    worker, start_broker, connect = cluster
    a = Library()
    a.register("digest", "(-> String Int)", len)
    b = Library()
    b.register("digest", "(-> Int Int)", lambda n: n + 100)
    wa, wb = worker(library=a, seed=1), worker(library=b, seed=2)
    broker_handle = start_broker([wa, wb], hedge=False, trusted=[address(wa), address(wb)])
    c = connect(broker_handle)
    assert c.evaluate('(digest "abcd")') == 4
    assert c.evaluate("(digest 1)") == 101
    assert c.evaluate("(+ (digest 2) (digest 3))") == 205
    assert wa.handler.served == 1 and wb.handler.served == 2
    # A type error that fits neither reports against the first declaration.
    from exathunk.errors import TypeCheckError
    with pytest.raises(TypeCheckError):
        c.evaluate("(digest true)")


def test_a_node_data_type_travels_through_the_broker(cluster):
    worker, start_broker, connect = cluster

    def points(lib):
        lib.declare_data("(data Point (Pt (px Int) (py Int)))")
        from exathunk import Data
        lib.register("origin", "Point", lambda: Data("Pt", (0, 0)))

    w = worker(library=offering("Int", abs, points), seed=3)
    plain = worker(seed=4)
    b = start_broker([w, plain], hedge=False, trusted=[address(w)])
    c = connect(b)
    value = c.evaluate("(Pt (+ (px (origin)) 1) (hash -5))")
    assert value.constructor == "Pt" and value.fields == (1, 5)
    assert str(value) == "(Pt 1 5)"
    # Naming only the node's data type is enough to need that node.
    for i in range(4):
        assert c.evaluate(f"(py (Pt 1 {i}))") == i
    assert plain.handler.served == 0
    # Prelude data types run anywhere.
    assert c.evaluate("(from-maybe 0 (lookup 2 (zip (list 1 2) (list 10 20))))") == 20


def test_a_cancel_at_the_broker_stops_the_run_on_the_worker(cluster):
    worker, start_broker, connect = cluster
    w = worker(seed=1)                       # two evaluation slots
    b = start_broker([w], hedge=False, replicas=0)
    c = connect(b)
    runaway = "(define (loop n) (loop (+ n 1)))\n(loop %d)"
    futures = [c.submit(runaway % i, timeout_ms=60_000) for i in range(2)]
    for _ in range(300):
        if w.handler.counters["pool_runs"] + w.handler.counters["inline_runs"] >= 2:
            break
        time.sleep(0.01)
    time.sleep(0.1)
    assert all(f.cancel() for f in futures)
    # Both slots were held by the runaways: this runs only if the cancels reached them.
    # (over the inline budget: it needs a slot)
    assert c.evaluate("(foldl + 0 (range 0 300000))", timeout_ms=3000) == 44999850000
    for _ in range(300):
        if w.handler.counters["cancelled_runs"] >= 2:
            break
        time.sleep(0.01)
    assert w.handler.counters["cancelled_runs"] == 2
    # Cancelling is nobody's fault.
    (row,) = c.stats()["workers"]
    assert row["failures"] == 0 and row["disagreed"] == 0


def test_a_runaway_that_times_out_everywhere_is_the_users_error(cluster):
    worker, start_broker, connect = cluster
    ws = [worker(seed=s) for s in (1, 2, 3)]
    c = connect(start_broker(ws, hedge=False))
    for i in range(4):
        with pytest.raises(LimitExceeded) as info:
            c.evaluate("(define (loop n) (loop (+ n 1)))\n(loop %d)" % i, timeout_ms=300)
        assert info.value.limit == "timeout"
    for row in c.stats()["workers"]:
        assert row["state"] == "ACTIVE" and row["disagreed"] == 0 and row["failures"] == 0


# ---- a corrupt reputation store ------------------------------------------------------

def _corrupt_store(path):
    path.write_bytes(b"this is not a SQLite database\n" * 200)
    return path


def test_a_corrupt_store_is_moved_aside_and_the_broker_starts_fresh(cluster, tmp_path,
                                                                     caplog):
    worker, start_broker, connect = cluster
    w = worker()
    db = _corrupt_store(tmp_path / "rep.sqlite3")
    with caplog.at_level("WARNING", logger="exathunk.reputation"):
        b = start_broker([w], db_path=str(db))
    assert connect(b).evaluate("(+ 1 2)") == 3
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("rep.sqlite3.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a SQLite database")
    assert b.handler.store.moved_aside == str(aside[0])
    assert any(str(aside[0]) in r.getMessage() for r in caplog.records)
    # The fresh store works: the worker's record is written to it.
    from exathunk.reputation import ReputationStore
    b.handler.market.flush()
    assert [r["address"] for r in ReputationStore(str(db)).load()] == [f"{w.host}:{w.port}"]


def test_a_damaged_store_is_moved_aside_too(tmp_path):
    from exathunk.reputation import ReputationStore
    db = tmp_path / "rep.sqlite3"
    store = ReputationStore(str(db))
    store.save([{"address": f"h:{i}", "state": "active", "agreed": 0, "lost": 0,
                 "streak": 0, "requests": 0, "completed": 0, "failures": 0,
                 "shut_until": 0.0, "shutouts": 0, "probation_left": 0, "trusted": False}
                for i in range(2000)])
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(db.read_bytes())
    data[4096 * 2:4096 * 6] = b"\xa5" * (4096 * 4)      # pages past the header
    db.write_bytes(bytes(data))
    fresh = ReputationStore(str(db))
    assert fresh.moved_aside is not None and os.path.exists(fresh.moved_aside)
    assert fresh.load() == []


def test_strict_store_refuses_a_corrupt_store(tmp_path):
    from exathunk.errors import StoreError
    db = _corrupt_store(tmp_path / "rep.sqlite3")
    with pytest.raises(StoreError) as info:
        broker.start("127.0.0.1", 0, db_path=str(db), strict_store=True)
    assert str(db) in info.value.message and "corrupt" in info.value.message
    assert [p.name for p in tmp_path.iterdir()] == ["rep.sqlite3"]   # left where it was


# ---- a broker is not its own worker ---------------------------------------------------

class _Forwarder:
    """A TCP port on 127.0.0.1 that forwards every connection to ``target``: another
    address that reaches the same node."""

    def __init__(self, target):
        import socket
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        import socket
        while True:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            b = socket.create_connection(self.target)
            self.sockets += [a, b]
            for src, dst in ((a, b), (b, a)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                self.threads.append(t)
                t.start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self):
        import socket
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            s.close()
        for t in self.threads:
            t.join(timeout=10)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", "127.0.0.2"])
def test_a_broker_refuses_to_register_itself(cluster, host):
    from exathunk.errors import WorkerRefused
    worker, start_broker, connect = cluster
    w = worker()
    b = start_broker([w])
    c = connect(b)
    with pytest.raises(WorkerRefused) as info:
        c.register_worker(host, b.port)
    assert f"{host}:{b.port} is this broker itself" in info.value.message
    assert [x["address"] for x in c.stats()["workers"]] == [f"{w.host}:{w.port}"]


def test_a_broker_refuses_itself_through_an_alias_address(cluster):
    from exathunk.errors import WorkerRefused
    worker, start_broker, connect = cluster
    w = worker()
    b = start_broker([w])
    alias = _Forwarder((b.host, b.port))
    try:
        c = connect(b)
        with pytest.raises(WorkerRefused) as info:
            c.register_worker("127.0.0.1", alias.port)
        assert "reports the broker's own node id" in info.value.message
        assert [x["address"] for x in c.stats()["workers"]] == [f"{w.host}:{w.port}"]
        # A real worker through the same kind of alias is accepted.
        other = worker()
        alias2 = _Forwarder((other.host, other.port))
        try:
            assert c.register_worker("127.0.0.1", alias2.port)
        finally:
            b.handler.remove_worker(f"127.0.0.1:{alias2.port}")
            alias2.close()
    finally:
        alias.close()


def test_stats_report_a_node_id_per_start(cluster):
    worker, start_broker, connect = cluster
    w = worker()
    b = start_broker([w])
    ids = {connect(b).stats()["nodeId"], connect(w).stats()["nodeId"]}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)


def test_a_broker_given_itself_as_a_worker_at_start_drops_it(cluster, caplog):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = broker.start("127.0.0.1", port, workers=[("localhost", port)], flush_interval=0.05,
                     seed=7)
    try:
        with caplog.at_level("WARNING", logger="exathunk.broker"):
            for _ in range(400):
                if not b.handler._pending_workers:
                    break
                time.sleep(0.05)
        assert not b.handler._pending_workers and not b.handler.market.workers
        assert any(f"localhost:{port} is this broker itself" in r.getMessage()
                   for r in caplog.records)
    finally:
        b.stop()


def test_a_worker_that_times_out_is_not_a_disagreement(cluster):
    worker, start_broker, connect = cluster
    honest = [worker(seed=101), worker(seed=102)]
    slow = worker(times_out=True, seed=103)
    b = start_broker(honest + [slow], hedge=False)
    c = connect(b)
    for i in range(30):
        source, expected = varied(i)
        assert c.evaluate(source, timeout_ms=200) == expected
    market = b.handler.market
    t = market.workers[address(slow)]
    assert slow.handler.served >= 1                     # it was asked, and timed out...
    assert t.lost == 0 and t.state == ACTIVE            # ...which is no disagreement
    assert t.unavailable > 0 and t.failures == 0        # but an availability penalty
    assert all(market.workers[address(h)].lost == 0 for h in honest)
    rows = {w["address"]: w for w in c.stats()["workers"]}
    assert rows[address(slow)]["disagreed"] == 0


def test_a_program_over_its_step_limit_everywhere_costs_nobody_reputation(cluster):
    worker, start_broker, connect = cluster
    ws = [worker(seed=s) for s in (111, 112, 113)]
    b = start_broker(ws)
    c = connect(b)
    for i in range(5):
        with pytest.raises(LimitExceeded) as info:
            c.evaluate("(foldl + %d (range 0 1000000))" % i, max_steps=1000)
        assert info.value.limit == "max_steps"
    for w in b.handler.market.workers.values():
        assert w.lost == 0 and w.unavailable == 0 and w.failures == 0
        assert w.state == ACTIVE


def _sole_liar(worker):
    lib = Library()
    lib.register("secret", "(-> Int Int)", lambda x: x * 1000 + 1)
    plain = [worker(seed=121), worker(seed=122)]
    liar = worker(library=lib, lie_rate=1.0, seed=123)
    return plain, liar


def test_a_sole_lying_provider_is_unverifiable_by_default(cluster):
    from exathunk.errors import Unverifiable
    worker, start_broker, connect = cluster
    plain, liar = _sole_liar(worker)
    b = start_broker(plain + [liar])
    c = connect(b)
    for i in range(10):
        with pytest.raises(Unverifiable) as info:
            c.evaluate("(+ 1 (secret %d))" % i)
        assert "'secret'" in info.value.message and address(liar) in info.value.message
    assert liar.handler.lies == 10              # it answered, and lied; nothing got through
    fut = c.submit("(+ 2 (secret 1))")
    with pytest.raises(Unverifiable):
        fut.result(timeout=10)
    # Pure programs are checked as ever: by another worker.
    value, stats = c.evaluate_with_stats("(+ 40 2)")
    assert value == 42 and stats["verifiedBy"] in ("independent-node", "broker-engine")


def test_a_trusted_sole_provider_is_served_as_trusted(cluster):
    worker, start_broker, connect = cluster
    plain, liar = _sole_liar(worker)
    b = start_broker(plain + [liar], trusted=[address(liar)])
    c = connect(b)
    value, stats = c.evaluate_with_stats("(+ 1 (secret 5))")
    assert value == 5 * 1000 + 2 + 1            # its lie, on the operator's word
    assert stats["verifiedBy"] == "trusted-worker"


def test_an_unchecked_value_is_marked_unchecked_when_asked_for(cluster):
    worker, start_broker, connect = cluster
    plain, liar = _sole_liar(worker)
    b = start_broker(plain + [liar])
    c = connect(b)
    value, stats = c.evaluate_with_stats("(+ 1 (secret 5))", allow_unchecked=True)
    assert value == 5003 and stats["verifiedBy"] == "none"
    # Not cached as a checked value: without the flag it is still refused.
    from exathunk.errors import Unverifiable
    with pytest.raises(Unverifiable):
        c.evaluate("(+ 1 (secret 5))")


def test_the_broker_checks_a_lone_workers_pure_value_on_its_own_engine(cluster):
    worker, start_broker, connect = cluster
    liar = worker(lie_rate=1.0, seed=131)
    b = start_broker([liar])
    c = connect(b)
    value, stats = c.evaluate_with_stats("(* 6 7)")
    assert liar.handler.lies == 1
    assert value == 42 and stats["verifiedBy"] == "broker-engine"    # its lie overruled
    assert b.handler.market.workers[address(liar)].state == SHUT_OUT
    # An honest lone worker: every value checked here, and it is credited for it.
    lone = worker(seed=132)
    b2 = start_broker([lone])
    c2 = connect(b2)
    for i in range(5):
        source, expected = varied(i)
        value, stats = c2.evaluate_with_stats(source)
        assert value == expected and stats["verifiedBy"] == "broker-engine"
    assert b2.handler.market.workers[address(lone)].agreed == 5


def test_sybils_joining_cannot_outvote_established_workers(cluster):
    worker, start_broker, connect = cluster
    honest = [worker(seed=141 + i) for i in range(3)]
    b = start_broker(honest)
    c = connect(b)
    market = b.handler.market
    for i in range(5):                           # the honest ones were there first
        source, expected = varied(i)
        assert c.evaluate(source) == expected
    sybils = [worker(lie_rate=1.0, seed=150 + i) for i in range(5)]   # the same lies
    for s in sybils:
        assert c.register_worker(s.host, s.port)
    wrong = 0
    for i in range(1000, 1100):
        source, expected = varied(i)
        if c.evaluate(source) != expected:
            wrong += 1
    assert wrong == 0
    assert sum(s.handler.lies for s in sybils) > 0          # they were asked, and lied
    for s in sybils:
        w = market.workers[address(s)]
        assert w.confirmed == 0 and market.vote_weight(w) == 0
    for h in honest:
        w = market.workers[address(h)]
        assert w.state == ACTIVE and w.lost == 0


def test_fresh_providers_of_a_host_function_agree_as_unconfirmed_nodes(cluster):
    worker, start_broker, connect = cluster
    lib = Library()
    lib.register("secret", "(-> Int Int)", lambda x: x * 1000 + 1)
    ws = [worker(library=lib, seed=161), worker(library=lib, seed=162)]
    b = start_broker(ws)
    c = connect(b)
    value, stats = c.evaluate_with_stats("(secret 3)")
    assert value == 3001 and stats["verifiedBy"] == "unconfirmed-nodes"
    # Their agreement by headcount earns them no weight.
    assert all(w.confirmed == 0 for w in b.handler.market.workers.values())
