"""Fusion and specialisation: the checked module's list pipelines rewritten into loops.

This stage runs first in ``compiler.compile_module`` (the reference interpreter never
sees it, so the differential tests compare a fused program with the unfused meaning).
It rewrites, in the elaborated module, two shapes of the prelude's own functions (a
name a user defines, or binds locally, is never touched):

- a *chain* ``consumer(transformer* (producer))``, where the consumer is a strict fold
  (``sum``/``product`` at Int or Double, ``length``, ``foldl``, ``foldl-strict``), the
  transformers are ``map``, ``filter`` and ``take``, and the producer is ``range``,
  ``iterate``, ``zip-with`` or any other list expression (then the loop walks it).  The
  chain becomes a call of a generated recursive define whose parameters are the loop
  state (accumulator, counters, the producer's position) and the free locals of the
  functions it inlines; no intermediate list is built.  Each step forces exactly what
  the prelude's definitions force, in the same order: an element is an expression that
  only the consumer forces (``length`` never calls a mapped function), ``take`` tests
  its count before it asks for the next element (so ``take n`` never forces the
  producer's ``n+1``-th element), ``filter`` shares its element between the test and
  the result.  A chain with no transformer over a plain list is left alone (the
  prelude's fold already is a loop).
- ``map``, ``filter`` and ``zip-with`` applied to a literal lambda but not consumed by
  a fold (the list may be named and shared, as a self-referential one must be) become
  calls of a generated copy of the prelude's definition with the lambda inlined: the
  same lazy list, without an unknown application per element.

A known lambda is inlined by substituting its parameters (a variable or literal
argument directly, any other argument through a lazy ``let``), so laziness and sharing
are those of the call it replaces; any other function is bound once and applied.  The
intermediate lists of a chain are never named, so each is consumed once by
construction.  Generated names hold ``@`` (which no user name can), parameters of the
generated defines ``@fu.``; a module in which no candidate name is applied comes back
unchanged after one cheap scan.
"""

from __future__ import annotations

import copy

from . import ast
from .types import BOOL, INT, TCon, TFun, TList, prune

__all__ = ["fuse", "fuse_module"]

_Var, _App, _Lit, _The, _Lambda = ast.Var, ast.App, ast.Lit, ast.The, ast.Lambda

# name -> number of arguments (the list last)
_CONSUMERS = {"sum": 1, "product": 1, "length": 1, "foldl": 3, "foldl-strict": 3}
_TRANSFORMERS = {"map": 2, "filter": 2, "take": 2}
_PRODUCERS = {"range": 2, "iterate": 2, "zip-with": 3}
_SPECIALISED = {"map": 2, "filter": 2, "zip-with": 3}
_HEADS = frozenset(_CONSUMERS) | frozenset(_SPECIALISED)
# the built-ins generated code names: a module defining one of them is left alone
_EMITTED = frozenset(("+", "-", "*", "<=", ">=", "null?", "head", "tail", "seq", "cons",
                      "nil"))
_INT_CMP = TFun(INT, TFun(INT, BOOL))


def _strip(e):
    while e.__class__ is _The:
        e = e.expr
    return e


def _flatten(e):
    """(function, [arguments]) of a curried application."""
    args = list(e.args)
    fn = _strip(e.fn)
    while fn.__class__ is _App:
        args = list(fn.args) + args
        fn = _strip(fn.fn)
    return fn, args


def _pattern_vars(p, out: set) -> set:
    stack = [p]
    while stack:
        p = stack.pop()
        if p.__class__ is ast.PVar:
            out.add(p.name)
        elif p.__class__ is ast.PCon:
            stack.extend(p.args)
    return out


def _mentions_head(e) -> bool:
    """Whether some application's function is a name a rewrite could start from."""
    stack = [e]
    for _ in range(100_000_000):
        if not stack:
            return False
        e = stack.pop()
        cls = e.__class__
        if cls is _App:
            fn = e.fn
            if fn.__class__ is _Var and fn.name in _HEADS:
                return True
            stack.append(fn)
            stack.extend(e.args)
        elif cls is ast.If:
            stack.extend((e.cond, e.then, e.orelse))
        elif cls is ast.Let:
            stack.extend(b.expr for b in e.bindings)
            stack.append(e.body)
        elif cls is _Lambda:
            stack.append(e.body)
        elif cls is _The:
            stack.append(e.expr)
        elif cls is ast.ListLit:
            stack.extend(e.items)
        elif cls is ast.Case:
            stack.append(e.scrutinee)
            stack.extend(a.body for a in e.alts)
    return True


def _free_locals(e, bound: frozenset, out: set) -> None:
    """Names free in e that are locals of the enclosing scope ``bound``."""
    stack = [(e, frozenset())]
    while stack:
        e, inner = stack.pop()
        cls = e.__class__
        if cls is _Var:
            if e.name in bound and e.name not in inner:
                out.add(e.name)
        elif cls is _App:
            stack.append((e.fn, inner))
            stack.extend((a, inner) for a in e.args)
        elif cls is ast.If:
            stack.extend(((e.cond, inner), (e.then, inner), (e.orelse, inner)))
        elif cls is ast.Let:
            names = inner | {b.name for b in e.bindings}
            stack.extend((b.expr, names) for b in e.bindings)
            stack.append((e.body, names))
        elif cls is _Lambda:
            stack.append((e.body, inner | set(e.params)))
        elif cls is _The:
            stack.append((e.expr, inner))
        elif cls is ast.ListLit:
            stack.extend((i, inner) for i in e.items)
        elif cls is ast.Case:
            stack.append((e.scrutinee, inner))
            for a in e.alts:
                stack.append((a.body, inner | _pattern_vars(a.pattern, set())))


def _subst(e, m: dict):
    """e with the free occurrences of m's names replaced by m's atoms (fresh names
    only, so nothing can be captured)."""
    cls = e.__class__
    if cls is _Var:
        r = m.get(e.name)
        return e if r is None else r
    if cls is _Lit:
        return e
    if cls is _App:
        return _App(_subst(e.fn, m), tuple(_subst(a, m) for a in e.args), e.line, e.column)
    if cls is ast.If:
        return ast.If(_subst(e.cond, m), _subst(e.then, m), _subst(e.orelse, m),
                      e.line, e.column)
    if cls is ast.Let:
        inner = _without(m, {b.name for b in e.bindings})
        if not inner:
            return e
        return ast.Let(tuple(ast.Binding(b.name, _subst(b.expr, inner), b.line, b.column)
                             for b in e.bindings), _subst(e.body, inner), e.line, e.column)
    if cls is _Lambda:
        inner = _without(m, set(e.params))
        return e if not inner else _Lambda(e.params, _subst(e.body, inner), e.line, e.column)
    if cls is _The:
        return _The(e.type, _subst(e.expr, m), e.line, e.column)
    if cls is ast.ListLit:
        return ast.ListLit(tuple(_subst(i, m) for i in e.items), e.line, e.column)
    if cls is ast.Case:
        alts = []
        for a in e.alts:
            inner = _without(m, _pattern_vars(a.pattern, set()))
            alts.append(a if not inner else
                        ast.Alt(a.pattern, _subst(a.body, inner), a.line, a.column))
        return ast.Case(_subst(e.scrutinee, m), tuple(alts), e.line, e.column, e.form)
    return e


def _without(m: dict, names: set) -> dict:
    if not names & m.keys():
        return m
    return {k: v for k, v in m.items() if k not in names}


def _atom(e) -> bool:
    e = _strip(e)
    return e.__class__ is _Var or e.__class__ is _Lit


def _elem_type(var) -> str | None:
    """'Int' or 'Double': the element type of sum/product at this use (else None)."""
    t = getattr(var, "inst_type", None)
    if t is None:
        return None
    t = prune(t)
    if t.__class__ is not TFun:
        return None
    a = prune(t.arg)
    if a.__class__ is not TList:
        return None
    elem = prune(a.elem)
    if elem.__class__ is TCon and elem.name in ("Int", "Double"):
        return elem.name
    return None


class _Bail(Exception):
    """The chain cannot be rewritten safely: leave it as written."""


class _Loop:
    """The pieces of one generated define while it is built."""

    def __init__(self, fuser, name, bound, node):
        self.fuser = fuser
        self.name = name
        self.bound = bound             # the locals at the rewritten expression
        self.node = node
        self.params: list = []         # loop-state parameters, in order
        self.inits: dict = {}          # parameter -> its first value (at the call site)
        self.free: set = set()         # locals of the call site the body uses
        self.pre: list = []            # call-site bindings of non-atomic functions

    def v(self, name):
        return _Var(name, self.node.line, self.node.column)

    def app(self, fn, *args):
        f = self.v(fn)
        if fn in ("<=", ">="):
            object.__setattr__(f, "inst_type", _INT_CMP)
        return _App(f, tuple(args), self.node.line, self.node.column)

    def lit(self, value):
        return _Lit(value, "Double" if isinstance(value, float) else "Int",
                    self.node.line, self.node.column)

    def let(self, name, rhs, body):
        n = self.node
        return ast.Let((ast.Binding(name, rhs, n.line, n.column),), body, n.line, n.column)

    def fresh(self, base):
        return self.fuser.fresh(base)

    def param(self, base, init):
        p = self.fresh(base)
        self.params.append(p)
        self.inits[p] = init
        return p

    def func(self, fexpr, nargs):
        """A function argument: ('lam', Lambda) to inline or ('var', Var) to apply."""
        f = _strip(fexpr)
        if f.__class__ is _Lambda and len(f.params) == nargs:
            _free_locals(f, self.bound, self.free)
            return ("lam", f)
        if f.__class__ is _Var:
            if f.name in self.bound:
                self.free.add(f.name)
            return ("var", f)
        name = self.fresh("f")
        self.pre.append((name, fexpr))
        self.free.add(name)
        return ("var", self.v(name))

    def apply(self, fn, args):
        kind, f = fn
        if kind == "var":
            return _App(f, tuple(args), self.node.line, self.node.column)
        m, lets = {}, []
        for p, a in zip(f.params, args):
            a = _strip(a)
            if _atom(a):
                m[p] = a
            else:
                q = self.fresh("x")
                m[p] = self.v(q)
                lets.append(ast.Binding(q, a, self.node.line, self.node.column))
        body = _subst(f.body, m)
        if lets:
            body = ast.Let(tuple(lets), body, self.node.line, self.node.column)
        return body

    def call(self, upd, order):
        return _App(self.v(self.name), tuple(upd.get(p, self.v(p)) for p in order),
                    self.node.line, self.node.column)

    def finish(self, body, all_params, guards=(), acc=None):
        """Add the define; the call that replaces the rewritten expression.  ``guards``:
        the take counts the loop may assume positive, tested here first (outermost
        take first) with the accumulator's first value ``acc`` as the result when not."""
        bad = self.free & _EMITTED
        if bad:
            raise _Bail()
        n = self.node
        self.fuser.defines.append(ast.Define(self.name, tuple(all_params), body,
                                             n.line, n.column))
        inits = dict(self.inits)
        lets = []
        if guards:
            for p in [acc] + list(guards):
                if not _atom(inits[p]):
                    q = self.fresh("i")
                    lets.append((q, inits[p]))
                    inits[p] = self.v(q)
        args = tuple(inits[p] if p in inits else self.v(p) for p in all_params)
        out = _App(self.v(self.name), args, n.line, n.column)
        for p in reversed(guards):
            out = ast.If(self.app("<=", inits[p], self.lit(0)), inits[acc], out,
                         n.line, n.column)
        for name, rhs in reversed(self.pre + lets):
            out = self.let(name, rhs, out)
        return out


class _Fuser:
    def __init__(self, user_names, library):
        self.user = user_names
        self.library = library
        self.defines: list = []
        self.count = 0

    def fresh(self, base):
        self.count += 1
        return f"@fu.{base}{self.count}"

    def prelude(self, fn, bound, table) -> bool:
        """Whether fn is a name of ``table`` that means the prelude's own function."""
        if fn.__class__ is not _Var or fn.name not in table or fn.name in bound \
                or fn.name in self.user:
            return False
        spec = self.library.lookup(fn.name) if self.library is not None else None
        return spec is not None and spec.kind == "prelude"

    # -- the walk

    def rw(self, e, bound):
        cls = e.__class__
        if cls is _Var or cls is _Lit:
            return e
        if cls is _App:
            fn, args = _flatten(e)
            if fn.__class__ is _Var and fn.name in _HEADS:
                if self.prelude(fn, bound, _CONSUMERS) and len(args) == _CONSUMERS[fn.name]:
                    out = self.chain(fn, args, bound, e)
                    if out is not None:
                        return out
                if self.prelude(fn, bound, _SPECIALISED) and \
                        len(args) == _SPECIALISED[fn.name]:
                    out = self.specialise(fn, args, bound, e)
                    if out is not None:
                        return out
            return _App(self.rw(e.fn, bound), tuple(self.rw(a, bound) for a in e.args),
                        e.line, e.column)
        if cls is ast.If:
            return ast.If(self.rw(e.cond, bound), self.rw(e.then, bound),
                          self.rw(e.orelse, bound), e.line, e.column)
        if cls is ast.Let:
            inner = bound | {b.name for b in e.bindings}
            return ast.Let(tuple(ast.Binding(b.name, self.rw(b.expr, inner), b.line, b.column)
                                 for b in e.bindings), self.rw(e.body, inner),
                           e.line, e.column)
        if cls is _Lambda:
            return _Lambda(e.params, self.rw(e.body, bound | set(e.params)), e.line, e.column)
        if cls is _The:
            return _The(e.type, self.rw(e.expr, bound), e.line, e.column)
        if cls is ast.ListLit:
            return ast.ListLit(tuple(self.rw(i, bound) for i in e.items), e.line, e.column)
        if cls is ast.Case:
            alts = tuple(ast.Alt(a.pattern,
                                 self.rw(a.body, bound | _pattern_vars(a.pattern, set())),
                                 a.line, a.column) for a in e.alts)
            return ast.Case(self.rw(e.scrutinee, bound), alts, e.line, e.column, e.form)
        return e

    # -- consumer(transformer*(producer))

    def chain(self, cvar, cargs, bound, node):
        cname = cvar.name
        elem = None
        if cname in ("sum", "product"):
            elem = _elem_type(cvar)
            if elem is None:
                return None
        stages = []
        x = _strip(cargs[-1])
        while x.__class__ is _App:
            fn, args = _flatten(x)
            if not (self.prelude(fn, bound, _TRANSFORMERS) and len(args) == 2):
                break
            stages.append((fn.name, args[0]))
            x = _strip(args[1])
        producer = None
        if x.__class__ is _App:
            fn, args = _flatten(x)
            if self.prelude(fn, bound, _PRODUCERS) and len(args) == _PRODUCERS[fn.name]:
                producer = (fn.name, args)
        if producer is None:
            if not stages:
                return None
            producer = ("list", [x])
        saved = (self.count, len(self.defines))
        try:
            return self.build(cname, elem, cargs, stages, producer, bound, node)
        except _Bail:
            self.count, n = saved
            del self.defines[n:]
            return None

    def build(self, cname, elem, cargs, stages, producer, bound, node):
        rw = self.rw
        loop = _Loop(self, f"%fuse@{self.count + 1}", bound, node)
        self.count += 1
        # the consumer's accumulator
        if cname == "length":
            acc = loop.param("n", loop.lit(0))
        elif cname in ("sum", "product"):
            zero = 0 if cname == "sum" else 1
            acc = loop.param("acc", loop.lit(float(zero) if elem == "Double" else zero))
        else:
            acc = loop.param("acc", rw(cargs[1], bound))
            step_fn = loop.func(rw(cargs[0], bound), 2)
        stage_info = []
        for name, arg in stages:
            if name == "take":
                stage_info.append(("take", loop.param("n", rw(arg, bound))))
            else:
                stage_info.append((name, loop.func(rw(arg, bound), 1)))
        pname, pargs = producer
        if pname == "range":
            i = loop.param("i", rw(pargs[0], bound))
            b = loop.param("b", rw(pargs[1], bound))
        elif pname == "iterate":
            gen_fn = loop.func(rw(pargs[0], bound), 1)
            xparam = loop.param("x", rw(pargs[1], bound))
        elif pname == "zip-with":
            gen_fn = loop.func(rw(pargs[0], bound), 2)
            xs = loop.param("xs", rw(pargs[1], bound))
            ys = loop.param("ys", rw(pargs[2], bound))
        else:
            xs = loop.param("xs", rw(pargs[0], bound))
        # parameters: the state, then the free locals (sorted: a stable order)
        order = list(loop.params) + sorted(loop.free)

        takes = [info for name, info in stage_info if name == "take"]

        def call(upd):
            # a take whose count this step lowered ends the stream when it reaches 0:
            # tested before the next step, so the loop may assume every count positive
            # (and the compiler may evaluate the producer's next state eagerly)
            lowered = [n for n in takes if n in upd]
            if not lowered:
                return loop.call(upd, order)
            upd = dict(upd)
            binds = []
            for n in lowered:
                q = loop.fresh("n")
                binds.append(ast.Binding(q, app("-", v(n), loop.lit(1)), node.line,
                                         node.column))
                upd[n] = v(q)
            out = loop.call(upd, order)
            result = upd.get(acc, v(acc))
            for b in reversed(binds):
                out = ast.If(app("<=", v(b.name), loop.lit(0)), result, out,
                             node.line, node.column)
            return ast.Let(tuple(binds), out, node.line, node.column)

        def done():
            return loop.v(acc)

        v, app = loop.v, loop.app

        def step(e, upd):
            if cname == "foldl":
                return call({**upd, acc: loop.apply(step_fn, [v(acc), e])})
            if cname == "length":
                nxt = app("+", v(acc), loop.lit(1))
            elif cname == "sum":
                nxt = app("+", v(acc), e)
            elif cname == "product":
                nxt = app("*", v(acc), e)
            else:
                nxt = loop.apply(step_fn, [v(acc), e])
            a2 = loop.fresh("a")
            return loop.let(a2, nxt, app("seq", v(a2), call({**upd, acc: v(a2)})))

        def produce(k):
            if pname == "range":
                return ast.If(app(">=", v(i), v(b)), done(),
                              k(v(i), {i: app("+", v(i), loop.lit(1))}),
                              node.line, node.column)
            if pname == "iterate":
                return k(v(xparam), {xparam: loop.apply(gen_fn, [v(xparam)])})
            if pname == "zip-with":
                e = loop.apply(gen_fn, [app("head", v(xs)), app("head", v(ys))])
                return ast.If(app("null?", v(xs)), done(),
                              ast.If(app("null?", v(ys)), done(),
                                     k(e, {xs: app("tail", v(xs)), ys: app("tail", v(ys))}),
                                     node.line, node.column), node.line, node.column)
            return ast.If(app("null?", v(xs)), done(),
                          k(app("head", v(xs)), {xs: app("tail", v(xs))}),
                          node.line, node.column)

        def stage(j, k):
            if j == len(stage_info):
                return produce(k)
            name, info = stage_info[j]
            if name == "map":
                return stage(j + 1, lambda e, upd: k(loop.apply(info, [e]), upd))
            if name == "filter":
                def kf(e, upd):
                    if _atom(e):
                        return ast.If(loop.apply(info, [e]), k(e, upd), call(upd),
                                      node.line, node.column)
                    y = loop.fresh("y")
                    return loop.let(y, e, ast.If(loop.apply(info, [v(y)]), k(v(y), upd),
                                                 call(upd), node.line, node.column))
                return stage(j + 1, kf)
            n = info                  # take: its count is tested by call and finish
            return stage(j + 1, lambda e, upd: k(e, {**upd, n: None}))

        body = stage(0, step)
        return loop.finish(body, order, takes, acc)

    # -- map / filter / zip-with of a literal lambda, not fused

    def specialise(self, fvar, args, bound, node):
        name = fvar.name
        nargs = 2 if name == "zip-with" else 1
        f = _strip(args[0])
        if f.__class__ is not _Lambda or len(f.params) != nargs:
            return None
        saved = (self.count, len(self.defines))
        try:
            loop = _Loop(self, f"%{name}@{self.count + 1}", bound, node)
            self.count += 1
            fn = loop.func(self.rw(f, bound), nargs)
            lists = [loop.param("xs", self.rw(a, bound)) for a in args[1:]]
            order = list(loop.params) + sorted(loop.free)
            v, app, ln, col = loop.v, loop.app, node.line, node.column

            def rec():
                return loop.call({p: app("tail", v(p)) for p in lists}, order)

            nil = v("nil")
            if name == "map":
                xs = lists[0]
                body = ast.If(app("null?", v(xs)), nil,
                              app("cons", loop.apply(fn, [app("head", v(xs))]), rec()),
                              ln, col)
            elif name == "filter":
                xs = lists[0]
                y = loop.fresh("y")
                body = ast.If(app("null?", v(xs)), nil,
                              loop.let(y, app("head", v(xs)),
                                       ast.If(loop.apply(fn, [v(y)]),
                                              app("cons", v(y), rec()), rec(), ln, col)),
                              ln, col)
            else:
                xs, ys = lists
                e = loop.apply(fn, [app("head", v(xs)), app("head", v(ys))])
                body = ast.If(app("null?", v(xs)), nil,
                              ast.If(app("null?", v(ys)), nil, app("cons", e, rec()),
                                     ln, col), ln, col)
            return loop.finish(body, order)
        except _Bail:
            self.count, n = saved
            del self.defines[n:]
            return None


def fuse_module(module: ast.Module, library) -> ast.Module:
    """The module with its fusable chains and specialisable calls rewritten (itself
    when there are none)."""
    if not (_mentions_head(module.body) or any(_mentions_head(d.body)
                                                for d in module.defines)):
        return module
    user = {d.name for d in module.defines}
    if user & _EMITTED:
        return module
    fuser = _Fuser(user, library)
    defines = []
    for d in module.defines:
        params = d.params or ()
        defines.append(ast.Define(d.name, d.params, fuser.rw(d.body, frozenset(params)),
                                  d.line, d.column))
    body = fuser.rw(module.body, frozenset())
    if not fuser.defines:
        return module
    return ast.Module(tuple(defines) + tuple(fuser.defines), body, module.line,
                      module.column, module.datas, module.classes, module.instances)


def fuse(checked, library):
    """The CheckedModule with its module fused (the same object when nothing is)."""
    module = fuse_module(checked.module, library)
    if module is checked.module:
        return checked
    out = copy.copy(checked)
    out.module = module
    return out
