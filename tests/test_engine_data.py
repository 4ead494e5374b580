"""The engine on data types and the string built-ins, with Programs built by hand.

Programs here are assembled directly (program.Function, DataType, Constructor), so
that the engine, the format and the verifier are tested independently of the
front end.  A small expression form (nested tuples, see ``Asm.expr``) is compiled to
straight-line code for the table-driven tests.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from exathunk import EvaluationError, ExathunkError, LimitExceeded, reference
from exathunk.library import FuncSpec
from exathunk.opcodes import Op
from exathunk.program import (FORMAT_VERSION, MAX_ARITY, Constructor, DataType, Function,
                              HostRef, Program)
from exathunk.values import Data, show_value


def C(name, *field_types, names=None):
    return Constructor(name, tuple(field_types), tuple(names or ("",) * len(field_types)))


DATATYPES = [
    DataType("Opt", ("a",), (C("No"), C("Yes", "a"))),
    DataType("Pair", ("a", "b"), (C("Pair", "a", "b"),)),
    DataType("Nat", (), (C("Z"), C("S", "Nat"))),
    DataType("Tree", (), (C("Leaf"), C("Node", "Tree", "Int", "Tree"))),
    DataType("Color", (), (C("Red"), C("Green"), C("Blue"))),
    DataType("Point", (), (C("Pt", "Double", "Double", names=("px", "py")),)),
    DataType("Bag", ("a",), (C("Bag", "(List a)"),)),
    DataType("Box", (), (C("Box", "(Opt (Pair Int String))"),)),
]
CON = {c.name: i for i, (d, tag, c) in enumerate(
    (d, t, c) for d in DATATYPES for t, c in enumerate(d.constructors))}
ARITY = {c.name: len(c.field_types) for d in DATATYPES for c in d.constructors}

NAN = float("nan")
BOTTOM = ("bottom",)


class Asm:
    """Builds a Program: constant pools, the helper functions, and main.

    Functions: 0 %main, 1 bad (bottom), 2 build n (the lazy chain S (S ... Z) of
    length n), 3 its step, 4 walk x acc (the chain's length, tail recursive), 5 left n
    (the tree Node (left (n-1)) n Leaf, nested to the left), 6 its step; then one
    function per ("lazy", e) thunk."""

    def __init__(self, datatypes=None, hosts=()):
        self.ints, self.dbls, self.strs = [], [], []
        self.datatypes = DATATYPES if datatypes is None else datatypes
        self.hosts = list(hosts)
        self.fns = [None]
        zero, one = self.int_k(0), self.int_k(1)
        s_con, z_con = CON["S"], CON["Z"]
        self.fns.append(Function("bad", 0, 0, [Op.BOTTOM, Op.RET], [7, 7]))
        self.add_fn("build", 1, 1, [
            Op.LOCAL_EVAL, 0, Op.STORE, 0,
            Op.BR_EQ_LI, 0, zero, "@succ",
            Op.MKCON, z_con, 0, Op.RET,
            "succ:", Op.LOCAL, 0, Op.MKTHUNK, 3, 1, Op.MKCON, s_con, 1, Op.RET])
        self.add_fn("build-step", 1, 1, [Op.SUB_LI, 0, one, Op.TAILCALL, 2, 1])
        self.add_fn("walk", 2, 2, [
            Op.LOCAL_EVAL, 0, Op.STORE, 0, Op.LOCAL_EVAL, 1, Op.STORE, 1,
            Op.BR_NCON, 0, s_con, "@zero",
            Op.LOCAL, 0, Op.FIELD, 0, Op.EVAL, Op.ADD_LI, 1, one, Op.TAILCALL, 4, 2,
            "zero:", Op.LOCAL, 1, Op.RET])
        self.add_fn("left", 1, 1, [
            Op.LOCAL_EVAL, 0, Op.STORE, 0,
            Op.BR_EQ_LI, 0, zero, "@node",
            Op.MKCON, CON["Leaf"], 0, Op.RET,
            "node:", Op.LOCAL, 0, Op.MKTHUNK, 6, 1, Op.LOCAL, 0, Op.MKCON, CON["Leaf"], 0,
            Op.MKCON, CON["Node"], 3, Op.RET])
        self.add_fn("left-step", 1, 1, [Op.SUB_LI, 0, one, Op.TAILCALL, 5, 1])

    def int_k(self, v):
        if v not in self.ints:
            self.ints.append(v)
        return self.ints.index(v)

    def add_fn(self, name, arity, frame, items):
        code, labels, fixups = [], {}, []
        for it in items:
            if isinstance(it, str) and it.endswith(":"):
                labels[it[:-1]] = len(code)
            elif isinstance(it, str) and it.startswith("@"):
                fixups.append((len(code), it[1:]))
                code.append(0)
            else:
                code.append(int(it))
        for at, label in fixups:
            code[at] = labels[label]
        self.fns.append(Function(name, arity, frame, code, [3] * len(code)))
        return len(self.fns) - 1

    def expr(self, e, out):
        """Append code that pushes e (in WHNF unless it is a thunk form)."""
        if isinstance(e, bool):
            out += [Op.BOOL, int(e)]
        elif isinstance(e, int):
            out += [Op.INT, self.int_k(e)]
        elif isinstance(e, float):
            self.dbls.append(e)
            out += [Op.DBL, len(self.dbls) - 1]
        elif isinstance(e, str):
            self.strs.append(e)
            out += [Op.STR, len(self.strs) - 1]
        elif e == BOTTOM:
            out += [Op.MKTHUNK, 1, 0]                       # a thunk that fails
        elif e[0] == "con":
            for f in e[2:]:
                self.expr(f, out)
            out += [Op.MKCON, CON[e[1]], len(e) - 2]
        elif e[0] == "list":
            out.append(Op.NIL)
            for x in reversed(e[1:]):
                self.expr(x, out)
                out.append(Op.CONS)
        elif e[0] == "cons":
            self.expr(e[2], out)
            self.expr(e[1], out)
            out.append(Op.CONS)
        elif e[0] == "lazy":
            body = []
            self.expr(e[1], body)
            f = self.add_fn(f"lazy{len(self.fns)}", 0, 0, body + [Op.RET])
            out += [Op.MKTHUNK, f, 0]
        elif e[0] == "eval":
            self.expr(e[1], out)
            out.append(Op.EVAL)
        elif e[0] in ("build", "left"):
            self.expr(e[1], out)
            out += [Op.CALL, 2 if e[0] == "build" else 5, 1]
        elif e[0] == "walk":
            self.expr(e[1], out)
            out += [Op.INT, self.int_k(0), Op.CALL, 4, 2]
        elif e[0] == "host":
            for a in e[2:]:
                self.expr(a, out)
            out += [Op.HOST, e[1], len(e) - 2]
        elif isinstance(e[0], Op):
            for a in e[1:]:
                self.expr(a, out)
            out.append(e[0])
        elif e[0] == "field":
            self.expr(e[2], out)
            out += [Op.FIELD, e[1]]
        else:
            raise ValueError(e)
        return out

    def program(self, main_code, frame=0, rtype="a") -> Program:
        self.fns[0] = Function("%main", 0, frame, list(main_code), [1] * len(main_code))
        return Program(FORMAT_VERSION, self.fns, self.ints, self.dbls, self.strs, self.hosts,
                       0, rtype, [], list(self.datatypes))


def prog_of(e, **kw) -> Program:
    a = Asm(**kw)
    return a.program(a.expr(e, []) + [Op.RET])


def run(e, library=None, **limits):
    hosts = getattr(library, "hosts", ())
    return prog_of(e, hosts=hosts).run(library=library, **limits)


def con(name, *fields):
    return ("con", name, *fields)


def L(*xs):
    return ("list", *xs)


# ---- building, matching, fields ---------------------------------------------------

@pytest.mark.parametrize("e,expected", [
    (con("No"), Data("No")),
    (con("Yes", 3), Data("Yes", (3,))),
    (con("Yes", con("Yes", -3)), Data("Yes", (Data("Yes", (-3,)),))),
    (con("Pair", "a", 2.5), Data("Pair", ("a", 2.5))),
    (con("Pt", 1.0, 2.0), Data("Pt", (1.0, 2.0))),
    (con("Bag", L(1, 2)), Data("Bag", ([1, 2],))),
    (L(con("Red"), con("Blue")), [Data("Red"), Data("Blue")]),
    (con("Node", con("Leaf"), 1, con("Node", con("Leaf"), 2, con("Leaf"))),
     Data("Node", (Data("Leaf"), 1, Data("Node", (Data("Leaf"), 2, Data("Leaf")))))),
    (con("Yes", ("lazy", con("Pair", True, ("lazy", "x")))),
     Data("Yes", (Data("Pair", (True, "x")),))),
    (("field", 1, con("Pair", BOTTOM, 7)), 7),
    (("field", 0, con("Yes", ("lazy", 5))), 5),
    (("field", 2, con("Node", BOTTOM, BOTTOM, con("Green"))), Data("Green")),
])
def test_construct_and_hand_back(e, expected):
    got = run(e)
    assert got == expected
    assert type(got) is type(expected)


def test_nullary_constructors_share_one_host_value_and_allocate_nothing():
    a = Asm()
    code = a.expr(L(*[con("Red")] * 1000), []) + [Op.RET]
    value, stats = a.program(code).run_with_stats()
    assert value == [Data("Red")] * 1000
    assert len({id(v) for v in value}) == 1
    cons_bytes = 1000 * 48
    assert stats["peak_heap"] <= cons_bytes + 4096


def branch_program(scrutinee, con_name):
    """main: x = scrutinee; if x is con_name then 1 else 0 (BR_NCON)."""
    a = Asm()
    code = a.expr(scrutinee, [])
    target = len(code) + 6
    code += [Op.EVAL, Op.STORE, 0, Op.BR_NCON, 0, CON[con_name], 0,
             Op.INT, a.int_k(1), Op.RET, Op.INT, a.int_k(0), Op.RET]
    code[target] = len(code) - 3
    return a.program(code, frame=1)


@pytest.mark.parametrize("scrutinee,con_name,expected", [
    (con("No"), "No", 1),
    (con("No"), "Yes", 0),
    (con("Yes", BOTTOM), "Yes", 1),           # matching never forces a field
    (con("Yes", BOTTOM), "No", 0),
    (con("Blue"), "Blue", 1),
    (con("Blue"), "Red", 0),
    (("lazy", con("Node", BOTTOM, BOTTOM, BOTTOM)), "Node", 1),   # forced by EVAL first
    (("lazy", con("Leaf")), "Node", 0),
])
def test_br_ncon(scrutinee, con_name, expected):
    assert branch_program(scrutinee, con_name).run() == expected


@pytest.mark.parametrize("e", [
    con("Yes", BOTTOM),
    con("Pair", 1, BOTTOM),
    con("Node", con("Leaf"), 1, BOTTOM),
])
def test_a_bottom_field_fails_only_when_used(e):
    # building it, matching it and taking another field are fine ...
    a = Asm()
    assert a.program(a.expr(e, []) + [Op.POP, Op.INT, a.int_k(1), Op.RET]).run() == 1
    # ... handing it back (normal form) forces it
    with pytest.raises(EvaluationError, match="bottom"):
        run(e)
    with pytest.raises(EvaluationError, match="bottom"):
        run((Op.SHOW, e))


@pytest.mark.parametrize("e,why", [
    (("field", 0, 5), "FIELD"),
    (("field", 0, con("No")), "FIELD"),
    (("field", 1, con("Yes", 1)), "FIELD"),
    (("field", 0, L(1)), "FIELD"),
    ((Op.EQ, con("No"), 1), "unlike"),
    ((Op.LT, con("Yes", 1), L(1)), "unlike"),
    ((Op.EQ, L(con("No")), L(2)), "unlike"),
    ((Op.ADD, con("No"), 1), "arithmetic"),
    ((Op.JOIN, ",", L(1)), "join"),
    ((Op.JOIN, 1, L("a")), "join"),
    ((Op.SPLIT, 1, "a"), "split"),
    ((Op.SUBSTRING, "abc", 1.0, 2), "substring"),
    ((Op.CHARS, 3), "chars"),
    ((Op.PARSEINT, 3), "parse-int"),
])
def test_ill_typed_but_verified_code_is_a_runtime_error(e, why):
    with pytest.raises(EvaluationError, match="malformed program") as info:
        run(e)
    assert why in info.value.message


def test_br_ncon_of_a_non_data_value_is_malformed():
    with pytest.raises(EvaluationError, match="malformed program"):
        branch_program(3, "No").run()


# ---- equality and ordering ----------------------------------------------------------

T, F = True, False
CMP_OPS = (Op.EQ, Op.NEQ, Op.LT, Op.LE, Op.GT, Op.GE)


def expect_all(sign):
    """The six outcomes for a comparison whose result is sign (-1, 0, 1, None)."""
    if sign is None:
        return (F, T, F, F, F, F)
    return (sign == 0, sign != 0, sign < 0, sign <= 0, sign > 0, sign >= 0)


@pytest.mark.parametrize("a,b,sign", [
    (False, True, -1), (True, False, 1), (True, True, 0), (False, False, 0),
    (L(), L(), 0), (L(), L(1), -1), (L(1), L(), 1),
    (L(1, 2), L(1, 3), -1), (L(1, 2), L(1), 1), (L(1, 2), L(1, 2), 0),
    (L("b"), L("a", "z"), 1), (L(L(1)), L(L(1), L()), -1), (L(True), L(False), 1),
    (L(1.0, NAN), L(2.0, NAN), -1),           # decided before the NaN
    (L(NAN), L(1.0), None), (L(1.0, NAN), L(1.0, 0.0), None), (L(NAN), L(NAN), None),
    (L(0.0), L(-0.0), 0),
    (con("No"), con("No"), 0), (con("No"), con("Yes", 0), -1), (con("Yes", 0), con("No"), 1),
    (con("Yes", 1), con("Yes", 2), -1), (con("Yes", "b"), con("Yes", "a"), 1),
    (con("Red"), con("Blue"), -1), (con("Green"), con("Red"), 1), (con("Blue"), con("Blue"), 0),
    (con("Pair", 1, "b"), con("Pair", 1, "a"), 1), (con("Pair", 1, "a"), con("Pair", 2, "a"), -1),
    (con("Pair", 1, 2), con("Pair", 1, 2), 0),
    (con("Leaf"), con("Node", con("Leaf"), 0, con("Leaf")), -1),
    (con("Node", con("Leaf"), 1, con("Leaf")), con("Node", con("Leaf"), 2, con("Leaf")), -1),
    (con("Node", con("Node", con("Leaf"), 5, con("Leaf")), 1, con("Leaf")),
     con("Node", con("Leaf"), 9, con("Leaf")), 1),
    (con("Yes", NAN), con("Yes", 1.0), None), (con("Yes", NAN), con("Yes", NAN), None),
    (con("Pair", 1.0, NAN), con("Pair", 2.0, NAN), -1),
    (con("Pt", 0.0, 1.0), con("Pt", -0.0, 1.0), 0),
    (con("Bag", L(1, 2)), con("Bag", L(1, 2, 0)), -1),
    (L(con("Yes", 1), con("No")), L(con("Yes", 1), con("Yes", 0)), -1),
    (con("Box", con("Yes", con("Pair", 3, "x"))), con("Box", con("Yes", con("Pair", 3, "x"))), 0),
    (con("Box", con("Yes", con("Pair", 3, "x"))), con("Box", con("No")), 1),
])
def test_comparisons(a, b, sign):
    got = tuple(run((op, a, b)) for op in CMP_OPS)
    assert got == expect_all(sign)


@pytest.mark.parametrize("a,b,sign", [
    (("cons", 1, BOTTOM), ("cons", 2, BOTTOM), -1),      # tails never forced
    (con("Pair", 1, BOTTOM), con("Pair", 2, BOTTOM), -1),
    (con("Node", BOTTOM, 1, BOTTOM), con("Leaf"), 1),   # tags differ: no field looked at
    (con("Yes", BOTTOM), con("No"), 1),
    (con("Pair", L(1, BOTTOM), BOTTOM), con("Pair", L(2, BOTTOM), BOTTOM), -1),
    (con("Pair", ("lazy", 3), BOTTOM), con("Pair", ("lazy", 4), BOTTOM), -1),   # forced as needed
    (("cons", ("lazy", NAN), BOTTOM), ("cons", 1.0, BOTTOM), None),
])
def test_comparisons_stop_at_the_first_difference(a, b, sign):
    got = tuple(run((op, a, b)) for op in CMP_OPS)
    assert got == expect_all(sign)


@pytest.mark.parametrize("a,b", [
    (("cons", 1, BOTTOM), ("cons", 1, BOTTOM)),
    (con("Pair", 1, BOTTOM), con("Pair", 1, 2)),
])
def test_comparisons_force_what_they_must(a, b):
    for op in CMP_OPS:
        with pytest.raises(EvaluationError, match="bottom"):
            run((op, a, b))


@pytest.mark.parametrize("op", [Op.BR_LT_LL, Op.BR_LE_LL, Op.BR_GT_LL, Op.BR_GE_LL])
@pytest.mark.parametrize("x", [False, True])
@pytest.mark.parametrize("y", [False, True])
def test_compare_and_branch_on_bools(op, x, y):
    a = Asm()
    code = a.expr(x, []) + [Op.STORE, 0] + a.expr(y, []) + [Op.STORE, 1]
    code += [op, 0, 1, 0, Op.BOOL, 1, Op.RET, Op.BOOL, 0, Op.RET]
    code[len(code) - 7] = len(code) - 3
    expected = {Op.BR_LT_LL: x < y, Op.BR_LE_LL: x <= y, Op.BR_GT_LL: x > y,
                Op.BR_GE_LL: x >= y}[op]
    assert a.program(code, frame=2).run() is expected


# ---- show -------------------------------------------------------------------------------

@pytest.mark.parametrize("e,text", [
    (con("No"), "No"),
    (con("Yes", -3), "(Yes -3)"),
    (con("Yes", con("Yes", con("No"))), "(Yes (Yes No))"),
    (con("Pair", "a\"b", L(1, 2)), '(Pair "a\\"b" (list 1 2))'),
    (con("Pt", 1.0, 2.5), "(Pt 1.0 2.5)"),
    (con("Pair", NAN, -0.5), "(Pair nan -0.5)"),
    (L(con("No"), con("Yes", "a"), con("Red")), '(list No (Yes "a") Red)'),
    (con("Bag", L()), "(Bag (list))"),
    (con("Node", con("Leaf"), 1, con("Node", con("Leaf"), 2, con("Leaf"))),
     "(Node Leaf 1 (Node Leaf 2 Leaf))"),
    (con("Yes", ("lazy", con("Pair", True, ("lazy", "x")))), '(Yes (Pair true "x"))'),
    (con("Box", con("Yes", con("Pair", 3, "x"))), '(Box (Yes (Pair 3 "x")))'),
])
def test_show(e, text):
    assert run((Op.SHOW, e)) == text
    assert show_value(run(e)) == text     # the host's rendering agrees


# ---- deep structures ------------------------------------------------------------------

DEEP = 1_000_000


def test_a_million_nested_constructors():
    text = run((Op.SHOW, ("build", DEEP)))
    assert text == "(S " * DEEP + "Z" + ")" * DEEP
    assert run((Op.EQ, ("build", DEEP), ("build", DEEP))) is True
    assert run((Op.EQ, ("build", DEEP), ("build", DEEP - 1))) is False
    assert run((Op.LT, ("build", DEEP - 1), ("build", DEEP))) is True
    assert run((Op.GE, ("build", DEEP - 1), ("build", DEEP))) is False
    assert run(("walk", ("build", DEEP))) == DEEP


def test_a_million_nested_constructors_to_the_host():
    value = run(("build", DEEP))
    depth = 0
    while value.constructor == "S":
        value = value.fields[0]
        depth += 1
    assert depth == DEEP and value == Data("Z")


def test_deep_left_nested_trees():
    n = 200_000
    text = run((Op.SHOW, ("left", n)))
    assert text.startswith("(Node (Node (Node ")
    assert text.endswith(f" {n - 1} Leaf) {n} Leaf)")
    assert run((Op.EQ, ("left", n), ("left", n))) is True
    # the first difference is at the bottom left: Leaf against a Node
    assert run((Op.LT, ("left", n), ("left", n + 1))) is True
    assert run((Op.GT, ("left", n + 1), ("left", n))) is True
    assert run((Op.LE, ("left", n + 1), ("left", n))) is False


def test_data_survives_many_collections():
    value, stats = prog_of(("walk", ("build", 300_000))).run_with_stats(max_heap=1 << 20)
    assert value == 300_000 and stats["gc_runs"] > 5
    value, stats = prog_of((Op.EQ, ("build", 300_000), ("build", 300_000))).run_with_stats(
        max_heap=1 << 20)
    assert value is True and stats["gc_runs"] > 5
    value, stats = prog_of((Op.EQ, ("left", 300_000), ("left", 300_000))).run_with_stats(
        max_heap=1 << 20)
    assert value is True and stats["gc_runs"] > 5
    value, stats = prog_of((Op.SHOW, ("left", 20_000))).run_with_stats(max_heap=3 << 20)
    assert value == run((Op.SHOW, ("left", 20_000))) and stats["gc_runs"] >= 1


def test_limits_hold_on_data():
    with pytest.raises(LimitExceeded) as info:
        prog_of((Op.SHOW, ("build", DEEP))).run(max_steps=100_000)
    assert info.value.limit == "max_steps"
    with pytest.raises(LimitExceeded) as info:
        prog_of(("build", DEEP)).run(max_heap=1 << 20)
    assert info.value.limit == "max_heap"


# ---- host functions -----------------------------------------------------------------

class StubLibrary:
    """Just what binding needs: lookup(name) of host FuncSpecs."""

    def __init__(self, *specs):
        self.specs = {s.name: s for s in specs}
        self.hosts = [HostRef(s.name, s.signature, s.strictness) for s in specs]

    def lookup(self, name):
        return self.specs.get(name)


def host(name, signature, fn, strict=(True,)):
    return FuncSpec(name, signature, "host", tuple(strict), fn)


def test_hosts_take_and_return_data():
    seen = []

    def opt(k):
        return Data("Yes", (k * 2,)) if k > 0 else Data("No")

    def norm(p):
        seen.append(p)
        return p.fields[0] + p.fields[1]

    def tree(n):
        t = Data("Leaf")
        for i in range(n):
            t = Data("Node", (t, i, Data("Leaf")))
        return t

    lib = StubLibrary(host("opt", "(-> Int (Opt Int))", opt),
                      host("norm", "(-> Point Double)", norm),
                      host("tree", "(-> Int Tree)", tree),
                      host("ident", "(-> a a)", lambda x: x),
                      host("bag", "(-> Int (Bag (Opt Int)))",
                           lambda n: Data("Bag", ([Data("Yes", (i,)) for i in range(n)],))),
                      host("box", "(-> Int Box)",
                           lambda n: Data("Box", (Data("Yes", (Data("Pair", (n, "s")),)),))),
                      host("peek", "(-> (Opt Int) Bool)",
                           lambda lazy: lazy().constructor == "Yes", strict=(False,)))
    assert run(("host", 0, 4), lib) == Data("Yes", (8,))
    assert run(("host", 0, 0), lib) == Data("No")
    assert run(("field", 0, ("host", 0, 5)), lib) == 10
    assert run((Op.EQ, ("host", 0, 1), con("Yes", 2)), lib) is True
    assert run(("host", 1, con("Pt", 1.5, 2.5)), lib) == 4.0
    assert seen == [Data("Pt", (1.5, 2.5))]
    assert run((Op.SHOW, ("host", 2, 2)), lib) == "(Node (Node Leaf 0 Leaf) 1 Leaf)"
    assert run(("host", 3, con("Yes", L(con("No")))), lib) == Data("Yes", ([Data("No")],))
    assert run((Op.SHOW, ("host", 4, 2)), lib) == "(Bag (list (Yes 0) (Yes 1)))"
    assert run((Op.SHOW, ("host", 5, 7)), lib) == '(Box (Yes (Pair 7 "s")))'
    assert run(("host", 6, con("Yes", 1)), lib) is True
    deep = run(("host", 2, 100_000), lib)                     # iterative both ways
    assert deep.constructor == "Node" and deep.fields[1] == 99_999
    assert run((Op.EQ, ("host", 2, 100_000), ("host", 2, 100_000)), lib) is True


@pytest.mark.parametrize("signature", [
    "(=> (Eq a) (-> a (Opt a)))", "Eq a => (-> a (Opt a))", "(Eq a, Show a) => (-> a (Opt a))",
])
def test_constrained_host_signatures_conform_their_result(signature):
    lib = StubLibrary(host("wrap", signature, lambda x: Data("Yes", (x,))))
    assert run(("host", 0, con("Pair", 1, "b")), lib) == Data("Yes", (Data("Pair", (1, "b")),))
    bad = StubLibrary(host("wrap", signature, lambda x: Data("Red")))
    with pytest.raises(EvaluationError, match="'Red'"):
        run(("host", 0, 1), bad)


@pytest.mark.parametrize("signature,result,needle", [
    ("(-> Int (List Int))", (1, 2), "returned a tuple; a (List Int) is a Python list"),
    ("(-> Int a)", (1, 2), "returned a tuple; a list is a Python list"),
    ("(-> Int (Bag Int))", Data("Bag", ((1, 2),)), "returned a tuple"),
    ("(-> Int (Opt Int))", (0, ()), "tuple"),
    ("(-> Int (Opt Int))", Data("Red"), "'Red'"),
    ("(-> Int (Opt Int))", Data("Yes"), "Yes with 0 fields; Yes has 1"),
    ("(-> Int (Opt Int))", Data("No", (1,)), "No with 1 field; No has 0"),
    ("(-> Int (Opt Int))", Data("Yes", ("x",)), "str"),
    ("(-> Int (Opt Int))", 3, "int"),
    ("(-> Int (Pair Int String))", Data("Pair", (1, 2)), "int"),
    ("(-> Int a)", Data("Nope"), "'Nope'"),
    ("(-> Int Unknown)", Data("Nope"), "does not declare"),
    ("(-> Int Box)", Data("Box", (Data("Yes", (Data("Pair", ("1", "s")),)),)), "str"),
])
def test_host_results_are_checked_against_their_declared_type(signature, result, needle):
    lib = StubLibrary(host("liar", signature, lambda n: result))
    with pytest.raises(EvaluationError) as info:
        run(("host", 0, 1), lib)
    assert "liar" in info.value.message and needle in info.value.message


def test_host_data_results_survive_collections():
    lib = StubLibrary(host("many", "(-> Int (List (Pair Int String)))",
                           lambda n: [Data("Pair", (i, str(i))) for i in range(n)]))
    # 40,000 pairs outgrow the first 4 MiB space: the collector runs during push_py
    value, stats = prog_of((Op.SHOW, ("host", 0, 40_000)), hosts=lib.hosts).run_with_stats(
        library=lib, max_heap=12 << 20)
    assert stats["gc_runs"] >= 1
    assert value == "(list " + " ".join(f'(Pair {i} "{i}")' for i in range(40_000)) + ")"


# ---- string built-ins against the reference -------------------------------------------

class _RefRun:
    def to_host(self, xs):
        out = []
        while xs is not reference.NIL:
            out.append(xs.head.value)
            xs = xs.tail.value
        return out


def ref(name, *args):
    """The reference interpreter's built-in, its result as a host value (or the error)."""
    try:
        got = getattr(reference, name)(_RefRun(), args, None)
    except EvaluationError as exc:
        return ("error", exc.message)
    if got is reference.NIL or isinstance(got, reference.Cons):
        return _RefRun().to_host(got)
    return got


def eng(e):
    try:
        return run(e)
    except EvaluationError as exc:
        return ("error", exc.message)


TEXT = st.text(alphabet="ab,-09 é\U0001F600\n", max_size=24)
DIGITS = st.text(alphabet="-0123456789a", max_size=22)
EDGE_INTS = ["9223372036854775807", "9223372036854775808", "-9223372036854775808",
             "-9223372036854775809", "-", "", "007", "-0", "+1", " 1", "1 ", "\u0661",
             "0" * 40 + "1", "--1", "1-", "٣", "12a"]


@settings(max_examples=150, deadline=None)
@given(TEXT, st.integers(-5, 30), st.integers(-5, 30))
def test_substring(s, start, end):
    assert eng((Op.SUBSTRING, s, start, end)) == ref("_substring", s, start, end)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab,", max_size=3), TEXT)
def test_split(sep, s):
    assert eng((Op.SPLIT, sep, s)) == ref("_split", sep, s)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ab", max_size=3), st.text(alphabet="ab", max_size=12))
def test_split_with_overlapping_separators(sep, s):
    assert eng((Op.SPLIT, sep, s)) == ref("_split", sep, s)


@settings(max_examples=100, deadline=None)
@given(TEXT, st.lists(TEXT, max_size=6), st.booleans())
def test_join(sep, xs, lazy):
    items = [("lazy", x) if lazy else x for x in xs]
    assert eng((Op.JOIN, sep, L(*items))) == ref("_join", sep, _ref_list(xs))


def _ref_list(xs):
    out = reference.NIL
    for x in reversed(xs):
        out = reference.Cons(reference.Thunk.done(x), reference.Thunk.done(out))
    return out


@settings(max_examples=100, deadline=None)
@given(TEXT)
def test_chars(s):
    assert eng((Op.CHARS, s)) == ref("_chars", s)


@settings(max_examples=200, deadline=None)
@given(st.one_of(DIGITS, st.sampled_from(EDGE_INTS), TEXT))
def test_int_p_and_parse_int(s):
    assert eng((Op.INTP, s)) == ref("_int_p", s)
    assert eng((Op.PARSEINT, s)) == ref("_parse_int", s)


@pytest.mark.parametrize("e,expected", [
    ((Op.SPLIT, "", "abc"), ("error", "split: the separator is empty")),
    ((Op.PARSEINT, 'x"y'), ("error", 'not an Int: "x\\"y"')),
    ((Op.PARSEINT, "-9223372036854775808"), -(1 << 63)),
    ((Op.INTP, "9223372036854775808"), False),
    ((Op.JOIN, ", ", L()), ""),
    ((Op.JOIN, "", L("a", "b")), "ab"),
    ((Op.CHARS, ""), []),
    ((Op.SPLIT, ",", ""), [""]),
    ((Op.SUBSTRING, "h\u00e9llo", 1, 3), "\u00e9l"),
    ((Op.SUBSTRING, "abc", 0, 99), "abc"),
])
def test_string_built_ins(e, expected):
    assert eng(e) == expected


def test_join_forces_its_list_and_fails_on_bottom():
    assert run((Op.JOIN, "-", L(("lazy", "a"), ("lazy", (Op.CONCAT, "b", "c"))))) == "a-bc"
    with pytest.raises(EvaluationError, match="bottom"):
        run((Op.JOIN, "-", L("a", BOTTOM)))
    with pytest.raises(EvaluationError, match="bottom"):
        run((Op.JOIN, "-", ("cons", "a", BOTTOM)))


def test_long_strings_split_join_and_chars_in_a_small_heap():
    s = "ab," * 100_000
    assert run((Op.LEN, (Op.JOIN, ";", (Op.SPLIT, ",", s)))) == len(s)
    assert run((Op.JOIN, "", (Op.CHARS, s))) == s
    value, stats = prog_of((Op.LEN, (Op.JOIN, ",", (Op.CHARS, s)))).run_with_stats(
        max_heap=64 << 20)
    assert value == 2 * len(s) - 1


# ---- format v2 and the verifier ------------------------------------------------------

def sample_program():
    return prog_of(L(con("Yes", 1), con("Pt", 1.0, 2.0), ("walk", ("build", 3)),
                     (Op.SHOW, con("Node", con("Leaf"), 2, con("Leaf")))))


def test_format_v2_round_trip():
    assert FORMAT_VERSION == 3      # version 3 added the column table
    prog = sample_program()
    back = Program.from_bytes(prog.to_bytes())
    assert back == prog and back.digest == prog.digest
    assert back.datatypes == prog.datatypes
    assert back.run() == prog.run() == [Data("Yes", (1,)), Data("Pt", (1.0, 2.0)), 3,
                                        "(Node Leaf 2 Leaf)"]
    text = back.disassemble()
    assert "MKCON        Yes/1" in text and "BR_NCON      0 S ->" in text
    assert "; data (Opt a) = 0:No | 1:(Yes a)" in text
    assert "(Pt (px Double) (py Double))" in text


def test_a_version_1_blob_is_refused():
    blob = sample_program().to_bytes()
    with pytest.raises(ExathunkError, match="version 1"):
        Program.from_bytes(blob[:4] + struct.pack("<H", 1) + blob[6:])


def _renamed(datatypes, old, new):
    out = []
    for d in datatypes:
        cons = tuple(Constructor(new if c.name == old else c.name, c.field_types, c.field_names)
                     for c in d.constructors)
        out.append(DataType(d.name, d.params, cons))
    return out


def test_digest_covers_datatypes():
    a = Asm()
    code = a.expr(con("Yes", 1), []) + [Op.RET]
    base = a.program(code)
    assert base.digest == Asm().program(list(code)).digest            # deterministic
    for other in (_renamed(DATATYPES, "Yes", "Some"),
                  DATATYPES + [DataType("Extra", (), (C("E"),))],
                  [DataType("Opt", ("b",), (C("No"), C("Yes", "b")))] + DATATYPES[1:]):
        b = Asm(datatypes=other)
        assert b.program(b.expr(con("Yes", 1), []) + [Op.RET]).digest != base.digest


def test_digest_is_the_same_in_another_process():
    prog = sample_program()
    code = ("import sys\n"
            "from exathunk.program import Program\n"
            "print(Program.from_bytes(bytes.fromhex(sys.argv[1])).digest)\n")
    out = subprocess.run([sys.executable, "-c", code, prog.to_bytes().hex()],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == prog.digest


def bad_code(code, datatypes=None):
    a = Asm(datatypes=datatypes)
    return a.program(code, frame=1)


@pytest.mark.parametrize("code,why", [
    ([Op.MKCON, 999, 0, Op.RET], "bad con operand"),
    ([Op.MKCON, -1, 0, Op.RET], "bad con operand"),
    ([Op.INT, 0, Op.MKCON, CON["No"], 1, Op.RET], "MKCON with 1 fields for a constructor of arity 0"),
    ([Op.MKCON, CON["Yes"], 0, Op.RET], "MKCON with 0 fields for a constructor of arity 1"),
    ([Op.MKCON, CON["Pair"], 2, Op.RET], "underflows"),
    ([Op.MKCON, CON["No"], 0, Op.FIELD, MAX_ARITY, Op.RET], "bad field operand"),
    ([Op.MKCON, CON["No"], 0, Op.FIELD, -1, Op.RET], "bad field operand"),
    ([Op.FIELD, 0, Op.RET], "underflows"),
    ([Op.MKCON, CON["No"], 0, Op.STORE, 0, Op.BR_NCON, 0, CON["No"], 5, Op.LOCAL, 0, Op.RET],
     "bad target"),
    ([Op.MKCON, CON["No"], 0, Op.STORE, 0, Op.BR_NCON, 0, 999, 12, Op.LOCAL, 0, Op.RET],
     "bad con operand"),
    ([Op.MKCON, CON["No"], 0, Op.STORE, 0, Op.BR_NCON, 5, CON["No"], 12, Op.LOCAL, 0, Op.RET],
     "bad slot"),
    ([Op.SUBSTRING, Op.RET], "underflows"),
])
def test_verifier_rejects_bad_data_code(code, why):
    with pytest.raises(ExathunkError, match=why):
        bad_code(code)


@pytest.mark.parametrize("datatypes,why", [
    ("not a list", "bad datatypes"),
    ([("Opt", (), ())], "bad data type record"),
    ([DataType("", (), (C("A"),))], "bad data type record"),
    ([DataType("Bad(", (), (C("A"),))], "bad data type record"),
    ([DataType("T", (), (C("A"),)), DataType("T", (), (C("B"),))], "declared twice"),
    ([DataType("T", (), (C("A"),)), DataType("U", (), (C("A"),))], "'A' declared twice"),
    ([DataType("T", ("a", "a"), (C("A"),))], "bad parameters"),
    ([DataType("T", ("a b",), (C("A"),))], "bad parameters"),
    ([DataType("T", (), (C("A", "(List a"),))], "bad field types"),
    ([DataType("T", (), (C("A", ""),))], "bad field types"),
    ([DataType("T", (), (C("A", 3),))], "bad field types"),
    ([DataType("T", (), (Constructor("A", ("Int",), ()),))], "bad fields"),
    ([DataType("T", (), (Constructor("A", ("Int",), ("x\n",)),))], "bad field types or names"),
    ([DataType("T", (), (Constructor("A\x00", (), ()),))], "bad constructor record"),
    ([DataType("T", (), (Constructor("A", ("Int",) * (MAX_ARITY + 1),
                                     ("",) * (MAX_ARITY + 1)),))], "bad fields"),
    ([DataType("T", (), ["not a constructor"])], "bad constructor record"),
])
def test_verifier_rejects_bad_datatypes(datatypes, why):
    fn = Function("%main", 0, 0, [Op.INT, 0, Op.RET], [1, 1, 1])
    with pytest.raises(ExathunkError, match=why):
        Program(FORMAT_VERSION, [fn], [1], [], [], [], 0, "Int", [], datatypes)


def test_generated_names_are_accepted():
    dt = DataType("@Size", ("a",), (Constructor("@Size dict", ("(-> a Int)",), ("size",)),))
    fn = Function("%main", 0, 0, [Op.INT, 0, Op.RET], [1, 1, 1])
    prog = Program(FORMAT_VERSION, [fn], [1], [], [], [], 0, "Int", [], [dt])
    assert Program.from_bytes(prog.to_bytes()).datatypes == [dt]


FUZZ_SOURCES = [
    L(con("Yes", 1), con("Pt", 1.0, 2.0), ("walk", ("build", 30))),
    (Op.SHOW, con("Node", con("Leaf"), 2, con("Bag", L("a", "b")))),
    (Op.LT, ("build", 20), ("build", 21)),
    (Op.EQ, ("left", 4), ("left", 4)),
    (Op.JOIN, ",", (Op.SPLIT, "b", "abcabc")),
    L((Op.SUBSTRING, "hello", 1, 3), (Op.PARSEINT, "42"), (Op.INTP, "x")),
]


def test_fuzzed_v2_bytes_give_an_error_or_a_program_that_runs():
    rng = random.Random(808)
    blobs = [prog_of(e).to_bytes() for e in FUZZ_SOURCES]
    # where the datatypes section lies in each blob, to aim some mutations at it
    outcomes = {"error": 0, "ran": 0}
    for i in range(800):
        blob = bytearray(rng.choice(blobs))
        kind = rng.randrange(5)
        if kind == 0:
            blob = blob[:rng.randrange(len(blob))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 4)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
        elif kind == 2:
            p = rng.randrange(len(blob) - 4)
            struct.pack_into("<i", blob, p, rng.choice([-1, 0, 1, 2, 7, 255, 65536, 2**31 - 1]))
        elif kind == 3:
            p = rng.randrange(len(blob))
            blob[p] ^= 1 << rng.randrange(8)
        else:
            # a code word: an opcode or operand swapped for a data opcode or a small int
            p = rng.randrange(len(blob) // 2, len(blob) - 4) & ~3
            struct.pack_into("<i", blob, p, rng.choice(
                [int(Op.MKCON), int(Op.FIELD), int(Op.BR_NCON), int(Op.JOIN), int(Op.SPLIT),
                 int(Op.CHARS), int(Op.SUBSTRING), int(Op.LT), 0, 1, 3]))
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
    assert sum(outcomes.values()) == 800
