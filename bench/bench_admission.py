"""Admission control under the two attacks of issue 13 (exathunk.admission).

connections: a node (its own process, default options: max_connections 256) while
  ``--held`` connections (default 300) each make a cheap call and then call again every
  ``--refresh`` seconds, reconnecting when the node closed them (harsher than one call
  every two minutes).  An honest client then makes ``--trials`` fresh connections, one
  ``evaluate`` each (socket timeout 5 s): the worst and median latency of connect +
  evaluate, and how many failed.
flood: a node (its own process; ``--max-thunks-per-client`` as given, default the
  node's 10,000) where client B submits one thunk and leaves it unfetched, then client A
  submits ``--flood`` thunks (default 100,000) without fetching any: how many A got
  accepted and refused, whether B's result is still fetchable, and whether B can still
  submit.

    python bench/bench_admission.py [connections|flood|both] [--held N] [--trials N]
        [--refresh S] [--flood N] [--max-thunks-per-client N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from exathunk import client, wire  # noqa: E402
from exathunk.errors import ExathunkError  # noqa: E402

NODE = """
import json, sys
from exathunk import server
h = server.start(workers=2, **json.loads(sys.argv[1]))
print(h.port, flush=True)
sys.stdin.read()
h.stop(2)
"""


def start_node(**options):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", NODE, json.dumps(options)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    port = int(proc.stdout.readline())
    return proc, port


def stop_node(proc) -> None:
    try:
        proc.stdin.close()
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def connections(args) -> dict:
    proc, port = start_node()
    stop = threading.Event()
    held = []
    try:
        for _ in range(args.held):
            c = client.connect("127.0.0.1", port, timeout=5)
            try:
                c.evaluate("(+ 1 1)")
            except ExathunkError:
                pass
            held.append(c)
        reconnects = [0]

        def attacker():
            while not stop.is_set():
                t0 = time.monotonic()
                for c in held:
                    if stop.is_set():
                        return
                    try:
                        c.evaluate("(+ 1 1)")
                    except ExathunkError:
                        reconnects[0] += 1     # closed to admit another: call again
                stop.wait(max(0.0, args.refresh - (time.monotonic() - t0)))

        thread = threading.Thread(target=attacker, daemon=True)
        thread.start()
        lat, failed = [], 0
        for i in range(args.trials):
            t0 = time.perf_counter()
            try:
                with client.connect("127.0.0.1", port, timeout=5) as c:
                    assert c.evaluate(f"(+ {i} 1)") == i + 1
                lat.append(time.perf_counter() - t0)
            except ExathunkError:
                failed += 1
            time.sleep(0.05)
        stop.set()
        thread.join(30)
        return {"held": args.held, "refresh_s": args.refresh, "trials": args.trials,
                "failed": failed,
                "worst_ms": round(max(lat) * 1e3, 1) if lat else None,
                "median_ms": round(statistics.median(lat) * 1e3, 2) if lat else None,
                "attacker_reconnects": reconnects[0]}
    finally:
        stop.set()
        for c in held:
            c.close()
        stop_node(proc)


def flood(args) -> dict:
    options = {}
    if args.max_thunks_per_client is not None:
        options["max_thunks_per_client"] = args.max_thunks_per_client
    proc, port = start_node(**options)
    try:
        a = client.connect("127.0.0.1", port, timeout=10)
        b = client.connect("127.0.0.1", port, timeout=10)
        req = wire.make_request("(+ 40 2)")
        kept = b._invoke("submitEvalRequest", evalRequest=req)
        flood_req = wire.make_request("(+ 1 1)")
        accepted = refused = 0
        t0 = time.perf_counter()
        for _ in range(args.flood):
            try:
                a._invoke("submitEvalRequest", evalRequest=flood_req)
                accepted += 1
            except wire.Overloaded:
                refused += 1
        seconds = time.perf_counter() - t0
        try:
            survived = wire.varcont_to_value(b._invoke("thunkGet", thunk=kept)) == 42
        except ExathunkError as err:
            survived = f"lost: {err.kind}: {err.message}"
        try:
            b._invoke("submitEvalRequest", evalRequest=req)
            b_submits = True
        except ExathunkError as err:
            b_submits = f"refused: {err.message}"
        a.close()
        b.close()
        return {"flood": args.flood, "max_thunks_per_client": args.max_thunks_per_client,
                "accepted": accepted, "refused": refused, "seconds": round(seconds, 1),
                "b_result_survives": survived, "b_can_submit": b_submits}
    finally:
        stop_node(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="both", choices=["connections", "flood", "both"])
    ap.add_argument("--held", type=int, default=300, help="connections the attacker holds")
    ap.add_argument("--refresh", type=float, default=1.0,
                    help="seconds between an attacker connection's calls")
    ap.add_argument("--trials", type=int, default=50, help="fresh honest connections")
    ap.add_argument("--flood", type=int, default=100_000, help="thunks client A submits")
    ap.add_argument("--max-thunks-per-client", type=int, default=None,
                    help="the node's quota (default: the node's own, 10,000)")
    args = ap.parse_args()
    if args.what in ("connections", "both"):
        print("connections", json.dumps(connections(args)), flush=True)
    if args.what in ("flood", "both"):
        print("flood", json.dumps(flood(args)), flush=True)


if __name__ == "__main__":
    main()
