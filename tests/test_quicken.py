"""Superinstructions: the engine's Image writes a fused opcode over the first opcode of
a common sequence (exathunk._core.quicken).  Each program below compiles to the
sequence named beside it, and must run to the reference interpreter's value or error,
with the error at the same place as the unfused instruction would report it."""

from __future__ import annotations

import pytest

import exathunk
from exathunk import driver, reference
from exathunk._core import quicken
from exathunk.errors import EvaluationError
from exathunk.library import default_library
from exathunk.opcodes import OPERANDS, Op
from exathunk.values import show_value

LIMITS = dict(max_steps=5_000_000, max_depth=10_000)

# The superinstructions' numbers (exathunk/_core.pyx: QOP_*).
LOCAL2, STORE_DROP, LOCAL_HEAD_EVAL, LOCAL_TAIL_EVAL, BR_LOCAL_CONS, EVAL_STORE = range(240, 246)

SHARING = ("(let ((fibs (cons 0 (cons 1 (zip-with (lambda (a b) (mod (+ a b) 1000000007))"
           " fibs (tail fibs)))))) (sum (take 2000 fibs)))")

# source, a superinstruction its code must contain
PROGRAMS = [
    (SHARING, LOCAL_HEAD_EVAL),
    (SHARING, LOCAL_TAIL_EVAL),
    (SHARING, BR_LOCAL_CONS),
    (SHARING, LOCAL2),
    ("(define (f a b) (- a b)) (f 10 3)", LOCAL2),
    # an element that is a thunk: the fused HEAD EVAL enters it and resumes past it
    ("(define (g xs) (+ 1 (head xs))) (g (map (lambda (x) (* x 10)) (list 4 5)))",
     LOCAL_HEAD_EVAL),
    ("(define (g xs) (+ 1 (head xs))) (g (list 7))", LOCAL_HEAD_EVAL),
    ("(define (len xs) (if (null? xs) 0 (+ 1 (len (tail xs))))) (len (range 0 50))",
     BR_LOCAL_CONS),
    ("(define (len xs) (if (null? xs) 0 (+ 1 (len (tail xs))))) (len (list))",
     BR_LOCAL_CONS),
    ("(sum (take 100 (iterate (lambda (x) (+ x 3)) 0)))", STORE_DROP),
    ("(define (d xs) (head (tail xs))) (d (map (lambda (x) (+ x 1)) (list 1 2 3)))",
     LOCAL_TAIL_EVAL),
    # a field that is a thunk: EVAL enters it, the STORE runs when it returns
    ("(data (Opt a) (No) (Yes a))\n(case (Yes (Yes (+ 1 2))) ((Yes (Yes x)) (* x 2)) (_ 0))",
     EVAL_STORE),
    ("(data (Opt a) (No) (Yes a))\n(case (Yes (the (Opt Int) No)) ((Yes (Yes x)) x) (_ 5))",
     EVAL_STORE),
]


def superinstructions(program):
    return {q for fn in program.functions for _, q in quicken(fn.code)}


def on_reference(source):
    return reference.evaluate(driver.check(source), default_library(), **LIMITS)


@pytest.mark.parametrize("source,qop", PROGRAMS)
def test_a_fused_sequence_runs_as_its_instructions(source, qop):
    program = exathunk.compile(source)
    assert qop in superinstructions(program)
    assert show_value(program.run(**LIMITS)) == show_value(on_reference(source))


@pytest.mark.parametrize("source,message", [
    ("(define (g xs) (+ 1 (head xs)))\n(g (list))", "head of an empty list"),
    ("(define (g xs) (+ 1 (head (tail xs))))\n(g (list 1))", "head of an empty list"),
    ("(define (g xs) (length (tail xs)))\n(g (list))", "tail of an empty list"),
])
def test_a_fused_head_or_tail_fails_where_the_instruction_stands(source, message):
    program = exathunk.compile(source)
    assert superinstructions(program) & {LOCAL_HEAD_EVAL, LOCAL_TAIL_EVAL}
    with pytest.raises(EvaluationError) as engine:
        program.run(**LIMITS)
    with pytest.raises(EvaluationError) as ref:
        on_reference(source)
    assert message in engine.value.message
    assert (engine.value.line, engine.value.column) == (ref.value.line, ref.value.column)
    assert engine.value.line == 1


def test_quicken_reads_whole_instructions_and_never_overlaps():
    program = exathunk.compile(SHARING)
    for fn in program.functions:
        starts, pc = [], 0
        while pc < len(fn.code):
            starts.append(pc)
            pc += 1 + len(OPERANDS[Op(fn.code[pc])])
        fused = quicken(fn.code)
        assert all(pc in starts for pc, _ in fused)
        # each fused sequence is at least two instructions; the next starts past it
        ends = [starts[starts.index(pc) + 2] if starts.index(pc) + 2 < len(starts)
                else len(fn.code) for pc, _ in fused]
        assert all(b >= e for (b, _), e in zip(fused[1:], ends))
