"""Differential tests: the engine and the reference interpreter must agree.

Generated well-typed programs (tests/progen.py: data types, case, cond, classes and
instances, the prelude's data and string functions, laziness-sensitive forms included)
must give the same value or the same error class on the Cython engine and on the
plain-Python reference; values are compared by their show text and structurally (data
values as exathunk.Data by constructor and fields).  Int arithmetic at the 64-bit
boundaries must match a plain model of the language's rules (checked overflow,
truncating division, mod with the dividend's sign) on both, and table-driven data,
case, cond and class programs must give the outcome the language defines on both.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import exathunk
from exathunk import Data, driver, reference
from exathunk.errors import ExathunkError
from exathunk.library import default_library
from exathunk.values import show_double, show_value

from progen import ARITH_OPS, fusion_programs, int_model, near_edges, programs

LIMITS = dict(max_steps=2_000_000)


def structure(v):
    """A host value as nested tuples tagged with their Python types, so that two results
    compare structurally: a Data value by its constructor and fields (and it must be an
    exathunk.Data), a list element-wise, anything else by type and value."""
    if isinstance(v, Data):
        return ("Data", v.constructor, tuple(structure(f) for f in v.fields))
    if isinstance(v, list):
        return ("list", tuple(structure(x) for x in v))
    if isinstance(v, float):
        return ("float", show_double(v))          # nan, -0.0 by their text
    assert isinstance(v, (bool, int, str)), repr(v)
    return (type(v).__name__, v)


def outcome(run, source):
    """('value', shown value, structure) or ('error', class name)."""
    try:
        value = run(source)
    except ExathunkError as err:
        return "error", type(err).__name__
    return "value", show_value(value), structure(value)


def on_engine(source):
    return exathunk.compile(source).run(**LIMITS)


def on_reference(source):
    return reference.evaluate(driver.check(source), default_library(), **LIMITS)


@settings(max_examples=800, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(max_depth=5, classes=True))
@example(("(or true bottom)", "Bool"))
@example(("(let ((u (error \"boom\"))) (head (cons 1 bottom)))", "Int"))
@example(("(length (list bottom (error \"x\")))", "Int"))
@example(("(show (list 1 bottom))", "String"))
@example(("(= (list 1 bottom) (list 2 bottom))", "Bool"))      # Eq stops at a difference
@example(("(= (list 1) (list 1 bottom))", "Bool"))
@example(("(data (Opt a) (No) (Yes a))\n(case (Yes bottom) ((Yes _) 1) ((No) 2))", "Int"))
@example(("(data (Opt a) (No) (Yes a))\n(case (the (Opt Int) No) ((Yes x) x))", "Int"))
@example(("(data (Two a b) (P a b))\n(= (P 1 bottom) (P 2 bottom))", "Bool"))
@example(("(data Tree (Leaf) (Node Tree Int Tree))\n(Node Leaf 1 (Node Leaf 2 Leaf))", "Tree"))
def test_engine_agrees_with_reference(program):
    source, result_type = program
    compiled = exathunk.compile(source)           # generated programs are well typed
    assert compiled.type == result_type
    reference_outcome = outcome(on_reference, source)
    assert reference_outcome[1] != "LimitExceeded", source   # generated programs are small
    assert outcome(on_engine, source) == reference_outcome, source


# Fusion-shaped chains (the compiler's fusion stage rewrites them; the reference never
# does): a wrong rewrite gives another value, or an error where there is none.
FUSION_CASES = [
    "(sum (take 3 (iterate (lambda (x) (if (= x 2) (error \"far\") (+ x 1))) 0)))",
    "(sum (take 4 (iterate (lambda (x) (if (= x 2) (error \"far\") (+ x 1))) 0)))",
    "(length (map (lambda (x) (error \"no\")) (range 0 5)))",
    "(sum (map (lambda (x) (error \"no\")) (range 0 5)))",
    "(length (take 2 (map (lambda (x) bottom) (iterate (lambda (x) bottom) 0))))",
    "(sum (map (lambda (x) (* x 2)) (filter (lambda (x) (> x 0)) (list 1 0 2 -1))))",
    "(sum (filter (lambda (x) (> x 0)) (list 1 bottom 2)))",
    "(length (filter (lambda (x) true) (list 1 bottom 2)))",
    "(sum (take 2 (list 1 2 bottom)))",
    "(sum (take 3 (list 1 2 bottom)))",
    "(length (take 5 (cons 1 (cons 2 bottom))))",
    "(let ((xs (map (lambda (x) (* x 10)) (range 0 10)))) (+ (sum xs) (length xs)))",
    "(let ((xs (map (lambda (x) (if (= x 3) bottom x)) (range 0 5)))) (+ (length xs) (sum (take 3 xs))))",
    "(let ((fibs (cons 0 (cons 1 (zip-with (lambda (a b) (+ a b)) fibs (tail fibs)))))) (sum (take 30 fibs)))",
    "(sum (take 0 (iterate (lambda (x) bottom) bottom)))",
    "(sum (take -1 bottom))",
    "(length (take 3 (filter (lambda (x) (= (mod x 2) 0)) (range 0 1000000000))))",
    "(foldl (lambda (a x) x) bottom (take 3 (range 0 100)))",
    "(foldl (lambda (a x) a) bottom (take 3 (range 0 100)))",
    "(foldl-strict (lambda (a x) x) bottom (take 3 (range 0 100)))",
    "(product (map (lambda (x) (+ x 1)) (range 0 10)))",
    "(sum (map (lambda (x) (* x 100000000000000000)) (range 0 20)))",
    "(let ((f (lambda (x) (+ x 1))) (head 5)) (sum (map f (map (lambda (y) (+ y head)) (range 0 4)))))",
    "(sum (zip-with (lambda (a b) (- a b)) (range 0 5) (list 9 8 bottom)))",
    "(sum (zip-with (lambda (a b) a) (range 0 3) (cons 1 (cons 2 (cons 3 bottom)))))",
    "(let ((ys (filter (lambda (x) (> x 2)) (list 5 1 bottom)))) (head ys))",
    "(sum (map (lambda (x) (sum (map (lambda (y) (* x y)) (range 0 x)))) (range 0 10)))",
    "(show (map (lambda (x) (* x x)) (filter (lambda (x) (> x 1)) (range 0 6))))",
    "(length (map (lambda (x y) (+ x y)) (range 0 3)))",
]


@pytest.mark.parametrize("source", FUSION_CASES)
def test_fusion_cases_agree(source):
    assert outcome(on_engine, source) == outcome(on_reference, source)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fusion_programs())
def test_fused_chains_agree_with_reference(program):
    source, result_type = program
    assert exathunk.compile(source).type == result_type
    reference_outcome = outcome(on_reference, source)
    assert reference_outcome[1] != "LimitExceeded", source
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
    want = (("error", "EvaluationError") if expected is None
            else ("value", str(expected), ("int", expected)))
    assert outcome(on_reference, source) == want
    assert outcome(on_engine, source) == want


@pytest.mark.parametrize("op", ["negate", "abs"])
@pytest.mark.parametrize("a", [0, 1, -1, (1 << 63) - 1, -(1 << 63), -(1 << 63) + 1])
def test_int_unary_edges(op, a):
    source = f"({op} {a})"
    r = -a if op == "negate" else abs(a)
    want = ("value", str(r), ("int", r)) if r <= (1 << 63) - 1 else ("error", "EvaluationError")
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


DECLS = """(data (Opt a) (No) (Yes a))
(data (Two a b) (P a b))
(data Shape (Circle (radius Int)) (Rect (width Int) (height Int)))
(data Point (Pt (px Double) (py Double)))
(data Tree (Leaf) (Node Tree Int Tree))
(data Color Red Green Blue)
(data Rose (Rose Int Forest))
(data Forest (FNil) (FCons Rose Forest))
"""

E = ("error", "EvaluationError")


# Data, case, cond, classes and the prelude's data functions where laziness or an edge
# decides the outcome: both evaluators must give the outcome the language defines.
@pytest.mark.parametrize("body, want", [
    # case forces only what its patterns need; fields are lazy
    ("(case (Yes bottom) ((Yes _) 1) ((No) 2))", "1"),
    ("(case (Yes (Yes bottom)) ((Yes (Yes _)) 1) (_ 0))", "1"),
    ("(case (Yes (the (Opt Int) bottom)) ((Yes No) 1) (_ 0))", E),
    ("(case (the (Opt Int) bottom) (_ 1))", "1"),
    ("(case (the (Opt Int) bottom) (No 1) (_ 2))", E),
    ("(case (P 1 bottom) ((P 2 3) 1) (_ 0))", "0"),          # left to right, stops early
    ("(case (P 2 bottom) ((P 2 3) 1) (_ 0))", E),
    ("(case (Node Leaf 1 bottom) ((Node Leaf _ _) 1) (_ 3))", "1"),
    ("(case (Node bottom 1 Leaf) ((Node _ _ (Node _ _ _)) 1) ((Node Leaf _ Leaf) 2) (_ 3))", E),
    ("(case (cons 1 bottom) ((list a) a) (_ 0))", E),        # (list a) looks at the tail
    ("(case (list bottom) ((list _) 1) (_ 2))", "1"),
    ("(case (list 1 2) ((list) 0) ((list _) 1) ((list _ _) 2) (_ 3))", "2"),
    ("(case (list (Yes 1) No) ((list (Yes a) (Yes b)) (+ a b)) ((list (Yes a) No) a) (_ 0))",
     "1"),
    ("(case -9223372036854775808 (-9223372036854775808 1) (_ 2))", "1"),
    ("(case -0.0 (0.0 \"z\") (_ \"nz\"))", '"z"'),
    ("(case (Pt nan 1.0) ((Pt nan _) 1) (_ 2))", "2"),          # nan never matches
    # a non-exhaustive case or cond fails only when it is reached
    ("(case (the (Opt Int) No) ((Yes x) x))", E),
    ("(let ((u (case (the (Opt Int) No) ((Yes x) x)))) 5)", "5"),
    ("(case (Yes 3) ((Yes x) x))", "3"),
    ("(cond ((= 1 2) 1))", E),
    ("(cond (true 1) ((case (the (Opt Int) No) ((Yes _) true)) 2))", "1"),
    # records: accessors are lazy in the other fields and fail on another constructor
    ("(width (Rect 5 bottom))", "5"),
    ("(height (Circle 1))", E),
    ("(length (map width (list (Rect 1 2) (Circle 3))))", "2"),
    ("(map width (list (Rect 1 2) (Circle 3)))", E),
    # derived Eq and Ord stop at the first difference
    ("(= (P 1 bottom) (P 2 bottom))", "false"),
    ("(< (the (Opt Int) No) (Yes bottom))", "true"),
    ("(= (Circle bottom) (Rect bottom 1))", "false"),
    ("(min (Yes 1) (Yes bottom))", E),
    ("(case (max (the (Opt Int) No) (Yes bottom)) ((Yes _) 1) (_ 0))", "1"),
    ("(< (Rose 1 FNil) (Rose 1 (FCons (Rose 2 FNil) FNil)))", "true"),
    ("(list (= (Pt nan 0.0) (Pt nan 0.0)) (< (Pt nan 1.0) (Pt nan 2.0))"
     " (= (Pt 0.0 1.0) (Pt -0.0 1.0)))", "(list false false true)"),
    ("(list (min nan 1.0) (max nan 1.0) (min -0.0 0.0) (max -0.0 0.0))",
     "(list 1.0 nan -0.0 0.0)"),
    # constructors are curried functions
    ("(let ((k (P (+ 1 2)))) (list (k true) (k false)))", "(list (P 3 true) (P 3 false))"),
    ("(zip-with P (list 1 2 3) (list true false))", "(list (P 1 true) (P 2 false))"),
    ("(length (map Yes (list bottom bottom)))", "2"),
    ("(seq (P 1 bottom) 2)", "2"),
    ("(seq (the (Opt Int) bottom) 1)", E),
    # the prelude's data functions and strings
    ("(lookup 2 (zip (list 1 2) (list bottom \"b\")))", '(Just "b")'),
    ("(maybe 0 (lambda (x) 1) (Just bottom))", "1"),
    ("(snd (Pair bottom \"x\"))", '"x"'),
    ("(from-maybe 0 (string->int \"-9223372036854775808\"))", "-9223372036854775808"),
    ("(from-maybe 0 (string->int \"9223372036854775808\"))", "0"),
    ("(%parse-int \"4x2\")", E),
    ("(substring \"abc\" -9223372036854775808 9223372036854775807)", '"abc"'),
    ("(substring \"abc\" 9223372036854775807 -9223372036854775808)", '""'),
    ("(split \"\" \"\")", E),
    ("(split \"aa\" \"aaa\")", '(list "" "a")'),
    ("(join \",\" (list \"a\" bottom))", E),
    ("(show (list (Pt -0.0 nan) (Pt inf 1e22)))", '"(list (Pt -0.0 nan) (Pt inf 1e+22))"'),
])
def test_data_programs_agree(body, want):
    source = DECLS + body
    want = want if isinstance(want, tuple) else ("value", want)
    for run in (on_reference, on_engine):
        got = outcome(run, source)
        assert got[:2] == want, (run.__name__, source)


CLASSES = """(data (Opt a) (No) (Yes a))
(data (Two a b) (P a b))
(class (Size a) (size (-> a Int)) (label (-> a String))
  (define (label x) (++ "#" (show (size x)))))
(instance (Size Int) (define (size n) (abs n)))
(instance (Size String) (define (size s) (len s)) (define (label s) (++ "s:" s)))
(instance (Size Bool) (define (size b) (if b 1 0)))
(instance (=> (Size a) (Size (Opt a))) (define (size o) (case o (No 0) ((Yes x) (+ 1 (size x)))))
  (define (label o) (case o (No "none") ((Yes x) (label x)))))
(instance (=> (Size a) (Size b) (Size (Two a b)))
  (define (size p) (case p ((P a b) (* (size a) (size b))))))
(instance (=> (Size a) (Size (List a))) (define (size xs) (foldr + 0 (map size xs))))
(define (size2 x) (+ (size x) (size x)))
(class (Default a) (def a))
(instance (Default Int) (define def 7))
(instance (Default (List a)) (define def nil))
(instance (=> (Default a) (Default (Opt a))) (define def (Yes def)))
(class (=> (Show a) (Pretty a)) (pretty (-> a String))
  (define (pretty x) (++ "<" (++ (show x) ">"))))
(instance (Pretty Int))
(instance (=> (Pretty a) (Pretty (List a))) (define (pretty xs) (join "," (map pretty xs))))
(instance (=> (Pretty a) (Pretty (Maybe a))) (define (pretty m) (maybe "?" pretty m)))
"""


@pytest.mark.parametrize("body, want", [
    ('(list (label (Yes "x")) (label (list 1 2)) (label (the (Opt Int) No)) (label true))',
     '(list "s:x" "#3" "none" "#1")'),
    ("(list (size (list (Yes 3) No)) (size (P (P 2 3) false)) (size2 (list (list 1 2) (list 3))))",
     "(list 4 0 12)"),
    ("(label -9223372036854775808)", E),                        # abs overflows
    ("(let ((u (label -9223372036854775808))) (size 3))", "3"),
    ("(size (P bottom false))", E),
    ("(length (map size (list 1 bottom 3)))", "3"),
    ('(let ((s (lambda (x) (+ 1 (size x))))) (+ (s 3) (s "ab")))', "7"),
    ("(list (show (the (Opt (Opt Int)) def)) (show (the (Opt (List Int)) def)))",
     '(list "(Yes (Yes 7))" "(Yes (list))")'),
    ("(list (pretty (list (Just 1) Nothing)) (pretty (Just (list 1 2)))"
     " (pretty (the (List Int) nil)))", '(list "<1>,?" "<1>,<2>" "")'),
])
def test_class_programs_agree(body, want):
    source = CLASSES + body
    want = want if isinstance(want, tuple) else ("value", want)
    for run in (on_reference, on_engine):
        got = outcome(run, source)
        assert got[:2] == want, (run.__name__, source)
