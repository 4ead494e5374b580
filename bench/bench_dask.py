"""The Dask backend's per-task overhead, next to a bare ``dask.delayed`` task in the same run.

One LocalCluster (2 worker processes, 1 thread each, loopback, no dashboard; or an
existing scheduler with --scheduler).  Each round times, in a rotating order so that
neither side always goes first (interleaved rounds), the same number of tasks of each
kind, every task with a fresh key (a salt per round and task) so that nothing is
answered from a held result:

  bare       ``dask.delayed(_add)(salt, i)`` computed with ``client.compute``: a
             Python function adding two ints, the least a Dask task can be
  submit     ``client.submit(_add, salt, i)``: the same function without a graph (what
             exathunk.dask.submit itself calls), for reference
  exathunk   ``exathunk.dask.submit(client, program)`` of the already-compiled program
             ``(+ salt i)``: the task unpickles (and verifies) the Program and runs it
             in the engine
  +compile   the same from source text: it is compiled here first (uncached: a fresh
             source each time), as ``submit(client, "(+ salt i)")`` does

in three shapes:

  latency    one task at a time: submit, wait for its result, next (--batch tasks of
             each kind per round, the kinds taking turns task by task)
  batch      --batch tasks submitted at once, then all gathered
  par-map    one task whose program is ``(par-map (lambda (x) (+ salt x)) (range 0
             N))``: N sub-thunk tasks submitted from inside the running task; next to
             one bare task that submits N bare tasks through ``worker_client`` (so
             both include the parent task, per sub-task)

Per round and shape: the time per task of each kind, and the ratio exathunk / bare;
the table gives the median over rounds of each (the median of the per-round ratios,
not the ratio of medians), the extra microseconds per task over bare, and the ratio
to submit.

    python bench/bench_dask.py                  # the table; --help for the options
    python bench/bench_dask.py --rounds 5 --batch 32 --shapes latency,batch
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchkit  # noqa: E402,F401  (chooses the exathunk to import)

SHAPES = ("latency", "batch", "par-map")


def _add(a, b):
    return a + b


def _bare_fanout(salt, n):
    """A bare task that fans out n bare tasks from inside itself, as par-map does."""
    from distributed import worker_client
    with worker_client() as c:
        futures = [c.submit(_add, salt, i, key=f"bare-sub-{salt}-{i}") for i in range(n)]
        return c.gather(futures)


class Rig:
    def __init__(self, client, batch: int, fanout: int):
        import exathunk
        import exathunk.dask as xd
        self.exathunk, self.xd = exathunk, xd
        self.client = client
        self.batch = batch
        self.fanout = fanout
        self.salt = int(time.time() * 1000) % 1_000_000 * 1000

    def fresh(self) -> int:
        self.salt += 1
        return self.salt

    # -- one measurement: (seconds, tasks)
    def submit(self, shape: str):
        c, salt = self.client, self.fresh()
        t0 = time.perf_counter()
        if shape == "latency":
            c.submit(_add, salt, 1, key=f"submit-{salt}").result()
            n = 1
        elif shape == "batch":
            c.gather([c.submit(_add, salt, i, key=f"submit-{salt}-{i}")
                      for i in range(self.batch)])
            n = self.batch
        else:
            c.submit(_bare_fanout, salt, self.fanout, key=f"submit-{salt}").result()
            n = self.fanout
        return time.perf_counter() - t0, n

    def bare(self, shape: str):
        import dask
        c, salt = self.client, self.fresh()
        t0 = time.perf_counter()
        if shape == "latency":
            c.compute(dask.delayed(_add)(salt, 1, dask_key_name=f"bare-{salt}")).result()
            n = 1
        elif shape == "batch":
            futures = c.compute([dask.delayed(_add)(salt, i, dask_key_name=f"bare-{salt}-{i}")
                                 for i in range(self.batch)])
            c.gather(futures)
            n = self.batch
        else:
            c.compute(dask.delayed(_bare_fanout)(salt, self.fanout,
                                                 dask_key_name=f"bare-{salt}")).result()
            n = self.fanout
        return time.perf_counter() - t0, n

    def exathunk_run(self, shape: str, compile_here: bool):
        xd, c, salt = self.xd, self.client, self.fresh()
        if shape == "par-map":
            sources = [f"(par-map (lambda (x) (+ {salt} x)) (range 0 {self.fanout}))"]
        elif shape == "latency":
            sources = [f"(+ {salt} 1)"]
        else:
            sources = [f"(+ {salt} {i})" for i in range(self.batch)]
        if compile_here:
            work = sources
        else:
            work = [self.exathunk.compile(s) for s in sources]
        t0 = time.perf_counter()
        if shape == "latency":
            for w in work:
                xd.submit(c, w).result()
        elif shape == "batch":
            c.gather([xd.submit(c, w) for w in work])
        else:
            xd.submit(c, work[0]).result()
        n = len(work) if shape != "par-map" else self.fanout
        return time.perf_counter() - t0, n


def _start_cluster(workers: int, threads: int):
    from distributed import LocalCluster
    return LocalCluster(n_workers=workers, processes=True, threads_per_worker=threads,
                        host="127.0.0.1", dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                        silence_logs=logging.CRITICAL)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds (15)")
    ap.add_argument("--warm-up", type=int, default=2, help="untimed rounds first (2)")
    ap.add_argument("--batch", type=int, default=64,
                    help="tasks per round in the latency and batch shapes (64)")
    ap.add_argument("--fanout", type=int, default=32,
                    help="sub-thunks per round in the par-map shape (32)")
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help=f"which shapes, comma-separated ({','.join(SHAPES)})")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per worker (1)")
    ap.add_argument("--scheduler", metavar="ADDRESS",
                    help="use this running Dask scheduler instead of a LocalCluster")
    args = ap.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    bad = [s for s in shapes if s not in SHAPES]
    if bad or args.rounds < 1 or args.batch < 1 or args.fanout < 1:
        ap.error(f"unknown shape {bad[0]!r}" if bad else "rounds, batch and fanout are >= 1")
    try:
        from distributed import Client
    except ImportError:
        print("bench_dask needs dask and distributed: pip install 'exathunk[dask]'",
              file=sys.stderr)
        return 2
    import dask
    import distributed

    cluster = None if args.scheduler else _start_cluster(args.workers, args.threads)
    client = Client(args.scheduler or cluster, timeout=60)
    try:
        rig = Rig(client, args.batch, args.fanout)
        kinds = [("bare", lambda s: rig.bare(s)),
                 ("submit", lambda s: rig.submit(s)),
                 ("exathunk", lambda s: rig.exathunk_run(s, False)),
                 ("+compile", lambda s: rig.exathunk_run(s, True))]
        per_task = {(s, k): [] for s in shapes for k, _ in kinds}
        ratios = {(s, k): [] for s in shapes for k, _ in kinds[1:]}
        to_submit = {(s, k): [] for s in shapes for k, _ in kinds[2:]}
        for r in range(args.warm_up + args.rounds):
            for s in shapes:
                times = dict.fromkeys((k for k, _ in kinds), 0.0)
                # latency: the kinds take turns task by task; else block by block.
                steps = args.batch if s == "latency" else 1
                for j in range(steps):
                    turn = (r + j) % len(kinds)
                    for k, fn in kinds[turn:] + kinds[:turn]:   # rotate who goes first
                        seconds, n = fn(s)
                        times[k] += seconds / n / steps
                if r < args.warm_up:
                    continue
                for k, _ in kinds:
                    per_task[(s, k)].append(times[k])
                for k, _ in kinds[1:]:
                    ratios[(s, k)].append(times[k] / times["bare"])
                for k, _ in kinds[2:]:
                    to_submit[(s, k)].append(times[k] / times["submit"])
        info = client.scheduler_info(n_workers=-1)
        nworkers = len(info.get("workers", {}))
        print(f"dask {dask.__version__}, distributed {distributed.__version__}, "
              f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {nworkers} workers "
              f"x {args.threads} thread(s); {args.rounds} interleaved rounds "
              f"(+{args.warm_up} warm-up); batch {args.batch}, par-map fan-out {args.fanout}")
        print(f"{'shape':<9} {'kind':<9} {'median us/task':>15} {'ratio to bare':>14} "
              f"{'extra us/task':>14} {'ratio to submit':>16}")
        for s in shapes:
            bare = statistics.median(per_task[(s, "bare")])
            print(f"{s:<9} {'bare':<9} {bare * 1e6:>15.0f} {'1.00':>14} {'':>14}")
            for k, _ in kinds[1:]:
                med = statistics.median(per_task[(s, k)])
                ratio = statistics.median(ratios[(s, k)])
                vs = f"{statistics.median(to_submit[(s, k)]):>16.2f}" if k in \
                    ("exathunk", "+compile") else ""
                print(f"{'':<9} {k:<9} {med * 1e6:>15.0f} {ratio:>14.2f} "
                      f"{(med - bare) * 1e6:>14.0f} {vs}".rstrip())
    finally:
        client.close(timeout=30)
        if cluster is not None:
            cluster.close(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
