"""Engine benchmarks (pytest-benchmark): each workload on the engine, in plain CPython,
in the reference interpreter and, for fib and tak, in gcc -O2 C; plus engine throughput
on one thread against two (the engine releases the GIL while it runs).

    python -m pytest bench/bench_engine.py --benchmark-group-by=group

Every benchmark asserts its result.  The reference interpreter runs a scaled-down input
(conftest.Workload.scale says which); compare_engine.py prints the interleaved ratios,
with the engine timed on the reference's input for that column.
"""

from __future__ import annotations

import concurrent.futures

import pytest

import exathunk
from exathunk.values import show_value

from conftest import ENGINE_LIMITS, at_depth, reference_run, run_c

NAMES = ["fib", "tak", "pipeline", "sharing", "stream", "tree"]
C_REPS = 5


@pytest.mark.parametrize("name", NAMES)
def test_engine(benchmark, all_workloads, name):
    w = all_workloads[name]
    benchmark.group = name
    program = exathunk.compile(w.source)
    rounds = 3 if name == "stream" else 10
    value = benchmark.pedantic(program.run, kwargs=ENGINE_LIMITS, rounds=rounds,
                               warmup_rounds=1)
    assert show_value(value) == w.expected


@pytest.mark.parametrize("name", ["fib", "tak", "pipeline", "sharing"])
def test_engine_cancellable(benchmark, all_workloads, name):
    """As test_engine, with a CancelToken and a wall-clock timeout (never reached): the
    cost of the checks (the token's flag and the clock, every few thousand steps)."""
    from exathunk._core import CancelToken
    w = all_workloads[name]
    benchmark.group = name
    program = exathunk.compile(w.source)
    kwargs = dict(ENGINE_LIMITS, cancel=CancelToken(), timeout=3600.0)
    value = benchmark.pedantic(program.run, kwargs=kwargs, rounds=10, warmup_rounds=1)
    assert show_value(value) == w.expected


@pytest.mark.parametrize("name", NAMES)
def test_cpython(benchmark, all_workloads, start_depths, name):
    w = all_workloads[name]
    benchmark.group = name
    if w.python_recursive:
        depth = start_depths[name]
        benchmark.extra_info["start_depth"] = depth
        value = benchmark.pedantic(at_depth, args=(depth, w.python), rounds=10,
                                   warmup_rounds=1)
    else:
        rounds = 3 if name == "stream" else 10
        value = benchmark.pedantic(w.python, rounds=rounds, warmup_rounds=1)
    assert str(value) == w.expected


@pytest.mark.parametrize("name", NAMES)
def test_reference_scaled(benchmark, all_workloads, name):
    w = all_workloads[name]
    benchmark.group = f"{name} (scaled: {w.scale})"
    benchmark.extra_info["scale"] = w.scale
    value = benchmark.pedantic(reference_run, args=(w.small_source,), rounds=3)
    assert value == w.small_expected


@pytest.mark.parametrize("name", NAMES)
def test_engine_scaled(benchmark, all_workloads, name):
    """The engine on the reference's scaled-down input: the like-for-like pair."""
    w = all_workloads[name]
    benchmark.group = f"{name} (scaled: {w.scale})"
    program = exathunk.compile(w.small_source)
    value = benchmark.pedantic(program.run, kwargs=ENGINE_LIMITS, rounds=10,
                               warmup_rounds=1)
    assert value == w.small_expected


class SelfReportedClock:
    """A timer for pytest-benchmark that reads a program's own measurements: each round
    advances it by the seconds the timed program reported for itself, so the table
    shows that figure, not the time of the whole process (start-up, exec, pipes)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("name", ["fib", "tak"])
def test_c_gcc_O2(benchmark, all_workloads, name):
    """The C program times itself in CPU time (clock_gettime around the work, in the
    process); the table's figures are those per-run times (the median of C_REPS runs per
    round), as the other peers time themselves in compare_engine.py."""
    w = all_workloads[name]
    benchmark.group = name
    c_name, args = w.c
    clock = SelfReportedClock()
    benchmark._timer = clock          # pytest-benchmark's runner reads its timer here
    results = []

    reported = []

    def one_round():
        result, median_s, min_s = run_c(c_name, args, C_REPS)
        clock.now += median_s
        reported.append(median_s)
        results.append(result)
        return result

    benchmark.extra_info["timer"] = "the C program's own CPU time per run"
    benchmark.extra_info["c_reported_seconds"] = reported
    benchmark.pedantic(one_round, rounds=10)
    assert {str(r) for r in results} == {w.expected}


THREAD_JOBS = 4
THREAD_SOURCE = ("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n"
                 "(fib 25)")


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_thread_throughput(benchmark, threads):
    """THREAD_JOBS runs of fib 25 on a pool of 1 or 2 threads (compare_engine.py adds
    a GIL-free control, since a busy machine has no second core to give)."""
    benchmark.group = "threads"
    program = exathunk.compile(THREAD_SOURCE)

    def batch():
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda _: program.run(), range(THREAD_JOBS)))

    results = benchmark.pedantic(batch, rounds=5, warmup_rounds=1)
    assert results == [75025] * THREAD_JOBS


TINY_RUNS = 2000


def test_engine_tiny_runs(benchmark):
    """TINY_RUNS runs of (+ 1 2): the fixed cost of a run (machine, semispace and
    stacks set up and given back), which a service pays on every request."""
    from exathunk import _core
    from exathunk.program import _bind_hosts, _limits
    benchmark.group = "per-run cost"
    program = exathunk.compile("(+ 1 2)")
    image = program._engine_image()
    hosts = _bind_hosts(program, program.library)
    limits = _limits(None, None, None)

    def batch():
        for _ in range(TINY_RUNS):
            value = _core.run(image, hosts, *limits)[0]
        return value

    assert benchmark.pedantic(batch, rounds=10, warmup_rounds=1) == 3


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_pipeline_threads(benchmark, all_workloads, threads):
    """THREAD_JOBS runs of the list pipeline on 1 or 2 threads: each run collects a
    dozen times, so it reuses semispaces (its own spare, and the blocks earlier runs on
    any thread gave back) rather than faulting in fresh pages."""
    w = all_workloads["pipeline"]
    benchmark.group = "threads (pipeline)"
    program = exathunk.compile(w.source)

    def batch():
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda _: program.run(**ENGINE_LIMITS), range(THREAD_JOBS)))

    results = benchmark.pedantic(batch, rounds=5, warmup_rounds=1)
    assert [show_value(v) for v in results] == [w.expected] * THREAD_JOBS
