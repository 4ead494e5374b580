"""The compiler's output passes the full verifier.

compiler.compile_module builds its Program with ``trusted=True`` (the verifier is skipped
on the compile path, for speed), so a compiler bug that emits ill-formed code would only
show up here: every golden program of grammar/cases and generated programs of
tests/progen.py are compiled and their Programs put through program.verify, and the
max_stack the compiler set (stack_need, or the prelude image's) must equal the
verifier's.  Programs read from bytes or the wire are always verified.
"""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings

from exathunk import compiler, parser, typecheck
from exathunk.errors import ExathunkError
from exathunk.library import default_library
from exathunk.opcodes import Op
from exathunk.program import FORMAT_VERSION, Function, Program

from progen import programs

CASES_DIR = pathlib.Path(__file__).resolve().parent.parent / "grammar" / "cases"
GOLDEN = sorted(CASES_DIR.glob("*.xt"))


def compile_or_none(source: str):
    """The compiler's Program, or None for a program the front end rejects."""
    lib = default_library()
    try:
        checked = typecheck.check_module(parser.parse(source), lib)
    except ExathunkError:
        return None
    return compiler.compile_module(checked, lib)


def assert_verified(prog: Program) -> None:
    trusted_stacks = [f.max_stack for f in prog.functions]
    for f in prog.functions:          # plain ints, as the engine and the encoder expect
        assert all(type(w) is int for w in f.code) and all(type(n) is int for n in f.lines)
    # rebuilt without trusted=True: the constructor verifies, raising on anything out
    # of range, and sets max_stack on these copies of the functions
    checked = Program(prog.version, [dataclasses.replace(f, max_stack=0) for f in prog.functions],
                      prog.ints, prog.doubles, prog.strings, prog.hosts, prog.entry, prog.type,
                      prog.functions_used)
    assert [f.max_stack for f in checked.functions] == trusted_stacks
    again = Program.from_bytes(prog.to_bytes())
    assert again.digest == prog.digest
    assert [f.max_stack for f in again.functions] == trusted_stacks


def test_golden_programs_exist():
    assert len(GOLDEN) > 20


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_program_output_verifies(path):
    prog = compile_or_none(path.read_text(encoding="utf-8"))
    if prog is not None:
        assert_verified(prog)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_generated_program_output_verifies(case):
    source, _ = case
    prog = compile_or_none(source)
    assert prog is not None
    assert_verified(prog)


def test_untrusted_construction_still_verifies():
    bad = Function("f", 0, 0, [int(Op.LOCAL), 0, int(Op.RET)], [0, 0, 0])
    with pytest.raises(ExathunkError):
        Program(FORMAT_VERSION, [bad], [], [], [], [], 0, "Int")
    good = Function("f", 0, 0, [int(Op.BOOL), 1, int(Op.RET)], [0, 0, 0])
    assert Program(FORMAT_VERSION, [good], [], [], [], [], 0, "Bool").functions[0].max_stack == 2


def test_shared_name_cache_holds_only_library_names():
    from exathunk.compiler import _library_resolutions
    lib = default_library()
    assert compile_or_none("(let ((zzz-local-name 1)) (+ zzz-local-name 2))") is not None
    shared = _library_resolutions(lib)
    assert "+" in shared and "zzz-local-name" not in shared
