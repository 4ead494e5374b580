"""The reference interpreter on its own: sharing, laziness, host functions and limits.

Sharing is observed through a counting host function: a let-bound, argument or
top-level value that is used twice must call it once, and one that is never used must
not call it at all.  The golden table (test_cases.py) covers the language itself.
"""

from __future__ import annotations

import sys
import threading

import pytest

from exathunk import ast as A
from exathunk import driver, reference
from exathunk.errors import EvaluationError, LimitExceeded
from exathunk.library import Library


def evaluate(source: str, library: Library | None = None, **limits):
    library = library or Library()
    return reference.evaluate(driver.check(source, library), library, **limits)


def counting_library():
    calls = []

    def tick(n):
        calls.append(n)
        return n

    lib = Library()
    lib.register("tick", "(-> Int Int)", tick)
    return lib, calls


@pytest.mark.parametrize("source, expected_calls, value", [
    ("(let ((x (tick 1))) (+ x x))", 1, 2),
    ("((lambda (y) (* y (+ y y))) (tick 3))", 1, 18),
    ("(define c (tick 5))\n(+ c (+ c c))", 1, 15),
    ("(let ((x (tick 1))) 5)", 0, 5),
    ("(define (const a b) a)\n(const 1 (tick 2))", 0, 1),
    ("(let ((xs (map tick (list 1 2 3)))) (+ (sum xs) (sum xs)))", 3, 12),
    ("(let ((xs (map tick (list 1 2 3)))) (head (tail xs)))", 1, 2),
    ("(length (map tick (range 0 10)))", 0, 10),
])
def test_sharing_and_laziness_are_call_by_need(source, expected_calls, value):
    lib, calls = counting_library()
    assert evaluate(source, lib) == value
    assert len(calls) == expected_calls


def test_partial_application_shares_its_argument():
    lib, calls = counting_library()
    src = "(let ((add (+ (tick 10)))) (list (add 1) (add 2) (add 3)))"
    assert evaluate(src, lib) == [11, 12, 13]
    assert calls == [10]


def test_host_function_strict_and_lazy_arguments():
    lib = Library()
    seen = []
    lib.register("pick", "(-> Bool Int Int Int)",
                 lambda c, a, b: a() if c else b(), strict=(True, False, False))
    lib.register("total", "(-> (List Int) Int)", lambda xs: seen.append(xs) or sum(xs))
    assert evaluate("(pick true 1 bottom)", lib) == 1
    assert evaluate("(pick false (error \"no\") 2)", lib) == 2
    assert evaluate("(total (range 0 5))", lib) == 10
    assert seen == [[0, 1, 2, 3, 4]]                  # a strict list arrives forced
    with pytest.raises(EvaluationError):
        evaluate("(pick true bottom 1)", lib)


def test_host_function_results_and_failures():
    lib = Library()
    lib.register("digits", "(-> Int (List Int))", lambda n: [int(d) for d in str(n)])
    lib.register("boom", "(-> Int Int)", lambda n: 1 // 0)
    lib.register("huge", "(-> Int Int)", lambda n: 1 << 70)
    lib.register("unused", "(-> Int Int)", lambda n: 1 // 0)
    assert evaluate("(sum (digits 1234))", lib) == 10
    assert evaluate("(let ((x (unused 1))) 3)", lib) == 3
    with pytest.raises(EvaluationError) as info:
        evaluate("(+ 1 (boom 2))", lib)
    assert "boom" in info.value.message and "ZeroDivisionError" in info.value.message
    with pytest.raises(EvaluationError, match="huge"):
        evaluate("(huge 1)", lib)


def test_blackhole_is_an_error_not_a_hang():
    with pytest.raises(EvaluationError, match="depends on itself"):
        evaluate("(let ((x (+ x 1))) x)")
    with pytest.raises(EvaluationError):
        evaluate("(define xs (cons 1 (map (lambda (x) (head xs)) (tail xs))))\n(length xs)")


def test_max_steps_limit_and_recovery():
    with pytest.raises(LimitExceeded) as info:
        evaluate("(define (loop n) (loop (+ n 1)))\n(loop 0)", max_steps=10_000)
    assert info.value.limit == "max_steps"
    with pytest.raises(LimitExceeded) as info:
        evaluate("(iterate (lambda (x) x) 1)", max_steps=10_000)
    assert info.value.limit == "max_steps"
    assert evaluate("(+ 1 2)") == 3                  # the next run is unaffected


DEEP = "(define (deep n) (if (= n 0) 0 (+ 1 (deep (- n 1)))))\n(deep {n})"


def test_deep_recursion_evaluates_within_the_depth_bound():
    assert evaluate(DEEP.format(n=30_000)) == 30_000


def test_deep_recursion_beyond_the_bound_is_a_limit_not_a_crash():
    limit = sys.getrecursionlimit()
    with pytest.raises(LimitExceeded) as info:
        evaluate(DEEP.format(n=1_000_000))
    assert info.value.limit == "max_depth"
    with pytest.raises(LimitExceeded) as info:
        evaluate(DEEP.format(n=5_000), max_depth=1_000)
    assert info.value.limit == "max_depth"
    assert sys.getrecursionlimit() == max(limit, 5000)


def test_tail_calls_and_strict_folds_run_in_constant_depth():
    assert evaluate("(sum (range 0 50000))", max_depth=200) == 1249975000
    assert evaluate("(length (range 0 30000))", max_depth=200) == 30000


def test_sum_and_product_are_specialised_by_type():
    assert evaluate("(sum (the (List Double) nil))") == 0.0
    assert isinstance(evaluate("(product (the (List Double) nil))"), float)
    assert evaluate("(product (the (List Int) nil))") == 1
    with pytest.raises(EvaluationError):             # the poly variant (library.SPECIALISED)
        evaluate("(define (total xs) (sum xs))\n(total (the (List Int) nil))")


def test_concurrent_runs_are_independent():
    results = {}

    def work(k):
        results[k] = evaluate(f"(sum (map (lambda (x) (* x {k})) (range 0 2000)))")

    threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {k: k * 1999000 for k in (1, 2, 3)}


def test_hand_built_module_without_prelude():
    # The evaluator needs nothing but the AST: (let ((f (lambda (x) (* x x)))) (f (f 3)))
    sq = A.Lambda(("x",), A.App(A.Var("*"), (A.Var("x"), A.Var("x"))))
    body = A.Let((A.Binding("f", sq),), A.App(A.Var("f"), (A.App(A.Var("f"), (A.Lit(3, "Int"),)),)))
    assert reference.evaluate_module(A.Module((), body)) == 81


def test_error_carries_a_position():
    with pytest.raises(EvaluationError) as info:
        evaluate("(+ 1\n   (/ 1 0))")
    assert info.value.line == 2
