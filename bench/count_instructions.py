"""Machine instructions per engine run, counted by valgrind (callgrind), for one build
or two side by side.  On a shared, noisy machine a change of a few percent in the
engine's speed is lost in the timing noise; the instruction count is exact and
repeatable (it is not time: a cache miss costs more than an add), so it tells whether
a change to the dispatch loop does less work.

    python bench/count_instructions.py                      # this checkout's build
    python bench/count_instructions.py --a /old/checkout --b /new/checkout --only sharing

Each side is a directory whose ``exathunk`` package (built in place) is imported.  A
workload (grammar/cases/bench_*.xt) is run 1 and 1 + N times in a fresh process under
callgrind; per run = (Ir(1 + N) - Ir(1)) / N, so start-up and compile cancel out.
Needs valgrind (``apt-get install -y valgrind``); about 20 s per workload and side.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "grammar" / "cases"
DEFAULT = ["fib25", "tak", "pipeline", "sharing", "tree"]

RUNNER = """
import sys, exathunk
program = exathunk.compile(open(sys.argv[1]).read())
for _ in range(int(sys.argv[2])):
    program.run(max_steps=10**11, max_heap=1 << 31)
"""


def instructions(side: Path, case: Path, runs: int, workdir: str) -> int:
    """Ir of a fresh process that compiles case and runs it ``runs`` times."""
    out = os.path.join(workdir, "callgrind.out")
    runner = os.path.join(workdir, "runner.py")
    Path(runner).write_text(RUNNER)
    env = dict(os.environ, PYTHONPATH=str(side))
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           sys.executable, runner, str(case), str(runs)],
                          env=env, cwd=workdir, capture_output=True, text=True, timeout=1800)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"count_instructions: {case.name} under valgrind failed "
                         f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def per_run(side: Path, case: Path, extra: int, workdir: str) -> float:
    return (instructions(side, case, 1 + extra, workdir)
            - instructions(side, case, 1, workdir)) / extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Prints, per workload, the instructions per run of each side and b/a.")
    parser.add_argument("--a", type=Path, default=ROOT,
                        help="the first side's directory (default: this checkout)")
    parser.add_argument("--b", type=Path, default=None,
                        help="a second side's directory, compared with the first")
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help=f"comma-separated workloads (default {','.join(DEFAULT)}; "
                             "the 10M stream takes minutes)")
    parser.add_argument("--runs", type=int, default=2,
                        help="extra runs counted per workload (default 2)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("count_instructions: needs valgrind (apt-get install -y valgrind)",
              file=sys.stderr)
        return 2
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sides = [args.a] + ([args.b] if args.b else [])
    for side in sides:
        if not (side / "exathunk").is_dir():
            parser.error(f"{side} has no exathunk package")
    names = [n for n in args.only.split(",") if n]
    for name in names:
        if not (CASES / f"bench_{name}.xt").is_file():
            parser.error(f"no workload {name!r} (grammar/cases/bench_{name}.xt)")
    print(f"{'workload':<10} " + " ".join(f"{'side ' + 'ab'[i]:>16}" for i in range(len(sides)))
          + ("      b/a" if args.b else ""))
    with tempfile.TemporaryDirectory() as workdir:
        for number, name in enumerate(names, 1):
            print(f"[count_instructions] {name} ({number}/{len(names)})", file=sys.stderr,
                  flush=True)
            counts = [per_run(side, CASES / f"bench_{name}.xt", args.runs, workdir)
                      for side in sides]
            line = f"{name:<10} " + " ".join(f"{c:>16,.0f}" for c in counts)
            if args.b:
                line += f"  {counts[1] / counts[0]:>7.3f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
