"""End-to-end tests of the RemoteExecutionService over loopback: every method, errors
with positions, limits and the wall-clock timeout, the caches, the bounded queue,
futures and cancel, the seed's compile-on-the-client flow, 8 concurrent clients, a
server killed mid-request and a server draining on SIGTERM."""

import signal
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

import exathunk
from exathunk import (EvaluationError, Expired, LimitExceeded, ParseError, RemoteError,
                      TypeCheckError, UnknownFunctionError, server, wire)
from exathunk.client import connect
from exathunk.library import Library

LOOP = "(define (loop n acc) (if (= n 0) acc (loop (- n 1) (+ acc 1))))\n(loop {n} 0)"
FOREVER = "(define (spin x) (spin (+ x 1)))\n(spin 0)"


def slow_source(seconds: float) -> str:
    """A program that runs for roughly ``seconds`` on this machine's engine."""
    n = 20000
    for _ in range(30):
        t0 = time.perf_counter()
        exathunk.evaluate(LOOP.format(n=n), max_steps=10 ** 12)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 4
    return LOOP.format(n=max(1, int(n * seconds / dt)))


@pytest.fixture(scope="module")
def node():
    lib = Library()
    lib.register("double-it", "(-> Int Int)", lambda x: 2 * x)
    handle = server.start(library=lib, workers=2, timeout_ms=20_000)
    yield handle
    handle.stop(5)


@pytest.fixture
def client(node):
    c = connect(node.host, node.port, timeout=30)
    yield c
    c.close()


# ------------------------------------------------------------------ values and errors

@pytest.mark.parametrize("source, value", [
    ("(+ 1 (/ 4 2))", 3),
    ("(/ 7.0 2.0)", 3.5),
    ("(< 1 2)", True),
    ('(concat "a\\"b" "\\u{e9}")', 'a"b\u00e9'),
    ("(list (list 1 2) nil (list 3))", [[1, 2], [], [3]]),
    ("(take 5 (iterate (lambda (x) (* 2 x)) 1))", [1, 2, 4, 8, 16]),
    ("(or true bottom)", True),
    ("(double-it 21)", 42),
    ("(negate 9223372036854775807)", -9223372036854775807),
])
def test_evaluate_values(client, source, value):
    got = client.evaluate(source)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("source, cls, line, column", [
    ("(+ 1", ParseError, None, None),
    ("(+ 1 true)", TypeCheckError, 1, None),
    ("(blah 4 true)", UnknownFunctionError, 1, 2),
    ("\n  (head nil)", EvaluationError, None, None),
    ('(error "boom")', EvaluationError, None, None),
])
def test_errors_arrive_as_the_same_class_with_position(client, source, cls, line, column):
    with pytest.raises(cls) as info:
        client.evaluate(source)
    err = info.value
    assert err.kind == cls.__name__ and err.message
    if line is not None:
        assert err.line == line
    if column is not None:
        assert err.column == column
    if cls in (ParseError, TypeCheckError, UnknownFunctionError):
        assert err.line is not None and "^" in err.render()


def test_step_limit_names_the_limit_and_the_node_recovers(client):
    with pytest.raises(LimitExceeded) as info:
        client.evaluate(FOREVER, max_steps=10_000)
    assert info.value.limit == "max_steps"
    assert client.evaluate("(+ 40 2)") == 42


def test_wall_clock_timeout_stops_a_program_that_never_ends(client):
    t0 = time.monotonic()
    with pytest.raises(LimitExceeded) as info:
        client.evaluate(FOREVER, timeout_ms=300)
    assert info.value.limit == "timeout"
    assert time.monotonic() - t0 < 15
    assert client.evaluate("(* 6 7)") == 42


def test_result_cache_by_digest(client):
    src = "(sum (range 0 12345))"
    v1, s1 = client.evaluate_with_stats(src)
    v2, s2 = client.evaluate_with_stats("(sum   (range 0 12345)) ; same program")
    assert v1 == v2 == sum(range(12345))
    assert s2["cached"] is True
    v3, s3 = client.evaluate_with_stats(src, no_cache=True)
    assert v3 == v1 and s3["cached"] is False


def test_the_first_run_reports_its_own_steps_and_a_repeat_says_cached(client):
    # A source this node has never seen: the engine runs, so the reply must say so.
    src = "(length (range 0 4321)) ; first-run stats"
    v1, s1 = client.evaluate_with_stats(src)
    assert v1 == 4321
    assert s1["cached"] is False and s1["steps"] > 0
    v2, s2 = client.evaluate_with_stats(src)        # same text: the by-source fast path
    assert v2 == 4321 and s2["cached"] is True and not s2["steps"]


# ------------------------------------------------------------------ the other methods

def test_func_defs(client):
    plus, mapper, host = client.func_defs(["+", "map", "double-it"])
    assert plus.typeText == "Num a => (-> a a a)" and plus.arity == 2
    assert [c.className for c in plus.constraints] == ["Num"]
    assert plus.strictness == [wire.thrift.Strictness.STRICT] * 2
    assert wire.type_nodes_to_text(mapper.typeNodes, mapper.typeRoot) == \
        "(-> (-> a b) (List a) (List b))"
    assert host.origin == "host" and host.typeText == "(-> Int Int)"
    everything = {d.name for d in client.func_defs([])}
    assert {"+", "cons", "foldr", "double-it"} <= everything
    with pytest.raises(UnknownFunctionError):
        client.func_defs(["no-such-function"])


def test_and_or_are_lazy_in_their_second_parameter(client):
    (and_def,) = client.func_defs(["and"])
    assert and_def.strictness == [wire.thrift.Strictness.STRICT, wire.thrift.Strictness.LAZY]


def test_submit_future_and_callback(client):
    fut = client.submit("(foldl + 0 (range 0 1000))")
    seen = threading.Event()
    fut.add_done_callback(lambda f: seen.set())
    assert fut.result(timeout=30) == 499500
    assert seen.wait(5)


def test_submit_error_lands_in_the_future(client):
    assert isinstance(client.submit("(+ 1 true)").exception(timeout=10), TypeCheckError)
    err = client.submit('(error "late")').exception(timeout=10)
    assert isinstance(err, EvaluationError) and "late" in err.message


def test_thunk_get_not_done_wait_and_cancel(client):
    source = slow_source(3.0)
    req = wire.make_request(source)
    thunk = client._invoke("submitEvalRequest", evalRequest=req)
    from exathunk.client import _NotDone
    with pytest.raises(_NotDone):
        client._invoke("thunkGet", thunk=thunk)
    t0 = time.monotonic()
    with pytest.raises(_NotDone):
        client._invoke("thunkWait", thunk=thunk, timeoutMs=200)
    assert time.monotonic() - t0 < 2.5
    assert client._invoke("thunkCancel", thunk=thunk) is True
    with pytest.raises(RemoteError, match="cancelled"):
        client._invoke("thunkGet", thunk=thunk)


def test_future_cancel_cancels_remotely(client):
    fut = client.submit(slow_source(3.0))
    assert fut.cancel()
    assert fut.cancelled()
    with pytest.raises(RemoteError, match="cancelled"):
        client._invoke("thunkGet", thunk=fut.thunk)


def test_unknown_thunk(client):
    with pytest.raises(RemoteError, match="no thunk"):
        client._invoke("thunkGet", thunk=wire.thrift.RemoteThunk(id="nope"))


def test_batches(client):
    sources = [f"(* {i} {i})" for i in range(200)]
    assert client.evaluate_batch(sources) == [i * i for i in range(200)]
    mixed = client.evaluate_batch(["(+ 1 1)", "(+ 1 true)", "(head nil)", "3"],
                                  return_exceptions=True)
    assert mixed[0] == 2 and mixed[3] == 3
    assert isinstance(mixed[1], TypeCheckError) and isinstance(mixed[2], EvaluationError)
    futures = client.submit_batch(sources[:50] + ["(+ 1 true)"])
    assert [f.result(timeout=30) for f in futures[:50]] == [i * i for i in range(50)]
    assert isinstance(futures[50].exception(timeout=10), TypeCheckError)


def test_stats_bid_and_register(client):
    client.evaluate("(+ 100 1)")
    stats = client.stats()
    assert stats["role"] == "worker" and stats["workers"] == []
    assert stats["requests"] > 0 and stats["evaluations"] > 0
    table = exathunk.client.format_stats(stats)
    assert "cache hits" in table and "worker threads" in table
    assert ["node", "id", stats["nodeId"]] in [line.split() for line in table.splitlines()]
    bid = client.request_bid("(+ 100 1)")
    assert bid["canServe"] and bid["cached"] and bid["price"] == 0.0
    bid = client.request_bid("(sha1 1)")
    assert not bid["canServe"] and bid["missingFunctions"] == ["sha1"]
    with pytest.raises(exathunk.wire.NotABroker):
        client.register_worker("127.0.0.1", 1)


def test_graph_mode_compiles_on_the_client_with_remote_definitions(node):
    with connect(node.host, node.port, mode="graph") as c:
        assert c.evaluate("(double-it (+ 20 1))") == 42     # known only through getFuncDefs
        assert c.evaluate("(map (lambda (x) (* x x)) (list 1 2 3))") == [1, 4, 9]
        with pytest.raises(TypeCheckError):
            c.evaluate('(double-it "x")')
        with pytest.raises(UnknownFunctionError):
            c.evaluate("(triple-it 1)")
        prog = exathunk.compile("(sum (list 1.5 2.5))")
        assert c.evaluate(prog) == 4.0


def test_overloaded_instead_of_an_unbounded_queue():
    handle = server.start(workers=1, queue_bound=1, timeout_ms=20_000)
    try:
        with connect(handle.host, handle.port) as c:
            slow = slow_source(1.0)
            futures = [c.submit(slow + f" ; {i}", no_cache=True) for i in range(2)]
            third = c.submit(slow, no_cache=True)
            assert isinstance(third.exception(timeout=10), exathunk.wire.Overloaded)
            assert c.stats()["overloaded"] >= 1
            for f in futures:
                f.cancel()
    finally:
        handle.stop(10)


def test_connection_loss_is_remote_error_and_the_next_call_reconnects():
    handle = server.start()
    port = handle.port
    c = connect(handle.host, port)
    try:
        assert c.evaluate("(+ 1 1)") == 2
        handle.stop(5)
        with pytest.raises(RemoteError):
            c.evaluate("(+ 1 2)")
        handle = server.start(port=port)
        assert c.evaluate("(+ 1 3)") == 4
    finally:
        c.close()
        handle.stop(5)


# ------------------------------------------------------------------ concurrency

def test_eight_clients_five_hundred_requests_each(node):
    errors, wrong = [], []

    def run(k):
        try:
            with connect(node.host, node.port) as c:
                for i in range(500):
                    if i % 50 == 49:
                        got = c.evaluate_batch([f"(+ {k} {i})", f"(* {k} {i})"])
                        if got != [k + i, k * i]:
                            wrong.append((k, i, got))
                    else:
                        got = c.evaluate(f"(+ (* {k} 1000) {i})")
                        if got != k * 1000 + i:
                            wrong.append((k, i, got))
        except Exception as err:          # reported below, the thread must not die silently
            errors.append(repr(err))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and wrong == []


def test_many_futures_from_several_threads(client):
    results = {}

    def run(k):
        futs = [(i, client.submit(f"(+ {k} (* 2 {i}))")) for i in range(50)]
        results[k] = [(f.result(timeout=60), k + 2 * i) for i, f in futs]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 4
    assert all(got == want for pairs in results.values() for got, want in pairs)


# ------------------------------------------------------------------ the value encoding

values = st.recursive(
    st.integers(-2 ** 63, 2 ** 63 - 1) | st.booleans() | st.text(max_size=8)
    | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=5), max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(values)
def test_value_nodes_round_trip(value):
    nodes, root = wire.value_to_nodes(value)
    back = wire.nodes_to_value(nodes, root)
    assert back == value and repr(back) == repr(value)


def test_deep_values_need_no_recursion():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    nodes, root = wire.value_to_nodes(deep)
    back = wire.nodes_to_value(nodes, root)
    for _ in range(100_000):
        assert len(back) == 1
        back = back[0]
    assert back == []


def test_ill_formed_value_nodes_are_rejected():
    V = wire.thrift.ValueNode
    with pytest.raises(RemoteError):
        wire.nodes_to_value([V(kind=wire.thrift.ValueKind.LIST, children=[0])], 0)
    with pytest.raises(RemoteError):
        wire.nodes_to_value([V(kind=wire.thrift.ValueKind.LIST, children=[5]),
                             V(kind=1, intValue=1)], 0)
    with pytest.raises(RemoteError):
        wire.nodes_to_value([V(kind=wire.thrift.ValueKind.INT)], 0)


# ------------------------------------------------------------------ subprocess servers

def _spawn_server(*extra):
    code = ("import sys; from exathunk import server; "
            "server.serve(host='127.0.0.1', port=0, linger=3.0%s)" % "".join(extra))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "serving on" in line or not line:
            break
    if "serving on" not in line:
        proc.kill()
        proc.wait(10)
        raise AssertionError("server did not start")
    host, port = line.split()[-1].rsplit(":", 1)
    return proc, host, int(port)


def test_server_killed_mid_request_gives_remote_error():
    proc, host, port = _spawn_server()
    try:
        c = connect(host, port, timeout=30)
        slow = slow_source(5.0)
        fut = c.submit(slow)
        holder = {}

        def blocking():
            try:
                holder["value"] = c.evaluate(slow + " ; blocking", no_cache=True)
            except Exception as err:
                holder["error"] = err

        t = threading.Thread(target=blocking)
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        t.join(20)
        assert not t.is_alive()
        assert isinstance(holder.get("error"), RemoteError)
        assert isinstance(fut.exception(timeout=20), RemoteError)
        with pytest.raises(RemoteError):
            c.evaluate("(+ 1 1)")
        c.close()
    finally:
        proc.kill()
        proc.wait(10)


def test_sigterm_drains_in_flight_work():
    proc, host, port = _spawn_server()
    try:
        c = connect(host, port, timeout=30)
        slow = slow_source(1.5)
        fut = c.submit(slow)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = c.submit("(+ 1 2)")
        err = refused.exception(timeout=10)
        assert isinstance(err, RemoteError)        # Overloaded (ShuttingDown) or refused
        assert fut.result(timeout=30) == int(slow.split()[-2])
        c.close()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)


def test_graph_struct_mode_ships_the_idl_graph(node):
    with connect(node.host, node.port, mode="graph-struct") as c:
        assert c.evaluate("(zip-with + (list 1 2) (list 10 20 30))") == [11, 22]
        assert c.evaluate("(double-it 4)") == 8


def test_finished_results_expire_after_their_ttl():
    handle = server.start(thunk_ttl=0.2)
    try:
        with connect(handle.host, handle.port) as c:
            first = c._invoke("submitEvalRequest", evalRequest=wire.make_request("(+ 1 1)"))
            assert wire.varcont_to_value(c._invoke("thunkWait", thunk=first,
                                                   timeoutMs=2000)) == 2
            time.sleep(1.2)
            c._invoke("submitEvalRequest", evalRequest=wire.make_request("(+ 2 2)"))
            with pytest.raises(Expired, match="has expired"):
                c._invoke("thunkGet", thunk=first)
            assert c.stats()["thunks"] == 1
    finally:
        handle.stop(5)


# ------------------------------------------------------------------ inline runs

def test_a_long_program_moves_to_a_slot_and_small_ones_are_not_blocked():
    # One evaluation slot: were small programs queued behind the long one, none could
    # finish before it does.
    handle = server.start(workers=1, timeout_ms=30_000)
    counters = handle.handler.counters
    try:
        with connect(handle.host, handle.port, timeout=60) as long_client, \
                connect(handle.host, handle.port, timeout=60) as small_client:
            long_source = slow_source(2.0)
            want = int(long_source.rsplit(" ", 2)[-2])
            long_run = long_client.submit(long_source, no_cache=True)
            for _ in range(200):                     # until it has left the inline path
                if counters["pool_runs"] >= 1:
                    break
                time.sleep(0.01)
            assert counters["escalated"] >= 1 and counters["pool_runs"] >= 1
            inline_before = counters["inline_runs"]
            for i in range(30):
                assert small_client.evaluate(f"(* {i} 3)", no_cache=True) == 3 * i
            assert not long_run.done()
            assert counters["inline_runs"] >= inline_before + 30
            assert long_run.result(timeout=60) == want
    finally:
        handle.stop(10)


def test_the_inline_run_keeps_a_smaller_max_steps_of_the_request():
    handle = server.start(workers=1, inline_steps=50_000)
    counters = handle.handler.counters
    try:
        with connect(handle.host, handle.port, timeout=60) as c:
            with pytest.raises(LimitExceeded) as info:
                c.evaluate(FOREVER, max_steps=1_000)
            assert info.value.limit == "max_steps"
            assert counters["escalated"] == 0 and counters["pool_runs"] == 0
            # Over the inline budget but within the request's own limit: runs again in
            # a slot and completes; over both: the request's own limit, named.
            source = LOOP.format(n=100_000)
            assert c.evaluate(source, max_steps=10_000_000, no_cache=True) == 100_000
            assert counters["escalated"] == 1 and counters["pool_runs"] == 1
            with pytest.raises(LimitExceeded) as info:
                c.evaluate(source, max_steps=60_000, no_cache=True)
            assert info.value.limit == "max_steps"
            assert counters["escalated"] == 2 and counters["pool_runs"] == 2
            assert c.submit(FOREVER, max_steps=2_000).exception(timeout=30).limit == "max_steps"
            assert c.submit("(+ 1 2)", no_cache=True).result(timeout=30) == 3
    finally:
        handle.stop(10)


@pytest.fixture(scope="module")
def shapes_node():
    """A node that declares a data type and a class, and implements instances in Python."""
    from exathunk import Data
    lib = Library()
    lib.declare_data("(data Shape (Circle (radius Double)) (Rect Double Double))")
    lib.declare_class("(class (Area a) (area (-> a Double)) (describe (-> a String))"
                      ' (define (describe x) (++ "area " (show (area x)))))')

    def area(shape):
        if shape.constructor == "Circle":
            return 3.0 * shape.fields[0] ** 2
        return shape.fields[0] * shape.fields[1]

    lib.register_instance("Area", "Shape", area=area)
    lib.register("unit-square", "Shape", lambda: Data("Rect", (1.0, 1.0)))
    lib.register("scale", "(-> Double Shape Shape)",
                 lambda k, s: Data(s.constructor, tuple(k * f for f in s.fields)))
    handle = server.start(library=lib)
    yield handle
    handle.stop(5)


@pytest.mark.parametrize("mode", ["source", "graph", "graph-struct"])
def test_node_data_types_classes_and_instances_in_every_mode(shapes_node, mode):
    with connect(shapes_node.host, shapes_node.port, mode=mode) as c:
        assert c.evaluate("(area (Circle 2.0))") == 12.0              # host instance
        assert c.evaluate("(describe (scale 2.0 (unit-square)))") == "area 4.0"   # default
        v = c.evaluate("(list (scale 3.0 (Rect 1.0 2.0)) (Circle (radius (Circle 1.5))))")
        assert [str(x) for x in v] == ["(Rect 3.0 6.0)", "(Circle 1.5)"]
        # An instance written in the program beside the node's.
        assert c.evaluate("(instance (Area Int) (define (area n) (to-double n)))\n"
                          "(+ (area 4) (area (Rect 1.0 1.0)))") == 5.0
        with pytest.raises(TypeCheckError) as info:
            c.evaluate('(area "round")')
        assert "no instance Area String" in info.value.message
        assert c.evaluate("(case (unit-square) ((Circle _) 0) ((Rect w _) 1))") == 1


def test_class_defs_describe_the_node(shapes_node):
    with connect(shapes_node.host, shapes_node.port) as c:
        defs = c.class_defs()
    shape = next(d for d in defs.dataTypes if d.name == "Shape")
    assert shape.origin == "library" and [k.name for k in shape.constructors] == \
        ["Circle", "Rect"]
    assert shape.constructors[0].fieldNames == ["radius"]
    assert shape.constructors[1].fieldTypes == ["Double", "Double"]
    (area,) = defs.classes
    assert [m.name for m in area.methods] == ["area", "describe"]
    assert [m.hasDefault for m in area.methods] == [False, True]
    assert area.methods[0].typeText == "Area a => (-> a Double)"
    (inst,) = defs.instances
    assert (inst.className, inst.head, inst.methods) == ("Area", "Shape", ["area"])
    assert inst.methodDefs[0].name == "area@Area Shape"
    assert inst.methodDefs[0].typeText == "(-> Shape Double)"
    # The client rebuilds a Library from the defs that compiles like the node's.
    from exathunk import wire
    lib = wire.library_from_defs((), defs)
    assert exathunk.compile("(area (Circle 1.0))", library=lib).type == "Double"


RUNAWAY = "(define (loop n) (loop (+ n 1)))\n(loop 0)"


def test_a_cancelled_run_frees_its_slot_at_once():
    # One evaluation slot: while the cancelled run held it, nothing else could run.
    handle = server.start(workers=1, inline_steps=0, timeout_ms=60_000)
    try:
        with connect(handle.host, handle.port) as c:
            for i in range(3):
                fut = c.submit(RUNAWAY + f" ; {i}", no_cache=True)
                for _ in range(200):
                    if c.stats()["running"] >= 1:
                        break
                    time.sleep(0.01)
                assert fut.cancel()
                # Within its own 2 s limit: only possible if the slot came back.
                assert c.evaluate(f"(+ {i} 1)", timeout_ms=2000, no_cache=True) == i + 1
            assert c.stats()["running"] == 0
    finally:
        handle.stop(5)


def test_the_wall_clock_limit_is_real_time():
    handle = server.start(workers=1, inline_steps=0)
    try:
        with connect(handle.host, handle.port) as c:
            t0 = time.monotonic()
            with pytest.raises(LimitExceeded) as info:
                c.evaluate(RUNAWAY, timeout_ms=400, no_cache=True)
            elapsed = time.monotonic() - t0
            assert info.value.limit == "timeout" and "400 ms" in info.value.message
            assert elapsed >= 0.4                # never before its limit
    finally:
        handle.stop(5)


def test_a_run_started_by_evaluate_is_cancelled_by_its_request_id():
    handle = server.start(workers=2, inline_steps=0, timeout_ms=60_000)
    try:
        with connect(handle.host, handle.port) as c, \
                connect(handle.host, handle.port) as other:
            box = {}

            def call():
                try:
                    c.evaluate(RUNAWAY, request_id="job-7", no_cache=True)
                except LimitExceeded as err:
                    box["err"] = err

            t = threading.Thread(target=call)
            t.start()
            for _ in range(200):
                if other.cancel_request("job-7"):
                    break
                time.sleep(0.01)
            t.join(10)
            assert not t.is_alive() and box["err"].limit == "cancelled"
            assert other.cancel_request("job-7") is False      # nothing runs now
    finally:
        handle.stop(5)
