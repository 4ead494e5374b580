"""Cancellation latency and timeout overshoot, on a worker and through a broker.

A runaway program is submitted; once the node reports it running, the client's
``Future.cancel()`` is called, and the time until the node reports no run (its
``getStats().running``, polled every millisecond) is the cancellation latency.  The
overshoot is how long past its ``timeout_ms`` a runaway's answer comes back.  Nodes run
in this process on loopback (one evaluation slot each, no inline runs).

    python bench/bench_cancel.py            # --help for the options
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

from exathunk import broker, client, server  # noqa: E402
from exathunk.errors import LimitExceeded  # noqa: E402

RUNAWAY = "(define (loop n) (loop (+ n 1)))\n(loop %d)"
ALLOC = "(length (iterate (lambda (x) (+ x %d)) 0))"


def cancel_latency(node, rounds, shape, worker=None):
    """Cancel ``rounds`` runaways submitted to ``node``; the time until the worker (the
    node itself, or ``worker`` behind a broker) reports no run, per cancel."""
    lat = []
    probe = client.connect(worker.host, worker.port) if worker is not None else node
    for i in range(rounds):
        fut = node.submit(shape % (i + 1000 * len(lat) + 7), no_cache=True,
                          timeout_ms=60_000)
        for _ in range(5000):
            if probe.stats()["running"] >= 1:
                break
            time.sleep(0.001)
        time.sleep(0.02)
        t0 = time.perf_counter()
        fut.cancel()
        for _ in range(20000):
            if probe.stats()["running"] == 0:
                break
            time.sleep(0.001)
        lat.append(time.perf_counter() - t0)
    if worker is not None:
        probe.close()
    return lat


def overshoot(node, rounds, limit_ms):
    out = []
    for i in range(rounds):
        t0 = time.perf_counter()
        try:
            node.evaluate(RUNAWAY % (i + 99), timeout_ms=limit_ms, no_cache=True)
        except LimitExceeded:
            pass
        out.append(time.perf_counter() - t0 - limit_ms / 1e3)
    return out


def line(name, xs):
    ms = [x * 1e3 for x in xs]
    return "%-46s median %7.1f ms   max %7.1f ms   (n=%d)" % (
        name, statistics.median(ms), max(ms), len(ms))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20, help="cancels per case (20)")
    ap.add_argument("--timeout-ms", type=int, default=500,
                    help="the runaway's limit for the overshoot (500)")
    args = ap.parse_args(argv)
    w = server.start(workers=1, inline_steps=0, timeout_ms=60_000)
    b = broker.start("127.0.0.1", 0, workers=[(w.host, w.port)], db_path=None, seed=1,
                     hedge=False, replicas=1)
    missed = []
    try:
        direct = client.connect(w.host, w.port, timeout=120)
        brokered = client.connect(b.host, b.port, timeout=120)
        rows = []
        for name, shape in (("tight loop", RUNAWAY), ("allocating", ALLOC)):
            print(f"  worker, {name} ...", file=sys.stderr, flush=True)
            rows.append((f"cancel on the worker ({name})",
                         cancel_latency(direct, args.rounds, shape)))
            print(f"  broker, {name} ...", file=sys.stderr, flush=True)
            rows.append((f"cancel through the broker ({name})",
                         cancel_latency(brokered, args.rounds, shape, worker=w)))
        print("  overshoot ...", file=sys.stderr, flush=True)
        rows.append((f"timeout overshoot past {args.timeout_ms} ms (worker)",
                     overshoot(direct, max(3, args.rounds // 4), args.timeout_ms)))
        for name, xs in rows:
            print(line(name, xs))
            if name.startswith("cancel") and max(xs) > 0.1:
                missed.append(f"{name}: max {max(xs) * 1e3:.0f} ms > 100 ms")
        direct.close()
        brokered.close()
    finally:
        b.stop(5)
        w.stop(5)
    for m in missed:
        print("MISSED:", m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
