"""The Dask backend (exathunk.dask): programs and par-map sub-thunks as Dask tasks,
node libraries as worker plugins, capabilities as Dask resources.

One LocalCluster of two worker processes (one thread each, so a task that waited on its
sub-tasks without seceding would deadlock its worker) serves the module; the fixture
stops it.  Worker "0" offers ``special`` (a host function worker "1" lacks); both offer
``where`` and the instance ``Hashable String``.  Both host functions answer with the
name of the worker they ran on, which is how the tests see where a task ran.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
import zlib

import pytest

import exathunk
from exathunk import Data, EvaluationError, LimitExceeded, TypeCheckError, UnknownFunctionError
from exathunk.library import Library

import exathunk.dask as xd     # imports without dask; its entry points then say so

try:
    import distributed
except ImportError:              # the pickling and naming tests still run
    distributed = None

NO_DASK = "dask/distributed not installed: pip install 'exathunk[dask]'"
needs_dask = pytest.mark.skipif(distributed is None, reason=NO_DASK)

WAIT = 60      # seconds: the bound on every wait for a result


# ---- the workers' libraries (module-level factories: the plugin pickles them by name) --

def _here(x):
    return f"{distributed.get_worker().name}:{x}"


def common_library() -> Library:
    lib = Library()
    lib.register("where", "(-> Int String)", _here)
    lib.declare_class("(class (Hashable a) (hash (-> a Int)))")
    lib.register_instance("Hashable", "String", hash=lambda s: zlib.crc32(s.encode()))
    return lib


def special_library() -> Library:
    lib = common_library()
    lib.register("special", "(-> Int String)", _here)
    return lib


SPECIAL = special_library()          # what the client compiles against


@pytest.fixture(scope="module")
def client():
    if distributed is None:
        pytest.skip(NO_DASK)
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           dashboard_address=None, host="127.0.0.1",
                           # no dashboard; its HTTP routes on a free loopback port
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                           silence_logs=logging.CRITICAL)
    c = Client(cluster, timeout=WAIT)
    try:
        c.wait_for_workers(2, timeout=WAIT)
        # Two plugins, each for one worker: worker 0 offers `special`, worker 1 not.
        c.register_plugin(xd.ExathunkPlugin(special_library, workers=["0"]))
        c.register_plugin(xd.ExathunkPlugin("test_dask:common_library", workers=["1"]))
        yield c
    finally:
        c.close(timeout=WAIT)
        cluster.close(timeout=WAIT)


def _names(client) -> dict:
    """worker address -> name."""
    return {a: str(w["name"]) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}


def _exathunk_tasks(stream) -> list:
    return [t["key"] for t in stream.data if str(t["key"]).startswith("exathunk-")]


# ---- pickling (no cluster) ---------------------------------------------------------------

def test_program_pickles_as_its_blob():
    src = """(data Shape (Circle Double) (Square Int))
(define (area s) (case s ((Circle r) (* 3.0 (* r r))) ((Square n) (to-double (* n n)))))
(list (area (Circle 1.0)) (area (Square 3)))"""
    prog = exathunk.compile(src)
    back = pickle.loads(pickle.dumps(prog))
    assert back.digest == prog.digest and back == prog
    assert back.run() == prog.run() == [3.0, 9.0]
    assert back.library is None          # not pickled: the default one runs it
    # A program with a host function pickles without its library; a run is given one.
    hosted = exathunk.compile('(special 3)', library=SPECIAL)
    back = pickle.loads(pickle.dumps(hosted))
    assert back.digest == hosted.digest and back.library is None
    with pytest.raises(UnknownFunctionError):
        back.run()
    lib = Library()
    lib.register("special", "(-> Int String)", lambda x: f"here:{x}")
    assert back.run(library=lib) == "here:3"


def test_values_and_errors_pickle():
    for value in (Data("Just", (Data("Pair", (1, "a")),)), Data("Nothing"), [1.5, -0.0]):
        assert pickle.loads(pickle.dumps(value)) == value
    err = LimitExceeded("too far", limit="max_steps", line=3, column=4)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is LimitExceeded and back.limit == "max_steps" and back.line == 3


def test_resource_names_and_keys():
    prog = exathunk.compile('(+ (hash "a") (len (special 1)))', library=SPECIAL)
    assert xd.needed_resources(prog) == {
        "exathunk:hash@Hashable String :: (-> String Int)": 1,
        "exathunk:special :: (-> Int String)": 1}
    offered = xd.offered_resources(SPECIAL)
    assert set(xd.needed_resources(prog)) <= set(offered)
    assert not any(r.startswith("exathunk:%") for r in offered)
    assert xd.task_key(prog) == f"exathunk-{prog.digest}"
    assert xd.task_key(prog, {"max_steps": 10}).startswith(f"exathunk-{prog.digest}-")
    par = exathunk.compile("(par-map (lambda (x) (* x x)) (range 0 8))")
    assert xd.needed_resources(par) == {}        # %par-map is on every node


# ---- on the cluster ------------------------------------------------------------------------

def test_plugins_set_libraries_and_resources(client):
    names = _names(client)
    res = {names[a]: set(r) for a, r in client.run(
        lambda dask_worker: dask_worker.state.total_resources).items()}
    special = "exathunk:special :: (-> Int String)"
    assert special in res["0"] and res["1"].isdisjoint({special})
    assert "exathunk:where :: (-> Int String)" in res["0"] & res["1"]
    sched = {names[a]: w["resources"] for a, w in
             client.scheduler_info(n_workers=-1)["workers"].items()}
    assert sched["0"][special] == xd.CAPACITY and special not in sched["1"]


def test_submit_runs_a_program_as_a_keyed_task(client):
    prog = exathunk.compile("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))"
                            "(fib 20)")
    fut = xd.submit(client, prog)
    assert fut.key == f"exathunk-{prog.digest}"
    assert fut.result(timeout=WAIT) == 6765
    assert xd.evaluate(client, '(lookup 2 (zip (list 1 2) (list "a" "b")))',
                       wait=WAIT) == Data("Just", ("b",))
    assert xd.evaluate(client, '(hash "abc")', library=SPECIAL, wait=WAIT) == \
        zlib.crc32(b"abc")


def test_the_same_program_is_one_task(client):
    from distributed import Client, get_task_stream
    src = "(sum (map (lambda (x) (* x 3)) (range 0 400000)))  ; dedup"
    other = Client(client.scheduler.address, timeout=WAIT)
    try:
        with get_task_stream(client) as stream:
            a = xd.submit(client, src)
            b = xd.submit(other, src.replace("; dedup", "; the same graph"))
            c = xd.submit(client, src)
            assert a.key == b.key == c.key
            assert [a.result(timeout=WAIT), b.result(timeout=WAIT)] == \
                [3 * sum(range(400000))] * 2
        assert _exathunk_tasks(stream).count(a.key) == 1
    finally:
        other.close(timeout=WAIT)


def test_errors_reach_the_caller_as_their_class(client):
    with pytest.raises(EvaluationError, match="empty list"):
        xd.evaluate(client, "(head nil)", wait=WAIT)
    fut = xd.submit(client, "(length (iterate (lambda (x) x) 0))", max_steps=100_000)
    with pytest.raises(LimitExceeded) as info:
        fut.result(timeout=WAIT)
    assert info.value.limit == "max_steps"
    with pytest.raises(TypeCheckError):            # compiled here, never submitted
        xd.submit(client, "(* 4 true)")
    with pytest.raises(TypeError, match="unknown run limit"):
        xd.submit(client, "1", max_stepz=3)


def test_capabilities_route_tasks(client):
    # `special` is offered by worker 0 only: every program using it runs there.
    futures = [xd.submit(client, f"(special {i})", library=SPECIAL) for i in range(12)]
    ran = [f.result(timeout=WAIT) for f in futures]
    assert ran == [f"0:{i}" for i in range(12)]
    # `where` is offered by both; enough of them land on both workers.
    futures = [xd.submit(client, f"(where (+ 100 {i}))", library=SPECIAL)
               for i in range(40)]
    assert {r.split(":")[0] for r in client.gather(futures)} <= {"0", "1"}
    # Offered by nobody: refused at once, by name ...
    lib = Library()
    lib.register("nowhere", "(-> Int Int)", lambda x: x)
    with pytest.raises(UnknownFunctionError, match="nowhere"):
        xd.submit(client, "(nowhere 1)", library=lib)
    # ... or, unchecked, a task that waits for a worker offering it.
    fut = xd.submit(client, "(nowhere 2)", library=lib, check=False)
    time.sleep(0.3)
    assert fut.status == "pending"
    fut.cancel()


def test_par_map_fans_out_into_dask_tasks(client):
    from distributed import get_task_stream
    src = "(par-map (lambda (x) (where x)) (range 0 8))"
    prog = exathunk.compile(src, library=SPECIAL)
    with get_task_stream(client) as stream:
        value = xd.submit(client, prog).result(timeout=WAIT)
    assert [v.split(":")[1] for v in value] == [str(i) for i in range(8)]
    keys = _exathunk_tasks(stream)
    assert len(keys) == 9 and len(set(keys)) == 9          # the run and its 8 sub-thunks
    assert xd.task_key(prog) in keys


def test_equal_sub_thunks_are_one_task(client):
    from distributed import get_task_stream
    with get_task_stream(client) as stream:
        value = xd.evaluate(client, "(par-map (lambda (x) (* x 1000)) (list 7 7 8 7 8))",
                            wait=WAIT)
    assert value == [7000, 7000, 8000, 7000, 8000]
    assert len(_exathunk_tasks(stream)) == 3               # the run, (f 7), (f 8)


def test_sub_thunks_on_a_one_thread_worker_do_not_deadlock(client):
    # The run needs `special`, so it and its sub-thunks all run on worker 0, whose one
    # thread the waiting run must give back; and each sub-thunk par-maps again.
    src = """(define (g n) (sum (par-map (lambda (x) (len (special x))) (range 0 n))))
(pair (special 99) (par-map g (range 1 5)))"""
    value = xd.evaluate(client, src, library=SPECIAL, wait=WAIT)
    assert value.fields[0] == "0:99"
    assert value.fields[1] == [sum(len(f"0:{x}") for x in range(n)) for n in range(1, 5)]


def test_par_sparks_and_failing_sub_thunks(client):
    src = "(+ (par (sum (range 0 1000))) (par (sum (range 0 2000))))"
    assert xd.evaluate(client, src, wait=WAIT) == sum(range(1000)) + sum(range(2000))
    with pytest.raises(EvaluationError, match="by zero"):
        xd.evaluate(client, "(par-map (lambda (x) (/ 10 x)) (list 1 0 2))", wait=WAIT)


def test_a_sub_thunk_that_needs_itself_fails(client):
    # Its one sub-program is the program itself (same digest, same key): waiting for
    # it would wait forever; it is an EvaluationError instead.
    src = "(define (f x) (head (par-map f (list x))))\n(f 1)"
    with pytest.raises(EvaluationError, match="needs its own value"):
        xd.evaluate(client, src, wait=WAIT)


def test_runner_outside_a_task(client):
    # A run here whose sub-thunks are Dask tasks.
    from exathunk import subthunks
    prog = exathunk.compile("(par-map (lambda (x) (special x)) (list 1 2 3))",
                            library=SPECIAL)
    runner = xd.DaskRunner(SPECIAL, client=client)
    with subthunks.using(runner):
        assert prog.run(library=SPECIAL) == ["0:1", "0:2", "0:3"]
    assert runner.submitted == 3


def test_a_plugin_replaced_and_removed(client):
    names = {v: k for k, v in _names(client).items()}
    special = "exathunk:special :: (-> Int String)"

    def offered(name):
        return client.scheduler_info(n_workers=-1)["workers"][names[name]]["resources"]

    def library_here(dask_worker):
        lib = getattr(dask_worker, "exathunk_library", None)
        return None if lib is None else sorted(s.name for s in lib.host_functions())

    client.register_plugin(xd.ExathunkPlugin(special_library, workers=["1"], name="xt-extra"))
    try:
        assert offered("1")[special] == xd.CAPACITY
        assert "special" in client.run(library_here, workers=[names["1"]])[names["1"]]
    finally:
        client.unregister_worker_plugin("xt-extra")
    # Its teardown takes its library and resources away again ...
    assert offered("1").get(special, 0) == 0
    assert client.run(library_here, workers=[names["1"]])[names["1"]] is None
    # ... and re-registering worker 1's plugin (same name: replaced) brings its own back.
    client.register_plugin(xd.ExathunkPlugin("test_dask:common_library", workers=["1"]))
    assert "where" in client.run(library_here, workers=[names["1"]])[names["1"]]
    assert offered("1")["exathunk:where :: (-> Int String)"] == xd.CAPACITY
    assert [f.result(timeout=WAIT) for f in
            [xd.submit(client, f"(special {i})", library=SPECIAL) for i in range(200, 206)]] \
        == [f"0:{i}" for i in range(200, 206)]


# ---- the demo ---------------------------------------------------------------------------

@needs_dask
def test_demo_dask_runs():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, "-m", "exathunk", "demo", "--dask", "-q"],
                         capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "par-map" in res.stdout and "UNEXPECTED" not in res.stdout
    help_text = subprocess.run([sys.executable, "-m", "exathunk", "demo", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    assert "--dask" in help_text
