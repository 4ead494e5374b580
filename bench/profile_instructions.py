"""The engine's measured instruction profile on the bench programs (grammar/cases/bench_*.xt):
how often each opcode is dispatched, and the commonest pairs and triples of opcodes
dispatched one after another in straight-line execution (a thunk entry, a return or an
unknown application breaks a chain), plus the run loop's mode switches per program.
It is the evidence for picking superinstructions.

    python bench/profile_instructions.py [--top 25] [--only pipeline,sharing]

Counting needs an engine built with EXATHUNK_PROFILE=1 (the normal build has no
counters, so its dispatch loop pays nothing).  By default this script builds such an
engine itself into a scratch directory (--build-dir; about a minute) and loads it in
place of exathunk._core for this process only; --in-place uses the engine already
built in the checkout (it must be a profiling build:
``EXATHUNK_PROFILE=1 python setup.py build_ext --inplace -f``).

It profiles the checkout's own source (this folder's parent, whether or not an exathunk
is installed too): the profiling engine is built from it.  It has no target to meet.
Progress goes to stderr (a tqdm bar with pip install 'exathunk[bench]').
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit  # noqa: E402
CASES = sorted((ROOT / "grammar" / "cases").glob("bench_*.xt"))
LIMITS = {"max_steps": 10**12, "max_heap": 1 << 31, "max_depth": 1 << 22}


def build_profiling_engine(build_dir: Path) -> Path:
    """Build exathunk._core with EXATHUNK_PROFILE=1 under build_dir: the .so's path."""
    env = dict(os.environ, EXATHUNK_PROFILE="1")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--force",
                    "--build-lib", str(build_dir / "lib"), "--build-temp", str(build_dir / "temp")],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    found = glob.glob(str(build_dir / "lib" / "exathunk" / "_core*.so"))
    if not found:
        raise SystemExit(f"the profiling build left no _core*.so under {build_dir}")
    return Path(found[0])


def load_engine(so_path: Path):
    """Import the extension at so_path as exathunk._core, before exathunk itself, so that
    the package (taken from the checkout) uses it."""
    spec = importlib.util.spec_from_file_location("exathunk._core", so_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["exathunk._core"] = module
    spec.loader.exec_module(module)
    return module


def profile(core, program) -> dict:
    core.profile_reset()
    program.run(**LIMITS)
    return core.profile_counts()


def name_of(ops, seq) -> str:
    return " ".join(ops(o).name for o in seq)


def report(title: str, counts: dict, top: int) -> None:
    from exathunk.opcodes import Op
    ops = Counter(counts["ops"])
    total = sum(ops.values())
    pairs = Counter(counts["pairs"])
    triples = Counter(counts["triples"])
    print(f"== {title}: {total:,} instructions dispatched; mode switches: "
          + ", ".join(f"{k} {v:,}" for k, v in counts["modes"].items()))
    for label, table in (("opcodes", Counter({(k,): v for k, v in ops.items()})),
                         ("pairs", pairs), ("triples", triples)):
        print(f"  -- {label} (share of all dispatches)")
        for seq, n in table.most_common(top):
            print(f"    {n:>14,}  {n / total:6.1%}  {name_of(Op, seq)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=20, help="rows per table (default 20)")
    parser.add_argument("--only", help="comma-separated bench names (fib25, pipeline, ...)")
    parser.add_argument("--in-place", action="store_true",
                        help="use the checkout's engine (a profiling build) instead of building one")
    parser.add_argument("--build-dir", type=Path,
                        help="where to build the profiling engine (default: a scratch directory)")
    args = parser.parse_args(argv)
    names = [p.stem.removeprefix("bench_") for p in CASES]
    wanted = set(args.only.split(",")) if args.only else None
    if wanted and wanted - set(names):
        parser.error(f"--only: unknown bench program(s) {', '.join(sorted(wanted - set(names)))}"
                     f" (of: {', '.join(names)})")
    # The checkout's source, first: the engine profiled is built from it.
    sys.path.insert(0, str(ROOT))
    if args.in_place:
        from exathunk import _core as core
    else:
        build_dir = args.build_dir or Path(tempfile.mkdtemp(prefix="exathunk-profile-"))
        benchkit.note(f"building a profiling engine into {build_dir} (about a minute)")
        core = load_engine(build_profiling_engine(build_dir))
    import exathunk
    if core.profile_counts() is None:
        raise SystemExit("this engine was built without EXATHUNK_PROFILE=1: it counts nothing")
    every = {"ops": Counter(), "pairs": Counter(), "triples": Counter(), "modes": Counter()}
    for path in benchkit.progress(CASES, desc="bench programs"):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        counts = profile(core, exathunk.compile(path.read_text()))
        report(name, counts, args.top)
        for key in every:
            every[key].update(counts[key])
    if not wanted or len(wanted) > 1:
        report("all the bench programs", every, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
