"""Tests for exathunk.types: signatures, printing, unification, schemes, trees."""

import pytest

from exathunk import types as T
from exathunk.errors import ExathunkError
from exathunk.library import BUILTINS, PRELUDE_SIGNATURES, Library
from exathunk.types import (BOOL, DOUBLE, INT, STRING, Scheme, SignatureError, TFun,
                            TList, TVar, UnifyError, arity_of, from_tree, fun,
                            parse_signature, show_type, to_tree, unify)


# ---- signatures and printing ---------------------------------------------------------

ROUND_TRIP = [
    ("Int", "Int"),
    ("a", "a"),
    ("(List a)", "(List a)"),
    ("(List (List Bool))", "(List (List Bool))"),
    ("(-> Int Bool)", "(-> Int Bool)"),
    ("(-> a b c)", "(-> a b c)"),
    ("(-> a (-> b c))", "(-> a b c)"),                # curried: the same type
    ("(-> (-> a b) c)", "(-> (-> a b) c)"),
    ("(-> x y x)", "(-> a b a)"),                      # renamed in order of appearance
    ("(-> b a)", "(-> a b)"),
    ("Num a => (-> a a a)", "Num a => (-> a a a)"),
    ("(Eq a, Show b) => (-> a b String)", "(Eq a, Show b) => (-> a b String)"),
    ("(Show b, Eq a) => (-> a b String)", "(Eq a, Show b) => (-> a b String)"),
    ("Show b => (-> a b)", "Show b => (-> a b)"),
    ("(Ord a, Eq a) => (-> a Bool)", "(Eq a, Ord a) => (-> a Bool)"),
    ("  (->   Int\n  Double )  ", "(-> Int Double)"),
]


@pytest.mark.parametrize("sig,shown", ROUND_TRIP)
def test_signature_round_trip(sig, shown):
    scheme = parse_signature(sig)
    assert show_type(scheme) == shown
    assert show_type(parse_signature(shown)) == shown


@pytest.mark.parametrize("spec", BUILTINS, ids=lambda s: s.name)
def test_every_builtin_signature_parses_with_its_arity(spec):
    scheme = parse_signature(spec.signature)
    assert arity_of(scheme) == spec.arity
    assert show_type(scheme) == spec.signature


def _prelude_scope():
    from exathunk.typecheck import library_world
    return library_world(Library()).scope


@pytest.mark.parametrize("name", sorted(PRELUDE_SIGNATURES))
def test_every_prelude_signature_parses(name):
    scope = _prelude_scope()
    scheme = parse_signature(PRELUDE_SIGNATURES[name], scope)
    assert show_type(parse_signature(show_type(scheme), scope)) == show_type(scheme)


def test_data_types_in_signatures_need_a_scope():
    with pytest.raises(SignatureError, match="unknown type 'Maybe'"):
        parse_signature("(-> Int (Maybe Int))")
    scope = _prelude_scope()
    assert show_type(parse_signature("(-> Int (Maybe Int))", scope)) == "(-> Int (Maybe Int))"
    with pytest.raises(SignatureError, match="Maybe takes 1 type argument"):
        parse_signature("(Maybe Int Int)", scope)


BAD_SIGNATURES = ["", "Foo", "(-> a)", "(List a b)", "(List)", "(Maybe a)", "(-> a b",
                  "(-> a b))", "Num b => a", "Frob a => a", "Num => a", "Int Int",
                  "(Num a, ) => a", "a -> b", "Num A => Int", "(-> 1 a)"]


@pytest.mark.parametrize("sig", BAD_SIGNATURES)
def test_bad_signature_is_rejected(sig):
    with pytest.raises(SignatureError):
        parse_signature(sig)


def test_library_register_checks_the_signature():
    lib = Library()
    with pytest.raises(ExathunkError):
        lib.register("f", "(-> Int Foo)", lambda x: x)
    spec = lib.register("g", "(-> Int Int String)", lambda x, y: "")
    assert spec.arity == 2


@pytest.mark.parametrize("sig,arity", [("Int", 0), ("a", 0), ("(List (-> a b))", 0),
                                       ("(-> a b)", 1), ("(-> a b c)", 2),
                                       ("(-> (-> a b c) d)", 1),
                                       ("(-> a (-> b (-> c d)))", 3)])
def test_arity_counts_top_level_arrows(sig, arity):
    assert arity_of(parse_signature(sig)) == arity


def test_show_names_variables_deterministically():
    a, b = TVar(), TVar()
    t = fun(b, TList(a), b)
    assert show_type(t) == "(-> a (List b) a)"
    assert show_type(t) == "(-> a (List b) a)"
    many = [TVar() for _ in range(30)]
    text = show_type(fun(*many))
    assert text.startswith("(-> a b c") and " z a1 b1 " in text


def test_show_types_shares_names():
    a, b = TVar(), TVar()
    assert T.show_types(fun(a, b), fun(b, a)) == ["(-> a b)", "(-> b a)"]


def test_show_type_of_a_constrained_type_shows_the_context():
    a = TVar(0, T.NUM | T.SHOW)
    assert show_type(fun(a, a)) == "(Num a, Show a) => (-> a a)"
    assert show_type(fun(a, a), constraints=False) == "(-> a a)"


def test_types_beyond_the_size_bound_are_refused():
    t1, t2 = INT, TVar()
    for _ in range(T.MAX_TYPE_SIZE + 10):
        t1, t2 = TList(t1), TList(t2)
    with pytest.raises(UnifyError) as info:
        unify(t1, t2)
    assert info.value.kind == "size"
    shown = show_type(t1)
    assert "..." in shown and len(shown) < 8 * T.MAX_TYPE_SIZE
    shared = INT
    for _ in range(40):                       # 2**40 parts as a tree, 40 as a graph
        shared = fun(shared, shared)
    with pytest.raises(UnifyError):
        unify(TVar(), shared)                 # the occurs walk is bounded
    with pytest.raises(UnifyError):
        T.resolve(TFun(TVar(), shared))
    assert len(show_type(shared)) < 8 * T.MAX_TYPE_SIZE


def test_deep_types_print_and_unify_without_recursion():
    depth = T.MAX_TYPE_SIZE - 10
    t1, t2 = INT, TVar()
    for _ in range(depth):
        t1, t2 = TList(t1), TList(t2)
    unify(t1, t2)
    text = show_type(t2)
    assert text.count("(List") == depth
    assert T.type_depth(t2) == depth + 1
    assert T.types_equal(t1, t2)


# ---- unification and classes ---------------------------------------------------------

def test_unify_binds_and_resolves():
    a, b = TVar(), TVar()
    unify(fun(a, INT), fun(BOOL, b))
    assert T.resolve(a) is BOOL and T.resolve(b) is INT
    assert show_type(fun(a, b)) == "(-> Bool Int)"


def test_unify_mismatch_reports_the_clashing_parts():
    with pytest.raises(UnifyError) as info:
        unify(fun(INT, BOOL), fun(INT, STRING))
    assert info.value.kind == "mismatch"
    assert {info.value.left.name, info.value.right.name} == {"Bool", "String"}


def test_occurs_check():
    a, b = TVar(), TVar()
    with pytest.raises(UnifyError) as info:
        unify(a, fun(a, b))
    assert info.value.kind == "occurs"
    with pytest.raises(UnifyError):
        unify(TList(a), a)


INSTANCE_CASES = [
    (T.NUM, INT, True), (T.NUM, DOUBLE, True), (T.NUM, BOOL, False), (T.NUM, STRING, False),
    (T.EQ, INT, True), (T.EQ, BOOL, True), (T.EQ, STRING, True), (T.EQ, TList(INT), True),
    (T.EQ, TList(TList(BOOL)), True), (T.EQ, fun(INT, INT), False),
    (T.EQ, TList(fun(INT, INT)), False),
    (T.ORD, INT, True), (T.ORD, DOUBLE, True), (T.ORD, STRING, True), (T.ORD, BOOL, True),
    (T.ORD, TList(INT), True), (T.ORD, TList(fun(INT, INT)), False),
    (T.SHOW, INT, True), (T.SHOW, BOOL, True), (T.SHOW, TList(STRING), True),
    (T.SHOW, fun(INT, BOOL), False), (T.NUM, TList(INT), False),
]


@pytest.mark.parametrize("cls,t,ok", INSTANCE_CASES)
def test_instances(cls, t, ok):
    v = TVar(0, cls)
    if ok:
        unify(v, t)
        assert T.resolve(v) is T.resolve(t) or T.types_equal(v, t)
    else:
        with pytest.raises(UnifyError) as info:
            unify(v, t)
        assert info.value.kind == "instance"


def test_class_propagates_into_list_elements_and_merges_between_variables():
    a, e, b = TVar(0, T.SHOW), TVar(), TVar(0, T.NUM)
    unify(a, TList(e))
    assert e.classes == T.SHOW
    unify(e, b)
    assert T.prune(e).classes == T.SHOW | T.NUM
    with pytest.raises(UnifyError):
        unify(b, BOOL)


def test_rigid_variables_only_unify_with_themselves():
    r, s, f = TVar(0, 0, True), TVar(0, 0, True), TVar()
    unify(r, r)
    unify(f, r)                               # a flexible variable may become it
    with pytest.raises(UnifyError) as info:
        unify(r, INT)
    assert info.value.kind == "rigid"
    with pytest.raises(UnifyError):
        unify(r, s)
    with pytest.raises(UnifyError):
        unify(TVar(0, T.NUM), r)              # no Num instance for an arbitrary type


def test_rigid_variable_may_not_escape_to_an_outer_level():
    outer, inner_rigid = TVar(0), TVar(1, 0, True)
    with pytest.raises(UnifyError) as info:
        unify(outer, TList(inner_rigid))
    assert info.value.kind == "escape"


def test_binding_lowers_levels_for_generalisation():
    outer, inner = TVar(0), TVar(3)
    unify(outer, TList(inner))
    assert inner.level == 0
    assert not T.generalize(outer, 0).vars


# ---- schemes ---------------------------------------------------------------------------

def test_instantiate_gives_fresh_variables_with_classes():
    s = parse_signature("(Eq a, Show b) => (-> a b a)")
    t1, t2 = s.instantiate(2), s.instantiate(2)
    assert show_type(t1) == "(Eq a, Show b) => (-> a b a)"
    assert T.free_vars(t1)[0] is not T.free_vars(t2)[0]
    assert all(v.level == 2 for v in T.free_vars(t1))
    unify(t1, fun(INT, STRING, INT))          # the scheme itself is untouched
    assert show_type(s) == "(Eq a, Show b) => (-> a b a)"


def test_prepared_instantiation_matches_the_generic_path():
    for sig in ["Num a => (-> a a a)", "(-> (-> a b c) (List a) (List b) (List c))",
                "(-> Int Int)", "a", "(List a)"]:
        slow = Scheme(parse_signature(sig).vars, parse_signature(sig).type)
        fast = Scheme(slow.vars, slow.type).prepare()
        assert show_type(fast.instantiate(1)) == show_type(slow.instantiate(1))
        inst = fast.instantiate(1)
        assert all(v.level == 1 for v in T.free_vars(inst)) or not slow.vars


def test_generalize_keeps_outer_variables_shared():
    outer, inner = TVar(0), TVar(1)
    s = T.generalize(fun(outer, inner), 0)
    assert s.vars == (inner,)
    t = s.instantiate(0)
    assert T.free_vars(t)[0] is outer and T.free_vars(t)[1] is not inner


def test_list_elem_name():
    assert T.list_elem_name(fun(TList(INT), INT)) == "Int"
    assert T.list_elem_name(fun(TList(DOUBLE), DOUBLE)) == "Double"
    assert T.list_elem_name(fun(TList(TVar()), TVar())) is None
    assert T.list_elem_name(INT) is None


# ---- the structured form ----------------------------------------------------------------

def test_to_tree_shapes():
    assert to_tree(INT) == ("con", "Int")
    assert to_tree(parse_signature("(-> a (List a) Bool)").type) == (
        "fun", (("var", "a"), ("list", ("var", "a"))), ("con", "Bool"))
    assert to_tree(parse_signature("Num a => (-> a a)")) == (
        "scheme", (("Num", "a"),), ("fun", (("var", "a"),), ("var", "a")))


@pytest.mark.parametrize("sig", [s.signature for s in BUILTINS] + list(PRELUDE_SIGNATURES.values())
                         + ["(-> (-> a b) (-> c d) (List (-> a d)))"])
def test_tree_round_trip(sig):
    scope = _prelude_scope()
    scheme = parse_signature(sig, scope)
    back = from_tree(to_tree(scheme), scope)
    assert show_type(back) == show_type(scheme)
    assert arity_of(back) == arity_of(scheme)
    assert show_type(from_tree(to_tree(scheme.type), scope), constraints=False) == \
        show_type(scheme, constraints=False)


@pytest.mark.parametrize("tree", [("con", "Float"), ("fun", (), ("con", "Int")), ("list",),
                                  "Int", ("scheme", (("Num", "z"),), ("var", "a")), ()])
def test_bad_tree_is_rejected(tree):
    with pytest.raises(SignatureError):
        from_tree(tree)


def test_types_compare_structurally():
    assert TList(INT) == TList(INT)
    assert fun(INT, BOOL) == fun(INT, BOOL)
    assert fun(INT, BOOL) != fun(INT, INT)
    assert T.TCon("Int", 0) == INT
    assert parse_signature("(-> a a)") == parse_signature("(-> b b)")
