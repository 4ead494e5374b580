"""Benchmarks as a product: ``exathunk bench`` saves every run in its storage folder,
``--compare`` prints the change against the last run, ``--plot`` draws the history and
the ratios against the peers; compare_engine.py saves its ratios there too; every
script in bench/ has a working --help, flags missed targets, shows progress without
tqdm; the C row reports the C program's own time; a checkout's exathunk finds its IDL.

Each benchmark run here is a tiny selection (CPython's compile() of one expression),
into a temporary storage folder: nothing is measured for its own sake.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TINY = ["--suite", "compile", "-k", "test_cpython_compile and arith", "--dir", str(BENCH)]
SCRIPTS = ["compare_engine.py", "market_sim.py", "bench_service.py", "bench_compile.py",
           "bench_broker.py", "profile_instructions.py", "bench_cancel.py",
           "bench_subthunks.py", "bench_dask.py", "bench_auth.py", "bench_metrics.py",
           "bench_broker_faults.py", "count_instructions.py", "bench_admission.py"]


def env(**extra) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH")]))
    e.update(extra)
    return e


def exathunk_bench(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exathunk", "bench", *args],
                          capture_output=True, text=True, timeout=timeout, env=env(),
                          cwd=kw.get("cwd", ROOT))


def saved(storage: Path) -> list[Path]:
    return sorted(p for p in storage.glob("*/[0-9][0-9][0-9][0-9]_*.json")
                  if p.parent.name != "ratios")


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """A storage folder with two saved runs of the tiny selection."""
    folder = tmp_path_factory.mktemp("bench-storage")
    for _ in range(2):
        done = exathunk_bench(*TINY, "--storage", str(folder))
        assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_every_run_is_saved_in_the_storage_folder(storage):
    runs = saved(storage)
    assert [p.name[:4] for p in runs] == ["0001", "0002"]
    data = json.loads(runs[-1].read_text())
    names = [b["name"] for b in data["benchmarks"]]
    assert names == ["test_cpython_compile[arith]"]
    assert data["benchmarks"][0]["stats"]["median"] > 0


def test_default_storage_is_under_xdg_data_home(tmp_path):
    from exathunk import benchstore
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path)
    try:
        assert benchstore.default_storage() == str(tmp_path / "exathunk" / "bench")
    finally:
        if old is None:
            del os.environ["XDG_DATA_HOME"]
        else:
            os.environ["XDG_DATA_HOME"] = old
    done = subprocess.run([sys.executable, "-m", "exathunk", "bench", *TINY],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=env(XDG_DATA_HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert len(saved(tmp_path / "exathunk" / "bench")) == 1


def test_compare_shows_the_change_against_the_last_run(storage):
    before = saved(storage)
    done = exathunk_bench(*TINY, "--storage", str(storage), "--compare")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(saved(storage)) == len(before) + 1          # the compared run is saved too
    lines = done.stdout.splitlines()                       # after pytest's own table
    top = next(i for i, line in enumerate(lines)
               if line.split() == ["benchmark", "last", "now", "change"])
    row = next(line for line in lines[top:] if line.startswith("test_cpython_compile[arith]"))
    assert "%" in row and ("+" in row or "-" in row)
    assert f"last: {before[-1]}" in done.stdout
    assert "slower beyond noise" in done.stdout


def test_compare_table_flags_a_slower_benchmark():
    from exathunk.benchstore import Run, compare_runs
    last = Run(Path("a.json"), "1", {"x": 1.0, "y": 1.0, "gone": 1.0},
               {"x": 0.01, "y": 0.01, "gone": 0})
    now = Run(Path("b.json"), "2", {"x": 1.5, "y": 1.01, "new": 2.0},
              {"x": 0.01, "y": 0.01, "new": 0})
    lines, slower = compare_runs(last, now)
    assert slower == 1
    x = next(line for line in lines if line.startswith("x "))
    y = next(line for line in lines if line.startswith("y "))
    assert "+50.0%" in x and "SLOWER" in x
    assert "SLOWER" not in y                                # 1% is within the noise
    assert any("(new)" in line for line in lines) and any("(gone)" in line for line in lines)


def test_compare_refuses_quick():
    done = exathunk_bench(*TINY, "--quick", "--compare")
    assert done.returncode == 2
    assert "--compare needs a timed, saved run" in done.stderr
    assert "Traceback" not in done.stderr


def test_compare_engine_saves_its_ratios(storage):
    done = subprocess.run(
        [sys.executable, str(BENCH / "compare_engine.py"), "--only", "pipeline", "--pairs",
         "1", "--no-ghc", "--no-reference", "--no-threads", "--no-memory",
         "--storage", str(storage)],
        capture_output=True, text=True, timeout=300, env=env())
    assert done.returncode == 0, done.stderr
    (path,) = (storage / "ratios").glob("0001_*.json")
    data = json.loads(path.read_text())
    (row,) = data["ratios"]
    assert (row["workload"], row["a"], row["b"]) == ("pipeline", "engine", "CPython")
    assert row["median"] > 0
    verdicts = {(t["workload"], t["what"]): t["verdict"] for t in data["targets"]}
    assert verdicts[("pipeline", "engine/CPython")] in ("MET", "MISSED")
    assert verdicts[("fib", "engine/CPython")] == "SKIPPED"
    # A missed target is repeated as a MISSED line with its bound; else it says none was.
    missed = [t for t in data["targets"] if t["verdict"] == "MISSED"]
    for t in missed:
        assert f"MISSED {t['kind']} {t['workload']} {t['what']}: " in done.stdout
        assert f"(target <= {t['bound']})" in done.stdout
    if not missed:
        assert "no target missed" in done.stdout


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_writes_an_image_of_the_history(storage, tmp_path, suffix):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"history.{suffix}"
    done = exathunk_bench("--storage", str(storage), "--plot", str(out))
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    if suffix == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    else:
        text = data.decode("utf-8")
        assert "<svg" in text and text.rstrip().endswith("</svg>")
        assert "test_cpython_compile[arith]" in text       # the legend names the series
    assert "bench run(s)" in done.stdout


def test_plot_without_matplotlib_names_the_extra(storage, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from exathunk.cli import main\n"
            f"sys.exit(main(['bench', '--storage', {str(storage)!r}, '--plot', "
            f"{str(tmp_path / 'x.png')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env())
    assert done.returncode == 2
    assert "pip install 'exathunk[plot]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_plot_needs_an_image_suffix_and_saved_runs(tmp_path):
    done = exathunk_bench("--storage", str(tmp_path), "--plot", str(tmp_path / "x.pdf"))
    assert done.returncode == 2 and ".svg or .png" in done.stderr
    if importlib.util.find_spec("matplotlib") is not None:
        done = exathunk_bench("--storage", str(tmp_path / "empty"), "--plot",
                              str(tmp_path / "x.svg"))
        assert done.returncode == 2 and "no saved runs" in done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_bench_script_has_a_working_help(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"],
                          capture_output=True, text=True, timeout=120, env=env(),
                          cwd=BENCH)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    assert "Traceback" not in done.stderr


def test_progress_is_a_plain_line_on_stderr_without_tqdm():
    code = ("import sys; sys.modules['tqdm'] = None\n"
            f"sys.path.insert(0, {str(BENCH)!r})\n"
            "import benchkit\n"
            "print(sum(benchkit.progress(range(5), desc='steps')))\n"
            "with benchkit.progress(total=3, desc='by hand') as bar:\n"
            "    bar.update(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "10\n"
    assert "[steps] 5/5" in done.stderr and "[by hand] 3/3" in done.stderr


def test_market_sim_flags_its_claims_met_or_missed():
    done = subprocess.run([sys.executable, str(BENCH / "market_sim.py"), "--nodes", "60",
                           "--requests", "2000", "--baseline-requests", "1000"],
                          capture_output=True, text=True, timeout=300, env=env())
    assert done.returncode == 0, done.stderr
    verdicts = [line for line in done.stdout.splitlines()
                if line.startswith(("MET ", "MISSED "))]
    assert len(verdicts) == 2, done.stdout
    assert all("(target " in line for line in verdicts)
    assert "requests" in done.stderr                       # progress, per mode


def test_the_c_row_reports_the_c_programs_own_time(tmp_path):
    """The pytest table's C figures are the per-run times the C program reported for
    itself (its own CPU clock), not the time of a whole process."""
    out = tmp_path / "c.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--benchmark-only", str(BENCH / "bench_engine.py"), "-k",
                           "test_c_gcc_O2 and tak", f"--benchmark-json={out}"],
                          capture_output=True, text=True, timeout=300, env=env(), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    (bench,) = json.loads(out.read_text())["benchmarks"]
    reported = bench["extra_info"]["c_reported_seconds"]
    assert len(reported) == bench["stats"]["rounds"] == 10
    assert bench["stats"]["median"] == pytest.approx(statistics.median(reported), rel=1e-6)
    assert bench["stats"]["min"] == pytest.approx(min(reported), rel=1e-6)


def test_a_checkout_without_exathunk_grammar_finds_its_idl():
    """The source tree has no exathunk/grammar (setup.py installs grammar/ under that
    name): a checkout imported as it is, with no installed exathunk to lean on, still
    loads the Thrift IDL, its own.  This was why bench_broker.py failed beside a non-editable
    install ('No module named exathunk.grammar')."""
    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path\n"
            "                    if not str(getattr(f, '__module__', '')).startswith(\n"
            "                        '__editable__')]\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "from exathunk import wire\n"
            "import exathunk\n"
            "try:\n"
            "    import exathunk.grammar\n"
            "    print('grammar importable')\n"
            "except ModuleNotFoundError:\n"
            "    print('no exathunk.grammar')\n"
            "print(exathunk.__file__)\n"
            "print(wire.Service.__name__)\n"
            "print(wire.IDL_SOURCE)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT / "docs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == str(ROOT / "exathunk" / "__init__.py")
    assert lines[2] == "RemoteExecutionService"
    assert lines[3] == str(ROOT / "grammar" / "exathunk.thrift")


def test_a_checkout_reads_its_own_idl_beside_another_install():
    """With another checkout's editable install on the machine, a checkout's exathunk
    (imported from PYTHONPATH) reads its own grammar/exathunk.thrift, not the other's
    exathunk.grammar: its worker nodes in bench/ speak its own version of the IDL."""
    code = ("from exathunk import wire\n"
            "print(wire.IDL_SOURCE)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env(), cwd=ROOT / "docs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(ROOT / "grammar" / "exathunk.thrift")
