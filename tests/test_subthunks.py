"""Sub-thunks: one program whose parts run on several nodes.

Real worker servers (tests/workers.py) behind a real broker on loopback: a worker that
lacks a function or an instance asks the broker for its calls; par-map elements and
closed par expressions are sub-thunks the market schedules, checks and caches.
"""

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workers as fake  # noqa: E402
import exathunk  # noqa: E402
from exathunk import client, subthunks  # noqa: E402
from exathunk.errors import EvaluationError, UnknownFunctionError  # noqa: E402
from exathunk.library import Library  # noqa: E402


def address(handle):
    return "%s:%d" % (handle.host, handle.port)


@pytest.fixture
def cluster(cluster):
    """conftest's cluster, its brokers without hedging (a hedge would be a second run of
    a sub-thunk, which the counts below would see)."""
    worker, start_broker, connect = cluster

    def start(workers, **options):
        options.setdefault("seed", 11)
        options.setdefault("hedge", False)
        return start_broker(workers, **options)

    return worker, start, connect


def offering(**functions):
    """A Library with Int -> Int host functions: name=callable."""
    lib = Library()
    for name, fn in functions.items():
        lib.register(name.replace("_", "-"), "(-> Int Int)", fn)
    return lib


def test_each_function_from_the_worker_that_offers_it(cluster):
    worker, start_broker, connect = cluster
    a = worker(offering(fA=lambda n: n + 10), seed=1)
    b = worker(offering(fB=lambda n: n * 100), seed=2)
    # Each is its function's sole provider, which nobody could check: trusted.
    c = connect(start_broker([a, b], trusted=[address(a), address(b)]))
    assert c.evaluate("(+ (fA 1) (fB 1))") == 111
    assert c.evaluate("(map (lambda (i) (+ (fA i) (fB i))) (range 0 4))") == \
        [i + 10 + i * 100 for i in range(4)]
    # fB's argument is computed where the program runs, and sent as a value.
    assert c.evaluate("(fB (fA (fB 2)))") == (2 * 100 + 10) * 100
    stats = c.stats()
    assert stats["splitRequests"] >= 3 and stats["subThunks"] >= 4


def test_a_lazy_host_function_is_not_delegated(cluster):
    worker, start_broker, connect = cluster
    a = Library()
    a.register("fA", "(-> Int Int)", lambda n: n)
    b = Library()
    b.register("pick", "(-> Bool Int Int)", lambda c, x: x() if c else 0, strict=[True, False])
    wa, wb = worker(a, seed=1), worker(b, seed=2)
    c = connect(start_broker([wa, wb], trusted=[address(wa), address(wb)]))
    assert c.evaluate("(pick true 4)") == 4           # one worker has everything
    with pytest.raises(UnknownFunctionError) as info:
        c.evaluate("(+ (fA 1) (pick true 4))")
    assert "lazy parameter" in info.value.message


def test_par_map_elements_are_sub_thunks_of_the_market(cluster):
    worker, start_broker, connect = cluster
    ws = [worker(seed=i) for i in range(3)]
    c = connect(start_broker(ws))
    src = ("(define (collatz n) (if (= n 1) 0 (+ 1 (collatz (if (= 0 (mod n 2)) (/ n 2)"
           " (+ 1 (* 3 n)))))))\n(par-map collatz (range 1 25))")
    expected = exathunk.evaluate(src)
    assert c.evaluate(src) == expected
    stats = c.stats()
    assert stats["subThunks"] >= 24
    served = [w.handler.served for w in ws]
    assert sum(served) >= 25 and sum(1 for s in served if s) >= 2, served
    # The same elements again (another program using them): answered from the cache.
    hits = stats["cacheHits"]
    assert c.evaluate(src.replace("(range 1 25)", "(range 1 13)")) == expected[:12]
    assert c.stats()["cacheHits"] >= hits + 12


def test_par_of_a_closed_expression_and_a_warning_for_an_open_one(cluster):
    worker, start_broker, connect = cluster
    c = connect(start_broker([worker(seed=1), worker(seed=2)]))
    src = "(define (sq x) (* x x))\n(+ (par (sq 30)) (par (sum (range 0 100))))"
    assert c.evaluate(src) == 900 + 4950
    assert c.stats()["subThunks"] >= 2
    open_src = "(define (f k) (par-map (lambda (x) (+ x k)) (list 1 2)))\n(f 3)"
    prog = exathunk.compile(open_src)
    assert [w.message for w in prog.warnings] == [
        "par-map runs here: its function uses the local variable 'k' (a sub-thunk must "
        "be closed)"]
    assert c.evaluate(open_src) == [4, 5]


def test_without_a_broker_par_map_is_map():
    src = "(par-map (lambda (x) (* x x)) (range 0 5))"
    assert exathunk.evaluate(src) == [0, 1, 4, 9, 16]
    handle = fake.start_worker()
    try:
        with client.connect(handle.host, handle.port) as c:
            assert c.evaluate(src) == [0, 1, 4, 9, 16]
            assert c.stats()["subThunks"] == 0
    finally:
        handle.stop(2)


def test_sub_thunk_errors_reach_the_client(cluster):
    worker, start_broker, connect = cluster
    c = connect(start_broker([worker(seed=1), worker(seed=2)]))
    with pytest.raises(EvaluationError) as info:
        c.evaluate("(par-map (lambda (x) (/ 10 x)) (list 1 0 2))")
    # The same class, naming the sub-thunk, with no place of the sub-program's.
    assert info.value.message == \
        "division by zero (in the sub-thunk ((lambda (x) (/ 10 x)) 0))"
    # par-map is strict: an element nobody uses is still computed (and fails).
    with pytest.raises(EvaluationError):
        c.evaluate("(head (par-map (lambda (x) (/ 10 x)) (list 1 0)))")
    assert exathunk.evaluate("(head (map (lambda (x) (/ 10 x)) (list 1 0)))") == 10


def test_a_liar_among_the_sub_thunk_workers_never_reaches_the_client(cluster):
    worker, start_broker, connect = cluster
    a = worker(offering(fA=lambda n: n + 1), seed=1)
    honest = [worker(offering(fB=lambda n: 3 * n), seed=s) for s in (2, 3)]
    liar = worker(offering(fB=lambda n: 3 * n), lie_rate=0.3, seed=4)
    c = connect(start_broker([a, *honest, liar], trusted=[address(a)]))   # sole fA
    wrong = 0
    for i in range(40):
        if c.evaluate(f"(+ (fA {i}) (fB {i}))") != i + 1 + 3 * i:
            wrong += 1
    assert wrong == 0
    assert liar.handler.lies >= 1            # it did lie, and was outvoted


def test_equal_sub_computations_in_flight_are_computed_once(cluster):
    worker, start_broker, connect = cluster
    calls = []
    lock = threading.Lock()

    def slow(n):
        with lock:
            calls.append(n)
        time.sleep(0.2)
        return n * 2

    a = worker(offering(fA=lambda n: n), seed=1)
    b = worker(offering(fSlow=slow), seed=2)
    b_handle = start_broker([a, b], trusted=[address(a), address(b)])     # sole ones
    c = connect(b_handle)
    futures = [c.submit(f"(+ (fA {i}) (par (fSlow 7)))") for i in range(6)]
    assert [f.result(timeout=20) for f in futures] == [i + 14 for i in range(6)]
    assert calls.count(7) <= 2                    # once, or once more to check it
    assert c.stats()["sharedRuns"] + c.stats()["cacheHits"] >= 4


def test_values_travel_as_literals():
    from exathunk import Data
    value = [Data("Just", (1.5,)), Data("Nothing"), float("-inf"), 'a"b\n', -0.0, True,
             [], -(2 ** 63)]
    text = subthunks.value_to_source(value)
    assert text == ('(list (Just 1.5) (Nothing) -inf "a\\"b\\n" -0.0 true nil '
                    '-9223372036854775808)')
    import math
    for v in value:
        if v != []:
            back = exathunk.evaluate(subthunks.value_to_source(v))
            assert back == v and (type(v) is not float or
                                  math.copysign(1, back) == math.copysign(1, v))
    assert math.isnan(exathunk.evaluate(subthunks.value_to_source(float("nan"))))
    with pytest.raises(EvaluationError):
        subthunks.value_to_source(lambda: 1)


def test_sparks_in_the_result_expression_start_together(cluster):
    worker, start_broker, connect = cluster
    lock = threading.Lock()
    started, ended = {}, {}

    def slow(n):
        with lock:
            started.setdefault(n, time.monotonic())
        time.sleep(0.3)
        with lock:
            ended.setdefault(n, time.monotonic())
        return n + 1

    ws = [worker(offering(slow=slow), seed=s) for s in (1, 2, 3)]
    c = connect(start_broker(ws))
    # In demand order (slow 2) would start only once (slow 1) is back; sparked, both
    # start when the run does.
    assert c.evaluate("(+ (par (slow 1)) (par (slow 2)))", no_cache=True) == 5
    assert started[2] < ended[1] and started[1] < ended[2]


def test_allow_unchecked_reaches_the_sub_thunks_of_a_request(cluster):
    from exathunk.errors import ExathunkError
    worker, start_broker, connect = cluster
    a = worker(offering(fA=lambda n: n + 10), seed=1)
    b = worker(offering(fB=lambda n: n * 100), seed=2)
    c = connect(start_broker([a, b]))              # sole providers, nobody trusted
    with pytest.raises(ExathunkError):
        c.evaluate("(+ (fA 1) (fB 1))")
    value, stats = c.evaluate_with_stats("(+ (fA 2) (fB 2))", allow_unchecked=True)
    assert value == 212 and stats["verifiedBy"] == "none"
