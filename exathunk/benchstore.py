"""Saved benchmark runs: where they live, the comparison of the last two, the plot.

The storage folder (``default_storage()``: ``$XDG_DATA_HOME/exathunk/bench``, i.e.
``~/.local/share/exathunk/bench`` when XDG_DATA_HOME is unset; ``exathunk bench
--storage DIR`` and ``bench/compare_engine.py --storage DIR`` override it) holds:

* ``<machine>/NNNN_<commit>_<date>.json``: every ``exathunk bench`` run, saved by
  pytest-benchmark's autosave (``--benchmark-autosave --benchmark-storage``), one
  folder per machine id (such as ``Linux-CPython-3.11-64bit``);
* ``ratios/NNNN_<date>.json``: every ``bench/compare_engine.py`` run, its median
  engine/peer time ratios and its targets (``save_ratio_run``).

``compare_runs`` gives the table of ``exathunk bench --compare`` (each benchmark's
median in the previous run and the latest, the change, SLOWER when the latest is
slower beyond noise); ``plot`` draws the history of each benchmark's median and the
ratios against the peers (matplotlib, ``pip install 'exathunk[plot]'``).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
from dataclasses import dataclass

PLOT_HINT = "pip install 'exathunk[plot]'"
RATIOS = "ratios"
# A change counts as beyond noise when it exceeds both this share of the previous
# median and the two runs' interquartile ranges added up.
NOISE_FLOOR = 0.05
_RUN_FILE = re.compile(r"^(\d{4})_.*\.json$")


def default_storage() -> str:
    """$XDG_DATA_HOME/exathunk/bench (~/.local/share/exathunk/bench when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(base, "exathunk", "bench")


class StorageError(Exception):
    """A storage folder or a saved run that cannot be read (a usage error)."""


@dataclass
class Run:
    path: pathlib.Path
    when: str                          # ISO date and time of the run
    medians: dict[str, float]          # benchmark full name -> median seconds
    iqrs: dict[str, float]

    @property
    def label(self) -> str:
        return self.path.stem


def _load_json(path: pathlib.Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read the saved run {path}: {exc}") from None


def _run_files(storage: pathlib.Path, ratios: bool) -> list[pathlib.Path]:
    if not storage.is_dir():
        return []
    folders = [storage / RATIOS] if ratios else [
        d for d in storage.iterdir() if d.is_dir() and d.name != RATIOS]
    return [f for d in folders if d.is_dir() for f in d.iterdir()
            if f.is_file() and _RUN_FILE.match(f.name)]


def load_runs(storage) -> list[Run]:
    """The saved ``exathunk bench`` runs, oldest first (by date, then number)."""
    runs = []
    for path in _run_files(pathlib.Path(storage), ratios=False):
        data = _load_json(path)
        medians, iqrs = {}, {}
        for bench in data.get("benchmarks", []):
            stats = bench.get("stats") or {}
            if "median" in stats:
                name = bench.get("fullname") or bench.get("name")
                medians[name] = float(stats["median"])
                iqrs[name] = float(stats.get("iqr") or 0.0)
        if medians:
            runs.append(Run(path, str(data.get("datetime", "")), medians, iqrs))
    runs.sort(key=lambda r: (r.when, r.path.name))
    return runs


def load_ratio_runs(storage) -> list[dict]:
    """The saved compare_engine.py runs, oldest first."""
    runs = [dict(_load_json(p), _path=str(p))
            for p in _run_files(pathlib.Path(storage), ratios=True)]
    runs.sort(key=lambda r: (str(r.get("datetime", "")), r["_path"]))
    return runs


def save_ratio_run(storage, ratios: list[dict], targets: list[dict],
                   info: dict | None = None) -> pathlib.Path:
    """Save one compare_engine.py run: ``ratios`` are {workload, a, b, median, low,
    high, clock}, ``targets`` are {name, what, bound, figure, verdict}."""
    folder = pathlib.Path(storage) / RATIOS
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for f in folder.iterdir() if (m := _RUN_FILE.match(f.name))]
    now = datetime.datetime.now(datetime.timezone.utc)
    path = folder / f"{max(numbers, default=0) + 1:04}_{now:%Y%m%d_%H%M%S}.json"
    data = {"datetime": now.isoformat(), "ratios": ratios, "targets": targets,
            "info": info or {}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---- --compare ---------------------------------------------------------------------------

def _short(name: str) -> str:
    return name.rsplit("::", 1)[-1] if "::" in name else name


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def compare_runs(last: Run, now: Run) -> tuple[list[str], int]:
    """The --compare table of ``now`` against ``last``; (lines, number flagged SLOWER)."""
    names = sorted(set(last.medians) | set(now.medians))
    width = max([len(_short(n)) for n in names] + [9])
    lines = [f"{'benchmark':<{width}}  {'last':>12}  {'now':>12}  {'change':>8}",
             f"{'-' * width}  {'-' * 12}  {'-' * 12}  {'-' * 8}"]
    slower = 0
    for name in names:
        a, b = last.medians.get(name), now.medians.get(name)
        if a is None or b is None:
            lines.append(f"{_short(name):<{width}}  {_fmt_time(a) if a else '-':>12}  "
                         f"{_fmt_time(b) if b else '-':>12}  "
                         f"{'(new)' if a is None else '(gone)':>8}")
            continue
        change = (b - a) / a
        noise = max(NOISE_FLOOR * a, last.iqrs.get(name, 0.0) + now.iqrs.get(name, 0.0))
        flag = ""
        if b - a > noise:
            flag, slower = "  SLOWER (beyond noise)", slower + 1
        elif a - b > noise:
            flag = "  faster"
        lines.append(f"{_short(name):<{width}}  {_fmt_time(a):>12}  {_fmt_time(b):>12}  "
                     f"{change:>+7.1%}{flag}")
    lines.append(f"last: {last.path}\nnow:  {now.path}")
    lines.append(f"{slower} of {len(names)} slower beyond noise (noise: the two runs' "
                 f"IQRs added up, at least {NOISE_FLOOR:.0%} of the last median)")
    return lines, slower


# ---- --plot ----------------------------------------------------------------------------

def plot(storage, out: str) -> str:
    """Draw the history and the ratios into ``out`` (.svg or .png); returns a one-line
    summary.  Raises ImportError when matplotlib is missing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs(storage)
    ratio_runs = load_ratio_runs(storage)
    if not runs and not ratio_runs:
        raise StorageError(f"no saved runs in {storage} (run 'exathunk bench' first)")
    fig, (ax_hist, ax_ratio, ax_rhist) = plt.subplots(
        3, 1, figsize=(11, 15), gridspec_kw={"height_ratios": [3, 2, 2]})

    names = sorted({n for r in runs for n in r.medians})
    for name in names:
        xs = [i for i, r in enumerate(runs) if name in r.medians]
        ys = [runs[i].medians[name] for i in xs]
        ax_hist.plot(xs, ys, marker="o", label=_short(name))
    ax_hist.set_title(f"exathunk bench: median per benchmark over {len(runs)} saved run(s)")
    ax_hist.set_ylabel("median time (s, log scale)")
    if names:
        ax_hist.set_yscale("log")
        ax_hist.set_xticks(range(len(runs)))
        ax_hist.set_xticklabels([r.when[:16].replace("T", "\n") or r.label for r in runs],
                                fontsize=7)
        ax_hist.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax_hist.text(0.5, 0.5, "no exathunk bench run saved", ha="center",
                     transform=ax_hist.transAxes)

    if ratio_runs:
        latest = ratio_runs[-1]["ratios"]
        targets = {}
        for t in ratio_runs[-1].get("targets", []):
            if t.get("b") and t.get("verdict") in ("MET", "MISSED"):
                targets.setdefault((t["workload"], t["b"]), []).append(t)
        labels = [f"{r['workload']}: {r['a']} / {r['b']}" for r in latest]
        values = [r["median"] for r in latest]
        colours = []
        for r in latest:
            verdicts = {t["verdict"] for t in targets.get((r["workload"], r["b"]), [])}
            colours.append("tab:red" if "MISSED" in verdicts else
                           "tab:green" if verdicts else "tab:gray")
        ax_ratio.barh(range(len(values)), values, color=colours)
        ax_ratio.set_yticks(range(len(values)))
        ax_ratio.set_yticklabels(labels, fontsize=7)
        ax_ratio.invert_yaxis()
        ax_ratio.axvline(1.0, color="black", linewidth=0.8)
        ax_ratio.set_xscale("log")
        for y, r in enumerate(latest):
            for t in targets.get((r["workload"], r["b"]), []):
                ax_ratio.plot([float(t["bound"])], [y], marker="|", markersize=14,
                              color="black")
        ax_ratio.set_title("latest compare_engine.py ratios, engine time / peer time "
                           "(log)\n< 1: the engine is faster; | a target, green met, red missed")
        keys = sorted({(r["workload"], r["b"]) for run in ratio_runs for r in run["ratios"]})
        for key in keys:
            xs, ys = [], []
            for i, run in enumerate(ratio_runs):
                for r in run["ratios"]:
                    if (r["workload"], r["b"]) == key:
                        xs.append(i)
                        ys.append(r["median"])
            ax_rhist.plot(xs, ys, marker="o", label=f"{key[0]} / {key[1]}")
        ax_rhist.set_yscale("log")
        ax_rhist.set_xticks(range(len(ratio_runs)))
        ax_rhist.set_xticklabels([str(r.get("datetime", ""))[:16].replace("T", "\n")
                                  for r in ratio_runs], fontsize=7)
        ax_rhist.set_title(f"ratio history over {len(ratio_runs)} compare_engine.py run(s)")
        ax_rhist.set_ylabel("engine / peer (log)")
        ax_rhist.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        for ax in (ax_ratio, ax_rhist):
            ax.text(0.5, 0.5, "no compare_engine.py run saved here yet\n"
                    "(python bench/compare_engine.py saves one)", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return (f"wrote {out}: {len(runs)} bench run(s), {len(names)} benchmark(s), "
            f"{len(ratio_runs)} ratio run(s)")
