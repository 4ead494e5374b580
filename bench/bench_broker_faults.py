"""The broker under faults: what honest workers lose under load, what a lone liar gets
through.

Two scenarios, each on real nodes over loopback (the fault workers of tests/workers.py,
in this process, and a real broker):

- ``load``: three honest workers (one of them slow), CLIENTS client threads sending
  REQUESTS programs each with a tight wall-clock limit (``--timeout-ms``), some of which
  pass it on the slow worker but not on the others.  Printed: disagreements recorded
  among the honest workers (the market's lost votes), clients told "workers disagree",
  wrong values, other errors.
- ``sole-liar``: two honest workers and one that is the only one offering ``secret`` and
  lies on every answer; REQUESTS calls of ``secret``.  Printed: wrong values handed to the
  client as checked, wrong values handed over marked unchecked, Unverifiable errors.
- ``sybils``: three honest workers serve WARMUP requests, then five colluding workers join
  (they all give the same wrong value, always); REQUESTS more requests.  Printed: wrong
  values to the client, and the honest workers shut out.

    python bench/bench_broker_faults.py                 # every scenario
    python bench/bench_broker_faults.py load --clients 32 --requests 40
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

import workers as fake  # noqa: E402
from exathunk import broker, client  # noqa: E402
from exathunk.errors import ExathunkError  # noqa: E402
from exathunk.library import Library  # noqa: E402


def _program(i: int):
    """A program whose run takes some milliseconds, and its value."""
    n = 2000 + (i % 7) * 1500
    return "(+ %d (foldl + 0 (range 0 %d)))" % (i, n), i + n * (n - 1) // 2


def scenario_load(args) -> dict:
    ws = [fake.start_worker(seed=1), fake.start_worker(seed=2),
          fake.start_worker(seed=3, delay=args.slow_delay)]
    b = broker.start("127.0.0.1", 0, workers=[(w.host, w.port) for w in ws], seed=7,
                     dispatch_threads=64)
    counts = {"requests": 0, "right": 0, "wrong": 0, "disagree": 0, "limit": 0,
              "other_errors": 0}
    lock = threading.Lock()

    def one_client(k: int) -> None:
        c = client.connect(b.host, b.port, timeout=30)
        try:
            for j in range(args.requests):
                i = k * 100000 + j
                source, expected = _program(i)
                try:
                    value = c.evaluate(source, timeout_ms=args.timeout_ms)
                    key = "right" if value == expected else "wrong"
                except ExathunkError as err:
                    if "disagree" in err.message:
                        key = "disagree"
                    elif err.kind == "LimitExceeded":
                        key = "limit"
                    else:
                        key = "other_errors"
                with lock:
                    counts["requests"] += 1
                    counts[key] += 1
        finally:
            c.close()

    try:
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            list(pool.map(one_client, range(args.clients)))
        market = b.handler.market
        counts["disagreements_recorded"] = sum(w.lost for w in market.workers.values())
    finally:
        b.stop(timeout=2)
        for w in ws:
            w.stop(timeout=2)
    return counts


def scenario_sole_liar(args) -> dict:
    lib = Library()
    lib.register("secret", "(-> Int Int)", lambda x: x * 1000 + 1)
    ws = [fake.start_worker(seed=1), fake.start_worker(seed=2),
          fake.start_worker(library=lib, seed=3, lie_rate=1.0)]
    b = broker.start("127.0.0.1", 0, workers=[(w.host, w.port) for w in ws], seed=7)
    counts = {"requests": 0, "right": 0, "wrong_as_checked": 0, "wrong_marked_unchecked": 0,
              "unverifiable": 0, "other_errors": 0}
    c = client.connect(b.host, b.port, timeout=30)
    try:
        for i in range(args.requests):
            counts["requests"] += 1
            try:
                value, stats = c.evaluate_with_stats("(+ 1 (secret %d))" % i)
            except ExathunkError as err:
                counts["unverifiable" if err.kind == "Unverifiable" else "other_errors"] += 1
                continue
            if value == i * 1000 + 2:
                counts["right"] += 1
            elif stats.get("verifiedBy") == "none":       # marked: nobody checked it
                counts["wrong_marked_unchecked"] += 1
            else:
                counts["wrong_as_checked"] += 1
    finally:
        c.close()
        b.stop(timeout=2)
        for w in ws:
            w.stop(timeout=2)
    return counts


def scenario_sybils(args) -> dict:
    honest = [fake.start_worker(seed=1 + i) for i in range(3)]
    b = broker.start("127.0.0.1", 0, workers=[(w.host, w.port) for w in honest], seed=7)
    sybils = []
    counts = {"requests": 0, "right": 0, "wrong": 0, "errors": 0}
    c = client.connect(b.host, b.port, timeout=30)
    try:
        for i in range(args.warmup):
            c.evaluate(_program(i)[0])
        sybils = [fake.start_worker(seed=10 + i, lie_rate=1.0) for i in range(5)]
        for s in sybils:
            c.register_worker(s.host, s.port)
        for i in range(1000, 1000 + args.requests):
            source, expected = _program(i)
            counts["requests"] += 1
            try:
                counts["right" if c.evaluate(source) == expected else "wrong"] += 1
            except ExathunkError:
                counts["errors"] += 1
        market = b.handler.market
        counts["honest_shut_out"] = sum(
            market.workers["%s:%d" % (h.host, h.port)].state != "active" for h in honest)
        counts["sybil_lies_told"] = sum(s.handler.lies for s in sybils)
    finally:
        c.close()
        b.stop(timeout=2)
        for w in honest + sybils:
            w.stop(timeout=2)
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("scenario", nargs="?", choices=("load", "sole-liar", "sybils", "all"),
                   default="all")
    p.add_argument("--clients", type=int, default=32, help="client threads (load; 32)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per client (load; default 20) or in all (sole-liar: "
                        "200, sybils: 600)")
    p.add_argument("--timeout-ms", type=int, default=60,
                   help="each request's wall-clock limit (load; default 60)")
    p.add_argument("--slow-delay", type=float, default=0.08,
                   help="seconds the slow worker sleeps per request (load; default 0.08)")
    p.add_argument("--warmup", type=int, default=5,
                   help="requests the honest workers serve before the Sybils join "
                        "(sybils; default 5)")
    args = p.parse_args(argv)
    if args.scenario in ("load", "all"):
        a = argparse.Namespace(**vars(args))
        a.requests = args.requests or 20
        print("load:", scenario_load(a), flush=True)
    if args.scenario in ("sole-liar", "all"):
        a = argparse.Namespace(**vars(args))
        a.requests = args.requests or 200
        print("sole-liar:", scenario_sole_liar(a), flush=True)
    if args.scenario in ("sybils", "all"):
        a = argparse.Namespace(**vars(args))
        a.requests = args.requests or 600
        print("sybils:", scenario_sybils(a), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
