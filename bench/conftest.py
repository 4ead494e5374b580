"""Shared pieces of the engine benchmarks (bench_engine.py and compare_engine.py).

The workloads: the five of issue 3 (fib 25, tak 18 12 6, the lazy pipeline, the
sharing-heavy lazy list, the 10,000,000-element stream) and issue 8's tree (20,000
insertions into a binary search tree of a data type, then a sum; in CPython, a class
with __slots__), each as: the exathunk program
(read from grammar/cases/bench_*.xt, with its expected value), the same computation in
plain CPython, a scaled-down program for the slow reference interpreter, and for fib
and tak the gcc -O2 C program (bench/c/*.c, built into bench/.build/ on first use).

CPython recursion speed depends on the stack depth it starts at (gh-142183, DESIGN §8),
so recursive CPython workloads run from the start depth that ``best_start_depth`` finds
fastest.
"""

from __future__ import annotations

import itertools
import pathlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = ROOT / "grammar" / "cases"
BUILD = HERE / ".build"

# The engine's runs are given generous explicit limits: these are speed tests, not
# limit tests, and the 10M stream takes more reduction steps than a default might allow.
ENGINE_LIMITS = dict(max_steps=10**12)
REFERENCE_STEPS = 10**9


def load_bench_case(name: str) -> tuple[str, str]:
    """(source, expected value as shown) of grammar/cases/bench_<name>.xt."""
    source = (CASES / f"bench_{name}.xt").read_text("utf-8")
    for line in source.splitlines():
        if line.startswith("; expect:"):
            return source, line[len("; expect:"):].strip()
    raise ValueError(f"bench_{name}.xt has no '; expect:' line")


# ---- the same computations in plain CPython ---------------------------------------

def py_fib(n):
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def py_tak(x, y, z):
    if not y < x:
        return z
    return py_tak(py_tak(x - 1, y, z), py_tak(y - 1, z, x), py_tak(z - 1, x, y))


def py_pipeline(limit=300_000):
    return sum(map(lambda x: x * x, filter(lambda x: x % 3 == 0, range(0, limit))))


def _py_fibs():
    a, b = 0, 1
    while True:
        yield a
        a, b = b, (a + b) % 1000000007


def py_sharing(n=200_000):
    return sum(itertools.islice(_py_fibs(), n))


def _py_iterate(f, x):
    while True:
        yield x
        x = f(x)


def py_stream(n=10_000_000):
    return sum(itertools.islice(_py_iterate(lambda x: x + 1, 0), n))


class PyNode:
    """The tree workload's node, as a CPython programmer writes it."""
    __slots__ = ("left", "value", "right")

    def __init__(self, left, value, right):
        self.left, self.value, self.right = left, value, right


def _py_insert(x, t):
    if t is None:
        return PyNode(None, x, None)
    if x < t.value:
        return PyNode(_py_insert(x, t.left), t.value, t.right)
    if x > t.value:
        return PyNode(t.left, t.value, _py_insert(x, t.right))
    return t


def _py_total(t):
    return 0 if t is None else _py_total(t.left) + t.value + _py_total(t.right)


def py_tree(n=20_000, seed=42):
    t = None
    for _ in range(n):
        seed = (seed * 1103515245 + 12345) % 2147483648
        t = _py_insert(seed % 1000000, t)
    return _py_total(t)


def at_depth(depth: int, fn: Callable, *args):
    """Call fn(*args) from ``depth`` extra Python frames down the stack."""
    if depth <= 0:
        return fn(*args)
    return at_depth(depth - 1, fn, *args)


def best_start_depth(fn: Callable, args: tuple, depths=range(0, 160), rounds: int = 2) -> int:
    """The start depth at which fn(*args) runs fastest (gh-142183: CPython's frame
    chunks are allocated and freed at a boundary, which one start depth can put in
    the hot path of a recursion)."""
    best, best_time = 0, float("inf")
    for depth in depths:
        elapsed = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            at_depth(depth, fn, *args)
            elapsed = min(elapsed, time.perf_counter() - t0)
        if elapsed < best_time:
            best, best_time = depth, elapsed
    return best


# ---- gcc -O2 C -------------------------------------------------------------------------

def build_c(name: str) -> pathlib.Path:
    """Compile bench/c/<name>.c with gcc -O2 into bench/.build/<name> (if out of date)."""
    src = HERE / "c" / f"{name}.c"
    exe = BUILD / name
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        gcc = shutil.which("gcc")
        if gcc is None:
            raise RuntimeError("gcc is needed to build the C side of the benchmarks")
        BUILD.mkdir(exist_ok=True)
        subprocess.run([gcc, "-O2", "-o", str(exe), str(src)], check=True, timeout=120)
    return exe


def run_c(name: str, args: tuple, reps: int) -> tuple[int, float, float]:
    """Run the C program ``reps`` times in one process: (result, median s, min s)."""
    exe = build_c(name)
    out = subprocess.run([str(exe), *map(str, args), str(reps)], check=True,
                         capture_output=True, text=True, timeout=600).stdout.split()
    return int(out[0]), int(out[1]) / 1e9, int(out[2]) / 1e9


# ---- the workloads -------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    source: str                   # the full-size program
    expected: str                 # its value, as shown
    python: Callable[[], int]     # the same computation in CPython
    python_recursive: bool        # run from the best start depth
    small_source: str             # scaled down for the reference interpreter
    small_expected: int
    scale: str                    # how the reference's input is scaled
    c: tuple | None = None        # (C program name, its arguments)


def _program(source_line: str, defs: str = "") -> str:
    return (defs + "\n" if defs else "") + source_line


FIB_DEF = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))"
TAK_DEF = ("(define (tak x y z) (if (not (< y x)) z "
           "(tak (tak (- x 1) y z) (tak (- y 1) z x) (tak (- z 1) x y))))")


def pipeline_source(limit):
    return (f"(sum (map (lambda (x) (* x x)) "
            f"(filter (lambda (x) (= (mod x 3) 0)) (range 0 {limit}))))")


def sharing_source(n):
    return ("(let ((fibs (cons 0 (cons 1 (zip-with (lambda (a b) (mod (+ a b) 1000000007))"
            f" fibs (tail fibs)))))) (sum (take {n} fibs)))")


def stream_source(n):
    return f"(sum (take {n} (iterate (lambda (x) (+ x 1)) 0)))"


def tree_source(n):
    source, _ = load_bench_case("tree")
    return source.replace("(build 20000 42 Leaf)", f"(build {n} 42 Leaf)")


def workloads() -> list[Workload]:
    fib_src, fib_exp = load_bench_case("fib25")
    tak_src, tak_exp = load_bench_case("tak")
    pipe_src, pipe_exp = load_bench_case("pipeline")
    share_src, share_exp = load_bench_case("sharing")
    stream_src, stream_exp = load_bench_case("stream")
    tree_src, tree_exp = load_bench_case("tree")
    return [
        Workload("fib", fib_src, fib_exp, lambda: py_fib(25), True,
                 _program("(fib 20)", FIB_DEF), py_fib(20),
                 "fib 20 (11x fewer calls than fib 25)", c=("fib", (25,))),
        Workload("tak", tak_src, tak_exp, lambda: py_tak(18, 12, 6), True,
                 _program("(tak 18 12 6)", TAK_DEF), py_tak(18, 12, 6),
                 "same input: tak 18 12 6",
                 c=("tak", (18, 12, 6))),
        Workload("pipeline", pipe_src, pipe_exp, py_pipeline, False,
                 pipeline_source(30_000), py_pipeline(30_000),
                 "range 0 30,000 (10x shorter)"),
        Workload("sharing", share_src, share_exp, py_sharing, False,
                 sharing_source(20_000), py_sharing(20_000),
                 "20,000 elements (10x fewer)"),
        Workload("stream", stream_src, stream_exp, py_stream, False,
                 stream_source(20_000), py_stream(20_000),
                 "20,000 elements (500x fewer)"),
        Workload("tree", tree_src, tree_exp, py_tree, True,
                 tree_source(2_000), py_tree(2_000), "2,000 insertions (10x fewer)"),
    ]


@pytest.fixture(scope="session")
def all_workloads() -> dict[str, Workload]:
    return {w.name: w for w in workloads()}


@pytest.fixture(scope="session")
def start_depths() -> dict[str, int]:
    """The best CPython start depth per recursive workload, found once per session."""
    return {"fib": best_start_depth(py_fib, (25,), rounds=1),
            "tak": best_start_depth(py_tak, (18, 12, 6), rounds=1),
            "tree": best_start_depth(py_tree, (), rounds=1)}


def reference_run(source: str):
    from exathunk import driver, reference
    from exathunk.library import default_library
    return reference.evaluate(driver.check(source), default_library(),
                              max_steps=REFERENCE_STEPS)


sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
