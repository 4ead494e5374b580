"""The golden programs of grammar/cases, one table run against two engines.

Every light case (bench_*.xt are the benchmarks' and are left to bench/) is compiled
through ``exathunk.compile`` for its type or static error, and run through both the
Cython engine (``Program.run``) and the reference interpreter for its value or runtime
error: the same expectations, parametrized over an engine fixture (uvloop style).

Case files carry comment lines ``; expect: VALUE`` (the result as values.show_value
prints it), ``; expect-type: TYPE``, ``; expect-error: ClassName`` and optionally
``; limits: max_steps=N`` (passed to both engines).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import pytest

import exathunk
from exathunk import driver, reference
from exathunk.library import default_library
from exathunk.values import show_value

CASES_DIR = pathlib.Path(__file__).resolve().parent.parent / "grammar" / "cases"
STATIC_ERRORS = {"ParseError", "TypeCheckError", "UnknownFunctionError"}


@dataclass
class Case:
    name: str
    source: str
    value: str | None = None        # show_value text of the expected result
    type: str | None = None
    error: str | None = None
    limits: dict = field(default_factory=dict)

    @property
    def runs(self) -> bool:
        """Whether the case says anything about running (a value or a runtime error)."""
        return self.value is not None or (self.error is not None
                                          and self.error not in STATIC_ERRORS)


def load_case(path: pathlib.Path) -> Case:
    source = path.read_text("utf-8")
    case = Case(path.stem, source)
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("; expect:"):
            case.value = line[len("; expect:"):].strip()
        elif line.startswith("; expect-type:"):
            case.type = line[len("; expect-type:"):].strip()
        elif line.startswith("; expect-error:"):
            case.error = line[len("; expect-error:"):].strip()
        elif line.startswith("; limits:"):
            for item in line[len("; limits:"):].split():
                key, _, val = item.partition("=")
                case.limits[key] = int(val)
    return case


def light_cases() -> list[Case]:
    return [load_case(p) for p in sorted(CASES_DIR.glob("*.xt"))
            if not p.name.startswith("bench_")]


CASES = light_cases()
RUN_CASES = [c for c in CASES if c.runs]


def _run_engine(source: str, **limits):
    return exathunk.compile(source).run(**limits)


def _run_reference(source: str, **limits):
    checked = driver.check(source)
    return reference.evaluate(checked, default_library(), **limits)


@pytest.fixture(params=["engine", "reference"])
def run(request):
    return {"engine": _run_engine, "reference": _run_reference}[request.param]


def test_the_table_is_big_and_well_formed():
    assert len(CASES) >= 40
    for case in CASES:
        assert case.value is not None or case.error is not None, case.name
        assert not (case.value is not None and case.error is not None), case.name
        if case.error is not None:
            assert hasattr(exathunk, case.error), case.name
    # The benchmark programs are cases too, with values.
    bench = [load_case(p) for p in CASES_DIR.glob("bench_*.xt")]
    assert len(bench) >= 5 and all(c.value is not None for c in bench)


def test_every_builtin_and_prelude_function_is_run_by_a_case():
    import re
    from exathunk.library import BUILTINS, PRELUDE_SIGNATURES
    used = set()
    for case in RUN_CASES:
        code = "\n".join(line.split(";")[0] for line in case.source.splitlines())
        used.update(re.findall(r"[^\s()\"]+", code))
    names = {b.name for b in BUILTINS} | set(PRELUDE_SIGNATURES)
    assert names - used == set()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_compile(case: Case):
    if case.error in STATIC_ERRORS:
        with pytest.raises(getattr(exathunk, case.error)) as info:
            exathunk.compile(case.source)
        assert type(info.value).__name__ == case.error
        assert info.value.line is not None or case.error != "TypeCheckError"
    else:
        program = exathunk.compile(case.source)
        if case.type is not None:
            assert program.type == case.type


@pytest.mark.parametrize("case", RUN_CASES, ids=lambda c: c.name)
def test_run(case: Case, run):
    if case.error is not None:
        with pytest.raises(getattr(exathunk, case.error)) as info:
            run(case.source, **case.limits)
        assert type(info.value).__name__ == case.error
    else:
        assert show_value(run(case.source, **case.limits)) == case.value


@pytest.mark.parametrize("case", [c for c in CASES if c.type is not None
                                  and c.error not in STATIC_ERRORS],
                         ids=lambda c: c.name)
def test_checked_type_agrees(case: Case):
    assert driver.check(case.source).result_type_text == case.type
