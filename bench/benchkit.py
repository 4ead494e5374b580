"""What every script in bench/ shares: which exathunk it imports, how its worker
processes start, its progress bar and its MISSED lines.

Which exathunk: the checkout's own (this folder's parent) when it has been built in
place (``python setup.py build_ext --inplace``), else the installed package.  Putting
the checkout first unconditionally made a script import the source tree even when
exathunk was installed (non-editable): the source tree has no ``exathunk.grammar``
(setup.py installs grammar/ under that name) and maybe no compiled engine, so the
script or its worker processes failed with ``No module named 'exathunk.grammar'``.

Worker processes (``python_command``, ``child_env``) import the same exathunk as the
script that starts them: the package's folder goes first on their PYTHONPATH, and they
run in a folder of their own, never with the checkout as their current directory.

Progress: ``progress(iterable, total=, desc=)`` is a tqdm bar on stderr when tqdm is
installed (``pip install 'exathunk[bench]'``), else a plain line of progress on stderr.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def _checkout_is_built() -> bool:
    return any((ROOT / "exathunk").glob("_core*.so")) or any(
        (ROOT / "exathunk").glob("_core*.pyd"))


def use_exathunk() -> None:
    """Put the checkout first on sys.path when it is built in place, else leave the
    installed package to be imported; call before importing exathunk."""
    if _checkout_is_built() and str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


use_exathunk()


def package_root() -> str:
    """The folder that holds the exathunk package this process imports."""
    import exathunk
    return str(pathlib.Path(exathunk.__file__).resolve().parent.parent)


def child_env() -> dict:
    """The environment for a worker process: it imports this process's exathunk."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root(), env.get("PYTHONPATH")]))
    return env


def python_command(*args: str) -> list[str]:
    """``sys.executable -m exathunk ARGS``: the CLI of the exathunk this process uses."""
    return [sys.executable, "-m", "exathunk", *args]


# ---- progress ------------------------------------------------------------------------

class _PlainProgress:
    """tqdm's interface, printed as plain lines on stderr (at most one a second, and the
    last)."""

    def __init__(self, iterable=None, total=None, desc="", **_):
        self.iterable, self.total, self.desc = iterable, total, desc or "progress"
        self.n, self._last, self._start = 0, 0.0, time.monotonic()
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= 1.0 or (self.total and self.n >= self.total):
            self._last = now
            of = f"/{self.total}" if self.total else ""
            print(f"[{self.desc}] {self.n}{of} ({now - self._start:.0f} s)",
                  file=sys.stderr, flush=True)

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def write(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress(iterable=None, total=None, desc="", **kwargs):
    """A progress bar over ``iterable`` (or updated by hand) on stderr: tqdm's when it
    is installed, else plain lines."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(iterable, total=total, desc=desc)
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False,
                dynamic_ncols=True, **kwargs)


def note(message: str) -> None:
    """A progress note on stderr, not disturbing a tqdm bar."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(message, file=sys.stderr, flush=True)
    else:
        tqdm.write(message, file=sys.stderr)


# ---- targets ---------------------------------------------------------------------------

def missed(what: str, figure: str, target: str) -> str:
    """The line for a missed target: ``MISSED <what>: <figure> (target <target>)``."""
    return f"MISSED {what}: {figure} (target {target})"


def met(what: str, figure: str, target: str) -> str:
    return f"MET    {what}: {figure} (target {target})"


def verdict_line(ok: bool, what: str, figure: str, target: str) -> str:
    return (met if ok else missed)(what, figure, target)
