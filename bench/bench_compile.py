"""Compile throughput: exathunk.compile beside CPython's compile() of the same program.

Each case is an exathunk program and an equivalent Python one; every case is measured
in the same session as (a) the whole uncached exathunk.compile (parse, typecheck,
compile to bytecode: the compile cache is cleared first), (b) parsing alone, (c)
CPython's compile() of the Python program, and for the small expression (d) a repeated
source, which exathunk.compile answers from its cache.

    python -m pytest bench/bench_compile.py --benchmark-only --benchmark-group-by=group
    python bench/bench_compile.py        # interleaved A/B runs, median of pairwise ratios
    python bench/bench_compile.py --pairs 5 --only arith,string   # a shorter run

The script mode has no target to meet (it prints the ratios for comparison with
earlier runs).  Progress goes to stderr (a tqdm bar with pip install 'exathunk[bench]').

The machine's speed swings by more than 1.5x within seconds, so the ratios quoted come
from the script mode, which alternates the two sides batch by batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit  # noqa: E402  (chooses the exathunk to import)

import pytest

import exathunk
from exathunk import driver
from exathunk.parser import parse


def _program_lines(n: int) -> tuple[str, str]:
    """An n-line exathunk program (n-1 defines and a result) and its Python twin."""
    xt = [f"(define (f{i} x) (if (< x {i}) (* x {i}) (f{max(i - 1, 0)} (- x 1))))"
          for i in range(n - 1)]
    xt.append(f"(f{n - 2} 5)")
    py = [f"def f{i}(x): return x * {i} if x < {i} else f{max(i - 1, 0)}(x - 1)"
          for i in range(n - 1)]
    py.append(f"f{n - 2}(5)")
    return "\n".join(xt), "\n".join(py)


# name -> (exathunk source, Python source, Python compile mode, expected exathunk type)
CASES = {
    "arith": ("(+ 1 (/ 4 2))", "1 + 4 // 2", "eval", "Int"),
    "if-let": ("(let ((x 5)) (if (< x 10) (* x 2) (- x 1)))",
               "(lambda x: x * 2 if x < 10 else x - 1)(5)", "eval", "Int"),
    "map-lambda": ("(map (lambda (x) (* x x)) (list 1 2 3))",
                   "list(map(lambda x: x * x, [1, 2, 3]))", "eval", "(List Int)"),
    "string": ('(concat "n = " (show (+ 40 2)))', '"n = " + str(40 + 2)', "eval",
               "String"),
    "program-1000-lines": _program_lines(1000) + ("exec", "Int"),
}
SMALL = [name for name in CASES if not name.startswith("program")]


def compile_uncached(source: str):
    driver.clear_cache()
    return exathunk.compile(source)


def cpython_compile(source: str, mode: str):
    return compile(source, "<bench>", mode)


def _timing(name: str) -> dict:
    """pedantic() settings: small cases run in batches, so the timer's cost is amortised."""
    if name.startswith("program"):
        return dict(rounds=10, iterations=1, warmup_rounds=1)
    return dict(rounds=100, iterations=50, warmup_rounds=2)


# ---- pytest-benchmark -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_exathunk_compile(benchmark, name):
    source, _, _, expected_type = CASES[name]
    benchmark.group = name
    program = benchmark.pedantic(compile_uncached, args=(source,), **_timing(name))
    assert program.type == expected_type


@pytest.mark.parametrize("name", list(CASES))
def test_exathunk_parse(benchmark, name):
    source = CASES[name][0]
    benchmark.group = name
    module = benchmark.pedantic(parse, args=(source,), **_timing(name))
    assert module.body is not None


@pytest.mark.parametrize("name", list(CASES))
def test_cpython_compile(benchmark, name):
    _, py_source, mode, _ = CASES[name]
    benchmark.group = name
    code = benchmark.pedantic(cpython_compile, args=(py_source, mode), **_timing(name))
    assert code.co_filename == "<bench>"


@pytest.mark.parametrize("name", SMALL)
def test_exathunk_compile_cached(benchmark, name):
    source, _, _, expected_type = CASES[name]
    benchmark.group = name
    first = exathunk.compile(source)
    program = benchmark.pedantic(exathunk.compile, args=(source,), **_timing(name))
    assert program is first and program.type == expected_type


# ---- script mode: interleaved A/B -------------------------------------------------------

def _batch(fn, args, n: int) -> float:
    """Seconds per call over a batch of n calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return (time.perf_counter() - start) / n


def interleaved(a, b, pairs: int, batch: int) -> tuple[float, float, float]:
    """Median time of a, of b, and the median of the pairwise ratios a/b."""
    times_a, times_b = [], []
    for _ in range(pairs):
        times_a.append(_batch(*a, batch))
        times_b.append(_batch(*b, batch))
    ratios = [x / y for x, y in zip(times_a, times_b)]
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Cases: " + ", ".join(CASES) + ".")
    ap.add_argument("--pairs", type=int, default=None,
                    help="interleaved A/B batches per row (default 25; 7 for the "
                         "1000-line program)")
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - set(CASES))
    if unknown:
        ap.error(f"--only: unknown case(s) {', '.join(unknown)} (of: {', '.join(CASES)})")
    if args.pairs is not None and args.pairs < 1:
        ap.error("--pairs must be at least 1")
    print(f"{'case':<20} {'exathunk':>30} {'CPython compile()':>18} {'ratio':>8}")
    chosen = [n for n in CASES if not only or n in only]
    for name in benchkit.progress(chosen, desc="compile cases"):
        source, py_source, mode, expected_type = CASES[name]
        assert compile_uncached(source).type == expected_type
        big = name.startswith("program")
        pairs, batch = (7, 3) if big else (25, 400)
        if args.pairs is not None:
            pairs = args.pairs
        cpy = (cpython_compile, (py_source, mode))
        sides = [("compile, uncached", (compile_uncached, (source,))),
                 ("parse only", (parse, (source,)))]
        if not big:
            exathunk.compile(source)
            sides.append(("compile, cached", (exathunk.compile, (source,))))
        for label, side in sides:
            t_a, t_b, ratio = interleaved(side, cpy, pairs, batch)
            print(f"{name:<20} {label + ':':<18}{_fmt(t_a):>12} {_fmt(t_b):>18} "
                  f"{ratio:>7.2f}x", flush=True)
    return 0


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} us"


if __name__ == "__main__":
    sys.exit(main())
