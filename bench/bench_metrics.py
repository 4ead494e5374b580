"""What observing requests costs: exathunk.metrics on the request path.

Run:  python bench/bench_metrics.py [--seconds S] [--rounds N] [--calls N]

Reports
- the cost of one ``NodeMetrics.observe`` (the per-request hook with metrics on), of the
  hook with the JSON request log as well (what the request pays: a tuple queued), of
  formatting and writing one line on the log's thread (to a null stream), and of one
  scrape, each in microseconds, next to an empty Python call;
- round trips/s of a cached ``client.evaluate("(+ 1 2)")`` against a node with metrics
  on and one with them off (and one with metrics and the JSON log), with 1 and 4
  concurrent clients.  Each node runs in its own process (as in production: clients do
  not share its GIL); the sides are interleaved, each round in a rotated order, and the
  ratio quoted is the median of the pairwise side/off ratios, since this shared
  machine's speed swings within seconds.  1.00 means no measurable cost; "off again", a
  second node without metrics, shows how far apart two equal sides come out (the noise);
- the in-process cost of the hook: ``ThriftServer._dispatch`` of a cached evaluate (no
  network) with the hook off and with metrics on, interleaved.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from exathunk import metrics, server  # noqa: E402
from exathunk.client import connect  # noqa: E402

SIDES = {"off": {}, "off again": {}, "metrics": {"metrics_port": 0},
         "metrics+json": {"metrics_port": 0, "log_format": "json"}}


def per_call_us(fn, calls: int) -> float:
    """Microseconds per call of fn(), best of 5 timed loops."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / calls * 1e6


def observe_costs(calls: int) -> dict:
    handler = server.ExecutionHandler(options=server.Options(steps_per_second=1e7))
    m = metrics.NodeMetrics(stats=handler.getStats)
    observe = m.observe
    both = metrics.observer(m, json_log=True)
    # The JSON lines go to a null stream, not the terminal.
    sink = io.StringIO()
    saved = sys.stderr
    out = {}
    out["empty call"] = per_call_us(lambda: None, calls)
    out["observe (metrics on)"] = per_call_us(
        lambda: observe("evaluate", "ok", 0.00004), calls)
    sys.stderr = sink
    try:
        small = max(1000, calls // 20)
        out["observe + JSON log (request)"] = per_call_us(
            lambda: both("evaluate", "ok", 0.00004, "127.0.0.1:5000", None), small)
        metrics.flush()
        sink.seek(0)
        sink.truncate()
        t = time.time()
        out["a JSON line (log thread)"] = per_call_us(
            lambda: metrics._write(metrics.format_line(t, "evaluate", "ok", 0.00004,
                                                       "127.0.0.1:5000", None)), small)
    finally:
        sys.stderr = saved
    for kind in ("evaluate", "getStats", "thunkWait", "submitEvalRequest"):
        for outcome in ("ok", "EvaluationError"):
            observe(kind, outcome, 0.001)
    out["one scrape (text)"] = per_call_us(m.text, 200)
    logging.getLogger("exathunk.requests").handlers.clear()
    handler.close()
    return out


def dispatch_costs(rounds: int, calls: int = 20000) -> tuple:
    """Microseconds per in-process ``ThriftServer._dispatch`` of a cached evaluate
    (decode, handler, encode; no network), hook off and on, interleaved: medians."""
    from exathunk import wire
    handler = server.ExecutionHandler(options=server.Options(steps_per_second=1e7))
    srv = server.ThriftServer(handler, "127.0.0.1", 0, handler.options)
    args = wire.Service.evaluate_args(evalRequest=wire.thrift.EvalRequest(source="(+ 1 2)"))
    body = wire.encode_message("evaluate", wire.CALL, 1, args)[4:]
    codec = wire.Codec()
    assert srv._dispatch(body, "127.0.0.1:1", codec)
    hooks = {"off": None, "metrics": metrics.observer(metrics.NodeMetrics(), False)}
    samples = {k: [] for k in hooks}
    diffs = []
    try:
        for _ in range(rounds):
            for label, hook in hooks.items():
                srv.observer = hook
                t0 = time.perf_counter()
                for _ in range(calls):
                    srv._dispatch(body, "127.0.0.1:1", codec)
                samples[label].append((time.perf_counter() - t0) / calls * 1e6)
            diffs.append(samples["metrics"][-1] - samples["off"][-1])
    finally:
        srv.close()
        handler.close()
    return (statistics.median(samples["off"]), statistics.median(samples["metrics"]),
            statistics.median(diffs))


def _spawn(side: str):
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", side],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"the {side} node did not start")
    return proc, int(line.split()[1])


def _serve(side: str) -> None:
    handle = server.start(workers=2, **SIDES[side])
    print("port", handle.port, flush=True)
    threading.Event().wait()


def rate(port: int, concurrency: int, seconds: float) -> float:
    """Cached evaluate round trips/s with ``concurrency`` clients, one connection each."""
    counts = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def worker(i):
        c = connect("127.0.0.1", port, timeout=30)
        try:
            c.evaluate("(+ 1 2)")
            start.wait()
            n = 0
            while not stop.is_set():
                c.evaluate("(+ 1 2)")
                n += 1
            counts[i] = n
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    return sum(counts) / (time.perf_counter() - t0)


def round_trips(seconds: float, rounds: int) -> list:
    procs = {side: _spawn(side) for side in SIDES}
    rows = []
    try:
        for concurrency in (1, 4):
            samples = {side: [] for side in SIDES}
            ratios = {side: [] for side in SIDES if side != "off"}
            order = list(SIDES)
            for k in range(rounds):
                # Each round in another order: no side always runs right after another.
                k %= len(order)
                got = {side: rate(procs[side][1], concurrency, seconds)
                       for side in order[k:] + order[:k]}
                for side, r in got.items():
                    samples[side].append(r)
                    if side != "off":
                        ratios[side].append(r / got["off"])
            rows.append((concurrency, {s: statistics.median(v) for s, v in samples.items()},
                         {s: statistics.median(v) for s, v in ratios.items()}))
    finally:
        for proc, _ in procs.values():
            proc.kill()
            proc.wait()
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bench_metrics.py",
        description="The cost of exathunk's request metrics and JSON log: microseconds "
                    "per observe(), and cached-evaluate round trips/s with metrics on "
                    "against off (1 and 4 clients, interleaved, median of pairwise "
                    "ratios).")
    p.add_argument("--seconds", type=float, default=0.4,
                   help="length of one rate sample (default 0.4)")
    p.add_argument("--rounds", type=int, default=9,
                   help="interleaved off/on pairs per client count (default 9)")
    p.add_argument("--calls", type=int, default=200_000,
                   help="observe() calls per timed loop (default 200000)")
    p.add_argument("--serve", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        _serve(args.serve)
        return 0
    if not metrics.available():
        print(metrics.INSTALL_HINT, file=sys.stderr)
        return 2
    print("cost per call (us, best of 5 loops):")
    for label, us in observe_costs(args.calls).items():
        print(f"  {label:28s} {us:8.3f}")
    off, on, diff = dispatch_costs(args.rounds)
    print(f"in-process dispatch of a cached evaluate (us): off {off:.2f}, metrics {on:.2f}, "
          f"median pairwise difference {diff:.2f}")
    print(f"cached evaluate round trips/s ({args.rounds} interleaved rounds of "
          f"{args.seconds:g} s; ratio = median of pairwise on/off):")
    for concurrency, medians, ratios in round_trips(args.seconds, args.rounds):
        line = f"  {concurrency} client{'s' if concurrency > 1 else ' '}  off {medians['off']:8.0f}"
        for side, ratio in ratios.items():
            line += f"   {side} {medians[side]:8.0f} (x{ratio:.3f})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
