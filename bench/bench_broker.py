"""The broker's added latency per request, against calling a worker directly, same run.

Three worker processes on loopback; one client calls a worker directly (A), another
calls a broker process over the same three workers (B).  The broker is first warmed up so that its
workers are proven and checking runs at its steady-state rate; every request is a
distinct program with ``no_cache`` (neither the broker nor a worker may answer from its
cache).  A and B alternate, request by request, and the figure quoted is the median of
the pairwise ratios B/A (this machine's speed swings within seconds).

    python bench/bench_broker.py [--rounds N]     # prints the table (400 rounds: ~1 min)
    python -m pytest bench/bench_broker.py        # the same, as pytest-benchmark runs

Target (printed MET or MISSED per program): once warmed up, the broker dispatches at
most 10% more requests than it is sent: twice the market's smallest checking rate
(MarketParams.verify_floor, 5%), the rate a proven worker is checked at.  The time
ratios have no target; they are printed for comparison with earlier runs.

The worker and broker processes import the same exathunk as this script (benchkit:
the checkout when it is built in place, else the installed package).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchkit  # noqa: E402  (chooses the exathunk to import)
from exathunk import client  # noqa: E402
from nodes import spawn, stop  # noqa: E402

EXTRA_DISPATCH_TARGET = 0.10

PROGRAMS = {
    "tiny": "(+ (* {i} 3) 7)",
    "small": "(foldl + {i} (range 0 300))",
    "medium": "(foldl + {i} (range 0 3000))",
}


class Rig:
    """Three worker processes, a broker process over them, a client of each."""

    def __init__(self, warm_up: int = 1500, show_progress: bool = False):
        self.procs = []
        addresses = []
        for i in range(3):
            proc, host, port = spawn(
                "from exathunk import server; server.serve('127.0.0.1', 0, workers=1)")
            self.procs.append(proc)
            addresses.append((host, port))
        proc, host, port = spawn(
            "from exathunk import broker; broker.serve('127.0.0.1', 0, workers=%r, "
            "db_path=None, seed=1)" % (addresses,))
        self.procs.append(proc)
        self.direct = client.connect(*addresses[0])
        self.brokered = client.connect(host, port)
        self.counter = 10_000_000
        warming = range(warm_up)
        if show_progress:
            warming = benchkit.progress(warming, desc="warming up the broker")
        for i in warming:
            self.brokered.evaluate(PROGRAMS["tiny"].format(i=i), no_cache=True)

    def next_source(self, shape: str) -> str:
        self.counter += 1
        return PROGRAMS[shape].format(i=self.counter)

    def direct_call(self, shape: str):
        return self.direct.evaluate(self.next_source(shape), no_cache=True)

    def broker_call(self, shape: str):
        return self.brokered.evaluate(self.next_source(shape), no_cache=True)

    def dispatched(self) -> int:
        return sum(w["requests"] for w in self.brokered.stats()["workers"])

    def close(self) -> None:
        self.direct.close()
        self.brokered.close()
        stop(self.procs)


def measure(rig: Rig, shape: str, rounds: int, show_progress: bool = False):
    """Interleaved A/B timings; returns (median A, median B, median of B/A ratios)."""
    a_times, b_times, ratios = [], [], []
    before = rig.dispatched()
    steps = range(rounds)
    if show_progress:
        steps = benchkit.progress(steps, desc=f"{shape}: direct vs broker")
    for _ in steps:
        t0 = time.perf_counter()
        rig.direct_call(shape)
        t1 = time.perf_counter()
        rig.broker_call(shape)
        t2 = time.perf_counter()
        a_times.append(t1 - t0)
        b_times.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    extra = (rig.dispatched() - before) / rounds - 1.0
    return statistics.median(a_times), statistics.median(b_times), \
        statistics.median(ratios), extra


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Starts 3 worker processes and a broker on "
                                        "127.0.0.1 (free ports) and stops them at the end.")
    ap.add_argument("--rounds", type=int, default=400,
                    help="interleaved A/B pairs per program (default 400)")
    ap.add_argument("--warm-up", type=int, default=1500,
                    help="requests through the broker before measuring (default 1500)")
    args = ap.parse_args(argv)
    rig = Rig(args.warm_up, show_progress=True)
    lines = []
    try:
        print("%-7s %12s %12s %14s %16s" % ("program", "direct ms", "broker ms",
                                              "median ratio", "extra dispatches"))
        for shape in PROGRAMS:
            a, b, ratio, extra = measure(rig, shape, args.rounds, show_progress=True)
            print("%-7s %12.3f %12.3f %13.2fx %15.1f%%" % (shape, a * 1e3, b * 1e3, ratio,
                                                            100 * extra), flush=True)
            lines.append(benchkit.verdict_line(
                round(extra, 6) <= EXTRA_DISPATCH_TARGET, f"extra dispatches, {shape}",
                f"{extra:.1%}", f"<= {EXTRA_DISPATCH_TARGET:.0%}"))
        rows = rig.brokered.stats()["workers"]
        print("workers: " + ", ".join("%s %s %.0f%% of work, %d verified" % (
            w["address"], w["state"], 100 * w["shareOfWork"], w["verified"]) for w in rows))
    finally:
        rig.close()
    print()
    print("\n".join(lines))
    return 0


# pytest-benchmark entry points: the two sides of the same comparison.
_rig = None


def _shared_rig():
    global _rig
    if _rig is None:
        import atexit
        _rig = Rig()
        atexit.register(_rig.close)
    return _rig


def test_direct_small(benchmark):
    rig = _shared_rig()
    benchmark(rig.direct_call, "small")


def test_broker_small(benchmark):
    rig = _shared_rig()
    benchmark(rig.broker_call, "small")


if __name__ == "__main__":
    sys.exit(main())
