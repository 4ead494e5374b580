"""Tests of the parser: every construct to its AST, every error to its place and message,
the nesting limit, linear time on large input, no files written, -OO, and threads.

Each table row runs through both parse() (the fast path) and parse_with_ply() (PLY's own
loop, which also words the errors): they must agree.
"""

import math
import os
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings, strategies as st

from exathunk import ast
from exathunk.ast import (Alt, App, Binding, Case, ClassDecl, ConDecl, DataDecl, Define,
                          If, InstanceDecl, Lambda, Let, ListLit, Lit, MethodSig, Module,
                          PCon, PLit, PVar, PWild, Pred, The, TyApp, TyCon, TyFun, TyList,
                          TyQual, TyVar, Var)
from exathunk.errors import ParseError
from exathunk.parser import (FORM_SHAPES, MAX_NESTING, parse, parse_declaration, parse_expr,
                             parse_type, parse_with_ply)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def I(n):
    return Lit(n, "Int")


def D(x):
    return Lit(x, "Double")


def S(s):
    return Lit(s, "String")


def B(b):
    return Lit(b, "Bool")


def V(name):
    return Var(name)


def both(source):
    fast = parse(source)
    reference = parse_with_ply(source)
    assert fast == reference
    assert positions(fast) == positions(reference)
    return fast


def positions(node):
    """Every (class, line, column) in the tree, in order (equality ignores positions)."""
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (tuple, list)):
            stack.extend(reversed(n))
        elif hasattr(n, "__dataclass_fields__"):
            out.append((type(n).__name__, n.line, n.column))
            fields = [f for f in n.__dataclass_fields__
                      if f not in ("line", "column", "inst_type")]
            stack.extend(getattr(n, f) for f in reversed(fields))
    return out


# ---- every construct ---------------------------------------------------------------------

EXPRESSIONS = [
    ("42", I(42)),
    ("-7", I(-7)),
    ("3.5", D(3.5)),
    ("1e3", D(1000.0)),
    ("-inf", D(-math.inf)),
    ('"a\\"b"', S('a"b')),
    ("true", B(True)),
    ("I64:42", I(42)),
    ("DOUBLE:-0.5", D(-0.5)),
    ("BOOL:false", B(False)),
    ("STRING:foo", S("foo")),
    ("x", V("x")),
    ("(f a b)", App(V("f"), (V("a"), V("b")))),
    ("(+ 1 (/ 4 2))", App(V("+"), (I(1), App(V("/"), (I(4), I(2)))))),
    ("((f a) b)", App(App(V("f"), (V("a"),)), (V("b"),))),
    ("(f)", V("f")),
    ("((((f))))", V("f")),
    ("((f a))", App(V("f"), (V("a"),))),
    ("(1)", I(1)),
    ("((lambda (x) x) 1)", App(Lambda(("x",), V("x")), (I(1),))),
    ("(if c t e)", If(V("c"), V("t"), V("e"))),
    ("(if (< x 0) (negate x) x)",
     If(App(V("<"), (V("x"), I(0))), App(V("negate"), (V("x"),)), V("x"))),
    ("(let ((x 1) (y x)) (+ x y))",
     Let((Binding("x", I(1)), Binding("y", V("x"))), App(V("+"), (V("x"), V("y"))))),
    ("(let x 1 x)", Let((Binding("x", I(1)),), V("x"))),
    ("(let ((f (lambda (n) n))) (f 1))",
     Let((Binding("f", Lambda(("n",), V("n"))),), App(V("f"), (I(1),)))),
    ("(lambda (x y) (+ x y))", Lambda(("x", "y"), App(V("+"), (V("x"), V("y"))))),
    ("(the Int e)", The(TyCon("Int"), V("e"))),
    ("(the Double 1.0)", The(TyCon("Double"), D(1.0))),
    ("(the (List a) nil)", The(TyList(TyVar("a")), V("nil"))),
    ("(the Foo 1)", The(TyCon("Foo"), I(1))),
    ("(the (Maybe a) x)", The(TyApp("Maybe", (TyVar("a"),)), V("x"))),
    ("(the (-> Int Bool) f)", The(TyFun((TyCon("Int"),), TyCon("Bool")), V("f"))),
    ("(the (-> a (List b) (-> String c)) f)",
     The(TyFun((TyVar("a"), TyList(TyVar("b"))), TyFun((TyCon("String"),), TyVar("c"))),
         V("f"))),
    ("(list 1 2 3)", ListLit((I(1), I(2), I(3)))),
    ("(list)", ListLit(())),
    ("((list))", ListLit(())),
    ("(list (list) (list 1))", ListLit((ListLit(()), ListLit((I(1),))))),
    ("(cons 1 nil)", App(V("cons"), (I(1), V("nil")))),
    ("(- 0 1)", App(V("-"), (I(0), I(1)))),
    ("(-> 1 2)", App(V("->"), (I(1), I(2)))),
    ("; leading comment\n  (f 1) ; trailing\n", App(V("f"), (I(1),))),
]


@pytest.mark.parametrize("source,expected", EXPRESSIONS)
def test_expression(source, expected):
    module = both(source)
    assert module.defines == ()
    assert module.body == expected
    assert parse_expr(source) == expected


PROGRAMS = [
    ("(define n 10) n", Module((Define("n", None, I(10)),), V("n"))),
    ("(define (f x y) (+ x y)) (f 1 2)",
     Module((Define("f", ("x", "y"), App(V("+"), (V("x"), V("y")))),),
            App(V("f"), (I(1), I(2))))),
    ("(define (k) 5) k", Module((Define("k", (), I(5)),), V("k"))),
    ("(define (even? n) (if (= n 0) true (odd? (- n 1))))\n"
     "(define (odd? n) (if (= n 0) false (even? (- n 1))))\n"
     "(even? 10)",
     Module((Define("even?", ("n",), If(App(V("="), (V("n"), I(0))), B(True),
                                         App(V("odd?"), (App(V("-"), (V("n"), I(1))),)))),
             Define("odd?", ("n",), If(App(V("="), (V("n"), I(0))), B(False),
                                        App(V("even?"), (App(V("-"), (V("n"), I(1))),))))),
            App(V("even?"), (I(10),)))),
]


@pytest.mark.parametrize("source,expected", PROGRAMS)
def test_program(source, expected):
    assert both(source) == expected


def test_every_node_carries_its_position():
    source = ("(define (f x)\n"
              "  (let ((y (the Int x)))\n"
              "    (if y (list 1 \"s\") (lambda (z) z))))\n"
              "(f 2.5)")
    module = both(source)
    assert positions(module) == [
        ("Module", 1, 1), ("Define", 1, 1),
        ("Let", 2, 3), ("Binding", 2, 9), ("The", 2, 12), ("TyCon", 2, 17),
        ("Var", 2, 21),
        ("If", 3, 5), ("Var", 3, 9), ("ListLit", 3, 11), ("Lit", 3, 17), ("Lit", 3, 19),
        ("Lambda", 3, 24), ("Var", 3, 36),
        ("App", 4, 1), ("Var", 4, 2), ("Lit", 4, 4),
    ]


def test_let_shorthand_binding_is_at_its_name():
    module = both("(let  x 1 x)")
    assert positions(module)[:3] == [("Module", 1, 1), ("Let", 1, 1), ("Binding", 1, 7)]


def test_nullary_call_keeps_the_inner_position():
    module = both("  ((g))")
    assert positions(module.body) == [("Var", 1, 5)]


def test_the_parser_makes_a_fresh_var_per_occurrence():
    module = both("(f x x)")
    first, second = module.body.args
    assert first == second and first is not second


# ---- errors ------------------------------------------------------------------------------

ERRORS = [
    # (source, line, column, fragment of the message)
    ("", 1, 1, "empty program: expected an expression"),
    ("  ; nothing\n\n", 1, 12, "empty program"),
    ("(define x 1)", 1, 13, "expected the result expression after the defines"),
    ("(define x 1)\n(define y 2)\n", 2, 13, "expected the result expression"),
    ("1 2", 1, 3, "exactly one result expression"),
    ("(f 1)\n(g 2)", 2, 1, "exactly one result expression"),
    ("1 (define x 2)", 1, 3, "a define must come before the result expression"),
    ("(define (f x) x) (f 1) (define y 1)", 1, 24, "a define must come before"),
    ("(+ (define x 1) 2)", 1, 5, "'define' is only allowed at the top level"),
    (")", 1, 1, "unbalanced ')'"),
    ("(f 1))", 1, 6, "unbalanced ')'"),
    ("(f 1", 1, 5, "expected an expression or ')', found end of input"),
    ("(f 1", 1, 5, "the '(' at line 1, column 1 is never closed"),
    ("(f (g 1)\n   ; comment\n", 2, 13, "'(' at line 1, column 1 is never closed"),
    ("(f\n  (g 1\n\n", 2, 7, "'(' at line 2, column 3 is never closed"),
    ("()", 1, 2, "expected an expression, found ')'"),
    ("(if 1 2)", 1, 8, "expected an expression, found ')' (the form is (if condition then else))"),
    ("(if)", 1, 4, "(the form is (if condition then else))"),
    ("(if 1 2 3 4)", 1, 11, "expected ')', found integer '4'"),
    ("(let)", 1, 5, "expected a name or '(', found ')'"),
    ("(let)", 1, 5, "(the form is (let ((name expr) ...) body) or (let name expr body))"),
    ("(let x 1)", 1, 9, "expected an expression, found ')'"),
    ("(let () x)", 1, 7, "expected '(', found ')'"),
    ("(let ((x)) x)", 1, 9, "expected an expression, found ')' (the form is (let"),
    ("(let ((x 1) (x 2)) x)", 1, 13, "duplicate binding name 'x'"),
    ("(let ((x 1) y) x)", 1, 13, "expected '(' or ')', found name 'y'"),
    ("(the (-> Int Int)", 1, 18, "expected an expression, found end of input (the form is (the"),
    ("(let ((x (f 1)) ", 1, 16, "the '(' at line 1, column 6 is never closed"),
    ("(let ((1 2)) x)", 1, 8, "expected a name, found integer '1'"),
    ("(let ((x 1)) )", 1, 14, "expected an expression"),
    ("(lambda () x)", 1, 10, "expected a name, found ')' (the form is (lambda (param ...) body))"),
    ("(lambda x x)", 1, 9, "expected '(', found name 'x'"),
    ("(lambda (x x) x)", 1, 12, "duplicate parameter name 'x'"),
    ("(lambda (x 1) x)", 1, 12, "expected a name or ')', found integer '1'"),
    ("(lambda (x) a b)", 1, 15, "expected ')', found name 'b'"),
    ("(define 3 4) 1", 1, 9, "expected a name or '(', found integer '3'"),
    ("(define 3 4) 1", 1, 9, "(the form is (define name expr) or (define (name param ...) body))"),
    ("(define (f x x) x) 1", 1, 14, "duplicate parameter name 'x'"),
    ("(define x) 1", 1, 10, "expected an expression, found ')'"),
    ("(define x 1 2) 1", 1, 13, "expected ')', found integer '2'"),
    ("(define x 1) (define x 2) x", 1, 14, "duplicate definition of 'x'"),
    ("(the Int)", 1, 9, "expected an expression, found ')' (the form is (the Type expr))"),
    ("(the foo-bar 1)", 1, 6, "unknown type 'foo-bar'"),
    ("(the _a 1)", 1, 6, "unknown type '_a'"),
    ("(the 1 2)", 1, 6, "expected a name or '(', found integer '1'"),
    ("(the (List) x)", 1, 11, "(List t) takes exactly one type, found 0"),
    ("(the (List a b) x)", 1, 14, "(List t) takes exactly one type, found 2"),
    ("(the (-> Int) f)", 1, 13, "needs at least a parameter type and a result type"),
    ("(the (maybe a) x)", 1, 7, "unknown type constructor 'maybe'"),
    ("(the (List (Int)) x)", 1, 13, "written without parentheses: Int, not (Int)"),
    ("(the (List ()) x)", 1, 13, "expected a name, found ')'"),
    ("(f if)", 1, 4, "'if' is a reserved word"),
    ("(let ((list 1)) list)", 1, 8, "'list' is a reserved word and cannot be used as a name"),
    ("(lambda (the) 1)", 1, 10, "'the' is a reserved word"),
    ("lambda", 1, 1, "'lambda' is a reserved word"),
    ("(define (if x) x) 1", 1, 10, "'if' is a reserved word"),
    ('(f "abc', 1, 4, "unterminated string literal"),
    ('(f "a\\qb")', 1, 6, "invalid escape"),
    ("(f 99999999999999999999)", 1, 4, "integer literal out of range"),
    ("(f I64:1.5)", 1, 4, "is not an integer"),
    ("(f #)", 1, 4, "unexpected character '#'"),
]


@pytest.mark.parametrize("source,line,column,message", ERRORS)
def test_error(source, line, column, message):
    for parse_fn in (parse, parse_with_ply):
        with pytest.raises(ParseError) as info:
            parse_fn(source, "prog.xt")
        err = info.value
        assert message in err.message
        assert (err.line, err.column) == (line, column), err.message
        assert err.source == source
        assert err.filename == "prog.xt"
        text = str(err)
        assert text.startswith(f"prog.xt:{line}:{column}: ParseError: ")
        shown = source.split("\n")[line - 1]
        if shown.strip():
            assert text.splitlines()[-2] == "    " + shown
            assert text.splitlines()[-1] == "    " + " " * (column - 1) + "^"


def test_an_error_at_end_of_input_points_at_the_last_line():
    source = "(define (f x)\n  (+ x\n     1)\n"
    with pytest.raises(ParseError) as info:
        parse(source)
    assert (info.value.line, info.value.column) == (3, 8)
    assert "never closed" in info.value.message


def test_parse_expr_refuses_defines():
    with pytest.raises(ParseError, match="found a define"):
        parse_expr("(define x 1) x")


# ---- data types, case, cond, classes, instances (issue 8) -------------------------------

def T(name):
    return TyCon(name) if name[0].isupper() else TyVar(name)


def P(name, *args):
    return PCon(name, tuple(args))


NIL = PCon("nil", ())


def CONS(h, t):
    return PCon("cons", (h, t))


FAILS = Case(B(True), ())          # the end of a cond without else


DECLARATIONS = [
    ("(data (Opt a) (No) (Yes a))",
     DataDecl("Opt", ("a",), (ConDecl("No", (), None), ConDecl("Yes", (T("a"),), None)))),
    ("(data Tree (Leaf) (Node Tree Int Tree))",
     DataDecl("Tree", (), (ConDecl("Leaf", (), None),
                           ConDecl("Node", (T("Tree"), T("Int"), T("Tree")), None)))),
    ("(data Point (Pt (px Double) (py Double)))",
     DataDecl("Point", (), (ConDecl("Pt", (T("Double"), T("Double")), ("px", "py")),))),
    ("(data Color Red Green Blue)",
     DataDecl("Color", (), tuple(ConDecl(c, (), None) for c in ("Red", "Green", "Blue")))),
    ("(data (Pair a b) (P a b))",
     DataDecl("Pair", ("a", "b"), (ConDecl("P", (T("a"), T("b")), None),))),
    ("(data (Rose a) (Rose a (List (Rose a))))",
     DataDecl("Rose", ("a",), (ConDecl("Rose", (T("a"), TyList(TyApp("Rose", (T("a"),)))),
                                       None),))),
    ("(data (F a) (F (-> a Int) (Opt (Pair a Bool))))",
     DataDecl("F", ("a",), (ConDecl("F", (TyFun((T("a"),), T("Int")),
                                          TyApp("Opt", (TyApp("Pair", (T("a"), T("Bool"))),))),
                                    None),))),
    ("(data R (R (run (-> Int Int)) (point-x (List a))))",
     DataDecl("R", (), (ConDecl("R", (TyFun((T("Int"),), T("Int")), TyList(T("a"))),
                                ("run", "point-x")),))),
    ("(class (Size a) (size (-> a Int)))",
     ClassDecl("Size", "a", (), (MethodSig("size", TyFun((T("a"),), T("Int"))),), ())),
    ("(class (=> (Eq a) (Keyed a)) (key (-> a Int)) (define (key x) 0))",
     ClassDecl("Keyed", "a", (Pred("Eq", T("a")),),
               (MethodSig("key", TyFun((T("a"),), T("Int"))),),
               (Define("key", ("x",), I(0)),))),
    ("(class (=> (Eq k) (Show k) (Big k))"
     " (define (twice x) x) (big (=> (Show b) (-> k b String))))",
     ClassDecl("Big", "k", (Pred("Eq", T("k")), Pred("Show", T("k"))),
               (MethodSig("big", TyQual((Pred("Show", T("b")),),
                                        TyFun((T("k"), T("b")), T("String")))),),
               (Define("twice", ("x",), V("x")),))),
    ("(class (Marker a))", ClassDecl("Marker", "a", (), (), ())),
]


@pytest.mark.parametrize("source,expected", DECLARATIONS)
def test_declaration(source, expected):
    module = both(source + "\n0")
    assert module.defines == () and module.body == I(0)
    assert module.datas + module.classes == (expected,)
    assert parse_declaration(source) == expected


INSTANCES = [
    ("(instance (Size String) (define (size s) (len s)))",
     InstanceDecl("Size", T("String"), (), (Define("size", ("s",), App(V("len"), (V("s"),))),))),
    ("(instance (=> (Size a) (Size (List a))) (define (size xs) (sum (map size xs))))",
     InstanceDecl("Size", TyList(T("a")), (Pred("Size", T("a")),),
                  (Define("size", ("xs",),
                          App(V("sum"), (App(V("map"), (V("size"), V("xs"))),))),))),
    ("(instance (=> (Eq a) (Eq b) (Eq (Pair a b))) (define (eq x y) true) (define n 1))",
     InstanceDecl("Eq", TyApp("Pair", (T("a"), T("b"))), (Pred("Eq", T("a")), Pred("Eq", T("b"))),
                  (Define("eq", ("x", "y"), B(True)), Define("n", None, I(1))))),
    ("(instance (Marker Tree))", InstanceDecl("Marker", T("Tree"), (), ())),
]


@pytest.mark.parametrize("source,expected", INSTANCES)
def test_instance(source, expected):
    module = both(source + " 0")
    assert module.instances == (expected,)
    assert module.defines == module.datas == module.classes == ()


def test_top_level_forms_come_in_any_order_and_keep_their_order():
    source = ("(define a 1)\n(data B (B))\n(instance (C Int))\n(class (C x))\n"
              "(define d 2)\n(data E (E))\n(class (F x))\n(instance (F Int))\n(+ a d)")
    module = both(source)
    assert [d.name for d in module.defines] == ["a", "d"]
    assert [d.name for d in module.datas] == ["B", "E"]
    assert [c.name for c in module.classes] == ["C", "F"]
    assert [i.class_name for i in module.instances] == ["C", "F"]
    assert (module.line, module.column) == (1, 1)
    module = both("\n  (data B (B)) 1")
    assert (module.line, module.column) == (2, 3)
    assert positions(module.datas)[0] == ("DataDecl", 2, 3)


CASES = [
    ("(case e ((Yes x) x) ((No) 0) (_ 1))",
     Case(V("e"), (Alt(P("Yes", PVar("x")), V("x")), Alt(P("No"), I(0)), Alt(PWild(), I(1))))),
    ("(case e (No 0) (Yes 1))", Case(V("e"), (Alt(P("No"), I(0)), Alt(P("Yes"), I(1))))),
    ("(case xs (nil 0) ((cons h t) h))",
     Case(V("xs"), (Alt(NIL, I(0)), Alt(CONS(PVar("h"), PVar("t")), V("h"))))),
    ("(case xs ((nil) 0))", Case(V("xs"), (Alt(NIL, I(0)),))),
    ("(case xs ((list) 0) ((list a) 1) ((list a _ c) 2))",
     Case(V("xs"), (Alt(NIL, I(0)), Alt(CONS(PVar("a"), NIL), I(1)),
                    Alt(CONS(PVar("a"), CONS(PWild(), CONS(PVar("c"), NIL))), I(2))))),
    ('(case v (0 a) (-3 b) (2.5 c) ("s" d) (true e) (I64:7 f) (STRING:x g) (-inf h))',
     Case(V("v"), (Alt(PLit(I(0)), V("a")), Alt(PLit(I(-3)), V("b")),
                   Alt(PLit(D(2.5)), V("c")), Alt(PLit(S("s")), V("d")),
                   Alt(PLit(B(True)), V("e")), Alt(PLit(I(7)), V("f")),
                   Alt(PLit(S("x")), V("g")), Alt(PLit(D(-math.inf)), V("h"))))),
    ("(case t ((Node (Node l _ _) v (Leaf)) (+ v 1)) ((Pair (list x) (cons y nil)) 0))",
     Case(V("t"), (Alt(P("Node", P("Node", PVar("l"), PWild(), PWild()), PVar("v"), P("Leaf")),
                       App(V("+"), (V("v"), I(1)))),
                   Alt(P("Pair", CONS(PVar("x"), NIL), CONS(PVar("y"), NIL)), I(0))))),
    ("(case e)", Case(V("e"), ())),
    ("(case (f x) (y (g y)))",
     Case(App(V("f"), (V("x"),)), (Alt(PVar("y"), App(V("g"), (V("y"),))),))),
    ("(case p (x+1 x+1) (Yes? 0))",
     Case(V("p"), (Alt(PVar("x+1"), V("x+1")), Alt(P("Yes?"), I(0))))),
    ("(case p ((P _ _) 0))", Case(V("p"), (Alt(P("P", PWild(), PWild()), I(0)),))),
    ("(Yes (No))", App(V("Yes"), (V("No"),))),
    ("(cond (a 1) (b 2) (else 3))", If(V("a"), I(1), If(V("b"), I(2), I(3)))),
    ("(cond (a 1) (b 2))", If(V("a"), I(1), If(V("b"), I(2), FAILS))),
    ("(cond (a 1))", If(V("a"), I(1), FAILS)),
    ("(cond (else 3))", I(3)),
    ("(cond ((< x 0) (negate x)) (else (cond (y 1))))",
     If(App(V("<"), (V("x"), I(0))), App(V("negate"), (V("x"),)), If(V("y"), I(1), FAILS))),
    ("(the (=> (Size a) (-> a Int)) size)",
     The(TyQual((Pred("Size", T("a")),), TyFun((T("a"),), T("Int"))), V("size"))),
    ("(the (=> (Eq a) (Show b) (Pair a b)) p)",
     The(TyQual((Pred("Eq", T("a")), Pred("Show", T("b"))), TyApp("Pair", (T("a"), T("b")))),
         V("p"))),
    ("(the (=> (C (List a)) a) x)", The(TyQual((Pred("C", TyList(T("a"))),), T("a")), V("x"))),
    ("(the Tree t)", The(TyCon("Tree"), V("t"))),
    ("(the (Opt (List (Opt a))) t)", The(TyApp("Opt", (TyList(TyApp("Opt", (T("a"),))),)), V("t"))),
]


@pytest.mark.parametrize("source,expected", CASES)
def test_case_cond_and_constrained_types(source, expected):
    assert both(source).body == expected


def test_new_forms_carry_their_positions():
    source = ("(data (Opt a)\n  No\n  (Yes a))\n"
              "(define (f o)\n  (case o\n    ((Yes (list x)) x)\n    (_ 0)))\n"
              "(cond (a 1)\n      (b 2))")
    module = both(source)
    assert positions(module.datas) == [
        ("DataDecl", 1, 1), ("ConDecl", 2, 3), ("ConDecl", 3, 3), ("TyVar", 3, 8)]
    assert positions(module.defines[0].body) == [
        ("Case", 5, 3), ("Var", 5, 9),
        ("Alt", 6, 5), ("PCon", 6, 6), ("PCon", 6, 11), ("PVar", 6, 17), ("PCon", 6, 18),
        ("Var", 6, 21),
        ("Alt", 7, 5), ("PWild", 7, 6), ("Lit", 7, 8)]
    # the whole cond is the outer if; later clauses' ifs are at their clauses; the
    # failing end is at the cond
    assert positions(module.body) == [
        ("If", 8, 1), ("Var", 8, 8), ("Lit", 8, 10),
        ("If", 9, 7), ("Var", 9, 8), ("Lit", 9, 10),
        ("Case", 8, 1), ("Lit", 8, 1)]
    assert module.body.orelse.orelse.form == "cond"
    cls = both("(class (=> (Eq a)\n  (K a))\n  (k (-> a Int))) 0").classes[0]
    assert positions(cls) == [("ClassDecl", 1, 1), ("Pred", 1, 12), ("TyVar", 1, 16),
                              ("MethodSig", 3, 3), ("TyFun", 3, 6), ("TyVar", 3, 10),
                              ("TyCon", 3, 12)]


def test_a_plain_case_has_form_case():
    assert both("(case x (_ 1))").body.form == "case"


def test_parse_declaration_and_parse_type():
    assert parse_declaration("; a comment\n(data Color Red)\n") == DataDecl(
        "Color", (), (ConDecl("Red", (), None),))
    assert parse_type("String") == TyCon("String")
    assert parse_type("(List a)") == TyList(TyVar("a"))
    assert parse_type("(Opt a)") == TyApp("Opt", (TyVar("a"),))
    assert parse_type("  (-> a (Opt b))") == TyFun((TyVar("a"),), TyApp("Opt", (TyVar("b"),)))
    assert parse_type("(=> (Show a) (-> a String))") == TyQual(
        (Pred("Show", TyVar("a")),), TyFun((TyVar("a"),), TyCon("String")))
    assert parse_type("a") == TyVar("a")


def test_parse_expr_refuses_top_level_forms():
    for source, what in [("(data T A) 1", "a data declaration"), ("(class (C a)) 1", "a class"),
                         ("(instance (C Int)) 1", "an instance"),
                         ("(instance (C Int)) (define x 1) 1", "an instance")]:
        with pytest.raises(ParseError, match=f"found {what}"):
            parse_expr(source)


NEW_ERRORS = [
    # data
    ("(data Foo) 1", 1, 10, "expected a name or '(', found ')' (the form is (data Name con ...)"),
    ("(data) 1", 1, 6, "(the form is " + FORM_SHAPES["DATA"] + ")"),
    ("(data foo A) 1", 1, 7, "a data type's name starts with an upper-case letter (A-Z): 'foo'"),
    ("(data (Opt) A) 1", 1, 7, "written as a bare name: (data Opt ...)"),
    ("(data (Opt A) N) 1", 1, 12, "a data type's parameter is a type variable"),
    ("(data (P a a) N) 1", 1, 12, "duplicate parameter name 'a'"),
    ("(data (T 1) A) 1", 1, 10, "expected a name or ')', found integer '1' (the form is (data"),
    ("(data T red) 1", 1, 9, "a constructor's name starts with an upper-case letter"),
    ("(data T (red Int)) 1", 1, 10, "a constructor's name starts with an upper-case letter"),
    ("(data T (P (x Int) Int)) 1", 1, 20, "either all named, (field type) each, or all unnamed"),
    ("(data T (P Int (x Int))) 1", 1, 17, "not a mix"),
    ("(data T (P (x Int) (x Int))) 1", 1, 21, "duplicate field name 'x' in constructor P"),
    ("(data T (P (x))) 1", 1, 14, "a record field is (name type): 'x' has 0 types"),
    ("(data T (P (x Int Bool))) 1", 1, 19, "a record field is (name type): 'x' has 2 types"),
    ("(data T (P (=> (Eq a) a))) 1", 1, 12, "a field's type cannot have constraints"),
    ("(data T (P (List (=> (Eq a) a)))) 1", 1, 18,
     "a constrained type (=> ...) may stand only at the top"),
    ("(data T (P 1)) 1", 1, 12,
     "expected a name, '(' or ')', found integer '1' (the form is (data"),
    ("(data T (P (+ Int))) 1", 1, 13, "'+' is not a field name or a type"),
    ("(data T (P (List 1))) 1", 1, 18, "found integer '1' (the form is (data"),
    ("(data T (P (x (Int)))) 1", 1, 16, "written without parentheses"),
    ("(data T (P (Int))) 1", 1, 13, "written without parentheses"),
    ("(+ (data T A) 1)", 1, 5, "'data' is only allowed at the top level, before the result"),
    ("1 (data T A)", 1, 3, "a data declaration must come before the result expression"),
    ("(data T A)", 1, 11, "expected the result expression after the defines and declarations"),
    ("(define x 1) (data T A)", 1, 24, "expected the result expression after the defines"),
    # types
    ("(the (=> (Eq a)) x)", 1, 16, "needs at least one constraint and the type"),
    ("(the (=> Eq a) x)", 1, 10, "a constraint is (Class type)"),
    ("(the (=> (Eq a b) a) x)", 1, 10, "a constraint is (Class type)"),
    ("(the (=> (List a) a) x)", 1, 10, "a constraint is (Class type)"),
    ("(the (List (=> (Eq a) a)) x)", 1, 12,
     "a constrained type (=> ...) may stand only at the top"),
    ("(the (-> (=> (Eq a) a) Int) x)", 1, 10, "may stand only at the top"),
    ("(the (Opt (=> (Eq a) a)) x)", 1, 11, "may stand only at the top"),
    ("(the (=> (Eq a) (=> (Ord a) a)) x)", 1, 17, "may stand only at the top"),
    ("(the (=> (Eq (=> (Ord a) a)) a) x)", 1, 14, "may stand only at the top"),
    ("(the (a Int) x)", 1, 7, "unknown type constructor 'a'"),
    # case
    ("(case)", 1, 6,
     "expected an expression, found ')' (the form is (case expr (pattern expr) ...))"),
    ("(case x y)", 1, 9, "expected '(' or ')', found name 'y' (the form is (case"),
    ("(case x (1))", 1, 11, "expected an expression, found ')' (the form is (case"),
    ("(case x (", 1, 10, "expected a pattern, found end of input (the form is (case"),
    ("(case x ((P (Q", 1, 15, "expected a pattern or ')', found end of input"),
    ("(case x (()))", 1, 11, "expected a name or 'list', found ')' (the form is (case"),
    ("(case x ((list 1 if) 1))", 1, 18, "'if' is a reserved word and cannot be used as a name "
                                        "(the form is (list pattern ...))"),
    ("(case x ((P 1.5 (list ", 1, 22,
     "(the form is (list pattern ...)); the '(' at line 1, column 17"),
    ("(case x ((foo a) 1))", 1, 11, "'foo' is not a constructor"),
    ("(case x ((_ a) 1))", 1, 11, "'_' is not a constructor"),
    ("(case x ((cons a) 1))", 1, 17, "(cons head tail) takes two patterns, found 1"),
    ("(case x ((cons a b c) 1))", 1, 20, "(cons head tail) takes two patterns, found 3"),
    ("(case x ((nil a) 1))", 1, 15, "the pattern nil takes no patterns"),
    ("(case x ((P a a) 1))", 1, 15, "the variable 'a' occurs twice in one pattern"),
    ("(case x ((list a (cons a t)) 1))", 1, 24, "the variable 'a' occurs twice"),
    ("(case x ((P a (Q (R b a))) 1))", 1, 23, "the variable 'a' occurs twice"),
    ("(case x (else 1))", 1, 10, "'else' may only begin the last clause of a cond"),
    ("(case x (case 1))", 1, 10, "'case' is a reserved word and cannot be used as a name"),
    ("(case x ((Yes x) x) 3)", 1, 21, "expected '(' or ')', found integer '3' (the form is (case"),
    ("(let ((case 1)) case)", 1, 8, "'case' is a reserved word"),
    ("(lambda (data) data)", 1, 10, "'data' is a reserved word"),
    ("(define (f cond) 1) 1", 1, 12, "'cond' is a reserved word"),
    # cond
    ("(cond)", 1, 6, "expected '(', found ')' (the form is (cond (test expr) ... (else expr)))"),
    ("(cond x)", 1, 7, "expected '(', found name 'x' (the form is (cond"),
    ("(cond (x))", 1, 9, "expected an expression, found ')' (the form is (cond"),
    ("(cond (x 1 2))", 1, 12, "expected ')', found integer '2' (the form is (cond"),
    ("(cond (else 1) (x 2))", 1, 7, "(else expr) must be the last clause of a cond"),
    ("(cond (a 1) (else 1) (else 2))", 1, 13, "must be the last clause"),
    ("(cond (else", 1, 12, "expected an expression, found end of input (the form is (cond"),
    ("(if else 1 2)", 1, 5, "'else' may only begin the last clause of a cond"),
    ("else", 1, 1, "'else' may only begin the last clause of a cond"),
    # classes
    ("(class Size (size (-> a Int))) 1", 1, 8,
     "expected '(', found name 'Size' (the form is (class"),
    ("(class) 1", 1, 7, "(the form is " + FORM_SHAPES["CLASS"] + ")"),
    ("(class (size a)) 1", 1, 9, "a class name starts with an upper-case letter (A-Z): 'size'"),
    ("(class (Size Int)) 1", 1, 14, "a class has one type variable"),
    ("(class (Size a b)) 1", 1, 16, "a class is declared as (Name a)"),
    ("(class (Size)) 1", 1, 13, "a class is declared as (Name a)"),
    ("(class (=> (Eq b) (Size a))) 1", 1, 16,
     "a superclass constrains the class's own variable: (Eq a)"),
    ("(class (=> (Eq (List a)) (Size a))) 1", 1, 16, "the class's own variable"),
    ("(class (=> (Size a))) 1", 1, 20, "needs at least one constraint and the class's head"),
    ("(class (=> (Eq a) Size)) 1", 1, 19, "a class is declared as (Name a)"),
    ("(class (=> Eq (Size a))) 1", 1, 12, "a constraint is (Class type)"),
    ("(class (Size a) (Size (-> a Int))) 1", 1, 18,
     "a method's name cannot start with an upper-case"),
    ("(class (Size a) (size)) 1", 1, 22, "expected a name or '(', found ')' (the form is (class"),
    ("(class (Size a) (size Int Int)) 1", 1, 27,
     "expected ')', found name 'Int' (the form is (class"),
    ("(class (Size a) 1) 1", 1, 17, "expected '(' or ')', found integer '1' (the form is (class"),
    ("(class (Size a) (size (List (=> (Eq a) a)))) 1", 1, 29, "may stand only at the top"),
    ("(class (Size a) (define)) 1", 1, 24, "(the form is (define name expr)"),
    ("(class (Size a) (size (-> a", 1, 28, "(the form is (class"),
    ("(+ (class (C a)) 1)", 1, 5, "'class' is only allowed at the top level"),
    ("1 (class (C a))", 1, 3, "a class must come before the result expression"),
    # instances
    ("(instance (Size String) (size (-> a Int))) 1", 1, 25,
     "an instance holds only (define ...) forms: the type of 'size' comes from the class"),
    ("(instance Size (define (size x) 1)) 1", 1, 11,
     "expected '(', found name 'Size' (the form is (instance"),
    ("(instance) 1", 1, 10, "(the form is " + FORM_SHAPES["INSTANCE"] + ")"),
    ("(instance (size String)) 1", 1, 12, "a class name starts with an upper-case letter"),
    ("(instance (Size) ) 1", 1, 16, "an instance is for (Class type)"),
    ("(instance (Size Int Bool)) 1", 1, 21, "an instance is for (Class type)"),
    ("(instance (=> (Size a) Int) (define (size x) 1)) 1", 1, 24,
     "an instance is for (Class type)"),
    ("(instance (=> (Size a)) (define (size x) 1)) 1", 1, 23, "needs at least one constraint"),
    ("(instance (Size (=> (Eq a) a))) 1", 1, 17, "may stand only at the top"),
    ("(instance (Size Int) 1) 1", 1, 22,
     "expected '(' or ')', found integer '1' (the form is (instance"),
    ("(instance (Size Int) (define x)) 1", 1, 31, "(the form is (define name expr)"),
    ("(define (f x) (instance (C Int)))", 1, 16, "'instance' is only allowed at the top level"),
    ("1 (instance (C Int))", 1, 3, "an instance must come before the result expression"),
    ("(instance (C Int) (define x 1) (define x 2)) (define x 3) (define x 4) x", 1, 59,
     "duplicate definition of 'x'"),
]


@pytest.mark.parametrize("source,line,column,message", NEW_ERRORS)
def test_error_in_a_new_form(source, line, column, message):
    test_error(source, line, column, message)


ENTRY_ERRORS = [
    (parse_declaration, "(data T A) (data U B)", 1, 12,
     "expected one (data ...) or (class ...) declaration, but more follows it"),
    (parse_declaration, "(data T A) 1", 1, 12, "but more follows it"),
    (parse_declaration, "", 1, 1, "empty input: expected one (data ...) or (class ...)"),
    (parse_declaration, " ; nothing", 1, 11, "empty input"),
    (parse_declaration, "(instance (C Int))", 1, 2, "expected 'class' or 'data', found 'instance'"),
    (parse_declaration, "(define x 1)", 1, 2, "expected 'class' or 'data', found 'define'"),
    (parse_declaration, "1", 1, 1, "expected '(', found integer '1'"),
    (parse_declaration, "(data t A)", 1, 7, "a data type's name starts with an upper-case letter"),
    (parse_declaration, "(class (C a)", 1, 13, "the '(' at line 1, column 1 is never closed"),
    (parse_type, "(List a) b", 1, 10, "expected one type, but more follows it"),
    (parse_type, "", 1, 1, "empty input: expected one type"),
    (parse_type, "(Opt", 1, 5, "the '(' at line 1, column 1 is never closed"),
    (parse_type, "1", 1, 1, "expected a name or '(', found integer '1'"),
    (parse_type, "(List (=> (Eq a) a))", 1, 7, "may stand only at the top"),
    (parse_type, "(Int)", 1, 2, "written without parentheses"),
    (parse_type, '"s"', 1, 1, "expected a name or '(', found a string"),
]


@pytest.mark.parametrize("parse_fn,source,line,column,message", ENTRY_ERRORS)
def test_entry_point_error(parse_fn, source, line, column, message):
    with pytest.raises(ParseError) as info:
        parse_fn(source, "decl.xt")
    err = info.value
    assert message in err.message
    assert (err.line, err.column) == (line, column), err.message
    assert err.source == source and err.filename == "decl.xt"


# ---- the depth of desugared forms ------------------------------------------------------

def cond_source(clauses, with_else=True):
    return ("(cond " + " ".join(f"(c{i} {i})" for i in range(clauses))
            + (" (else 0)" if with_else else "") + ")")


def list_pattern_source(n):
    return "(case x ((list " + " ".join(f"a{i}" for i in range(n)) + ") 1))"


def nested(depth, inner):
    return "(list " * depth + inner + ")" * depth


# Under the Module, a tree may be MAX_NESTING + 1 nodes deep (what MAX_NESTING parentheses
# around a leaf give): a cond of k clauses and an else nests k ifs, without else one more
# (its failing case), a list pattern of n elements n conses and the nil.
DEPTHS = [
    (cond_source(MAX_NESTING), True),
    (cond_source(MAX_NESTING + 1), False),
    (cond_source(MAX_NESTING - 1, with_else=False), True),
    (cond_source(MAX_NESTING, with_else=False), False),
    (nested(MAX_NESTING - 2, cond_source(2)), True),
    (nested(MAX_NESTING - 2, cond_source(3)), False),
    (list_pattern_source(MAX_NESTING - 2), True),
    (list_pattern_source(MAX_NESTING - 1), False),
    (nested(MAX_NESTING - 4, list_pattern_source(2)), True),
    (nested(MAX_NESTING - 3, list_pattern_source(2)), False),
    (nested(10, cond_source(200)), True),
    ("(define (f x) " + cond_source(MAX_NESTING - 1) + ") 0", True),
    ("(define (f x) " + cond_source(MAX_NESTING) + ") 0", False),
]


@pytest.mark.parametrize("source,fine", DEPTHS)
def test_desugared_forms_count_toward_the_nesting_limit(source, fine):
    from exathunk.pretty import to_source
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        for parse_fn in (parse, parse_with_ply):
            if fine:
                tree = parse_fn(source)
                assert parse(to_source(tree)) == tree      # and it prints within the limit
            else:
                with pytest.raises(ParseError, match="nesting too deep") as info:
                    parse_fn(source)
                assert info.value.line == 1 and info.value.column >= 1
    finally:
        sys.setrecursionlimit(limit)


def test_a_failed_parse_does_not_leave_a_depth_count_behind():
    from exathunk import parser
    with pytest.raises(ParseError):
        parse("(cond (a 1) (b 2)) (cond (else 1) (x 2))")
    assert parser._depth.extra == 0
    parse("(cond (a 1) (b 2) (c 3))")
    assert parser._depth.extra == 0


# ---- nesting, size and speed -------------------------------------------------------------

def nested_list(depth):
    return "(list " * (depth - 1) + "(list 1)" + ")" * (depth - 1)


def test_nesting_up_to_the_limit_parses():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)      # as the driver does: == on the tree recurses
    try:
        module = both(nested_list(MAX_NESTING))
    finally:
        sys.setrecursionlimit(limit)
    node, depth = module.body, 1
    while node.items and isinstance(node.items[0], ListLit):
        node, depth = node.items[0], depth + 1
    assert depth == MAX_NESTING


@pytest.mark.parametrize("parse_fn", [parse, parse_with_ply])
def test_nesting_past_the_limit_is_an_error_not_a_recursion_error(parse_fn):
    with pytest.raises(ParseError, match="nesting too deep") as info:
        parse_fn(nested_list(MAX_NESTING + 1))
    assert (info.value.line, info.value.column) == (1, 6 * MAX_NESTING + 1)
    with pytest.raises(ParseError, match="nesting too deep"):
        parse_fn("(" * 10_000 + "x" + ")" * 10_000)


def test_a_megabyte_of_defines_parses():
    defines = "".join(f"(define (f{i} x) (if (< x {i}) (+ x 1.5) (f{i} \"s\")))\n"
                      for i in range(18_000))
    source = defines + "(f0 1)"
    assert len(source) > 1_000_000
    module = parse(source)
    assert len(module.defines) == 18_000
    assert module.defines[-1].name == "f17999"
    assert module.defines[-1].line == 18_000


def test_a_megabyte_string_literal_parses():
    body = "ab\\n\\u{263A}" * 90_000
    module = parse('(len "' + body + '")')
    assert module.body.args[0].value == "ab\n\u263a" * 90_000


def test_a_ten_thousand_element_list_stays_flat():
    module = parse("(list " + " ".join(str(i) for i in range(10_000)) + ")")
    assert len(module.body.items) == 10_000


# ---- the environment: files, -OO, threads -----------------------------------------------

def run_python(code, *flags, cwd):
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


CHECK = """
import exathunk, os
from exathunk.parser import parse, parse_with_ply
from exathunk.errors import ParseError
assert parse('(let x (list 1 2) x)') == parse_with_ply('(let x (list 1 2) x)')
try:
    parse('(if 1 2)')
except ParseError as e:
    assert e.column == 8 and 'if condition then else' in e.message, e.message
else:
    raise SystemExit('no error')
src = '(data (Opt a) No (Yes a)) (class (C a) (m (-> a Int))) (case (Yes 1) ((Yes x) x) (No 0))'
assert parse(src) == parse_with_ply(src) and parse(src).datas[0].name == 'Opt'
from exathunk.parser import parse_declaration, parse_type
assert parse_declaration('(class (C a))').name == 'C'
assert parse_type('(Opt a)').name == 'Opt'
try:
    parse('(cond (else 1) (x 2))')
except ParseError as e:
    assert e.column == 7 and 'last clause' in e.message, e.message
else:
    raise SystemExit('no error')
print('ok', parse('(+ 1 (/ 4 2))').body.fn.name)
"""


def snapshot(*dirs):
    return {os.path.join(d, f) for d in dirs for f in os.listdir(d)}


def test_importing_and_parsing_write_no_files(tmp_path):
    package = os.path.join(REPO, "exathunk")
    before = snapshot(package, str(tmp_path))
    result = run_python(CHECK, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok +"
    assert result.stderr == ""
    after = snapshot(package, str(tmp_path))
    created = {f for f in after - before if "__pycache__" not in f}
    assert not created
    # The repository root may change under other tests; PLY's files must not appear.
    assert not {"parsetab.py", "parser.out"} & set(os.listdir(REPO))
    assert not {"parsetab.py", "parser.out"} & set(os.listdir(package))


def test_parsing_works_under_python_OO(tmp_path):
    result = run_python(CHECK, "-OO", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok +"


def test_threads_parsing_at_once_get_their_own_results():
    sources = {i: f"(define (f{i} x) (+ x {i})) (f{i} (list {i} \"{i}\"))" for i in range(8)}
    bad = {i: f"(define (g{i} x) (if x {i})) 0" for i in range(8)}
    failures = []
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait(timeout=30)
        for _ in range(150):
            module = parse(sources[i])
            if module.defines[0].name != f"f{i}" or module.body.args[0].items[0].value != i:
                failures.append(("wrong tree", i))
            try:
                parse_with_ply(bad[i])
            except ParseError as e:
                if (e.line, e.column) != (1, 21 + 2 * len(str(i))) or f"g{i}" not in e.source:
                    failures.append(("wrong error", i, e.line, e.column))
            else:
                failures.append(("no error", i))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_grammar_has_no_conflicts():
    from exathunk.parser import build

    class Recorder:
        def __init__(self):
            self.messages = []

        def warning(self, msg, *args, **kwargs):
            self.messages.append(msg % args)

        error = critical = info = debug = warning

    log = Recorder()
    build(errorlog=log)
    assert not [m for m in log.messages if "conflict" in m or "unused" in m.lower()], log.messages


@pytest.mark.parametrize("cls", [ast.Module, ast.Define, ast.If, ast.Let, ast.Binding,
                                 ast.Lambda, ast.The, ast.ListLit, ast.App, ast.Lit,
                                 ast.Var, ast.TyCon, ast.TyVar, ast.TyList, ast.TyFun,
                                 ast.TyApp, ast.Case, ast.Alt, ast.PCon, ast.PVar, ast.PLit,
                                 ast.PWild])
def test_fast_constructors_build_the_same_nodes(cls):
    from dataclasses import fields
    from exathunk.lexer import fast_constructor
    # Var's constructor fills inst_type and con itself; every other takes every field.
    names = [f.name for f in fields(cls)
             if not (cls is ast.Var and f.name in ("inst_type", "con"))]
    values = [7 if name == "line" else 9 if name == "column" else f"v{i}"
              for i, name in enumerate(names)]
    fast = fast_constructor(cls)(*values)
    slow = cls(*values)
    assert type(fast) is cls and fast == slow
    for f in fields(cls):
        assert getattr(fast, f.name) == getattr(slow, f.name)
    with pytest.raises(Exception):
        fast.line = 3                      # still frozen


def test_the_fast_module_constructor_defaults_the_declarations():
    from exathunk.lexer import fast_constructor
    module = fast_constructor(ast.Module)((), Var("x"), 1, 1)
    assert module == Module((), Var("x")) and module.datas == module.classes == ()
    assert module.instances == ()


SOUP = ["(", "(", "(", ")", ")", ")", " ", "\n", "x", "f", "1", "-2.5", '"s"', "define",
        "let", "lambda", "if", "the", "list", "Int", "List", "->", "a", ";c\n", "true",
        "(define (g y) y)", "(let ((z 1)) z)", "(lambda (q) q)", "(the Int 1)",
        "data", "case", "class", "instance", "cond", "else", "=>", "_", "nil", "cons",
        "Opt", "Yes", "(Eq a)", "(Yes x)", "(x Int)", "(else 1)", "(data T A)",
        "(class (C a) (m (-> a Int)))", "(instance (C Int))", "(case x (_ 1))",
        "(cond (x 1))"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(SOUP), max_size=16).map(" ".join))
def test_fast_path_and_ply_path_agree_on_any_token_soup(source):
    outcomes = []
    for parse_fn in (parse, parse_with_ply):
        try:
            tree = parse_fn(source)
            outcomes.append(("tree", tree, positions(tree)))
        except ParseError as e:
            outcomes.append(("error", e.message, e.line, e.column))
    assert outcomes[0] == outcomes[1]


def test_a_large_parse_leaves_the_collector_as_it_found_it():
    import gc
    big = "(list " + " ".join(["1"] * 70_000) + ")"
    assert gc.isenabled()
    parse(big)
    assert gc.isenabled()
    with pytest.raises(ParseError):
        parse(big + ")")
    assert gc.isenabled()
    gc.disable()
    try:
        parse(big)
        assert not gc.isenabled()
    finally:
        gc.enable()
