"""The package as users get it: installed outside the checkout, importing writes no
files, grammar files travel with it, the opcode mirror in the engine agrees."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_grammar_files_ship_as_package_data():
    from exathunk import grammar
    assert grammar.path("exathunk.thrift").is_file()
    assert grammar.path("exathunk.ebnf").is_file()
    assert any(p.name.endswith(".xt") for p in grammar.path("cases").iterdir())


def test_import_and_compile_write_no_files(tmp_path):
    # Run in a scratch directory with a fresh interpreter; list every file before/after.
    script = textwrap.dedent("""
        import exathunk
        prog = exathunk.compile("(+ 1 (/ 4 2))")
        assert prog.run() == 3
    """)
    before = {p for p in ROOT.rglob("*") if ".git" not in p.parts}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, env=env)
    after = {p for p in ROOT.rglob("*") if ".git" not in p.parts}
    new = {p for p in after - before if "__pycache__" not in p.parts
           and ".hypothesis" not in p.parts and ".pytest_cache" not in p.parts}
    assert not new, new
    assert list(tmp_path.iterdir()) == []


def test_gitignore_keeps_build_artefacts_out():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    for name in tracked.stdout.splitlines():
        assert not name.endswith((".so", ".c", ".pyc")) or name.startswith("bench/c/"), name
        assert "parsetab" not in name and not name.startswith(("build/", "dist/")), name


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Build a wheel, install it with its dependencies into a fresh venv (nothing of
    this interpreter's site-packages visible), run a program and the command there."""
    wheel_dir = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(wheel_dir), str(ROOT)], check=True, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    wheel = next(wheel_dir.glob("exathunk-*.whl"))
    # Its declared dependencies come from the package index, as for a user: a missing
    # one in pyproject.toml fails here.
    # Nothing of the checkout either: with it on sys.path (PYTHONPATH, or the current
    # folder of ``python -m``), pip takes its exathunk.egg-info for an installed
    # exathunk and installs nothing.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=600, env=env, cwd=tmp_path)
    script = textwrap.dedent("""
        import exathunk, exathunk.grammar, exathunk._core
        assert "site-packages" in exathunk.__file__, exathunk.__file__
        assert exathunk.grammar.path("exathunk.thrift").is_file()
        print(exathunk.evaluate("(sum (map (lambda (x) (* x x)) (range 0 10)))"))
    """)
    res = subprocess.run([str(py), "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "285"
    res = subprocess.run([str(venv / "bin" / "exathunk"), "eval", "-e", "(+ 1 2)"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "3", res.stderr


def test_ci_runs_the_readmes_test_command_in_a_fresh_venv():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    command = [line for line in block.splitlines() if line and not line.startswith("#")][1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci, command
    venv_at = next(i for i, line in enumerate(ci) if line.startswith("python3 -m venv "))
    path_at = next(i for i, line in enumerate(ci) if 'export PATH="$venv/bin:$PATH"' in line)
    assert venv_at < path_at < ci.index(command)
