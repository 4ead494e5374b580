"""Side-by-side engine comparison: interleaved A/B runs, median of pairwise ratios.

    python bench/compare_engine.py [--pairs N] [--only fib,tak,...] [--no-ghc] ...

For each workload (fib 25, tak 18 12 6, the lazy pipeline, the sharing-heavy lazy
list, the 10,000,000-element stream, the 20,000-insertion tree; the programs are
grammar/cases/bench_*.xt) it times the engine against:

  * plain CPython (the same computation, recursive ones from their best start depth,
    gh-142183);
  * the reference interpreter (both on the reference's scaled-down input, so the pair
    is like for like);
  * for fib and tak, gcc -O2 C (bench/c/; the C program times itself in CPU time,
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID) around each of its repeated runs in one
    process, so process start-up is not counted);
  * ghc -O0, ghc -O2 and GHCi (Debian's ghc; bench/ghc/Bench.hs, the same algorithms,
    with lazy lists of its own type where the exathunk program uses lazy lists, and
    the idiomatic Prelude lists as extra rows).  The compiled programs are built once
    into a temporary directory; GHCi is `ghc -e`, the same source interpreted as
    bytecode.  The Haskell program times itself with getCPUTime around the forced
    computation, so compiling, loading and start-up are excluded, and its results are
    checked against the .xt file's expected value.  Without ghc these rows are skipped.

Except for the threads rows, both sides are timed in CPU time
(time.process_time for the engine, CPython and the reference), which the machine's
other load disturbs less than wall-clock time.  A and B alternate (A B A B ...) and the
table gives the median of the pairwise time ratios A/B with their range.  Then the
memory figures (GC share of a run over a retained 1M-element list, when the engine's
run stats report GC time; peak RSS of the 10M stream, in a fresh process), the issue's
speed and memory targets, each MET or MISSED with its figure, and last engine
throughput with one thread against two.  Progress goes to stderr (a tqdm bar when
tqdm is installed: pip install 'exathunk[bench]'), and every missed target is repeated
at the end as a MISSED line with its target.

Each run is saved as JSON (the ratios and the targets) in the benchmark storage folder,
$XDG_DATA_HOME/exathunk/bench/ratios/ (~/.local/share/exathunk/bench; --storage DIR,
--no-save), which ``exathunk bench --plot`` draws.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import benchkit  # noqa: E402  (chooses the exathunk to import)
import exathunk  # noqa: E402
from exathunk import benchstore  # noqa: E402
from exathunk.values import show_value  # noqa: E402

from conftest import (ENGINE_LIMITS, at_depth, best_start_depth, py_fib,  # noqa: E402
                      py_tak, py_tree, reference_run, run_c, workloads)

HERE = pathlib.Path(__file__).resolve().parent
GHC_SOURCE = HERE / "ghc" / "Bench.hs"
NO_GHC = "ghc not found: install Debian's ghc (apt-get install -y ghc) for the GHC rows"

# The Haskell program's inputs per workload: the same as the .xt programs' (fib 25,
# tak 18 12 6, range 0 300000, the first 200000 of fibs from 0 1, the first 10M of
# iterate from 0, 20000 insertions from seed 42), read at run time.
GHC_ARGS = {
    "fib": (25,), "tak": (18, 12, 6), "pipeline": (300_000,),
    "sharing": (200_000, 0, 1), "stream": (10_000_000, 0), "tree": (20_000, 42),
}
LIST_WORKLOADS = ("pipeline", "sharing", "stream")
HEAVY = ("stream",)

# The speed targets: (workload, B side, bound on the median A/B, kind).
SPEED_TARGETS = [
    ("fib", "CPython", 0.35, "target"),
    ("tak", "CPython", 0.35, "target"),
    *[(w, "CPython", 1.0, "target") for w in LIST_WORKLOADS],
    *[(w, "CPython", 0.5, "goal") for w in LIST_WORKLOADS],
    *[(w, "ghc -O0 hand L", 1.5, "goal") for w in LIST_WORKLOADS],
    # The engine against the reference interpreter (both on its scaled-down input) and
    # against gcc -O2 C (the C program's own CPU time).
    *[(w, "reference (scaled)", 0.02, "target") for w in
      ("fib", "tak", "pipeline", "sharing", "stream", "tree")],
    *[(w, "C gcc -O2", 20.0, "target") for w in ("fib", "tak")],
]
GC_SHARE_TARGET = 0.15
RSS_TARGET_MB = 40.0
RETAINED_LIST = "(let ((xs (range 0 1000000))) (+ (sum xs) (length xs)))"
RETAINED_EXPECTED = 1_000_000 * 999_999 // 2 + 1_000_000


def progress(message: str) -> None:
    benchkit.note(f"[compare_engine {time.strftime('%H:%M:%S')}] {message}")


def time_per_run(fn, min_seconds: float = 0.05, clock=time.process_time) -> float:
    """Seconds per call of fn on ``clock`` (CPU time by default), calling it until
    min_seconds have passed (at least once, at most 1000 times)."""
    count, start = 0, clock()
    while True:
        fn()
        count += 1
        elapsed = clock() - start
        if elapsed >= min_seconds or count >= 1000:
            return elapsed / count


def paired(a, b, pairs: int, desc: str = "A/B pairs") -> tuple[list[float], list[float]]:
    """Interleaved timings of a and b (each a zero-argument function giving seconds)."""
    ta, tb = [], []
    with benchkit.progress(total=pairs, desc=desc) as bar:
        for _ in range(pairs):
            ta.append(a())
            tb.append(b())
            bar.update(1)
    return ta, tb


RESULTS: dict[tuple[str, str], float] = {}     # (workload, B side) -> median A/B
ROWS: list[dict] = []                          # every row, as saved
TARGETS: list[dict] = []                       # every target's verdict, as saved
SURPRISES: list[str] = []


def row(label, a_name, b_name, ta, tb, target="", clock="cpu"):
    ratios = sorted(x / y for x, y in zip(ta, tb))
    med = statistics.median(ratios)
    print(f"{label:<9} {a_name:<16} {statistics.median(ta) * 1e3:>10.3f} ms  "
          f"{b_name:<20} {statistics.median(tb) * 1e3:>10.3f} ms  {clock:<4} "
          f"{len(ratios):>3}  {med:>9.4f}  [{ratios[0]:.4f} .. {ratios[-1]:.4f}]  {target}",
          flush=True)
    RESULTS[(label, b_name)] = med
    ROWS.append({"workload": label, "a": a_name, "b": b_name, "median": med,
                 "low": ratios[0], "high": ratios[-1], "n": len(ratios), "clock": clock,
                 "a_median_s": statistics.median(ta), "b_median_s": statistics.median(tb)})
    return med


def header() -> None:
    print(f"{'workload':<9} {'A':<16} {'A median':>13}  {'B':<20} {'B median':>13}  "
          f"{'clk':<4} {'n':>3}  {'A/B med':>9}  range")


def target_note(name: str, b_name: str) -> str:
    notes = [f"{kind} <= {bound}" for w, b, bound, kind in SPEED_TARGETS
             if w == name and b == b_name]
    return "; ".join(notes)


# ---- GHC -------------------------------------------------------------------------------

class Ghc:
    """Debian's ghc: Bench.hs compiled at -O0 and -O2 into a temporary directory, and
    run interpreted (GHCi's bytecode interpreter, through ghc -e)."""

    def __init__(self, ghc: str, tmp: pathlib.Path):
        self.ghc, self.tmp = ghc, tmp
        self.version = subprocess.run([ghc, "--numeric-version"], capture_output=True,
                                      text=True, check=True, timeout=60).stdout.strip()
        self.exes = {}
        for opt in ("-O0", "-O2"):
            progress(f"compiling bench/ghc/Bench.hs with ghc {opt}")
            out = tmp / f"o{opt[-1]}"
            exe = tmp / f"bench{opt}"
            subprocess.run([ghc, opt, "-outputdir", str(out), "-o", str(exe),
                            str(GHC_SOURCE)], check=True, capture_output=True, text=True,
                           timeout=600)
            self.exes[f"ghc {opt}"] = exe
        # An empty output directory of its own: GHCi loads no object code, interprets.
        self.ghci_dir = tmp / "ghci"
        self.ghci_dir.mkdir()

    def command(self, side: str, argv: list[str]) -> list[str]:
        if side == "GHCi":
            expr = f"System.Environment.withArgs {json.dumps(argv)} main"
            return [self.ghc, "-ignore-dot-ghci", "-fbyte-code", "-outputdir",
                    str(self.ghci_dir), str(GHC_SOURCE), "-e", expr]
        return [str(self.exes[side]), *argv]

    def run(self, side: str, name: str, variant: str, samples: int,
            min_ms: int) -> tuple[list[int], list[float]]:
        """(results, CPU seconds per call) of ``samples`` timings in one process."""
        argv = [name, variant, str(samples), str(min_ms), *map(str, GHC_ARGS[name])]
        done = subprocess.run(self.command(side, argv), capture_output=True, text=True,
                              timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"{side} {name} {variant} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-500:]}")
        results, seconds = [], []
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "run":
                results.append(int(parts[1]))
                seconds.append(int(parts[2]) / 1e12)
        if len(seconds) != samples:
            raise RuntimeError(f"{side} {name} {variant}: expected {samples} timings, "
                               f"got {done.stdout!r}")
        return results, seconds


def find_ghc(args) -> str | None:
    if args.no_ghc:
        return None
    ghc = args.ghc or shutil.which("ghc")
    if ghc is None:
        print(NO_GHC, flush=True)
        return None
    return ghc


def ghc_rows(ghc: Ghc, w, engine_cpu, pairs: int, sides: list[str]) -> None:
    heavy = w.name in HEAVY
    samples, min_ms = (1, 0) if heavy else (3, 50)
    variants = ["hand", "prelude"] if w.name in LIST_WORKLOADS else ["hand"]
    for variant in variants:
        for side in sides:
            b_name = f"{side} {'hand L' if variant == 'hand' else 'Prelude []'}"
            progress(f"{w.name}: engine vs {b_name}, {pairs} pairs")
            values: set[int] = set()

            def hs():
                results, seconds = ghc.run(side, w.name, variant, samples, min_ms)
                values.update(results)
                return statistics.median(seconds)
            try:
                ta, tb = paired(engine_cpu, hs, pairs, f"{w.name} vs {b_name}")
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"{w.name:<9} {b_name}: not measured: {exc}", flush=True)
                SURPRISES.append(f"{w.name} {b_name} failed: {exc}")
                continue
            if {str(v) for v in values} != {w.expected}:
                message = (f"{w.name} {b_name}: VALUE MISMATCH: Haskell gave "
                           f"{sorted(values)}, exathunk {w.expected}")
                print(message, flush=True)
                SURPRISES.append(message)
                continue
            row(w.name, "engine", b_name, ta, tb, target_note(w.name, b_name))


# ---- memory ----------------------------------------------------------------------------

# The peak RSS is /proc/self/status's VmHWM, the high-water mark of this process's own
# memory map: ru_maxrss would not do, Linux carries it across exec from the process
# that forked (here this script's, of 100 MB and more by then).
RSS_SCRIPT = r"""
import json, resource, sys
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import exathunk
source = open(sys.argv[1], encoding="utf-8").read()
program = exathunk.compile(source)
before = peak_kb()
value, stats = program.run_with_stats(max_steps=10**12)
after = peak_kb()
print(json.dumps({"value": str(value), "before_kb": before, "after_kb": after,
                  "peak_heap": stats.get("peak_heap")}))
"""


def stream_rss(w) -> dict:
    """Peak RSS of a fresh Python process that imports exathunk, compiles
    the 10M stream and runs it; and the same high-water mark just before the run."""
    package_root = pathlib.Path(exathunk.__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root),
                                                      env.get("PYTHONPATH")]))
    with tempfile.NamedTemporaryFile("w", suffix=".xt", delete=False) as f:
        f.write(w.source)
    try:
        done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, f.name], env=env,
                              capture_output=True, text=True, check=True, timeout=600)
    finally:
        os.unlink(f.name)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["value"] != w.expected:
        SURPRISES.append(f"stream in the RSS subprocess gave {out['value']}")
    return out


GC_TIME_KEYS = ("gc_time", "gc_seconds", "gc_s")


GC_SHARE_RUNS = 5     # one run's share varies with the page faults of its first heap


def retained_gc_share() -> tuple[float | None, dict]:
    """GC share of a run of a retained 1M-element list (the median of GC_SHARE_RUNS runs
    in this process, with that run's stats and every run's share under "shares"), when
    the run stats give GC time (seconds under one of GC_TIME_KEYS, or nanoseconds under
    gc_ns)."""
    program = exathunk.compile(RETAINED_LIST)
    runs = []
    for _ in range(GC_SHARE_RUNS):
        value, stats = program.run_with_stats(**ENGINE_LIMITS)
        assert value == RETAINED_EXPECTED, value
        gc = next((stats[k] for k in GC_TIME_KEYS if k in stats), None)
        if gc is None and "gc_ns" in stats:
            gc = stats["gc_ns"] / 1e9
        if gc is None or not stats.get("time"):
            return None, stats
        runs.append((gc / stats["time"], stats))
    runs.sort(key=lambda run: run[0])
    share, stats = runs[len(runs) // 2]
    return share, dict(stats, shares=[r[0] for r in runs])


# ---- the targets -----------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def print_targets(memory: dict) -> None:
    def line(kind, name, what, bound, figure="", result=""):
        print(f"  {kind:<6} {name:<9} {what:<27} <= {bound:<6} {figure:>9}  {result}")
        verdict_word = result.split()[0] if result else ""
        TARGETS.append({"kind": kind, "workload": name, "what": what, "bound": bound,
                        "figure": figure, "verdict": verdict_word,
                        "b": what[len("engine/"):] if what.startswith("engine/") else None})

    skipped = "SKIPPED (not measured in this run)"
    print()
    print("targets (the speed issue; speed figures are median engine/B time ratios, "
          "CPU time)")
    for name, b_name, bound, kind in SPEED_TARGETS:
        med = RESULTS.get((name, b_name))
        if med is None:
            line(kind, name, f"engine/{b_name}", bound, "", skipped)
        else:
            line(kind, name, f"engine/{b_name}", bound, f"{med:.4f}", verdict(med <= bound))
    what, bound = "GC share, retained 1M list", f"{GC_SHARE_TARGET:.0%}"
    share, stats = memory.get("gc", (None, None))
    if stats is None:
        line("target", "memory", what, bound, "", skipped)
    elif share is None:
        line("target", "memory", what, bound, "?",
             f"UNMEASURED: the run stats report no GC time (keys: "
             f"{', '.join(sorted(stats))}; gc_runs {stats.get('gc_runs')}, peak_heap "
             f"{stats.get('peak_heap', 0) / 2**20:.1f} MiB)")
    else:
        line("target", "memory", what, bound, f"{share:.1%}",
             verdict(share <= GC_SHARE_TARGET)
             + f"  (median of {len(stats['shares'])} runs, "
               f"{min(stats['shares']):.1%} .. {max(stats['shares']):.1%}; "
               f"{stats['gc_runs']} collections, {stats.get('major_gc_runs', '?')} major; "
               f"{stats['time'] * 1e3:.0f} ms a run)")
    what, bound = "peak RSS, 10M stream", f"{RSS_TARGET_MB:.0f} MB"
    rss = memory.get("rss")
    if rss is None:
        line("target", "memory", what, bound, "", skipped)
    else:
        peak, before = rss["after_kb"] / 1024, rss["before_kb"] / 1024
        line("target", "memory", what, bound, f"{peak:.1f} MB",
             f"{verdict(peak <= RSS_TARGET_MB)}  (whole process; {before:.1f} MB of it "
             f"before the run: Python, exathunk, the compile; +{peak - before:.1f} MB "
             f"during it)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Needs gcc for the C rows and, optionally, Debian's ghc for the GHC rows. "
               "A run with --pairs 5 takes some five minutes on 2 cores, most of it in "
               "the stream's rows (GHCi: about 10 s a run; --no-ghci skips those).")
    parser.add_argument("--pairs", type=int, default=7,
                        help="A/B pairs per row (the stream: max(3, pairs // 2)); "
                             "default 7")
    parser.add_argument("--only", default="",
                        help="comma-separated workload names, of: fib, tak, pipeline, "
                             "sharing, stream, tree")
    parser.add_argument("--no-ghc", action="store_true",
                        help="skip the ghc -O0 / -O2 and GHCi rows")
    parser.add_argument("--no-ghci", action="store_true",
                        help="skip only the GHCi rows (the slowest: about 10 s per "
                             "stream run)")
    parser.add_argument("--ghc", default=None, metavar="PATH",
                        help="the ghc executable (default: ghc on PATH)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference-interpreter rows")
    parser.add_argument("--no-c", action="store_true", help="skip the gcc -O2 C rows")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the memory figures (GC share, stream peak RSS; "
                             "with --only, measured when it names stream)")
    parser.add_argument("--no-threads", action="store_true",
                        help="skip the one-thread against two-threads rows")
    parser.add_argument("--storage", metavar="DIR",
                        help="save this run's ratios and targets as JSON in DIR/ratios/ "
                             "(default $XDG_DATA_HOME/exathunk/bench, i.e. "
                             "~/.local/share/exathunk/bench; exathunk bench --plot draws "
                             "them)")
    parser.add_argument("--no-save", action="store_true", help="do not save this run")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    only = set(filter(None, args.only.split(",")))
    everything = workloads()
    unknown = only - {w.name for w in everything}
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    chosen = [w for w in everything if not only or w.name in only]

    with tempfile.TemporaryDirectory(prefix="exathunk-ghc-") as tmp:
        ghc = None
        ghc_path = find_ghc(args)
        if ghc_path is not None:
            try:
                ghc = Ghc(ghc_path, pathlib.Path(tmp))
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", "") or exc
                print(f"ghc could not build bench/ghc/Bench.hs, skipping the GHC rows: "
                      f"{str(detail).strip()[-500:]}", flush=True)
        run_all(args, chosen, ghc, memory=not args.no_memory and (not only
                                                                  or "stream" in only))
    print_missed()
    if not args.no_save:
        path = benchstore.save_ratio_run(
            args.storage or benchstore.default_storage(), ROWS, TARGETS,
            {"python": sys.version.split()[0], "ghc": ghc.version if ghc else None,
             "pairs": args.pairs, "only": sorted(only)})
        print(f"saved this run's ratios in {path}", file=sys.stderr)
    return 0


def print_missed() -> None:
    """Every missed target and goal, one clear line each, with its bound."""
    missed = [t for t in TARGETS if t["verdict"] == "MISSED"]
    print()
    if not missed:
        measured = sum(t["verdict"] == "MET" for t in TARGETS)
        print(f"no target missed ({measured} measured, every one MET)")
    for t in missed:
        print(benchkit.missed(f"{t['kind']} {t['workload']} {t['what']}", t["figure"],
                              f"<= {t['bound']}"))


def run_all(args, chosen, ghc, memory: bool) -> None:
    depths = {}
    progress("finding the CPython start depths")
    if any(w.name == "fib" for w in chosen):
        depths["fib"] = best_start_depth(py_fib, (25,), rounds=1)
    if any(w.name == "tak" for w in chosen):
        depths["tak"] = best_start_depth(py_tak, (18, 12, 6), rounds=1)
    if any(w.name == "tree" for w in chosen):
        depths["tree"] = best_start_depth(py_tree, (), rounds=1)
    print(f"python {sys.version.split()[0]}; CPython start depths: {depths}; "
          + (f"ghc {ghc.version}" if ghc else "no ghc"))
    print("clk: cpu = both sides CPU time (process_time / getCPUTime); wall = both "
          "sides wall-clock time")
    header()
    ghc_sides = ["ghc -O0", "ghc -O2"] + ([] if args.no_ghci else ["GHCi"])

    for w in chosen:
        program = exathunk.compile(w.source)
        assert show_value(program.run(**ENGINE_LIMITS)) == w.expected, w.name
        heavy = w.name in HEAVY
        pairs = max(3, args.pairs // 2) if heavy else args.pairs
        min_s = 0.0 if heavy else 0.05

        def engine_cpu():
            return time_per_run(lambda: program.run(**ENGINE_LIMITS), min_s)

        if w.python_recursive:
            depth = depths[w.name]

            def py():
                return time_per_run(lambda: at_depth(depth, w.python), min_s)
        else:
            def py():
                return time_per_run(w.python, min_s)
        assert str(w.python()) == w.expected
        progress(f"{w.name}: engine vs CPython, {pairs} pairs")
        row(w.name, "engine", "CPython", *paired(engine_cpu, py, pairs,
                                                 f"{w.name} vs CPython"),
            target_note(w.name, "CPython"))

        if not args.no_reference:
            small = exathunk.compile(w.small_source)
            assert small.run(**ENGINE_LIMITS) == w.small_expected
            assert reference_run(w.small_source) == w.small_expected

            def engine_small():
                return time_per_run(lambda: small.run(**ENGINE_LIMITS), 0.05)

            def ref():
                return time_per_run(lambda: reference_run(w.small_source), 0.0)
            progress(f"{w.name}: engine vs the reference interpreter (scaled)")
            row(w.name, "engine (scaled)", "reference (scaled)",
                *paired(engine_small, ref, max(3, pairs // 2), f"{w.name} vs reference"),
                f"{target_note(w.name, 'reference (scaled)')}; {w.scale}")

        if w.c and not args.no_c:
            c_name, c_args = w.c

            def c():
                result, median_s, _ = run_c(c_name, c_args, 21)
                assert str(result) == w.expected
                return median_s
            progress(f"{w.name}: engine vs C")
            row(w.name, "engine", "C gcc -O2", *paired(engine_cpu, c, pairs,
                                                       f"{w.name} vs C"),
                target_note(w.name, "C gcc -O2"))

        if ghc is not None:
            ghc_rows(ghc, w, engine_cpu, pairs, ghc_sides)

    figures = {}
    if memory:
        progress("memory: GC share of a retained 1M-element list")
        figures["gc"] = retained_gc_share()
        stream = next((w for w in workloads() if w.name == "stream"), None)
        progress("memory: peak RSS of the 10M stream in a fresh process")
        try:
            figures["rss"] = stream_rss(stream)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            SURPRISES.append(f"stream RSS not measured: {exc}")
    print_targets(figures)
    if SURPRISES:
        print()
        print("surprises:")
        for s in SURPRISES:
            print(f"  {s}")

    if not args.no_threads:
        print()
        header()
        progress("threads: engine throughput, one thread against two")
        threads_row(args.pairs)


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
              "batch time; ideal 0.5 on 2 idle cores", clock="wall")
    sha = lambda: hashlib.sha256(data).digest()  # noqa: E731
    control = row("control", "sha256 2 thr", "sha256 1 thread",
                  *paired(batch(2, sha, bool), batch(1, sha, bool), pairs),
                  "GIL-free control", clock="wall")
    print(f"two-thread throughput speed-up: engine {1 / med:.2f}x, "
          f"control {1 / control:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
