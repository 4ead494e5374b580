"""Side-by-side engine comparison: interleaved A/B runs, median of pairwise ratios.

    python bench/compare_engine.py [--pairs N] [--only fib,tak,...]

For each workload it times the engine against plain CPython (the same computation,
recursive ones from their best start depth, gh-142183), against the reference
interpreter (both on the reference's scaled-down input, so the pair is like for like)
and, for fib and tak, against gcc -O2 C (the C program times itself over repeated runs
in one process).  A and B alternate (A B A B ...) and the table gives the median of the
pairwise time ratios A/B with their range: this machine's speed swings within seconds.
Last, engine throughput with one thread against two.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import exathunk  # noqa: E402
from exathunk.values import show_value  # noqa: E402

from conftest import (ENGINE_LIMITS, at_depth, best_start_depth, py_fib,  # noqa: E402
                      py_tak, py_tree, reference_run, run_c, workloads)


def time_per_run(fn, min_seconds: float = 0.05) -> float:
    """Seconds per call of fn, calling it until min_seconds have passed (at least once)."""
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or count >= 1000:
            return elapsed / count


def paired(a, b, pairs: int) -> tuple[list[float], list[float]]:
    """Interleaved timings of a and b (each a zero-argument function giving seconds)."""
    ta, tb = [], []
    for _ in range(pairs):
        ta.append(a())
        tb.append(b())
    return ta, tb


def row(label, a_name, b_name, ta, tb, target=""):
    ratios = sorted(x / y for x, y in zip(ta, tb))
    med = statistics.median(ratios)
    print(f"{label:<10} {a_name:<16} {statistics.median(ta) * 1e3:>10.3f} ms  "
          f"{b_name:<26} {statistics.median(tb) * 1e3:>10.3f} ms  "
          f"{len(ratios):>3}  {med:>9.4f}  [{ratios[0]:.4f} .. {ratios[-1]:.4f}]  {target}",
          flush=True)
    return med


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--no-threads", action="store_true")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    only = set(filter(None, args.only.split(",")))
    chosen = [w for w in workloads() if not only or w.name in only]

    depths = {}
    if any(w.name == "fib" for w in chosen):
        depths["fib"] = best_start_depth(py_fib, (25,), rounds=1)
    if any(w.name == "tak" for w in chosen):
        depths["tak"] = best_start_depth(py_tak, (18, 12, 6), rounds=1)
    if any(w.name == "tree" for w in chosen):
        depths["tree"] = best_start_depth(py_tree, (), rounds=1)
    print(f"python {sys.version.split()[0]}; CPython start depths: {depths}")
    print(f"{'workload':<10} {'A':<16} {'A median':>13}  {'B':<26} {'B median':>13}  "
          f"{'n':>3}  {'A/B med':>9}  range")

    for w in chosen:
        program = exathunk.compile(w.source)
        assert show_value(program.run(**ENGINE_LIMITS)) == w.expected, w.name
        heavy = w.name == "stream"
        pairs = max(3, args.pairs // 2) if heavy else args.pairs
        min_s = 0.0 if heavy else 0.05

        def engine_full():
            return time_per_run(lambda: program.run(**ENGINE_LIMITS), min_s)

        if w.python_recursive:
            depth = depths[w.name]

            def py():
                return time_per_run(lambda: at_depth(depth, w.python), min_s)
        else:
            def py():
                return time_per_run(w.python, min_s)
        assert str(w.python()) == w.expected
        row(w.name, "engine", "CPython", *paired(engine_full, py, pairs),
            "target <= 1.0 (goal 0.3)" if w.c else "")

        small = exathunk.compile(w.small_source)
        assert small.run(**ENGINE_LIMITS) == w.small_expected
        assert reference_run(w.small_source) == w.small_expected

        def engine_small():
            return time_per_run(lambda: small.run(**ENGINE_LIMITS), 0.05)

        def ref():
            return time_per_run(lambda: reference_run(w.small_source), 0.0)
        row(w.name, "engine (scaled)", "reference (scaled)", *paired(engine_small, ref,
                                                                       max(3, pairs // 2)),
            f"target <= 0.02; {w.scale}")

        if w.c:
            c_name, c_args = w.c

            def c():
                result, median_s, _ = run_c(c_name, c_args, 21)
                assert str(result) == w.expected
                return median_s
            row(w.name, "engine", "C gcc -O2", *paired(engine_full, c, pairs),
                "target <= 20")

    if not args.no_threads:
        threads_row(args.pairs)
    return 0


def threads_row(pairs: int) -> None:
    """Batch time of 4 engine runs of fib 25 on 2 threads against 1 thread, and the
    same for a control known to release the GIL (hashlib.sha256 of 32 MB): when the
    control does not speed up either, the machine's cores are busy elsewhere."""
    import hashlib
    program = exathunk.compile("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) "
                               "(fib (- n 2)))))\n(fib 25)")
    data = b"x" * (32 << 20)
    jobs = 4

    def batch(threads, job, check):
        def timed():
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(lambda _: job(), range(jobs)))
            assert all(map(check, results))
            return time.perf_counter() - start
        return timed

    med = row("threads", "engine 2 thr", "engine 1 thread",
              *paired(batch(2, program.run, lambda r: r == 75025),
                      batch(1, program.run, lambda r: r == 75025), pairs),
              "batch time; ideal 0.5 on 2 idle cores")
    sha = lambda: hashlib.sha256(data).digest()  # noqa: E731
    control = row("control", "sha256 2 thr", "sha256 1 thread",
                  *paired(batch(2, sha, bool), batch(1, sha, bool), pairs),
                  "GIL-free control")
    print(f"two-thread throughput speed-up: engine {1 / med:.2f}x, "
          f"control {1 / control:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
