"""``exathunk demo``: the README's main job, end to end on one machine.

Starts a RemoteExecutionService on a free loopback port, ships a handful of whole
programs to it (arithmetic, laziness, recursion, a lazy pipeline, a data type with case,
the prelude's Maybe, an instance the node implements in Python, errors with their
caret, a limit), prints each result with its round-trip time, and stops the server.
Exits non-zero if any program does not give the outcome it should.  ``--dask`` runs
programs (par-map among them) as Dask tasks on a LocalCluster instead
(``run_dask_demo``).
"""

from __future__ import annotations

import time

from .errors import EvaluationError, ExathunkError, LimitExceeded, TypeCheckError
from .values import Data, show_value

FIB = """(define (fib n)
  (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
(fib 25)"""

PIPELINE = """; the sum of the squares of the multiples of 3 below 300,000
(sum (map (lambda (x) (* x x))
          (filter (lambda (x) (= 0 (mod x 3)))
                  (range 0 300000))))"""

TREE = """(data Tree (Leaf) (Node Tree Int Tree))
(define (insert t k)
  (case t
    ((Leaf) (Node (Leaf) k (Leaf)))
    ((Node l x r) (cond ((< k x) (Node (insert l k) x r))
                        ((> k x) (Node l x (insert r k)))
                        (else t)))))
(define (to-list t)
  (case t ((Leaf) nil) ((Node l x r) (append (to-list l) (cons x (to-list r))))))
(to-list (foldl insert (Leaf) (list 5 2 8 1 9 3)))"""

# The node's own contract: a class, and an instance of it implemented in Python.
HASHABLE = "(class (Hashable a) (hash (-> a Int)) (hash-all (-> (List a) Int)))"
HASHABLE_DEFAULT = "(define (hash-all xs) (foldl (lambda (h x) (+ (* 31 h) (hash x))) 7 xs))"


def _crc32(text: str) -> int:
    import zlib
    return zlib.crc32(text.encode("utf-8"))


def _expected_hash_all(words) -> int:
    h = 7
    for w in words:
        h = 31 * h + _crc32(w)
    return h


# (title, source, limits, expected value or error class)
PROGRAMS = [
    ("arithmetic", "(+ 1 (/ 4 2))", {}, 3),
    ("laziness: or never forces bottom", "(or true bottom)", {}, True),
    ("laziness: an infinite list, taken", "(take 5 (iterate (lambda (x) (* 2 x)) 1))", {},
     [1, 2, 4, 8, 16]),
    ("recursion: fib 25", FIB, {}, 75025),
    ("a lazy pipeline through map/filter/range", PIPELINE, {},
     sum(x * x for x in range(0, 300000, 3))),
    ("show", '(show (list 1.5 -0.0 (/ 1.0 0.0)))', {}, "(list 1.5 -0.0 inf)"),
    ("a data type and case: a binary search tree", TREE, {}, [1, 2, 3, 5, 8, 9]),
    ("the prelude's Maybe and Pair", '(lookup 2 (zip (list 1 2 3) (list "a" "b" "c")))', {},
     Data("Just", ("b",))),
    ("an instance the node implements in Python (Hashable String)",
     '(hash-all (split " " "mobile computation"))', {},
     _expected_hash_all(["mobile", "computation"])),
    ("a type error, with its caret", "(* 4 true)", {}, TypeCheckError),
    ("a program that never stops, under max_steps",
     "(length (iterate (lambda (x) x) 0))", {"max_steps": 1_000_000}, LimitExceeded),
]


def demo_library():
    """The demo node's Library: the built-ins and prelude, plus a class Hashable whose
    String instance is Python's CRC-32 (a default method builds on it)."""
    from .library import Library
    lib = Library()
    lib.declare_class(HASHABLE[:-1] + " " + HASHABLE_DEFAULT + ")")
    lib.register_instance("Hashable", "String", hash=_crc32)
    return lib


def _announce(out, verbose: bool, title: str, source: str) -> str:
    """Show a program about to run (verbose: its title and source); returns the lead of
    its result line."""
    if verbose:
        out(f"\n== {title}")
        for line in source.splitlines():
            out(f"   {line}")
    return "=>" if verbose else f"{title}:"


def _report(out, verbose: bool, lead: str, outcome, expected, detail: str) -> bool:
    """Print one program's outcome (a value or an ExathunkError) against what it should
    be; ``detail`` goes in the parentheses ("1.23 ms").  Returns whether it was right."""
    if isinstance(outcome, ExathunkError):
        ok = isinstance(expected, type) and isinstance(outcome, expected)
        out(f"{lead} {type(outcome).__name__} ({detail}){'' if ok else '  UNEXPECTED'}")
        if verbose:
            out("\n".join("   " + line for line in outcome.render().splitlines()))
    else:
        ok = not isinstance(expected, type) and outcome == expected
        shown = show_value(outcome)
        out(f"{lead} {shown[:200]}{'...' if len(shown) > 200 else ''} ({detail})"
            f"{'' if ok else '  UNEXPECTED, wanted ' + repr(expected)}")
    return ok


def run_demo(verbose: bool = True) -> int:
    from . import server
    from .client import connect

    out = print
    started = time.perf_counter()
    handle = server.start(host="127.0.0.1", port=0, library=demo_library())
    failures = 0
    try:
        out(f"exathunk server listening on {handle.host}:{handle.port} "
            f"(started in {(time.perf_counter() - started) * 1e3:.0f} ms)")
        client = connect(handle.host, handle.port)
        try:
            for title, source, limits, expected in PROGRAMS:
                lead = _announce(out, verbose, title, source)
                t0 = time.perf_counter()
                try:
                    outcome = client.evaluate(source, **limits)
                except ExathunkError as err:
                    outcome = err
                ms = (time.perf_counter() - t0) * 1e3
                failures += not _report(out, verbose, lead, outcome, expected,
                                        f"{ms:.2f} ms")

            if verbose:
                out("\n== eight programs submitted at once, as futures")
            t0 = time.perf_counter()
            futures = [client.submit(f"(sum (range 0 {n * 100000}))") for n in range(1, 9)]
            values = [f.result(timeout=60) for f in futures]
            ms = (time.perf_counter() - t0) * 1e3
            wanted = [sum(range(n * 100000)) for n in range(1, 9)]
            ok = values == wanted
            failures += not ok
            lead = "=>" if verbose else "eight futures at once:"
            out(f"{lead} {values} ({ms:.2f} ms for all eight){'' if ok else '  UNEXPECTED'}")

            stats = client.stats()
        finally:
            client.close()
        if verbose:
            from .client import format_stats
            out("\n== the server's own statistics")
            out(format_stats(stats))
    finally:
        handle.stop()
    out(f"\nserver stopped; {len(PROGRAMS) + 1 - failures} of {len(PROGRAMS) + 1} "
        f"programs gave the expected outcome")
    return 1 if failures else 0


# ---- exathunk demo --dask ---------------------------------------------------------------

PAR_FIB = """(define (fib n)
  (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
(par-map fib (range 10 18))"""

# (title, source, limits, expected value or error class): run as Dask tasks.
DASK_PROGRAMS = [
    ("arithmetic", "(+ 1 (/ 4 2))", {}, 3),
    ("recursion: fib 25", FIB, {}, 75025),
    ("a data type and case: a binary search tree", TREE, {}, [1, 2, 3, 5, 8, 9]),
    ("an instance the workers implement in Python (routed by its Dask resource)",
     '(hash-all (split " " "mobile computation"))', {},
     _expected_hash_all(["mobile", "computation"])),
    ("par-map: eight sub-thunks, eight Dask tasks", PAR_FIB, {},
     [55, 89, 144, 233, 377, 610, 987, 1597]),
    ("par-map with equal elements: one task per distinct sub-program",
     "(par-map (lambda (x) (* x x)) (list 3 4 3 4 3))", {}, [9, 16, 9, 16, 9]),
    ("an error, raised by the Future as its class", "(head nil)", {}, EvaluationError),
    ("a program that never stops, under max_steps",
     "(length (iterate (lambda (x) x) 0))", {"max_steps": 1_000_000}, LimitExceeded),
]


def run_dask_demo(verbose: bool = True) -> int:
    """``exathunk demo --dask``: the programs as Dask tasks on a LocalCluster of two
    worker processes (loopback only, no dashboard) whose ExathunkPlugin installs the
    demo library; prints each result, the tasks it became and the workers they ran on."""
    import logging

    from distributed import Client, LocalCluster, get_task_stream

    from . import dask as xd

    out = print
    started = time.perf_counter()
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                           silence_logs=logging.CRITICAL)
    failures = 0
    try:
        client = Client(cluster, timeout=60)
        try:
            client.wait_for_workers(2, timeout=60)
            client.register_plugin(xd.ExathunkPlugin("exathunk.demo:demo_library"))
            info = client.scheduler_info(n_workers=-1)["workers"]
            names = {addr: str(w["name"]) for addr, w in info.items()}
            out(f"Dask LocalCluster at {cluster.scheduler_address}: "
                f"{len(info)} worker processes (started in "
                f"{(time.perf_counter() - started) * 1e3:.0f} ms)")
            if verbose:
                for addr, w in sorted(info.items(), key=lambda kv: str(kv[1]["name"])):
                    caps = ", ".join(r for r in sorted(w.get("resources") or {}))
                    out(f"   worker {w['name']} {addr}: {caps or 'no exathunk resources'}")
            library = demo_library()
            for title, source, limits, expected in DASK_PROGRAMS:
                lead = _announce(out, verbose, title, source)
                t0 = time.perf_counter()
                with get_task_stream(client) as stream:
                    future = xd.submit(client, source, library=library, **limits)
                    try:
                        outcome = future.result(timeout=120)
                    except ExathunkError as err:
                        outcome = err.with_source(source)
                ms = (time.perf_counter() - t0) * 1e3
                tasks = [t for t in stream.data if str(t["key"]).startswith(xd.KEY_PREFIX)]
                where = sorted({names.get(t["worker"], t["worker"]) for t in tasks})
                ran = (f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} on worker"
                       f"{'s' if len(where) != 1 else ''} {', '.join(where) or '?'}")
                failures += not _report(out, verbose, lead, outcome, expected,
                                        f"{ms:.2f} ms, {ran}")
                if verbose:
                    out(f"   key {future.key}")
        finally:
            client.close(timeout=30)
    finally:
        cluster.close(timeout=30)
    out(f"\ncluster stopped; {len(DASK_PROGRAMS) - failures} of {len(DASK_PROGRAMS)} "
        f"programs gave the expected outcome")
    return 1 if failures else 0
