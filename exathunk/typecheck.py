"""Name resolution and Hindley–Milner type inference with typeclasses.

``check_module(module, library)`` resolves every name (locals, then the module's
defines, then the library), infers every expression's type with let-polymorphism
(level-based generalisation; recursive ``let`` and top-level ``define``s are split
into strongly connected groups and generalised group by group, as Haskell does),
checks class membership (Num, Eq, Ord, Show), defaults ambiguous constrained
variables to Int, rejects a result that is or holds a function, and records on every
``ast.Var`` the type at which it is used (``inst_type``, fully resolved).

Annotations ``(the T e)``: T's type variables are rigid while ``e`` is checked (``e``
must be at least as general as T, and a rigid variable may not leak into the
enclosing scope); the expression then has a fresh instance of T.

Library types are parsed once and shared (a dictionary per library version); a check
layers its own small environments over it.  Every walk over a type is bounded
(types.MAX_TYPE_SIZE), so a program whose types grow exponentially is refused quickly
with a TypeCheckError rather than keeping the checker busy.

Errors: a type error points at the offending expression (the argument, the else
branch, the list element...) and reads "expected T1, found T2 (where)" or "no
instance Num Bool (where)"; an unknown name is an UnknownFunctionError with a
did-you-mean suggestion drawn from the names in scope.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass

from . import ast
from .errors import ExathunkError, TypeCheckError, UnknownFunctionError
from .library import Library, default_library
from .types import (BOOL, CONSTANTS, DOUBLE, GENERIC, INT, MAX_TYPE_SIZE, STRING, Namer,
                    Scheme, TCon, TFun,
                    TList, TVar, UnifyError, bind, class_names, contains_function,
                    generalize, iter_type, parse_signature, prune, resolve, show_type,
                    unify)

__all__ = ["CheckedModule", "check_module", "checked_prelude", "library_scheme",
           "library_env", "strongly_connected"]


@dataclass(slots=True)
class CheckedModule:
    """A module whose every Var carries its ``inst_type``."""
    module: ast.Module
    result_type: object            # a Type (types.TCon/TList/TFun/TVar), resolved
    result_type_text: str
    define_types: dict             # define name -> types.Scheme


# ---- the library environment (shared, built once per library version) ---------------

_env_lock = threading.Lock()
_envs: dict[tuple[int, int], dict[str, Scheme]] = {}
_MAX_ENVS = 64


def library_env(library: Library) -> dict[str, Scheme]:
    """Name -> Scheme for every built-in, prelude and host function of ``library``."""
    key = (library.id, library.version)
    env = _envs.get(key)
    if env is not None:
        return env
    with _env_lock:
        env = _envs.get(key)
        if env is None:
            env = {spec.name: parse_signature(spec.signature).prepare()
                   for spec in library.specs()}
            if len(_envs) >= _MAX_ENVS:
                _envs.clear()
            _envs[key] = env
    return env


def library_scheme(library: Library, name: str) -> Scheme | None:
    """The type of a built-in, prelude or host function of ``library`` (None if unknown)."""
    return library_env(library).get(name)


# ---- dependency analysis ------------------------------------------------------------

def strongly_connected(n: int, edges: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm without recursion.  ``edges[v]`` lists what v depends on.

    Components come out dependencies first; each is sorted.
    """
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, 0)]
        while work:
            v, i = work[-1]
            succ = edges[v]
            if i < len(succ):
                work[-1] = (v, i + 1)
                w = succ[i]
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                comp.sort()
                out.append(comp)
    return out


def free_names(expr, candidates, shadowed=frozenset()) -> set[str]:
    """Which of ``candidates`` occur free in ``expr`` (iteratively, honouring scopes)."""
    found: set[str] = set()
    stack = [(expr, shadowed)]
    Var, App, If, Lambda, Let, The, ListLit = (ast.Var, ast.App, ast.If, ast.Lambda,
                                               ast.Let, ast.The, ast.ListLit)
    while stack:
        node, sh = stack.pop()
        cls = node.__class__
        if cls is Var:
            name = node.name
            if name in candidates and name not in sh:
                found.add(name)
        elif cls is App:
            stack.append((node.fn, sh))
            for a in node.args:
                stack.append((a, sh))
        elif cls is If:
            stack.append((node.cond, sh))
            stack.append((node.then, sh))
            stack.append((node.orelse, sh))
        elif cls is Lambda:
            hidden = candidates.intersection(node.params)
            stack.append((node.body, sh | hidden if hidden else sh))
        elif cls is Let:
            hidden = candidates.intersection([b.name for b in node.bindings])
            inner = sh | hidden if hidden else sh
            for b in node.bindings:
                stack.append((b.expr, inner))
            stack.append((node.body, inner))
        elif cls is The:
            stack.append((node.expr, sh))
        elif cls is ListLit:
            for item in node.items:
                stack.append((item, sh))
    return found


# ---- the checker --------------------------------------------------------------------

# Types in error messages are cut short beyond this many parts.
_MESSAGE_TYPE_PARTS = 200

_LIT_TYPES = {"Int": INT, "Double": DOUBLE, "Bool": BOOL, "String": STRING}

_Var, _Lit, _App, _If, _Let, _Lambda, _The, _ListLit = (
    ast.Var, ast.Lit, ast.App, ast.If, ast.Let, ast.Lambda, ast.The, ast.ListLit)


class _Checker:
    """The state of one check: environments, the current let level, Var records."""
    __slots__ = ("lib", "defines", "locals", "level", "var_types")

    def __init__(self, lib: dict):
        self.lib = lib
        self.defines: dict = {}
        self.locals: dict = {}
        self.level = 0
        self.var_types: list = []

    # -- errors --

    def type_error(self, err: UnifyError, expected, found, node,
                   where: str | None = None) -> TypeCheckError:
        namer = Namer(_MESSAGE_TYPE_PARTS)
        kind = err.kind
        if kind == "size":
            return TypeCheckError(f"type too large: a type here has more than {MAX_TYPE_SIZE} "
                                  "parts", node.line, node.column)
        if kind == "instance":
            msg = f"no instance {err.class_name} {namer.show(err.right)}"
        elif kind == "occurs":
            v = namer.show(err.left)
            msg = f"cannot construct the infinite type {v} = {namer.show(err.right)}"
            e, f = namer.show(expected), namer.show(found)
            if e != v or f != namer.show(err.right):
                msg += f" (expected {e}, found {f})"
        else:
            msg = f"expected {namer.show(expected)}, found {namer.show(found)}"
            if kind == "rigid":
                msg += ("; a type variable in an annotation stands for every type, "
                        "and this expression's type is more specific")
            elif kind == "escape":
                msg += ("; the annotation is more general than this expression, whose "
                        "type is fixed by its context")
        if where:
            msg += f" ({where})"
        return TypeCheckError(msg, node.line, node.column)

    def unknown(self, node, called: bool) -> UnknownFunctionError:
        candidates = set(self.locals) | set(self.defines) | set(self.lib)
        what = "function" if called else "name"
        msg = f"unknown {what} '{node.name}'"
        close = difflib.get_close_matches(node.name, sorted(candidates), n=1)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        return UnknownFunctionError(msg, node.line, node.column)

    # -- names --

    def var_type(self, node, called: bool):
        name = node.name
        t = self.locals.get(name)
        if t is None:
            t = self.defines.get(name)
            if t is None:
                t = self.lib.get(name)
                if t is None:
                    raise self.unknown(node, called)
        if t.__class__ is Scheme:
            t = t.instantiate(self.level)
        self.var_types.append((node, t))
        return t

    # -- expressions --

    def infer(self, node):
        cls = node.__class__
        if cls is _App:
            fn = node.fn
            ft = self.var_type(fn, True) if fn.__class__ is _Var else self.infer(fn)
            for i, arg in enumerate(node.args):
                if ft.__class__ is TVar:
                    ft = prune(ft)
                if ft.__class__ is TFun:
                    param = ft.arg
                    ft = ft.res
                elif ft.__class__ is TVar and not ft.rigid:
                    param = TVar(self.level)
                    res = TVar(self.level)
                    try:
                        bind(ft, TFun(param, res))
                    except UnifyError as err:
                        raise self.type_error(err, TFun(param, res), ft, fn) from None
                    ft = res
                else:
                    namer = Namer()
                    if i == 0:
                        raise TypeCheckError(
                            f"not a function: a value of type {namer.show(ft)} "
                            "cannot be applied to arguments", fn.line, fn.column)
                    raise TypeCheckError(
                        f"too many arguments: after {i} argument{'s' if i > 1 else ''} "
                        f"the result has type {namer.show(ft)}, not a function",
                        arg.line, arg.column)
                at = self.infer(arg)
                if param is not at:
                    try:
                        unify(param, at)
                    except UnifyError as err:
                        raise self.type_error(err, param, at, arg,
                                              _argument_place(fn, i)) from None
            return ft
        if cls is _Var:
            return self.var_type(node, False)
        if cls is _Lit:
            return _LIT_TYPES[node.type]
        if cls is _If:
            cond = node.cond
            ct = self.infer(cond)
            if ct is not BOOL:
                try:
                    unify(BOOL, ct)
                except UnifyError as err:
                    raise self.type_error(err, BOOL, ct, cond, "the condition of if") from None
            tt = self.infer(node.then)
            orelse = node.orelse
            et = self.infer(orelse)
            if tt is not et:
                try:
                    unify(tt, et)
                except UnifyError as err:
                    raise self.type_error(err, tt, et, orelse,
                                          "the else branch must have the then branch's type"
                                          ) from None
            return tt
        if cls is _Lambda:
            return self.function(node.params, node.body, node)
        if cls is _Let:
            return self.let(node)
        if cls is _ListLit:
            items = node.items
            if not items:
                return TList(TVar(self.level))
            elem = self.infer(items[0])
            for k in range(1, len(items)):
                item = items[k]
                it = self.infer(item)
                if it is not elem:
                    try:
                        unify(elem, it)
                    except UnifyError as err:
                        raise self.type_error(err, elem, it, item,
                                              f"element {k + 1} of a list") from None
            return TList(elem)
        if cls is _The:
            return self.annotated(node)
        raise TypeCheckError(f"not an expression: {cls.__name__}",
                             getattr(node, "line", None), getattr(node, "column", None))

    def function(self, params, body, node):
        if len(params) > 1 and len(set(params)) < len(params):
            raise TypeCheckError("a parameter name is repeated", node.line, node.column)
        locals_ = self.locals
        level = self.level
        saved = [locals_.get(p) for p in params]
        param_types = []
        for p in params:
            v = TVar(level)
            locals_[p] = v
            param_types.append(v)
        t = self.infer(body)
        for p, old in zip(params, saved):
            if old is None:
                del locals_[p]
            else:
                locals_[p] = old
        for v in reversed(param_types):
            t = TFun(v, t)
        return t

    def let(self, node):
        bindings = node.bindings
        locals_ = self.locals
        saved = [(b.name, locals_.get(b.name)) for b in bindings]
        if len(bindings) == 1:
            groups = [bindings]
        else:
            names = [b.name for b in bindings]
            if len(set(names)) < len(names):
                raise TypeCheckError("a name is bound twice in one let", node.line,
                                     node.column)
            position = {n: i for i, n in enumerate(names)}
            candidates = frozenset(names)
            edges = [sorted(position[n] for n in free_names(b.expr, candidates))
                     for b in bindings]
            groups = [[bindings[i] for i in comp]
                      for comp in strongly_connected(len(bindings), edges)]
        for group in groups:
            self.level += 1
            level = self.level
            group_vars = []
            for b in group:
                v = TVar(level)
                locals_[b.name] = v
                group_vars.append(v)
            for b, v in zip(group, group_vars):
                t = self.infer(b.expr)
                try:
                    unify(v, t)
                except UnifyError as err:
                    raise self.type_error(err, v, t, b.expr,
                                          f"the binding of '{b.name}'") from None
            self.level -= 1
            for b, v in zip(group, group_vars):
                try:
                    scheme = generalize(v, self.level)
                except UnifyError as err:
                    raise self.type_error(err, v, v, b) from None
                locals_[b.name] = scheme if scheme.vars else scheme.type
        t = self.infer(node.body)
        for name, old in saved:
            if old is None:
                locals_.pop(name, None)
            else:
                locals_[name] = old
        return t

    def annotated(self, node):
        self.level += 1
        t = self.infer(node.expr)
        rigid: dict = {}
        ann = self.annotation(node.type, rigid, True)
        try:
            unify(ann, t)
        except UnifyError as err:
            raise self.type_error(err, ann, t, node.expr) from None
        self.level -= 1
        if not rigid:
            return ann
        return self.annotation(node.type, {}, False)

    def annotation(self, texpr, names: dict, rigid: bool):
        cls = texpr.__class__
        if cls is ast.TyCon:
            t = CONSTANTS.get(texpr.name)
            if t is None:
                raise TypeCheckError(f"unknown type '{texpr.name}'", texpr.line,
                                     texpr.column)
            return t
        if cls is ast.TyVar:
            v = names.get(texpr.name)
            if v is None:
                v = names[texpr.name] = TVar(self.level, 0, rigid)
            return v
        if cls is ast.TyList:
            return TList(self.annotation(texpr.elem, names, rigid))
        if cls is ast.TyFun:
            t = self.annotation(texpr.result, names, rigid)
            for p in reversed(texpr.params):
                t = TFun(self.annotation(p, names, rigid), t)
            return t
        raise TypeCheckError(f"not a type: {cls.__name__}", getattr(texpr, "line", None),
                             getattr(texpr, "column", None))

    # -- top level --

    def check_defines(self, defines) -> dict:
        if not defines:
            return {}
        position: dict[str, int] = {}
        for i, d in enumerate(defines):
            if d.name in position:
                raise TypeCheckError(f"duplicate definition of '{d.name}'", d.line, d.column)
            position[d.name] = i
        if len(defines) == 1:
            order = [[0]]
        else:
            candidates = frozenset(position)
            edges = []
            for d in defines:
                hidden = frozenset(d.params or ()) & candidates
                edges.append(sorted(position[n] for n in free_names(d.body, candidates, hidden)))
            order = strongly_connected(len(defines), edges)
        env = self.defines
        for comp in order:
            self.level = 1
            group_vars = []
            for i in comp:
                v = TVar(1)
                env[defines[i].name] = v
                group_vars.append(v)
            for i, v in zip(comp, group_vars):
                d = defines[i]
                if d.params:
                    t = self.function(d.params, d.body, d)
                else:
                    t = self.infer(d.body)
                try:
                    unify(v, t)
                except UnifyError as err:
                    raise self.type_error(err, v, t, d, f"the definition of '{d.name}'") from None
            self.level = 0
            for i, v in zip(comp, group_vars):
                try:
                    env[defines[i].name] = generalize(v, 0)
                except UnifyError as err:
                    raise self.type_error(err, v, v, defines[i]) from None
        return {d.name: env[d.name] for d in defines}

    def finish(self, body_type, body, allow_function: bool = False):
        final = _final
        setattr_ = object.__setattr__
        for node, t in self.var_types:
            setattr_(node, "inst_type", final(t, node, [MAX_TYPE_SIZE]))
        result = final(body_type, body, [MAX_TYPE_SIZE])
        if (not allow_function and result.__class__ is not TCon
                and contains_function(result)):
            raise TypeCheckError(
                "a function cannot be handed back to the host: the result has type "
                f"{show_type(result)}", body.line, body.column)
        return result


def _argument_place(fn, i: int) -> str:
    if fn.__class__ is _Var:
        return f"argument {i + 1} of '{fn.name}'"
    return f"argument {i + 1}"


def _final(t, node, budget, depth=0):
    """Resolve ``t`` fully, defaulting ambiguous constrained variables to Int.

    Bound variables inside ``t`` are replaced in place by what they stand for: an
    equivalent type, so sharing is harmless (generic variables are never bound, and
    library schemes hold no bound variables, so shared schemes are never written).
    Recursive for speed on the small types nearly every Var has; a deep type goes to
    the iterative version.  ``budget`` ([parts left]) bounds the walk: a type shared
    as a graph can be exponentially large as a tree.
    """
    c = t.__class__
    if c is TVar:
        if t.ref is not None:
            t = prune(t)
            c = t.__class__
            if c is TCon:
                return t
            if c is not TVar:
                return _final(t, node, budget, depth)
        if t.classes and t.level != GENERIC and not t.rigid:
            _default(t, node)
            return INT
        return t
    if c is TFun:
        budget[0] -= 1
        if depth > 64 or budget[0] < 0:
            return _final_deep(t, node)
        # A variable bound straight to a constant is the common case: no call for it.
        arg = t.arg
        c = arg.__class__
        if c is TVar and arg.ref is not None and arg.ref.__class__ is TCon:
            t.arg = arg.ref
        elif c is not TCon:
            new = _final(arg, node, budget, depth + 1)
            if new is not arg:
                t.arg = new
        res = t.res
        c = res.__class__
        if c is TVar and res.ref is not None and res.ref.__class__ is TCon:
            t.res = res.ref
        elif c is not TCon:
            new = _final(res, node, budget, depth + 1)
            if new is not res:
                t.res = new
        return t
    if c is TList:
        budget[0] -= 1
        if depth > 64 or budget[0] < 0:
            return _final_deep(t, node)
        elem = t.elem
        if elem.__class__ is not TCon:
            new = _final(elem, node, budget, depth + 1)
            if new is not elem:
                t.elem = new
        return t
    return t


def _final_deep(t, node):
    try:
        for v in iter_type(t):
            if v.__class__ is TVar and v.classes and v.level != GENERIC and not v.rigid:
                _default(v, node)
        return resolve(t)
    except UnifyError:
        raise TypeCheckError(f"type too large: a type here has more than {MAX_TYPE_SIZE} "
                             "parts", node.line, node.column) from None


def _default(v: TVar, node) -> None:
    if v.classes & ~INT.instances:
        names = ", ".join(f"{c} a" for c in class_names(v.classes))
        raise TypeCheckError(f"ambiguous type variable with constraints ({names}) that "
                             "Int does not satisfy", node.line, node.column)
    v.ref = INT


def check_module(module: ast.Module, library: Library | None = None, *,
                 source: str | None = None, filename: str | None = None,
                 allow_function: bool = False) -> CheckedModule:
    """Resolve names and infer types of ``module``; see the module docstring.

    ``allow_function`` lets the result be a function (for the repl's ``:type``); a
    program to run never may be one.

    Raises TypeCheckError or UnknownFunctionError with line and column (and the
    source attached when ``source`` is given).
    """
    lib = library_env(library if library is not None else default_library())
    checker = _Checker(lib)
    try:
        define_types = checker.check_defines(module.defines)
        checker.level = 0
        body = module.body
        result = checker.finish(checker.infer(body), body, allow_function)
    except ExathunkError as err:
        if source is not None:
            err.with_source(source, filename)
        raise
    return CheckedModule(module, result, show_type(result), define_types)


# ---- the prelude -------------------------------------------------------------------

_prelude_lock = threading.Lock()
_prelude_checked: CheckedModule | None = None


def checked_prelude() -> CheckedModule:
    """prelude.xt parsed and checked once (against the plain built-ins), then cached."""
    global _prelude_checked
    if _prelude_checked is not None:
        return _prelude_checked
    with _prelude_lock:
        if _prelude_checked is None:
            from . import parser
            from .library import prelude_source
            source = prelude_source()
            module = parser.parse(source, "prelude.xt")
            _prelude_checked = check_module(module, Library(), source=source,
                                            filename="prelude.xt")
        return _prelude_checked
