"""Sub-thunks at scale: the par-map speed-up over 1, 2 and 4 workers, and the thunk cache.

Every node is its own process on loopback (workers with one evaluation slot each, as a
one-CPU node; a broker over them).  Each worker offers ``work :: (-> Int Int)``, a
host function that takes 20 ms of its node's one CPU (a sleep under a per-node lock:
this machine has 2 cores, so 4 CPU-bound workers could not show a 4x speed-up, and a
remote node's CPU is not ours anyway).  The program is ``(par-map (lambda (x) (work (+ x SALT))) (range 0 64))``
with a fresh SALT each round, so neither the broker nor a worker answers from its
cache.  The broker is warmed up first so its workers are proven and checking runs at
its steady-state rate (the checks are counted as "extra dispatches" per element).

Then the cache: rounds of programs whose par-maps overlap (each element is shared with
the previous round's program), and the broker's hit rate on their sub-thunks.

    python bench/bench_subthunks.py              # the table; --help for the options
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchkit  # noqa: E402,F401  (chooses the exathunk to import)

from exathunk import client  # noqa: E402
from nodes import spawn, stop  # noqa: E402

WORKER = """
import threading, time
from exathunk import server
from exathunk.library import Library
lib = Library()
cpu = threading.Lock()          # the node has one CPU: one element's work at a time
def work(n):
    with cpu:
        time.sleep(%(seconds)r)
    return n * n
lib.register("work", "(-> Int Int)", work)
server.serve("127.0.0.1", 0, library=lib, workers=1)
"""

BROKER = ("from exathunk import broker; broker.serve('127.0.0.1', 0, workers=%r, "
          "db_path=None, seed=1, timeout_ms=60000)")


class Rig:
    def __init__(self, workers: int, seconds: float):
        self.procs = []
        addresses = []
        for _ in range(workers):
            proc, host, port = spawn(WORKER % {"seconds": seconds})
            self.procs.append(proc)
            addresses.append((host, port))
        proc, host, port = spawn(BROKER % (addresses,))
        self.procs.append(proc)
        self.client = client.connect(host, port, timeout=120)
        self.salt = 0

    def par_map(self, n: int):
        self.salt += 1000
        src = f"(par-map (lambda (x) (work (+ x {self.salt}))) (range 0 {n}))"
        t0 = time.perf_counter()
        value = self.client.evaluate(src, timeout_ms=60_000)
        elapsed = time.perf_counter() - t0
        assert value == [(x + self.salt) ** 2 for x in range(n)], "wrong result"
        return elapsed

    def dispatched(self) -> int:
        return sum(w["requests"] for w in self.client.stats()["workers"])

    def close(self) -> None:
        self.client.close()
        stop(self.procs)


def speedups(counts, elements: int, rounds: int, seconds: float, warm_up: int) -> dict:
    out = {}
    for n in counts:
        rig = Rig(n, seconds)
        try:
            for _ in range(warm_up):
                rig.par_map(elements)
            before = rig.dispatched()
            times = []
            for r in range(rounds):
                times.append(rig.par_map(elements))
                print(f"  {n} worker(s), round {r + 1}/{rounds}: {times[-1] * 1e3:.0f} ms",
                      file=sys.stderr, flush=True)
            extra = (rig.dispatched() - before) / (rounds * (elements + 1)) - 1.0
            out[n] = (statistics.median(times), extra)
        finally:
            rig.close()
    return out


def cache_hit_rate(rounds: int, elements: int, seconds: float) -> tuple:
    """Programs whose par-maps overlap by half: the broker's sub-thunk hit rate."""
    rig = Rig(2, seconds)
    try:
        before = rig.client.stats()
        for r in range(rounds):
            lo = r * elements // 2
            src = f"(par-map work (range {lo} {lo + elements}))"
            assert rig.client.evaluate(src, timeout_ms=60_000) == \
                [x * x for x in range(lo, lo + elements)]
        after = rig.client.stats()
        hits = after["cacheHits"] - before["cacheHits"]
        shared = after["sharedRuns"] - before["sharedRuns"]
        misses = after["cacheMisses"] - before["cacheMisses"]
        subs = after["subThunks"] - before["subThunks"]
        return subs, hits + shared, misses
    finally:
        rig.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Prints the median wall time of a par-map per "
                                        "worker count and its speed-up over one worker, "
                                        "then the thunk cache's hit rate.")
    ap.add_argument("--elements", type=int, default=64, help="par-map length (64)")
    ap.add_argument("--ms", type=float, default=20.0,
                    help="milliseconds per element's host call (20)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per rig (5)")
    ap.add_argument("--warm-up", type=int, default=12,
                    help="untimed rounds first, so the workers are proven (12)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts (1,2,4)")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    seconds = args.ms / 1e3
    results = speedups(counts, args.elements, args.rounds, seconds, args.warm_up)
    base = results[counts[0]][0]
    print(f"par-map over {args.elements} elements of {args.ms:g} ms each "
          f"(sequential: {args.elements * args.ms:.0f} ms)")
    print("%8s %12s %10s %18s" % ("workers", "median ms", "speed-up", "extra dispatches"))
    missed = []
    for n in counts:
        t, extra = results[n]
        speed = base / t
        print("%8d %12.0f %9.2fx %17.2f" % (n, t * 1e3, speed, extra))
        if counts[0] == 1 and n > 1 and speed < 0.8 * n:
            missed.append(f"{n} workers: {speed:.2f}x, target close to {n}x")
    subs, hits, misses = cache_hit_rate(6, 32, seconds)
    print(f"thunk cache: {subs} sub-thunks, {hits} answered by the cache or a shared "
          f"run, {misses} computed: hit rate {hits / max(1, hits + misses):.0%} of "
          "the broker's requests")
    for m in missed:
        print("MISSED:", m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
