"""Program: digest, bytes round trip, validation of hostile bytes, host binding."""

import random
import struct

import pytest

import exathunk
from exathunk import ExathunkError, UnknownFunctionError, parser, typecheck, compiler
from exathunk.library import Library, default_library
from exathunk.opcodes import Op
from exathunk.program import Function, Program, FORMAT_VERSION

FIB = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 12)"


def compile_src(src, library=None):
    library = library or default_library()
    checked = typecheck.check_module(parser.parse(src), library)
    return compiler.compile_module(checked, library)


def test_type_and_run():
    prog = compile_src("(+ 1 (/ 4 2))")
    assert prog.type == "Int"
    assert prog.run() == 3


def test_digest_ignores_whitespace_comments_and_lines():
    a = compile_src(FIB)
    b = compile_src("; fib\n\n(define (fib n)\n  ; recursive\n  (if (< n 2)\n      n\n"
                    "      (+ (fib (- n 1)) (fib (- n 2)))))\n\n(fib    12)  ; done\n")
    assert a.digest == b.digest
    assert a.to_bytes() != b.to_bytes()          # the line tables differ


@pytest.mark.parametrize("other", [
    FIB.replace("(fib 12)", "(fib 13)"),
    FIB.replace("(- n 2)", "(- n 3)"),
    FIB.replace("<", "<="),
    "(define (fib n) n) (fib 12)",
])
def test_digest_changes_with_the_program(other):
    assert compile_src(FIB).digest != compile_src(other).digest


def test_bytes_round_trip():
    for src in (FIB, '(show (list 1.5 2.5))', '(concat "héllo \\u{1F600}" "x")',
                "(take 3 (iterate (lambda (x) (* x 2)) 1))"):
        prog = compile_src(src)
        back = Program.from_bytes(prog.to_bytes())
        assert back == prog
        assert back.digest == prog.digest
        assert back.type == prog.type
        assert back.run() == prog.run()


def test_bad_magic_version_and_truncation():
    blob = compile_src(FIB).to_bytes()
    with pytest.raises(ExathunkError, match="magic"):
        Program.from_bytes(b"NOPE" + blob[4:])
    with pytest.raises(ExathunkError, match="version"):
        Program.from_bytes(blob[:4] + struct.pack("<H", FORMAT_VERSION + 1) + blob[6:])
    for cut in range(0, len(blob), 7):
        with pytest.raises(ExathunkError):
            Program.from_bytes(blob[:cut])
    with pytest.raises(ExathunkError):
        Program.from_bytes(blob + b"\0")
    with pytest.raises(ExathunkError):
        Program.from_bytes("not bytes")


def test_huge_counts_are_refused_without_allocating():
    blob = bytearray(compile_src("(+ 1 2)").to_bytes())
    # the count of ints sits after magic, version, entry and the type string
    pos = 4 + 2 + 4
    tlen = struct.unpack_from("<I", blob, pos)[0]
    pos += 4 + tlen
    struct.pack_into("<I", blob, pos, 0xFFFFFFFF)
    with pytest.raises(ExathunkError):
        Program.from_bytes(bytes(blob))


def _prog(code, arity=0, frame=0, extra=(), **kw):
    fns = [Function("main", arity, frame, list(code), [0] * len(code))] + list(extra)
    return Program(FORMAT_VERSION, fns, kw.get("ints", [1]), [], [], kw.get("hosts", []), 0,
                   "Int", [])


@pytest.mark.parametrize("code,why", [
    ([999], "bad opcode"),
    ([Op.INT, 5, Op.RET], "bad int"),
    ([Op.LOCAL, 3, Op.RET], "bad slot"),
    ([Op.RET], "underflows"),
    ([Op.ADD, Op.RET], "underflows"),
    ([Op.INT, 0], "falls off"),
    ([Op.INT], "past the end"),
    ([Op.BOOL, 1, Op.JUMPF, 0, Op.INT, 0, Op.RET], "bad target"),
    ([Op.BOOL, 1, Op.JUMPF, 99, Op.INT, 0, Op.RET], "bad target"),
    ([Op.BOOL, 1, Op.JUMPF, 5, Op.INT, 0, Op.RET], "bad target"),   # mid-instruction
    ([Op.BOOL, 1, Op.JUMPF, 8, Op.INT, 0, Op.INT, 0, Op.INT, 0, Op.ADD, Op.RET], "disagree"),
    ([Op.CALL, 0, 1, Op.RET], "arguments for arity"),
    ([Op.FUN, 0, Op.RET], "FUN of an arity-0"),
    ([Op.MKPAP, 0, 0, Op.RET], "arguments for arity"),
    ([Op.HOST, 0, 0, Op.RET], "bad host"),
    ([Op.APPLY, 0, Op.RET], "APPLY of no arguments"),
])
def test_verifier_rejects_ill_formed_code(code, why):
    with pytest.raises(ExathunkError, match=why):
        _prog(code)


def test_verifier_rejects_bad_entry_and_frames():
    with pytest.raises(ExathunkError):
        Program(FORMAT_VERSION, [Function("f", 1, 1, [Op.LOCAL, 0, Op.RET], [0, 0, 0])],
                [], [], [], [], 0, "Int", [])
    with pytest.raises(ExathunkError):
        Program(FORMAT_VERSION, [Function("f", 2, 1, [Op.INT, 0, Op.RET], [0, 0, 0])],
                [1], [], [], [], 0, "Int", [])


def test_runtime_checks_catch_well_stacked_but_ill_typed_code():
    # passes the verifier (stack heights fine) but adds a Bool to an Int
    prog = _prog([Op.BOOL, 1, Op.INT, 0, Op.ADD, Op.RET])
    with pytest.raises(exathunk.EvaluationError):
        prog.run()
    prog = _prog([Op.INT, 0, Op.INT, 0, Op.APPLY, 1, Op.RET])
    with pytest.raises(exathunk.EvaluationError):
        prog.run()


PROGRAMS = [
    FIB,
    "(sum (map (lambda (x) (* x x)) (filter (lambda (x) (= 0 (mod x 3))) (range 0 50))))",
    '(show (zip-with (lambda (a b) (concat a b)) (list "a" "b") (list "c" "d")))',
    "(let ((xs (cons 1 (map (lambda (x) (+ x 1)) xs)))) (nth xs 20))",
    "(= (list 1 2 3) (take 3 (iterate (lambda (x) (+ x 1)) 1)))",
]


def test_fuzzed_bytes_give_an_error_or_a_program_that_runs():
    rng = random.Random(1234)
    blobs = [compile_src(s).to_bytes() for s in PROGRAMS]
    outcomes = {"error": 0, "ran": 0}
    for i in range(600):
        blob = bytearray(rng.choice(blobs))
        kind = rng.randrange(4)
        if kind == 0:
            blob = blob[:rng.randrange(len(blob))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 4)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
        elif kind == 2:
            p = rng.randrange(len(blob) - 4)
            struct.pack_into("<i", blob, p, rng.choice([-1, 0, 1, 7, 255, 65536, 2**31 - 1]))
        else:
            p = rng.randrange(len(blob))
            blob[p] ^= 1 << rng.randrange(8)
        try:
            prog = Program.from_bytes(bytes(blob))
        except ExathunkError:
            outcomes["error"] += 1
            continue
        try:
            prog.run(max_steps=200_000, max_heap=8 << 20, max_depth=10_000)
        except ExathunkError:
            pass
        outcomes["ran"] += 1
    assert outcomes["error"] > 100 and outcomes["ran"] > 20, outcomes
    assert sum(outcomes.values()) == 600


def test_host_functions_bound_at_run_time():
    lib = Library()
    lib.register("shout", "(-> String String)", lambda s: s.upper() + "!")
    prog = compile_src('(shout "hi")', lib)
    blob = prog.to_bytes()
    back = Program.from_bytes(blob, library=lib)
    assert back.run(library=lib) == "HI!"
    with pytest.raises(UnknownFunctionError):
        Program.from_bytes(blob).run()                   # the default library lacks it
    with pytest.raises(UnknownFunctionError):
        Program.from_bytes(blob, library=default_library())
    other = Library()
    other.register("shout", "(-> Int Int)", lambda x: x)
    with pytest.raises(UnknownFunctionError):
        back.run(library=other)


def test_limits_must_be_positive_integers():
    prog = compile_src("(+ 1 2)")
    for bad in (0, -5, 1.5, "10", True):
        with pytest.raises(ExathunkError):
            prog.run(max_steps=bad)


def test_digest_is_the_same_in_another_process():
    import subprocess
    import sys
    src = "(sum (map (lambda (x) (* x x)) (filter (lambda (x) (= 0 (mod x 3))) (range 0 50))))"
    code = ("import sys, exathunk\n"
            "print(exathunk.compile(sys.argv[1]).digest)\n")
    out = subprocess.run([sys.executable, "-c", code, src], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == compile_src(src).digest
