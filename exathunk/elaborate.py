"""Elaboration: the checked module rewritten so that no class is left in it.

The typechecker resolved every user-class constraint to evidence; this stage makes the
dictionaries explicit, as GHC's desugarer does:

- a class ``C`` becomes a data type ``@C`` with one constructor holding a dictionary
  for each user superclass and each method, plus a selector per method (``m@C``) and
  per superclass (``@C>S``), all plain defines over ``case``;
- an instance becomes a dictionary define ``@C T`` (a function of the dictionaries its
  context needs) and its methods become defines ``m@C T`` that take those dictionaries
  first; a class's default method becomes ``m@C default``, taking the instance's own
  dictionary; a node's instance methods are its host functions, named the same way;
- a binding whose type has user-class constraints takes one dictionary parameter per
  constraint (``@d1`` ...), and each use of it, or of a method, is applied to the
  dictionaries its evidence names.  A method used at a known instance calls the
  instance's method directly: no dictionary at run time.
- every record field becomes an accessor define.

Generated names hold ``@`` or a space, so they never collide with a user's.  A module
that uses none of this comes back unchanged.  What leaves here is read by the compiler
and by the reference interpreter alike.
"""

from __future__ import annotations

from . import ast
from .types import CLASS_BITS, TVar, GENERIC, DataInfo, ClassInfo

__all__ = ["elaborate", "case_warnings", "dict_type"]

_Var, _App, _Lit = ast.Var, ast.App, ast.Lit


def _var(name, node, con=None):
    v = ast.Var(name, node.line, node.column)
    if con is not None:
        object.__setattr__(v, "con", con)
    return v


def _app(fn, args, node):
    if not args:
        return fn
    return ast.App(fn, tuple(args), node.line, node.column)


_dict_types: dict = {}


def dict_type(cinfo: ClassInfo, env) -> DataInfo:
    """The dictionary data type of class ``cinfo``: one constructor whose fields are the
    user superclasses' dictionaries, then the methods (cached per ClassInfo)."""
    cached = _dict_types.get(id(cinfo))
    if cached is not None and cached[0] is cinfo:
        return cached[1]
    info = DataInfo("@" + cinfo.name, (), "dict")
    supers = [s for s in cinfo.supers if s not in CLASS_BITS]
    fields = supers + list(cinfo.method_order)
    info.add_constructor("@" + cinfo.name, tuple(TVar(GENERIC) for _ in fields),
                         tuple("@" + f for f in fields))
    info.derives = 0
    if len(_dict_types) > 4096:
        _dict_types.clear()
    _dict_types[id(cinfo)] = (cinfo, info)
    return info


def _selector(name, con, index, node, form="case"):
    """(define (name @x) (case @x ((Con _ .. @f .. _) @f)))"""
    pats = tuple(ast.PVar("@f", node.line, node.column) if i == index
                 else ast.PWild(node.line, node.column) for i in range(con.arity))
    pcon = ast.PCon(con.name, pats, node.line, node.column)
    object.__setattr__(pcon, "con", con)
    body = ast.Case(_var("@x", node), (ast.Alt(pcon, _var("@f", node), node.line,
                                                node.column),),
                    node.line, node.column, form)
    return ast.Define(name, ("@x",), body, node.line, node.column)


def _accessor(field, info, node):
    """A record field's accessor: the field of whichever constructor has it."""
    alts = []
    for con in info.constructors:
        if con.field_names and field in con.field_names:
            k = con.field_names.index(field)
            pats = tuple(ast.PVar("@f", node.line, node.column) if i == k
                         else ast.PWild(node.line, node.column) for i in range(con.arity))
            pcon = ast.PCon(con.name, pats, node.line, node.column)
            object.__setattr__(pcon, "con", con)
            alts.append(ast.Alt(pcon, _var("@f", node), node.line, node.column))
    body = ast.Case(_var("@x", node), tuple(alts), node.line, node.column, f"field {field}")
    return ast.Define(field, ("@x",), body, node.line, node.column)


class _Elaborator:
    def __init__(self, checker):
        self.checker = checker
        self.world = checker.world
        self.env = checker.world.env
        self.uses = checker.evidence_of
        self.binding_of = {id(b.node): b for b in checker.bindings}

    # -- evidence to expressions

    def dict_expr(self, ev, node):
        kind = ev[0]
        if kind == "param":
            return _var(ev[1], node)
        if kind == "super":
            return _app(_var(f"@{ev[1]}>{ev[2]}", node), [self.dict_expr(ev[3], node)], node)
        inst = ev[1]
        return _app(_var(f"@{inst.class_name} {inst.head}", node),
                    [self.dict_expr(s, node) for s in ev[2]], node)

    def method_expr(self, node, cinfo, evs):
        m = node.name
        first, rest = evs[0], [self.dict_expr(e, node) for e in evs[1:]]
        if first[0] == "inst":
            inst = first[1]
            if m in inst.methods:
                target = _var(f"{m}@{cinfo.name} {inst.head}", node)
                if inst.origin == "library":
                    return _app(target, rest, node)
                subs = [self.dict_expr(s, node) for s in first[2]]
                return _app(target, subs + rest, node)
            return _app(_var(f"{m}@{cinfo.name} default", node),
                        [self.dict_expr(first, node)] + rest, node)
        return _app(_var(f"{m}@{cinfo.name}", node), [self.dict_expr(first, node)] + rest,
                    node)

    # -- the rewrite

    def rw(self, e):
        cls = e.__class__
        if cls is _Var:
            ent = self.uses.get(id(e))
            if ent is None:
                return e
            _node, target, evs = ent
            if target.__class__ is ClassInfo:
                return self.method_expr(e, target, evs)
            return _app(e, [self.dict_expr(ev, e) for ev in evs], e)
        if cls is _Lit:
            return e
        if cls is _App:
            fn = self.rw(e.fn)
            args = tuple(self.rw(a) for a in e.args)
            if fn is e.fn and all(x is y for x, y in zip(args, e.args)):
                return e
            return ast.App(fn, args, e.line, e.column)
        if cls is ast.If:
            c, t, f = self.rw(e.cond), self.rw(e.then), self.rw(e.orelse)
            if c is e.cond and t is e.then and f is e.orelse:
                return e
            return ast.If(c, t, f, e.line, e.column)
        if cls is ast.Let:
            changed = False
            bindings = []
            for b in e.bindings:
                rhs = self.rw(b.expr)
                binding = self.binding_of.get(id(b))
                if binding is not None:
                    rhs = _with_dicts(rhs, binding.dict_names, b)
                if rhs is not b.expr:
                    changed = True
                    b = ast.Binding(b.name, rhs, b.line, b.column)
                bindings.append(b)
            body = self.rw(e.body)
            if not changed and body is e.body:
                return e
            return ast.Let(tuple(bindings), body, e.line, e.column)
        if cls is ast.Lambda:
            body = self.rw(e.body)
            return e if body is e.body else ast.Lambda(e.params, body, e.line, e.column)
        if cls is ast.The:
            inner = self.rw(e.expr)
            ent = self.uses.get(id(e))
            if ent is not None:
                _node, binding, evs = ent
                fn = ast.Lambda(binding.dict_names, inner, e.line, e.column)
                return _app(fn, [self.dict_expr(ev, e) for ev in evs], e)
            return e if inner is e.expr else ast.The(e.type, inner, e.line, e.column)
        if cls is ast.ListLit:
            items = tuple(self.rw(i) for i in e.items)
            if all(x is y for x, y in zip(items, e.items)):
                return e
            return ast.ListLit(items, e.line, e.column)
        if cls is ast.Case:
            scrut = self.rw(e.scrutinee)
            alts = []
            changed = scrut is not e.scrutinee
            for alt in e.alts:
                body = self.rw(alt.body)
                if body is not alt.body:
                    changed = True
                    alt = ast.Alt(alt.pattern, body, alt.line, alt.column)
                alts.append(alt)
            if not changed:
                return e
            return ast.Case(scrut, tuple(alts), e.line, e.column, e.form)
        return e

    def define(self, d, name=None, dict_names=None):
        body = self.rw(d.body)
        if dict_names is None:
            b = self.binding_of.get(id(d))
            dict_names = b.dict_names if b is not None else ()
        if not dict_names and name is None:
            return d if body is d.body else ast.Define(d.name, d.params, body, d.line, d.column)
        params = tuple(dict_names) + tuple(d.params or ())
        return ast.Define(name or d.name, params, body, d.line, d.column)

    # -- classes and instances

    def class_defines(self, cinfo) -> list:
        dtype = dict_type(cinfo, self.env)
        con = dtype.constructors[0]
        node = cinfo.decl or ast.Lit(0, "Int")
        out = []
        supers = [s for s in cinfo.supers if s not in CLASS_BITS]
        for k, s in enumerate(supers):
            out.append(_selector(f"@{cinfo.name}>{s}", con, k, node))
        for k, m in enumerate(cinfo.method_order):
            out.append(_selector(f"{m}@{cinfo.name}", con, len(supers) + k, node))
        return out

    def instance_define(self, inst) -> ast.Define:
        """(define (@C T @c0 ...) (@C super-dicts... methods...))"""
        from .declarations import instance_type
        from .typecheck import Binding
        cinfo = self.world.classes[inst.class_name]
        dtype = dict_type(cinfo, self.env)
        con = dtype.constructors[0]
        node = inst.decl if inst.decl is not None else (cinfo.decl or ast.Lit(0, "Int"))
        name = f"@{cinfo.name} {inst.head}"
        t, pvars = instance_type(inst, self.world, rigid=True)
        given = Binding(name, node)
        ctx = []
        for cname, idx in inst.context:
            if cname not in CLASS_BITS:
                dn = f"@c{len(ctx)}"
                given.givens += ((pvars[idx], cname, dn),)
                ctx.append(dn)
        ctx_vars = [_var(dn, node) for dn in ctx]
        self_expr = _app(_var(name, node), ctx_vars, node)
        fields = []
        for s in cinfo.supers:
            if s in CLASS_BITS:
                continue
            ev = self.checker.evidence(s, t, (given,), node)
            fields.append(self.dict_expr(ev, node))
        for m in cinfo.method_order:
            if m in inst.methods:
                target = _var(f"{m}@{cinfo.name} {inst.head}", node)
                fields.append(target if inst.origin == "library"
                              else _app(target, ctx_vars, node))
            else:
                fields.append(_app(_var(f"{m}@{cinfo.name} default", node), [self_expr],
                                   node))
        body = _app(_var(con.name, node, con), fields, node)
        return ast.Define(name, tuple(ctx) or None, body, node.line, node.column)

    def run(self, module):
        checker = self.checker
        world = self.world
        defines = [self.define(d) for d in module.defines]
        body = self.rw(module.body)
        extra = []
        user_datas = [world.data[d.name] for d in module.datas]
        for info in user_datas:
            seen = []
            for con in info.constructors:
                for f in con.field_names or ():
                    if f not in seen:
                        seen.append(f)
                        extra.append(_accessor(f, info, module.datas[user_datas.index(info)]))
        for f in sorted(checker.fields_used):
            info = world.fields[f][0]
            if info.origin != "user":
                extra.append(_accessor(f, info, module))
        if checker.uses or checker.declared or module.classes or module.instances:
            for cinfo in world.classes.values():
                extra.extend(self.class_defines(cinfo))
            for inst in world.instances.values():
                if inst.origin == "user" or inst in checker.instances_used:
                    extra.append(self.instance_define(inst))
            for b, inst, cinfo, df in checker.declared:
                if inst is not None:
                    name = f"{df.name}@{cinfo.name} {inst.head}"
                else:
                    name = f"{df.name}@{cinfo.name} default"
                extra.append(self.define(df, name, b.dict_names))
        if not extra and body is module.body and all(
                a is b for a, b in zip(defines, module.defines)):
            return module
        return ast.Module(tuple(defines) + tuple(extra), body, module.line, module.column,
                          module.datas, (), ())


def _with_dicts(rhs, names, node):
    if not names:
        return rhs
    if rhs.__class__ is ast.Lambda:
        return ast.Lambda(tuple(names) + rhs.params, rhs.body, rhs.line, rhs.column)
    return ast.Lambda(tuple(names), rhs, node.line, node.column)


def elaborate(module: ast.Module, checker) -> ast.Module:
    """The module with classes compiled away (see the module docstring)."""
    if not (checker.uses or checker.declared or checker.fields_used or module.datas
            or module.classes or module.instances):
        return module
    return _Elaborator(checker).run(module)


def case_warnings(cases) -> list:
    from .match import case_warnings as warnings
    return warnings(cases)
