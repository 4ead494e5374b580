"""Round trips: to_source(tree) parses back to an equal tree (hypothesis over generated
trees: expressions with cases and nested patterns, types with data types and constraints,
data declarations, classes, instances, whole modules), typed literals read back as their
plain literals, and to_source's exact text."""

import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from exathunk.ast import (Alt, App, Binding, Case, ClassDecl, ConDecl, DataDecl, Define, If,
                          InstanceDecl, Lambda, Let, ListLit, Lit, MethodSig, Module, PCon,
                          PLit, PVar, PWild, Pred, The, TyApp, TyCon, TyFun, TyList, TyQual,
                          TyVar, Var)
from exathunk.lexer import KEYWORDS, classify_atom
from exathunk.parser import parse, parse_declaration, parse_type, parse_with_ply
from exathunk.pretty import to_source
from exathunk.values import show_double


def is_name(text):
    try:
        return classify_atom(text, text, 0)[0] == "ID"
    except Exception:
        return False


names = st.text(alphabet="abfxyz+-*/<>=!?_.:%019", min_size=1, max_size=5).filter(is_name)
# Reserved words (if, let, the, ...) are not type variables either.
type_vars = st.from_regex(r"[a-z][a-z0-9_]{0,3}", fullmatch=True).filter(
    lambda name: name not in KEYWORDS)

ints = st.integers(min_value=-2**63, max_value=2**63 - 1).map(lambda n: Lit(n, "Int"))
doubles = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e22, 2.5e-07, -0.0, 5e-324, 1.7976931348623157e308, 0.1, -1e-10]),
).map(lambda x: Lit(x, "Double"))
strings = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12,
).map(lambda s: Lit(s, "String"))
escapes = st.lists(st.sampled_from(['"', "\\", "\n", "\t", "\r", "\x00", "\x7f", "a", " ",
                                    "\u263a", "\U0001F600", "(", ";"]),
                   max_size=8).map(lambda cs: Lit("".join(cs), "String"))
bools = st.booleans().map(lambda b: Lit(b, "Bool"))
atoms = st.one_of(ints, doubles, strings, escapes, bools, names.map(Var))

# Type, constructor and class names: an upper-case first letter ("List" is the list type).
upper_names = st.from_regex(r"[A-Z][A-Za-z0-9_?-]{0,4}", fullmatch=True).filter(
    lambda name: name != "List")
# Field names: a lower-case first letter, then any word characters.
field_names = names.filter(lambda name: name[0].islower())

type_exprs = st.recursive(
    st.one_of(st.sampled_from(["Int", "Double", "Bool", "String"]).map(TyCon),
              upper_names.map(TyCon),
              type_vars.map(TyVar)),
    lambda inner: st.one_of(
        inner.map(TyList),
        st.builds(TyFun, st.lists(inner, min_size=1, max_size=3).map(tuple), inner),
        st.builds(TyApp, upper_names, st.lists(inner, min_size=1, max_size=3).map(tuple))),
    max_leaves=6)
preds = st.builds(Pred, upper_names, type_exprs)
# A constrained type stands only at the top of an annotation or a method's type.
top_types = st.one_of(
    type_exprs,
    st.builds(TyQual, st.lists(preds, min_size=1, max_size=3).map(tuple), type_exprs))


def pattern_vars(pattern):
    if isinstance(pattern, PVar):
        return [pattern.name]
    if isinstance(pattern, PCon):
        return [v for arg in pattern.args for v in pattern_vars(arg)]
    return []


def distinct_vars(pattern):
    found = pattern_vars(pattern)
    return len(found) == len(set(found))


def list_pattern(items):
    tail = PCon("nil", ())
    for item in reversed(items):
        tail = PCon("cons", (item, tail))
    return tail


literals = st.one_of(ints, doubles, strings, bools)
patterns = st.recursive(
    st.one_of(st.just(PWild()), names.filter(lambda n: n != "_").map(PVar),
              literals.map(PLit), upper_names.map(lambda n: PCon(n, ())),
              st.just(PCon("nil", ()))),
    lambda inner: st.one_of(
        st.builds(PCon, upper_names, st.lists(inner, min_size=1, max_size=3).map(tuple)),
        st.builds(lambda h, t: PCon("cons", (h, t)), inner, inner),
        st.lists(inner, max_size=4).map(list_pattern)),
    max_leaves=8).filter(distinct_vars)


def unique(elements, min_size, max_size):
    return st.lists(elements, min_size=min_size, max_size=max_size, unique=True).map(tuple)


def compound(inner):
    return st.one_of(
        st.builds(App, inner, st.lists(inner, min_size=1, max_size=3).map(tuple)),
        st.builds(If, inner, inner, inner),
        st.builds(Let, unique(names, 1, 3).flatmap(
            lambda ns: st.tuples(*[inner.map(lambda e, n=n: Binding(n, e)) for n in ns])),
            inner),
        st.builds(Lambda, unique(names, 1, 3), inner),
        st.builds(The, top_types, inner),
        st.builds(ListLit, st.lists(inner, max_size=4).map(tuple)),
        st.builds(Case, inner, st.lists(st.builds(Alt, patterns, inner),
                                        max_size=3).map(tuple)),
    )


exprs = st.recursive(atoms, compound, max_leaves=25)

defines = st.builds(Define, names,
                    st.one_of(st.none(), unique(names, 0, 3)), exprs)


def constructors():
    """A constructor: bare, positional, or a record (at least one named field)."""
    return st.one_of(
        st.builds(ConDecl, upper_names, st.lists(type_exprs, max_size=3).map(tuple),
                  st.none()),
        unique(field_names, 1, 3).flatmap(lambda fs: st.builds(
            ConDecl, upper_names, st.tuples(*[type_exprs for _ in fs]), st.just(fs))))


datas = st.builds(DataDecl, upper_names, unique(type_vars, 0, 3),
                  st.lists(constructors(), min_size=1, max_size=4).map(tuple))
small_defines = st.builds(Define, names, st.one_of(st.none(), unique(names, 0, 2)),
                          st.recursive(atoms, compound, max_leaves=6))
classes = type_vars.flatmap(lambda a: st.builds(
    ClassDecl, upper_names, st.just(a),
    st.lists(upper_names.map(lambda c: Pred(c, TyVar(a))), max_size=2).map(tuple),
    st.lists(st.builds(MethodSig, names, top_types), max_size=3).map(tuple),
    st.lists(small_defines, max_size=2).map(tuple)))
instances = st.builds(InstanceDecl, upper_names, type_exprs,
                      st.lists(preds, max_size=2).map(tuple),
                      st.lists(small_defines, max_size=3).map(tuple))
modules = st.builds(
    Module,
    st.lists(defines, max_size=4, unique_by=lambda d: d.name).map(tuple),
    exprs,
    datas=st.lists(datas, max_size=2).map(tuple),
    classes=st.lists(classes, max_size=1).map(tuple),
    instances=st.lists(instances, max_size=1).map(tuple))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_module_round_trips(module):
    text = to_source(module)
    assert parse(text) == module
    assert parse_with_ply(text) == module


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exprs)
def test_expression_round_trips(expr):
    assert parse(to_source(expr)).body == expr


@settings(max_examples=100, deadline=None)
@given(top_types)
def test_type_round_trips(t):
    assert parse(f"(the {to_source(t)} x)").body.type == t
    assert parse_type(to_source(t)) == t


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(datas, classes))
def test_declaration_round_trips(decl):
    assert parse_declaration(to_source(decl)) == decl


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.builds(Case, exprs, st.lists(st.builds(Alt, patterns, exprs), min_size=1,
                                       max_size=4).map(tuple)))
def test_case_round_trips(case):
    text = to_source(case)
    assert parse(text).body == case
    assert parse_with_ply(text).body == case


def typed_forms():
    plain_strings = st.text(alphabet=st.characters(
        blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="()"),
        max_size=8)
    return st.one_of(
        st.integers(min_value=-2**63, max_value=2**63 - 1).map(
            lambda n: (f"I64:{n}", Lit(n, "Int"))),
        st.floats(allow_nan=False).map(
            lambda x: (f"DOUBLE:{show_double(x)}", Lit(x, "Double"))),
        st.booleans().map(lambda b: (f"BOOL:{'true' if b else 'false'}", Lit(b, "Bool"))),
        plain_strings.map(lambda s: (f"STRING:{s}", Lit(s, "String"))),
    )


@settings(max_examples=200, deadline=None)
@given(typed_forms())
def test_typed_literal_reads_as_its_plain_literal(case):
    text, lit = case
    got = parse(f"(f {text})").body.args[0]
    assert got == lit and type(got.value) is type(lit.value)
    assert parse(to_source(got)).body == lit


def test_nan_reads_back_as_nan():
    got = parse(to_source(Lit(math.nan, "Double"))).body
    assert got.type == "Double" and math.isnan(got.value)


PRINTED = [
    (Lit(-5, "Int"), "-5"),
    (Lit(2.5, "Double"), "2.5"),
    (Lit(2.0, "Double"), "2.0"),
    (Lit(1e22, "Double"), "1e+22"),
    (Lit(-math.inf, "Double"), "-inf"),
    (Lit('a"b\\\n\x01', "String"), '"a\\"b\\\\\\n\\u{1}"'),
    (Lit(True, "Bool"), "true"),
    (Var("zip-with"), "zip-with"),
    (App(Var("f"), (Var("a"), Lit(1, "Int"))), "(f a 1)"),
    (If(Var("c"), Var("t"), Var("e")), "(if c t e)"),
    (Let((Binding("x", Lit(1, "Int")), Binding("y", Var("x"))), Var("y")),
     "(let ((x 1) (y x)) y)"),
    (Binding("x", Lit(1, "Int")), "(x 1)"),
    (Lambda(("x", "y"), Var("x")), "(lambda (x y) x)"),
    (The(TyFun((TyCon("Int"), TyList(TyVar("a"))), TyCon("Bool")), Var("f")),
     "(the (-> Int (List a) Bool) f)"),
    (ListLit(()), "(list)"),
    (ListLit((Lit(1, "Int"), ListLit(()))), "(list 1 (list))"),
    (Define("n", None, Lit(10, "Int")), "(define n 10)"),
    (Define("k", (), Lit(5, "Int")), "(define (k) 5)"),
    (Define("f", ("x", "y"), Var("x")), "(define (f x y) x)"),
    (Module((Define("n", None, Lit(1, "Int")), Define("m", None, Var("n"))), Var("m")),
     "(define n 1)\n(define m n)\nm"),
    (TyCon("String"), "String"),
    (TyVar("elem"), "elem"),
    (TyApp("Opt", (TyList(TyVar("a")), TyCon("Tree"))), "(Opt (List a) Tree)"),
    (TyQual((Pred("Show", TyVar("a")), Pred("Eq", TyVar("b"))),
            TyFun((TyVar("a"),), TyVar("b"))), "(=> (Show a) (Eq b) (-> a b))"),
    (Case(Var("e"), (Alt(PCon("Yes", (PVar("x"),)), Var("x")), Alt(PCon("No", ()), Lit(0, "Int")),
                     Alt(PWild(), Lit(1, "Int")))),
     "(case e ((Yes x) x) (No 0) (_ 1))"),
    (Case(Var("xs"), ()), "(case xs)"),
    (PCon("cons", (PVar("h"), PCon("cons", (PLit(Lit(-3, "Int")), PCon("nil", ()))))),
     "(list h -3)"),
    (PCon("cons", (PVar("h"), PVar("t"))), "(cons h t)"),
    (PCon("cons", (PVar("h"), PCon("cons", (PVar("i"), PVar("t"))))), "(cons h (cons i t))"),
    (PCon("nil", ()), "nil"),
    (PLit(Lit("s", "String")), '"s"'),
    (DataDecl("Opt", ("a",), (ConDecl("No", (), None), ConDecl("Yes", (TyVar("a"),), None))),
     "(data (Opt a) No (Yes a))"),
    (DataDecl("Point", (), (ConDecl("Pt", (TyCon("Double"), TyCon("Double")), ("px", "py")),)),
     "(data Point (Pt (px Double) (py Double)))"),
    (ClassDecl("Keyed", "a", (Pred("Eq", TyVar("a")),),
               (MethodSig("key", TyFun((TyVar("a"),), TyCon("Int"))),),
               (Define("key", ("x",), Lit(0, "Int")),)),
     "(class (=> (Eq a) (Keyed a)) (key (-> a Int)) (define (key x) 0))"),
    (ClassDecl("Size", "a", (), (), ()), "(class (Size a))"),
    (InstanceDecl("Size", TyList(TyVar("a")), (Pred("Size", TyVar("a")),),
                  (Define("size", ("xs",), Lit(0, "Int")),)),
     "(instance (=> (Size a) (Size (List a))) (define (size xs) 0))"),
    (InstanceDecl("Size", TyCon("String"), (), ()), "(instance (Size String))"),
    (Module((Define("n", None, Lit(1, "Int")),), Var("n"),
            datas=(DataDecl("T", (), (ConDecl("A", (), None),)),),
            classes=(ClassDecl("C", "a", (), (), ()),),
            instances=(InstanceDecl("C", TyCon("T"), (), ()),)),
     "(data T A)\n(class (C a))\n(instance (C T))\n(define n 1)\nn"),
]


def test_a_cond_prints_as_its_ifs():
    tree = parse("(cond (a 1) (b 2))").body
    assert to_source(tree) == "(if a 1 (if b 2 (case true)))"
    assert parse(to_source(tree)).body == tree


def test_a_long_list_pattern_prints_flat():
    items = " ".join(f"x{i}" for i in range(200))
    tree = parse(f"(case v ((list {items}) 0))")
    assert to_source(tree) == f"(case v ((list {items}) 0))"


@pytest.mark.parametrize("node,text", PRINTED)
def test_to_source_text(node, text):
    assert to_source(node) == text


def test_to_source_rejects_a_non_node():
    with pytest.raises(TypeError):
        to_source(object())


def test_a_deep_tree_prints_and_reads_back():
    expr = Lit(0, "Int")
    for i in range(200):
        expr = App(Var("f"), (expr,))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        assert parse(to_source(expr)).body == expr
    finally:
        sys.setrecursionlimit(limit)
