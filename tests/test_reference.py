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
from exathunk import driver, errors, reference
from exathunk import types as T
from exathunk.errors import EvaluationError, LimitExceeded
from exathunk.library import FuncSpec, Library
from exathunk.values import Data


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


# ---- data types, case and the built-in classes on them (hand-built ASTs) -------------
# Expressions in the tables are shorthand (see ``x``): "name", [fn, arg...] for an
# application, (a, b) for `(list a b)`, a Python literal for a literal.
# The parser and typechecker of these forms are written alongside, so the trees are
# built here as the typechecker hands them over: constructor Vars and PCons carry their
# ConInfo in ``con`` (nil/cons patterns None).  The data types:
#   (data (Opt a) (No) (Yes a))   (data (P a b) (P a b))   (data Color Red Green Blue)
#   (data Tree (Leaf) (Node Tree Int Tree))   (data Point (Pt (px Double) (py Double)))
#   (data L (E) (C Int L))

_opt = T.DataInfo("Opt", ("a",))
NO = _opt.add_constructor("No")
YES = _opt.add_constructor("Yes", (_opt.param_vars[0],))
_pair = T.DataInfo("P", ("a", "b"))
PAIR = _pair.add_constructor("P", _pair.param_vars)
_color = T.DataInfo("Color")
RED, GREEN, BLUE = (_color.add_constructor(n) for n in ("Red", "Green", "Blue"))
_tree = T.DataInfo("Tree")
LEAF = _tree.add_constructor("Leaf")
NODE = _tree.add_constructor("Node", (_tree.type(), T.INT, _tree.type()))
_point = T.DataInfo("Point")
PT = _point.add_constructor("Pt", (T.DOUBLE, T.DOUBLE), ("px", "py"))
_l = T.DataInfo("L")
E = _l.add_constructor("E")
C = _l.add_constructor("C", (T.INT, _l.type()))
CONS = {c.name: c for c in (NO, YES, PAIR, RED, GREEN, BLUE, LEAF, NODE, PT, E, C)}


def v(name):
    """A name; an upper-case one that is a constructor here gets its ``con``."""
    var = A.Var(name, 1, 1)
    if name in CONS:
        object.__setattr__(var, "con", CONS[name])
    return var


def lit(value):
    kind = {bool: "Bool", int: "Int", float: "Double", str: "String"}[type(value)]
    return A.Lit(value, kind)


def x(e):
    """Shorthand: a str is a name, a list an application, a tuple a `list`, else a literal."""
    if isinstance(e, str):
        return v(e)
    if isinstance(e, list):
        return A.App(x(e[0]), tuple(x(a) for a in e[1:]), 1, 1)
    if isinstance(e, tuple):
        return A.ListLit(tuple(x(a) for a in e))
    return e if type(e).__module__ == A.__name__ else lit(e)     # already a node


def pat(p):
    """Shorthand patterns: "_", a lower-case name, "nil", ["Con", p...] / ["cons", h, t],
    a bare constructor name, or a literal (A.Lit for a string literal)."""
    if p == "_":
        return A.PWild()
    if p == "nil":
        return A.PCon("nil", ())
    if isinstance(p, str):
        if p in CONS:
            return pat([p])
        return A.PVar(p)
    if isinstance(p, list):
        node = A.PCon(p[0], tuple(pat(q) for q in p[1:]))
        if p[0] != "cons":
            object.__setattr__(node, "con", CONS[p[0]])
        return node
    return A.PLit(p if isinstance(p, A.Lit) else lit(p))


def case(scrutinee, *alts, line=0, column=0, form="case"):
    return A.Case(x(scrutinee), tuple(A.Alt(pat(p), x(b)) for p, b in alts),
                  line, column, form=form)


def let(bindings, body):
    return A.Let(tuple(A.Binding(n, x(e)) for n, e in bindings), x(body))


def lam(params, body):
    return A.Lambda(tuple(params), x(body))


def define(name, params, body):
    return A.Define(name, tuple(params) if params is not None else None, x(body))


# Prelude-like helpers written with case, so these tests need nothing but the AST.
HELPERS = (
    define("map", ("f", "xs"), case("xs", ("nil", "nil"),
                                    (["cons", "h", "t"], ["cons", ["f", "h"], ["map", "f", "t"]]))),
    define("upto", ("i", "n"), A.If(x(["=", "i", "n"]), x("nil"),
                                    x(["cons", "i", ["upto", ["+", "i", 1], "n"]]))),
    define("clist", ("i", "n"), A.If(x(["=", "i", "n"]), x("E"),
                                     x(["C", "i", ["clist", ["+", "i", 1], "n"]]))),
    define("sumtree", ("t",), case("t", ("Leaf", 0),
                                   (["Node", "l", "v", "r"],
                                    ["+", ["sumtree", "l"], ["+", "v", ["sumtree", "r"]]]))),
    define("count", ("n",), case(["=", "n", 0], (True, 0), (False, ["count", ["-", "n", 1]]))),
    define("deep", ("n",), case("n", (0, 0), ("_", ["+", 1, ["deep", ["-", "n", 1]]]))),
)


def run(expr, library=None, **limits):
    module = A.Module(HELPERS, x(expr))
    return reference.evaluate_module(module, library, constructors=CONS, **limits)


STR_A = A.Lit("a", "String")
NAN = float("nan")
TREE = ["Node", ["Node", "Leaf", 1, "Leaf"], 2, ["Node", "Leaf", 3, "Leaf"]]


@pytest.mark.parametrize("expr, value", [
    # constructors: nullary values, curried functions, partial application, lazy fields
    ("No", Data("No")),
    (["Yes", 3], Data("Yes", (3,))),
    ([["P", 1], 2], Data("P", (1, 2))),
    (let([("f", ["P", 1])], (["f", 2], ["f", 3])), [Data("P", (1, 2)), Data("P", (1, 3))]),
    ([["Yes"], 4], Data("Yes", (4,))),                         # (Yes) is the constructor
    (["map", "Yes", (1, 2)], [Data("Yes", (1,)), Data("Yes", (2,))]),
    (["map", ["P", True], (1,)], [Data("P", (True, 1))]),
    (let([("u", "Yes")], ["u", "No"]), Data("Yes", (Data("No"),))),
    (["seq", ["Yes", "bottom"], 5], 5),
    (case(["P", "bottom", 2], (["P", "_", "y"], "y")), 2),
    (case(["Yes", "bottom"], (["Yes", "_"], 1)), 1),
    (["Pt", 1.0, 2.0], Data("Pt", (1.0, 2.0))),
    (TREE, Data("Node", (Data("Node", (Data("Leaf"), 1, Data("Leaf"))), 2,
                         Data("Node", (Data("Leaf"), 3, Data("Leaf")))))),
    # alternatives in order; nested patterns; recursion through case
    (case(1, ("n", 10), (1, 20)), 10),
    (case(["Yes", ["Yes", 3]], (["Yes", "No"], 0), (["Yes", ["Yes", "n"]], "n")), 3),
    (case(["P", "No", ["Yes", 7]], (["P", ["Yes", "a"], "_"], "a"),
          (["P", "No", ["Yes", "b"]], "b")), 7),
    (["sumtree", TREE], 6),
    (case("Green", ("Red", 1), ("Green", 2), ("Blue", 3)), 2),
    # literal patterns: Int, negative, Double (a NaN literal never matches), String, Bool
    (case(0, (1, "No"), (0, ["Yes", 0])), Data("Yes", (0,))),
    (case(["-", 0, 3], (3, 0), (-3, 1)), 1),
    (case(2.5, (2.0, 0), (2.5, 1)), 1),
    (case(0.0, (-0.0, 1), ("_", 2)), 1),
    (case(NAN, (NAN, 1), ("_", 2)), 2),
    (case(["/", 0.0, 0.0], (NAN, 1), ("d", 2)), 2),
    (case(["++", STR_A, A.Lit("b", "String")], (STR_A, 1), (A.Lit("ab", "String"), 2)), 2),
    (case(["<", 1, 2], (False, 0), (True, 1)), 1),
    (case(["Yes", -3], (["Yes", 3], 0), (["Yes", -3], 1)), 1),
    # list patterns: nil, cons, (list p q) as nested cons
    (case("nil", (["cons", "h", "_"], "h"), ("nil", 0)), 0),
    (case((5, 6), ("nil", 0), (["cons", "h", "_"], "h")), 5),
    (case((5, 6), (["cons", "a", ["cons", "b", "nil"]], ["+", "a", "b"])), 11),
    (case((5, 6, 7), (["cons", "a", ["cons", "b", "nil"]], 0), ("_", 1)), 1),
    (case(["cons", 1, "bottom"], (["cons", "h", "_"], "h")), 1),
    # _ and variables force nothing, and a variable shares its value
    (case("bottom", ("_", 1)), 1),
    (case("bottom", ("y", 1)), 1),
    (case(["Yes", "bottom"], ("y", 2)), 2),
    (let([("z", case("z", ("_", 3)))], "z"), 3),
    # the body is in tail position: a long loop through case needs no depth
    (["count", 100_000], 0),
    (["deep", 20_000], 20_000),
])
def test_data_and_case(expr, value):
    assert run(expr) == value


def test_a_tail_loop_through_case_runs_in_constant_depth():
    assert run(["count", 50_000], max_depth=100) == 0


@pytest.mark.parametrize("expr, message", [
    (case(["Yes", "bottom"], (["Yes", 1], 0), ("_", 1)), "bottom was forced"),
    (case(["P", "bottom", ["error", STR_A]], (["P", 1, 2], 0)), "bottom was forced"),
    (case(["P", 1, ["error", STR_A]], (["P", 1, 2], 0)), "a"),
])
def test_matching_forces_left_to_right_and_no_further(expr, message):
    with pytest.raises(EvaluationError) as info:
        run(expr)
    assert info.value.message == message
    assert run(case(["P", 1, ["error", STR_A]], (["P", 2, "_"], 0), (["P", "_", "_"], 5))) == 5


@pytest.mark.parametrize("node, message", [
    (case(["Yes", 1], ("No", 0), line=3, column=7),
     "no alternative of the case at line 3, column 7 matches the value"),
    (case(["Yes", 1], (["Yes", 2], 0), line=2, column=1),
     "no alternative of the case at line 2, column 1 matches the value"),
    (case("bottom", line=4, column=2),                       # no alternatives: never forced
     "no alternative of the case at line 4, column 2 matches the value"),
    (case(True, line=5, column=9, form="cond"),
     "no condition of the cond at line 5, column 9 holds (and it has no else)"),
    (case(NAN, (NAN, 0), line=1, column=1), errors.no_match_message("case", 1, 1)),
])
def test_no_match_is_an_error_at_the_case(node, message):
    with pytest.raises(EvaluationError) as info:
        run(node)
    assert info.value.message == message
    assert (info.value.line, info.value.column) == (node.line, node.column)
    assert message == errors.no_match_message(node.form, node.line, node.column)


@pytest.mark.parametrize("op, left, right, want", [
    # Eq on data: structural, stopping at the first difference
    ("=", ["Yes", 1], ["Yes", 1], True),
    ("=", ["Yes", 1], "No", False),
    ("/=", ["Yes", 1], ["Yes", 2], True),
    ("=", TREE, TREE, True),
    ("=", ["P", 1, "bottom"], ["P", 2, "bottom"], False),
    ("=", "No", ["Yes", "bottom"], False),
    ("=", ["Yes", NAN], ["Yes", NAN], False),
    ("/=", ["Yes", NAN], ["Yes", NAN], True),
    ("=", ["Pt", 0.0, 1.0], ["Pt", -0.0, 1.0], True),
    ("=", (1, 2), (1, 2), True),
    ("=", (1, 2), (1,), False),
    ("=", ["cons", 1, "bottom"], ["cons", 2, "bottom"], False),
    # Ord on data: constructor tag first, then fields left to right
    ("<", "Red", "Green", True),
    ("<", "Blue", "Green", False),
    (">=", "Blue", "Blue", True),
    ("<", "No", ["Yes", "bottom"], True),
    ("<", "Leaf", TREE, True),
    ("<", ["Node", "Leaf", 1, "Leaf"], ["Node", "Leaf", 2, "Leaf"], True),
    (">", ["P", 2, "bottom"], ["P", 1, "bottom"], True),
    ("<=", ["P", 1, 2], ["P", 1, 2], True),
    ("<", ["P", 1, 2], ["P", 1, 2], False),
    # Ord on lists: lexicographic, nil first
    ("<", (1, 2), (1, 3), True),
    ("<", "nil", (1,), True),
    ("<", (1,), "nil", False),
    ("<", (1,), (1, 0), True),
    ("<=", (1, 2), (1, 2), True),
    (">", (2,), (1, 5), True),
    (">=", (1,), (1, 5), False),
    ("<", ["cons", 1, "bottom"], ["cons", 2, "bottom"], True),
    ("<", (STR_A,), (A.Lit("b", "String"),), True),
    ("<", ("No",), (["Yes", 0],), True),
    # Ord on Bool: false < true
    ("<", False, True, True),
    (">", False, True, False),
    ("<=", True, True, True),
    (">=", False, True, False),
    # a NaN met makes the comparison unordered: all four false
    *[(op, (NAN,), (1.0,), False) for op in ("<", "<=", ">", ">=")],
    *[(op, ["P", 1.0, NAN], ["P", 1.0, 2.0], False) for op in ("<", "<=", ">", ">=")],
    *[(op, ["Yes", NAN], ["Yes", NAN], False) for op in ("<", "<=", ">", ">=", "=")],
    ("=", (NAN,), (NAN,), False),
    ("<", (1.0, NAN), (2.0, NAN), True),                     # stops before the NaN
    ("<", ["P", 1.0, NAN], ["P", 2.0, NAN], True),
])
def test_eq_and_ord_on_data_lists_and_bool(op, left, right, want):
    assert run([op, left, right]) is want


def test_comparing_long_lists_and_deep_data_needs_no_python_depth():
    n = 100_000
    assert run(["=", ["upto", 0, n], ["upto", 0, n]]) is True
    assert run(["<", ["upto", 0, n], ["upto", 0, n + 1]]) is True
    assert run([">=", ["upto", 0, n], ["upto", 0, n + 1]]) is False
    assert run(["=", ["clist", 0, n], ["clist", 0, n]]) is True
    assert run(["<", ["clist", 0, n], ["clist", 1, n]]) is True
    assert run(["len", ["show", ["clist", 0, n]]]) > 6 * n
    value = run(["clist", 0, n])                             # handed back as nested Data
    for i in range(n):
        assert value.constructor == "C" and value.fields[0] == i
        value = value.fields[1]
    assert value == Data("E")


@pytest.mark.parametrize("expr, text", [
    ("No", "No"),
    (["Yes", -3], "(Yes -3)"),
    (["Yes", ["P", STR_A, (1, -3)]], '(Yes (P "a" (list 1 -3)))'),
    (("No", ["Yes", 2.5]), "(list No (Yes 2.5))"),
    (["Pt", 1.0, 2.0], "(Pt 1.0 2.0)"),
    (TREE, "(Node (Node Leaf 1 Leaf) 2 (Node Leaf 3 Leaf))"),
    (["Yes", ["Yes", "Red"]], "(Yes (Yes Red))"),
])
def test_show_of_data(expr, text):
    assert run(["show", expr]) == text


class HostLibrary(Library):
    """Host functions with any signature: the reference reads a spec's kind,
    strictness and fn (the signature is the typechecker's business)."""

    def add(self, name, fn, strict):
        self._specs[name] = FuncSpec(name, "", "host", tuple(strict), fn)


@pytest.mark.parametrize("expr, value, calls", [
    (case(["tick", 1], ("y", ["+", "y", "y"])), 2, 1),
    (case(["tick", 1], (2, 0), (3, 0), (1, 5)), 5, 1),      # one scrutinee for every alt
    (let([("p", ["P", ["tick", 3], 0])],
         ["+", case("p", (["P", "a", "_"], ["+", "a", "a"])), case("p", (["P", "b", "_"], "b"))]),
     9, 1),
    (case(["P", ["tick", 1], 0], (["P", "_", 1], 0), (["P", "a", 0], 7)), 7, 0),
    (case(["tick", 1], ("_", 4)), 4, 0),
])
def test_case_shares_what_it_binds(expr, value, calls):
    lib = HostLibrary()
    seen = []
    lib.add("tick", lambda n: seen.append(n) or n, (True,))
    assert run(expr, lib) == value
    assert len(seen) == calls


def test_host_functions_take_and_return_data():
    lib = HostLibrary()
    seen = []
    lib.add("unwrap", lambda d: seen.append(d) or d.fields[0], (True,))
    lib.add("wrap", lambda n: Data("Yes", (Data("P", (n, [Data("No")])),)), (True,))
    lib.add("lazy-tag", lambda t: t().constructor, (False,))
    assert run(["unwrap", ["Yes", TREE]], lib) == Data("Node", (
        Data("Node", (Data("Leaf"), 1, Data("Leaf"))), 2,
        Data("Node", (Data("Leaf"), 3, Data("Leaf")))))
    assert seen == [Data("Yes", (run(TREE),))]               # arrives in normal form
    assert run(["wrap", 4], lib) == Data("Yes", (Data("P", (4, [Data("No")])),))
    assert run(case(["wrap", 4], (["Yes", ["P", "n", ["cons", "No", "nil"]]], "n")), lib) == 4
    assert run(["show", ["wrap", 4]], lib) == "(Yes (P 4 (list No)))"
    assert run(["=", ["wrap", 1], ["Yes", ["P", 1, ("No",)]]], lib) is True
    assert run(["lazy-tag", "Blue"], lib) == "Blue"


@pytest.mark.parametrize("result, message", [
    ((1, 2), "host function 'bad' returned a tuple; a list is a Python list"),
    ([Data("Yes", ((1,),))], "host function 'bad' returned a tuple; a list is a Python list"),
    (Data("Maybe", (1,)), "host function 'bad' returned an unknown constructor 'Maybe'"),
    (Data("Yes"), "host function 'bad' returned Yes with 0 fields; it has 1"),
    (Data("No", (1,)), "host function 'bad' returned No with 1 fields; it has 0"),
    ({1: 2}, "host function 'bad' returned a dict, not an exathunk value"),
])
def test_host_results_that_are_not_values_are_errors(result, message):
    lib = HostLibrary()
    lib.add("bad", lambda n: result, (True,))
    with pytest.raises(EvaluationError) as info:
        run(["bad", 1], lib)
    assert info.value.message == message
