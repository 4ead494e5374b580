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
from exathunk.ast import (App, Binding, Define, If, Lambda, Let, ListLit, Lit, Module,
                          The, TyCon, TyFun, TyList, TyVar, Var)
from exathunk.errors import ParseError
from exathunk.parser import MAX_NESTING, parse, parse_expr, parse_with_ply

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
    ("(the Foo 1)", 1, 6, "unknown type 'Foo'"),
    ("(the 1 2)", 1, 6, "expected a name or '(', found integer '1'"),
    ("(the (List) x)", 1, 11, "(List t) takes exactly one type, found 0"),
    ("(the (List a b) x)", 1, 14, "(List t) takes exactly one type, found 2"),
    ("(the (-> Int) f)", 1, 13, "needs at least a parameter type and a result type"),
    ("(the (Maybe a) x)", 1, 7, "unknown type constructor 'Maybe'"),
    ("(the (List (Int)) x)", 1, 13, "unknown type constructor 'Int'"),
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
                                 ast.Var, ast.TyCon, ast.TyVar, ast.TyList, ast.TyFun])
def test_fast_constructors_build_the_same_nodes(cls):
    from dataclasses import fields
    from exathunk.lexer import fast_constructor
    names = [f.name for f in fields(cls) if f.name != "inst_type"]
    values = [f"v{i}" for i in range(len(names) - 2)] + [7, 9]
    fast = fast_constructor(cls)(*values)
    slow = cls(*values)
    assert type(fast) is cls and fast == slow
    for f in fields(cls):
        assert getattr(fast, f.name) == getattr(slow, f.name)
    with pytest.raises(Exception):
        fast.line = 3                      # still frozen


SOUP = ["(", "(", "(", ")", ")", ")", " ", "\n", "x", "f", "1", "-2.5", '"s"', "define",
        "let", "lambda", "if", "the", "list", "Int", "List", "->", "a", ";c\n", "true",
        "(define (g y) y)", "(let ((z 1)) z)", "(lambda (q) q)", "(the Int 1)"]


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
