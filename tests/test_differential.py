"""Differential tests: the engine and the reference interpreter must agree.

Generated well-typed programs (tests/progen.py), laziness-sensitive ones included, must
give the same value or the same error class on the Cython engine and on the plain-Python
reference; Int arithmetic at the 64-bit boundaries must match a plain model of the
language's rules (checked overflow, truncating division, mod with the dividend's sign)
on both.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import exathunk
from exathunk import driver, reference
from exathunk.errors import ExathunkError
from exathunk.library import default_library
from exathunk.values import show_value

from progen import ARITH_OPS, int_model, near_edges, programs

LIMITS = dict(max_steps=2_000_000)


def outcome(run, source):
    """('value', shown value) or ('error', class name)."""
    try:
        return "value", show_value(run(source))
    except ExathunkError as err:
        return "error", type(err).__name__


def on_engine(source):
    return exathunk.compile(source).run(**LIMITS)


def on_reference(source):
    return reference.evaluate(driver.check(source), default_library(), **LIMITS)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(max_depth=5))
@example(("(or true bottom)", "Bool"))
@example(("(let ((u (error \"boom\"))) (head (cons 1 bottom)))", "Int"))
@example(("(length (list bottom (error \"x\")))", "Int"))
@example(("(show (list 1 bottom))", "String"))
@example(("(= (list 1 bottom) (list 2 bottom))", "Bool"))      # Eq stops at a difference
@example(("(= (list 1) (list 1 bottom))", "Bool"))
def test_engine_agrees_with_reference(program):
    source, result_type = program
    compiled = exathunk.compile(source)           # generated programs are well typed
    assert compiled.type == result_type
    reference_outcome = outcome(on_reference, source)
    assert reference_outcome[1] != "LimitExceeded", source   # generated programs are small
    assert outcome(on_engine, source) == reference_outcome, source


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ARITH_OPS), near_edges(), near_edges())
@example("*", 3037000499, 3037000499)
@example("*", 3037000500, 3037000500)
@example("/", -(1 << 63), -1)
@example("mod", -(1 << 63), -1)
@example("-", -(1 << 63), 1)
@example("+", (1 << 63) - 1, 1)
def test_int_arithmetic_edges(op, a, b):
    source = f"({op} {a} {b})"
    expected = int_model(op, a, b)
    want = ("error", "EvaluationError") if expected is None else ("value", str(expected))
    assert outcome(on_reference, source) == want
    assert outcome(on_engine, source) == want


@pytest.mark.parametrize("op", ["negate", "abs"])
@pytest.mark.parametrize("a", [0, 1, -1, (1 << 63) - 1, -(1 << 63), -(1 << 63) + 1])
def test_int_unary_edges(op, a):
    source = f"({op} {a})"
    r = -a if op == "negate" else abs(a)
    want = ("value", str(r)) if r <= (1 << 63) - 1 else ("error", "EvaluationError")
    assert outcome(on_reference, source) == want
    assert outcome(on_engine, source) == want


def _host_library():
    from exathunk.library import Library
    lib = Library()
    lib.register("answer", "Int", lambda: 42)
    lib.register("pick", "(-> Bool Int Int Int)",
                 lambda c, a, b: a() if c else b(), strict=(True, False, False))
    lib.register("digits", "(-> Int (List Int))", lambda n: [int(d) for d in str(abs(n))])
    lib.register("halve", "(-> Double Double)", lambda x: x / 2)
    lib.register("boom", "(-> Int Int)", lambda n: 1 // 0)
    lib.register("shout", "(-> String String)", lambda s: s.upper() + "!")
    lib.register("total", "(-> (List Int) Int)", sum)
    return lib


@pytest.mark.parametrize("source", [
    "(+ answer 1)",
    "(pick true 1 bottom)",
    "(pick false (error \"no\") (* 6 7))",
    "(pick true bottom 1)",
    "(sum (digits -9876))",
    "(map (lambda (d) (* d d)) (digits 123))",
    "(halve 5.0)",
    "(show (halve -0.0))",
    "(+ 1 (boom 2))",
    "(let ((x (boom 2))) 3)",
    "(shout \"h\\u{e9}\")",
    "(total (range 0 100))",
    "(total (list 1 bottom))",
    "(foldr + 0 (map (pick true 10) (list 1 2)))",
])
def test_host_functions_agree(source):
    lib = _host_library()
    engine = outcome(lambda s: exathunk.compile(s, library=lib).run(library=lib, **LIMITS),
                     source)
    ref = outcome(lambda s: reference.evaluate(driver.check(s, lib), lib, **LIMITS), source)
    assert engine == ref
