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
                      prog.functions_used, datatypes=prog.datatypes)
    assert [f.max_stack for f in checked.functions] == trusted_stacks
    again = Program.from_bytes(prog.to_bytes())
    assert again.digest == prog.digest
    assert [f.max_stack for f in again.functions] == trusted_stacks
    assert again.datatypes == prog.datatypes


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


# Data types and case in every shape the compiler has a path for: constructors built,
# used as values and partially applied; case in tail and non-tail position, nested, in
# lambdas and thunks, with literal, list, wildcard and variable patterns, falling
# through; prelude code with constructors copied beside the program's own.
DATA_PROGRAMS = [
    "(data (O a) (N) (Y a)) (map Y (list 1 2))",
    "(data (P a b) (P a b)) (map (P 1) (list 2 3))",
    "(data C R G B) (map (lambda (c) (case c (R 0) (G 1) (B 2))) (list R G B))",
    "(data (O a) (N) (Y a)) (+ 1 (case (Y 2) ((Y x) x) (N 0)))",
    "(data (O a) (N) (Y a)) (+ 1 (case N ((Y x) x)))",
    "(data (O a) (N) (Y a)) (let ((k 10)) (map (lambda (o) (case o ((Y x) (+ x k)) (N k))) (list (Y 1) N)))",
    "(case (list 1 2 3) ((list a b) 0) ((cons 1 (cons b _)) b) (_ 9))",
    "(case (Pair 1 (Just 2)) ((Pair 0 _) 0) ((Pair _ Nothing) 1) ((Pair a (Just b)) (+ a b)))",
    "(define (f x s) (+ (case x (0 1) (_ 2)) (case s (\"a\" 10) (_ 20)))) (f 0 \"a\")",
    "(define (f x) (+ (case x (0 1) (-7 2) (_ 3)) (case (to-double x) (1.5 10) (_ 20)))) (f 0)",
    "(define (g x n) (if (case x ((Just v) (< n v)) (Nothing (< n 0))) n 0)) (g (Just 5) 2)",
    "(define (h b) (if (case b (true false) (false true)) 1 2)) (h true)",
    "(cond ((< 1 0) 1) ((> 1 0) 2))",
    "(cond ((< 1 0) 1))",
    "(let ((xs (cons (Just 1) xs))) (case (take 2 xs) ((list (Just a) (Just b)) (+ a b)) (_ 0)))",
    "(data C R G) (case G (R 0) (G (from-maybe 0 (string->int \"7\"))))",
    "(lookup 2 (zip (list 1 2 3) (list \"a\" \"b\" \"c\")))",
    "(data Tree (Leaf) (Node Tree Int Tree))"
    "(define (ins x t) (case t (Leaf (Node Leaf x Leaf)) ((Node l v r) (cond ((< x v) (Node (ins x l) v r)) ((> x v) (Node l v (ins x r))) (else t)))))"
    "(define (tot t) (case t (Leaf 0) ((Node l v r) (+ (tot l) (+ v (tot r))))))"
    "(tot (foldr ins Leaf (list 5 3 8 1)))",
    "(class (Size a) (size (-> a Int))) (instance (Size String) (define (size s) (len s)))"
    "(instance (=> (Size a) (Size (List a))) (define (size xs) (sum (map size xs))))"
    "(size (list \"ab\" \"c\"))",
    "(data Point (Pt (px Double) (py Double))) (map px (list (Pt 1.0 2.0)))",
    "(let ((f substring) (g split) (h join) (c chars) (i %int?) (p %parse-int))"
    " (list (f \"hello\" 1 3) (h \"+\" (g \",\" \"a,b\")) (h \"\" (c \"xy\")) (show (i \"x\")) (show (p \"42\"))))",
]


@pytest.mark.parametrize("source", DATA_PROGRAMS)
def test_data_and_case_output_verifies(source):
    prog = compile_or_none(source)
    assert prog is not None, source
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
