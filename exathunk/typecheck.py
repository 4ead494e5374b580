"""Name resolution and Hindley–Milner type inference with typeclasses.

``check_module(module, library)`` resolves every name (locals, then the module's
defines, then class methods and record fields, then the library, then data
constructors), infers every expression's type with let-polymorphism (level-based
generalisation; recursive ``let`` and top-level ``define``s are split into strongly
connected groups and generalised group by group, as Haskell does), checks class
membership, defaults ambiguous constrained variables to Int, rejects a result that is
or holds a function, and records on every ``ast.Var`` the type at which it is used
(``inst_type``, fully resolved) and, for a constructor, its ``ConInfo`` (``con``).

Data types, classes and instances are entered first (``declarations.py``: the
``World`` of the check).  Built-in classes (Num, Eq, Ord, Show) are dispatched by the
engine on the values themselves; user classes are compiled to dictionary passing, as
GHC does: every use of a method or of a binding whose type has user-class constraints
records which variables it instantiated, and once the whole program is solved each
constraint is resolved to *evidence* — a dictionary parameter of an enclosing binding,
a superclass of one, or an instance applied to the evidence for its context.  Instance
methods and default methods are checked against their class's declared types with the
instance's variables rigid.  ``elaborate.py`` then rewrites the module so that the
dictionaries are explicit: what the compiler and the reference interpreter read has
no classes left.  A ``case`` whose patterns do not cover every value gets a warning
(``match.py``).

Annotations ``(the T e)``: T's type variables are rigid while ``e`` is checked (``e``
must be at least as general as T, and a rigid variable may not leak into the
enclosing scope); the expression then has a fresh instance of T.  ``(the (=> (Size a)
T) e)`` gives ``e`` the constraints it may rely on.

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

from . import ast, elaborate
from .declarations import (BUILTIN_CLASSES, World, check_superclasses, convert,
                           declare_classes, declare_datas, declare_instances, instance_type)
from .errors import ExathunkError, TypeCheckError, UnknownFunctionError
from .library import Library, default_library
from .types import (BOOL, CLASS_BITS, CONSTANTS, DOUBLE, GENERIC, INT, MAX_TYPE_SIZE, STRING,
                    ClassInfo, InstanceInfo, Namer, Scheme, TCon, TData, TFun, TList, TVar,
                    UnifyError, _copy_iter, bind, class_env, class_names, contains_function,
                    generalize, head_args, head_name, iter_type, parse_signature, prune,
                    resolve, show_type, unify)

__all__ = ["CheckedModule", "check_module", "checked_prelude", "library_scheme",
           "library_env", "library_world", "strongly_connected"]


@dataclass(slots=True)
class CheckedModule:
    """A checked module: the elaborated ``module`` (classes compiled to dictionaries;
    every Var carries its ``inst_type``, constructors their ``con``), the result type,
    the defines' types, every constructor the program can see, the warnings
    ((message, line, column), e.g. a case that is not exhaustive), the ``world``
    (data types, classes, instances) and the node instances the program uses."""
    module: ast.Module
    result_type: object            # a Type (types.TCon/TList/TFun/TVar/TData), resolved
    result_type_text: str
    define_types: dict             # define name -> types.Scheme
    constructors: dict = None      # constructor name -> types.ConInfo
    warnings: list = None
    world: object = None
    instances_used: tuple = ()     # InstanceInfo keys ("Hashable String") from the library


# ---- the library environment (shared, built once per library version) ---------------

_env_lock = threading.RLock()
_envs: dict[tuple, dict[str, Scheme]] = {}
_worlds: dict[tuple, World] = {}
_MAX_ENVS = 64


def library_env(library: Library, _prelude: bool = False) -> dict[str, Scheme]:
    """Name -> Scheme for every built-in, prelude and host function of ``library``
    (for the prelude's own check: the built-ins only)."""
    key = (library.id, library.version, _prelude)
    env = _envs.get(key)
    if env is not None:
        return env
    with _env_lock:
        env = _envs.get(key)
        if env is None:
            if _prelude:
                env = {spec.name: parse_signature(spec.signature).prepare()
                       for spec in library.specs() if spec.kind == "builtin"}
            else:
                scope = library_world(library).scope
                env = {spec.name: parse_signature(spec.signature, scope).prepare()
                       for spec in library.specs()}
            if len(_envs) >= _MAX_ENVS:
                _envs.clear()
            _envs[key] = env
    return env


def library_world(library: Library) -> World:
    """The data types, classes and instances a program compiled against ``library``
    sees before its own: the prelude's and the node's (declared on the Library)."""
    key = (library.id, library.version)
    world = _worlds.get(key)
    if world is not None:
        return world
    with _env_lock:
        world = _worlds.get(key)
        if world is None:
            world = _build_world(library)
            if len(_worlds) >= _MAX_ENVS:
                _worlds.clear()
            _worlds[key] = world
    return world


def _build_world(library: Library) -> World:
    base = checked_prelude().world
    datas, classes, instances = library.declarations()
    if not (datas or classes or instances):
        return base
    world = base.extend()
    taken = frozenset(library.names())
    declare_datas(datas, world, "library", taken)
    declare_classes(classes, world, "library", taken)
    infos = []
    for spec in instances:
        key = (spec.class_name, spec.head)
        if spec.class_name not in world.classes:
            raise TypeCheckError(f"instance {spec.class_name} {spec.head}: unknown class")
        if key in world.instances:
            raise TypeCheckError(f"overlapping instances: {spec.class_name} {spec.head} is "
                                 "registered twice")
        info = InstanceInfo(spec.class_name, spec.head, spec.params, (), "library")
        info.type_text = spec.type_text
        info.methods = dict(spec.methods)
        world.instances[key] = info
        infos.append(info)
    world.changed()
    check_superclasses(infos, world)
    return world


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


def pattern_vars(p, out: list) -> list:
    """The variables a pattern binds, in order (iteratively)."""
    stack = [p]
    while stack:
        q = stack.pop()
        cls = q.__class__
        if cls is ast.PVar:
            out.append(q.name)
        elif cls is ast.PCon:
            stack.extend(reversed(q.args))
    return out


def free_names(expr, candidates, shadowed=frozenset()) -> set[str]:
    """Which of ``candidates`` occur free in ``expr`` (iteratively, honouring scopes)."""
    found: set[str] = set()
    stack = [(expr, shadowed)]
    Var, App, If, Lambda, Let, The, ListLit, Case = (ast.Var, ast.App, ast.If, ast.Lambda,
                                                     ast.Let, ast.The, ast.ListLit, ast.Case)
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
        elif cls is Case:
            stack.append((node.scrutinee, sh))
            for alt in node.alts:
                hidden = candidates.intersection(pattern_vars(alt.pattern, []))
                stack.append((alt.body, sh | hidden if hidden else sh))
    return found


# ---- the checker --------------------------------------------------------------------

# Types in error messages are cut short beyond this many parts.
_MESSAGE_TYPE_PARTS = 200

_LIT_TYPES = {"Int": INT, "Double": DOUBLE, "Bool": BOOL, "String": STRING}

_Var, _Lit, _App, _If, _Let, _Lambda, _The, _ListLit, _Case = (
    ast.Var, ast.Lit, ast.App, ast.If, ast.Let, ast.Lambda, ast.The, ast.ListLit, ast.Case)


class Binding:
    """A name as dictionary passing sees it: a define, a let binding, an instance or
    default method, or an annotation with user-class constraints.

    A generalised binding has its ``scheme`` and takes one dictionary per entry of
    ``scheme.dicts``, named ``dict_names``; a binding checked against a declared type
    is instead ``given`` dictionaries for its rigid variables: (variable, class, name).
    """
    __slots__ = ("name", "node", "scheme", "dict_names", "givens")

    def __init__(self, name: str, node):
        self.name = name
        self.node = node
        self.scheme = None
        self.dict_names: tuple = ()
        self.givens: tuple = ()

    def lookup(self, cname: str, v, env):
        """Evidence for ``cname`` at variable ``v`` from this binding's dictionaries."""
        mine = []
        scheme = self.scheme
        if scheme is not None and self.dict_names:
            for (i, c), dn in zip(scheme.dicts, self.dict_names):
                if scheme.vars[i] is v:
                    mine.append((c, dn))
        for gv, c, dn in self.givens:
            if gv is v:
                mine.append((c, dn))
        for c, dn in mine:
            if c == cname:
                return ("param", dn)
        for c, dn in mine:
            path = _super_path(c, cname, env)
            if path is not None:
                ev = ("param", dn)
                for sub, sup in zip(path, path[1:]):
                    ev = ("super", sub, sup, ev)
                return ev
        return None

    def __repr__(self):
        return f"<Binding {self.name}>"


def _super_path(start: str, target: str, env):
    """The chain of user classes from ``start`` up to its superclass ``target``."""
    work = [[start]]
    seen = {start}
    while work:
        path = work.pop(0)
        info = env.classes.get(path[-1])
        if info is None:
            continue
        for sup in info.supers:
            if sup in seen or sup in CLASS_BITS:
                continue
            if sup == target:
                return path + [sup]
            seen.add(sup)
            work.append(path + [sup])
    return None


class _Checker:
    """The state of one check: environments, the current let level, Var records, and
    (when the program can see user classes) what dictionary passing needs."""
    __slots__ = ("lib", "world", "defines", "locals", "level", "var_types", "track",
                 "globals", "uses", "stack", "local_bindings", "define_bindings",
                 "bindings", "declared", "cases", "counter", "evidence_of", "fields_used",
                 "instances_used", "defaults_checked", "define_types")

    def __init__(self, lib: dict, world: World):
        self.lib = lib
        self.world = world
        self.defines: dict = {}
        self.locals: dict = {}
        self.level = 0
        self.var_types: list = []
        # user classes visible: record what dictionary passing needs
        self.track = world.has_classes
        # any class methods, record fields or constructors to look up besides the library
        self.globals = bool(world.methods or world.fields)
        self.uses: list = []            # (node, Binding or ClassInfo, fresh vars, stack)
        self.stack: list = []           # the bindings being checked, outermost first
        self.local_bindings: dict = {}  # local name -> Binding (None: lambda/pattern bound)
        self.define_bindings: dict = {}
        self.bindings: list = []
        self.declared: list = []        # (Binding, InstanceInfo or None, ClassInfo, Define)
        self.cases: list = []
        self.counter = 0
        self.evidence_of: dict = {}     # id(node) -> (node, target, [evidence])
        self.fields_used: set = set()
        self.instances_used: set = set()
        self.defaults_checked: set = set()

    def dict_name(self) -> str:
        self.counter += 1
        return f"@d{self.counter}"

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
            right = prune(err.right) if err.right is not None else None
            if right is not None and right.__class__ is TVar and right.rigid:
                msg += (f" (the type variable {namer.show(right)} is not given "
                        f"{err.class_name}: add ({err.class_name} {namer.show(right)}) to the "
                        "constraints)")
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
        world = self.world
        candidates = (set(self.locals) | set(self.defines) | set(self.lib) | set(world.cons)
                      | set(world.methods) | set(world.fields))
        what = "function" if called else "name"
        if node.name[:1].isupper():
            what = "constructor" if not called else "constructor or function"
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
                if self.globals:
                    return self.global_type(node, called)
                t = self.lib.get(name)          # the common case, inline
                if t is None:
                    return self.global_type(node, called)
                b = None
            else:
                b = self.define_bindings.get(name) if self.track else None
        else:
            b = self.local_bindings.get(name) if self.track else None
        if t.__class__ is Scheme:
            if b is not None and t.dicts:
                t, fresh = t.instantiate_vars(self.level)
                self.uses.append((node, b, fresh, tuple(self.stack)))
            else:
                t = t.instantiate(self.level)
        elif b is not None and b.scheme is None:
            # a use inside its own recursive group: its dictionaries are the caller's
            self.uses.append((node, b, None, tuple(self.stack)))
        self.var_types.append((node, t))
        return t

    def global_type(self, node, called: bool):
        """A name that is not local or defined: a class method, a record field, a
        built-in, prelude or host function, or a data constructor."""
        name = node.name
        if self.globals:
            cinfo = self.world.methods.get(name)
            if cinfo is not None:
                t, fresh = cinfo.methods[name].instantiate_vars(self.level)
                self.uses.append((node, cinfo, fresh, tuple(self.stack)))
                self.var_types.append((node, t))
                return t
            field = self.world.fields.get(name)
            if field is not None:
                info, ftype = field
                self.fields_used.add(name)
                t = Scheme(info.param_vars, TFun(info.type(), ftype)).instantiate(self.level)
                self.var_types.append((node, t))
                return t
        t = self.lib.get(name)
        if t is None:
            con = self.world.cons.get(name)
            if con is None:
                raise self.unknown(node, called)
            object.__setattr__(node, "con", con)
            t = con.scheme()
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
        if cls is _Case:
            return self.case(node)
        if cls is _The:
            return self.annotated(node)
        raise TypeCheckError(f"not an expression: {cls.__name__}",
                             getattr(node, "line", None), getattr(node, "column", None))

    def function(self, params, body, node, declared=None):
        """The type of a function of ``params``; ``declared`` (a type the function must
        have) gives the parameters their types before the body is checked, so that a
        mistake is reported where it is made."""
        if len(params) > 1 and len(set(params)) < len(params):
            raise TypeCheckError("a parameter name is repeated", node.line, node.column)
        locals_ = self.locals
        level = self.level
        given = []
        while declared is not None and len(given) < len(params):
            declared = prune(declared)
            if declared.__class__ is not TFun:
                break
            given.append(declared.arg)
            declared = declared.res
        saved = [locals_.get(p) for p in params]
        track = self.track
        if track:
            lb = self.local_bindings
            saved_b = [lb.get(p) for p in params]
            for p in params:
                lb[p] = None
        param_types = []
        for i, p in enumerate(params):
            v = given[i] if i < len(given) else TVar(level)
            locals_[p] = v
            param_types.append(v)
        t = self.infer(body)
        for p, old in zip(params, saved):
            if old is None:
                del locals_[p]
            else:
                locals_[p] = old
        if track:
            for p, old in zip(params, saved_b):
                lb[p] = old
        for v in reversed(param_types):
            t = TFun(v, t)
        return t

    def let(self, node):
        bindings = node.bindings
        locals_ = self.locals
        saved = [(b.name, locals_.get(b.name)) for b in bindings]
        track = self.track
        if track:
            lb = self.local_bindings
            saved_b = [(b.name, lb.get(b.name)) for b in bindings]
            mine = {}
            for b in bindings:
                mine[b.name] = lb[b.name] = Binding(b.name, b)
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
                if track:
                    self.stack.append(mine[b.name])
                t = self.infer(b.expr)
                if track:
                    self.stack.pop()
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
                if track:
                    self.generalised(mine[b.name], scheme)
        t = self.infer(node.body)
        for name, old in saved:
            if old is None:
                locals_.pop(name, None)
            else:
                locals_[name] = old
        if track:
            for name, old in saved_b:
                lb[name] = old
        return t

    def generalised(self, b: Binding, scheme: Scheme) -> None:
        b.scheme = scheme
        if scheme.dicts:
            b.dict_names = tuple(self.dict_name() for _ in scheme.dicts)
            self.bindings.append(b)

    def case(self, node):
        st = self.infer(node.scrutinee)
        rt = None
        locals_ = self.locals
        track = self.track
        lb = self.local_bindings
        for alt in node.alts:
            bound: dict = {}
            pt = self.pattern(alt.pattern, bound)
            if pt is not st:
                try:
                    unify(st, pt)
                except UnifyError as err:
                    raise self.type_error(err, st, pt, alt.pattern,
                                          "a pattern has the type of the value the case "
                                          "looks at") from None
            saved = [(n, locals_.get(n)) for n in bound]
            locals_.update(bound)
            if track:
                saved_b = [(n, lb.get(n)) for n in bound]
                for n in bound:
                    lb[n] = None
            bt = self.infer(alt.body)
            for n, old in saved:
                if old is None:
                    del locals_[n]
                else:
                    locals_[n] = old
            if track:
                for n, old in saved_b:
                    lb[n] = old
            if rt is None:
                rt = bt
            elif rt is not bt:
                try:
                    unify(rt, bt)
                except UnifyError as err:
                    raise self.type_error(err, rt, bt, alt.body,
                                          "every alternative of a case has the same type"
                                          ) from None
        self.cases.append(node)
        return rt if rt is not None else TVar(self.level)

    def pattern(self, p, bound: dict):
        cls = p.__class__
        if cls is ast.PWild:
            return TVar(self.level)
        if cls is ast.PVar:
            if p.name in bound:
                raise TypeCheckError(f"'{p.name}' is bound twice in one pattern",
                                     p.line, p.column)
            v = bound[p.name] = TVar(self.level)
            return v
        if cls is ast.PLit:
            return _LIT_TYPES[p.lit.type]
        if cls is not ast.PCon:
            raise TypeCheckError(f"not a pattern: {cls.__name__}", getattr(p, "line", None),
                                 getattr(p, "column", None))
        name, args = p.name, p.args
        if name == "nil" and not args:
            return TList(TVar(self.level))
        if name == "cons":
            if len(args) != 2:
                raise TypeCheckError(f"the pattern (cons head tail) takes 2 patterns, "
                                     f"found {len(args)}", p.line, p.column)
            h = self.pattern(args[0], bound)
            t = self.pattern(args[1], bound)
            lt = TList(h)
            try:
                unify(lt, t)
            except UnifyError as err:
                raise self.type_error(err, lt, t, args[1], "the tail of a cons pattern") from None
            return lt
        con = self.world.cons.get(name)
        if con is None:
            close = difflib.get_close_matches(name, sorted(self.world.cons), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UnknownFunctionError(f"unknown constructor '{name}' in a pattern{hint}",
                                       p.line, p.column)
        if len(args) != con.arity:
            raise TypeCheckError(f"the constructor '{name}' has {con.arity} field"
                                 f"{'s' if con.arity != 1 else ''}, the pattern gives "
                                 f"{len(args)}", p.line, p.column)
        object.__setattr__(p, "con", con)
        ft = con.scheme().instantiate(self.level)
        for arg in args:
            at = self.pattern(arg, bound)
            try:
                unify(ft.arg, at)
            except UnifyError as err:
                raise self.type_error(err, ft.arg, at, arg,
                                      f"a field of the constructor '{name}'") from None
            ft = ft.res
        return ft

    def annotated(self, node):
        texpr = node.type
        context = ()
        if texpr.__class__ is ast.TyQual:
            context, texpr = texpr.context, texpr.body
        self.level += 1
        rigid: dict = {}
        ann = self.annotation(texpr, rigid, True)
        binding = None
        for p in context:
            v = rigid.get(p.type.name) if p.type.__class__ is ast.TyVar else None
            if v is None:
                raise TypeCheckError("a constraint in an annotation names one of its type "
                                     "variables", p.line, p.column)
            self.constrain(v, p.name, p, given=True)
            if p.name not in CLASS_BITS:
                if binding is None:
                    binding = Binding("the", node)
                binding.givens += ((v, p.name, self.dict_name()),)
        if binding is not None:
            self.stack.append(binding)
        t = self.infer(node.expr)
        if binding is not None:
            self.stack.pop()
        try:
            unify(ann, t)
        except UnifyError as err:
            raise self.type_error(err, ann, t, node.expr) from None
        self.level -= 1
        if not rigid:
            return ann
        outer: dict = {}
        result = self.annotation(texpr, outer, False)
        for p in context:
            self.constrain(outer[p.type.name], p.name, p, given=False)
        if binding is not None:
            binding.dict_names = tuple(dn for _v, _c, dn in binding.givens)
            self.bindings.append(binding)
            fresh = tuple(outer[p.type.name] for p in context if p.name not in CLASS_BITS)
            self.uses.append((node, binding, fresh, tuple(self.stack)))
        return result

    def constrain(self, v: TVar, cname: str, node, given: bool) -> None:
        """Put class ``cname`` on ``v`` (a rigid variable: with its superclasses, as
        what it is given)."""
        world = self.world
        if cname not in CLASS_BITS and cname not in world.classes:
            raise UnknownFunctionError(f"unknown class '{cname}'", node.line, node.column)
        if given:
            mask, users = world.env.closure(cname)
            v.classes |= mask
            v.preds = v.preds | users
        elif cname in CLASS_BITS:
            v.classes |= CLASS_BITS[cname]
        else:
            v.preds = v.preds | {cname}

    def annotation(self, texpr, names: dict, rigid: bool):
        def var_for(node):
            v = names.get(node.name)
            if v is None:
                v = names[node.name] = TVar(self.level, 0, rigid)
            return v
        if texpr.__class__ is ast.TyCon:
            t = CONSTANTS.get(texpr.name)
            if t is not None:
                return t
        return convert(texpr, self.world, var_for)

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
        track = self.track
        if track:
            for d in defines:
                self.define_bindings[d.name] = Binding(d.name, d)
        for comp in order:
            self.level = 1
            group_vars = []
            for i in comp:
                v = TVar(1)
                env[defines[i].name] = v
                group_vars.append(v)
            for i, v in zip(comp, group_vars):
                d = defines[i]
                if track:
                    self.stack.append(self.define_bindings[d.name])
                if d.params:
                    t = self.function(d.params, d.body, d)
                else:
                    t = self.infer(d.body)
                if track:
                    self.stack.pop()
                try:
                    unify(v, t)
                except UnifyError as err:
                    raise self.type_error(err, v, t, d, f"the definition of '{d.name}'") from None
            self.level = 0
            for i, v in zip(comp, group_vars):
                try:
                    scheme = env[defines[i].name] = generalize(v, 0)
                except UnifyError as err:
                    raise self.type_error(err, v, v, defines[i]) from None
                if track:
                    self.generalised(self.define_bindings[defines[i].name], scheme)
        return {d.name: env[d.name] for d in defines}

    def check_declared(self, df: ast.Define, cinfo: ClassInfo, info) -> Binding:
        """Check an instance's method (``info`` its InstanceInfo) or a class's default
        method (``info`` None) against the type its class declares."""
        world = self.world
        scheme = cinfo.methods[df.name]
        b = Binding(df.name, df)
        self.level = 1
        names = []
        if info is not None:
            target, pvars = instance_type(info, world, rigid=True, level=1)
            for cname, idx in info.context:
                if cname not in CLASS_BITS:
                    dn = f"@c{len(names)}"
                    b.givens += ((pvars[idx], cname, dn),)
                    names.append(dn)
        else:
            mask, users = world.env.closure(cinfo.name)
            target = TVar(1, mask, True, users)
            b.givens += ((target, cinfo.name, "@self"),)
            names.append("@self")
        mapping = {scheme.vars[0]: target}
        for j, v in enumerate(scheme.vars[1:]):
            mask, users = world.env.given(v.preds)
            rv = TVar(1, v.classes | mask, True, users)
            mapping[v] = rv
            for cname in sorted(v.preds):
                dn = f"@m{j}.{cname}"
                b.givens += ((rv, cname, dn),)
                names.append(dn)
        expected = _copy_iter(scheme.type, mapping)
        self.stack.append(b)
        params = df.params or ()
        t = self.function(params, df.body, df, expected) if params else self.infer(df.body)
        self.stack.pop()
        try:
            unify(expected, t)
        except UnifyError as err:
            what = (f"the method '{df.name}' of the instance {info.class_name} {info.type_text}"
                    if info is not None else
                    f"the default method '{df.name}' of the class {cinfo.name}")
            raise self.type_error(err, expected, t, df, what) from None
        self.level = 0
        b.dict_names = tuple(names)
        self.declared.append((b, info, cinfo, df))
        return b

    def check_methods(self, instances, classes) -> None:
        """The methods of the program's instances and the defaults of its classes."""
        for info in instances:
            cinfo = self.world.classes[info.class_name]
            for df in info.methods.values():
                self.check_declared(df, cinfo, info)
        for cinfo in classes:
            self.defaults_checked.add(cinfo.name)
            for df in cinfo.defaults.values():
                self.check_declared(df, cinfo, None)

    def check_library_defaults(self) -> None:
        """A node's classes' default methods are exathunk code too: checked (and then
        compiled into the program) when the program uses classes at all."""
        for cinfo in self.world.classes.values():
            if cinfo.name not in self.defaults_checked and cinfo.defaults:
                self.defaults_checked.add(cinfo.name)
                for df in cinfo.defaults.values():
                    self.check_declared(df, cinfo, None)

    def finish(self, body_type, body, allow_function: bool = False):
        final = _final
        setattr_ = object.__setattr__
        if allow_function:
            # a type to show, not a program to run: the result's constrained variables
            # stay variables ("Num a => (-> a a a)"), as ghci's :type shows them
            from .types import free_vars
            for v in free_vars(body_type):
                if not v.rigid:
                    v.level = GENERIC
        for node, t in self.var_types:
            setattr_(node, "inst_type", final(t, node, [MAX_TYPE_SIZE]))
        result = final(body_type, body, [MAX_TYPE_SIZE])
        if (not allow_function and result.__class__ is not TCon
                and contains_function(result)):
            raise TypeCheckError(
                "a function cannot be handed back to the host: the result has type "
                f"{show_type(result)}", body.line, body.column)
        if self.uses and not allow_function:
            self.resolve_uses()
        return result

    # -- evidence --

    def resolve_uses(self) -> None:
        for node, target, fresh, stack in self.uses:
            if target.__class__ is ClassInfo:
                scheme = target.methods[node.name]
                pairs = [(c, fresh[i]) for i, c in scheme.dicts]
            elif target.givens:                        # an annotation's constraints
                users = [c for _v, c, _dn in target.givens]
                pairs = list(zip(users, fresh))
            else:
                scheme = target.scheme
                if scheme is None or not scheme.dicts:
                    continue
                vs = fresh if fresh is not None else scheme.vars
                pairs = [(c, vs[i]) for i, c in scheme.dicts]
            evs = tuple(self.evidence(c, t, stack, node) for c, t in pairs)
            self.evidence_of[id(node)] = (node, target, evs)

    def evidence(self, cname: str, t, stack, node):
        """How the dictionary for ``cname`` at type ``t`` is had at ``node``: ("param",
        name), ("super", sub, sup, evidence) or ("inst", InstanceInfo, sub-evidence)."""
        t = prune(t)
        env = self.world.env
        if t.__class__ is TVar:
            for b in reversed(stack):
                ev = b.lookup(cname, t, env)
                if ev is not None:
                    return ev
            raise TypeCheckError(f"no instance {cname} {show_type(t)} can be chosen here: "
                                 "the type is ambiguous (add an annotation)",
                                 node.line, node.column)
        head = head_name(t)
        inst = env.instances.get((cname, head)) if head is not None else None
        if inst is None:
            raise TypeCheckError(f"no instance {cname} {show_type(t)}", node.line, node.column)
        args = head_args(t)
        subs = tuple(self.evidence(c, args[i], stack, node) for c, i in inst.context
                     if c not in CLASS_BITS)
        self.instances_used.add(inst)
        return ("inst", inst, subs)


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
        if (t.classes or t.preds) and t.level != GENERIC and not t.rigid:
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
    if c is TData and t.args:
        budget[0] -= 1
        if depth > 64 or budget[0] < 0:
            return _final_deep(t, node)
        args = t.args
        new = tuple(a if a.__class__ is TCon else _final(a, node, budget, depth + 1)
                    for a in args)
        if any(x is not y for x, y in zip(new, args)):
            t.args = new
        return t
    return t


def _final_deep(t, node):
    try:
        for v in iter_type(t):
            if (v.__class__ is TVar and (v.classes or v.preds) and v.level != GENERIC
                    and not v.rigid):
                _default(v, node)
        return resolve(t)
    except UnifyError:
        raise TypeCheckError(f"type too large: a type here has more than {MAX_TYPE_SIZE} "
                             "parts", node.line, node.column) from None


def _default(v: TVar, node) -> None:
    from .types import current_env
    instances = current_env().instances
    missing = [c for c in sorted(v.preds) if (c, "Int") not in instances]
    if v.classes & ~INT.instances or missing:
        names = ", ".join(f"{c} a" for c in sorted(class_names(v.classes) + list(v.preds)))
        raise TypeCheckError(f"ambiguous type variable with constraints ({names}) that "
                             "Int does not satisfy", node.line, node.column)
    v.ref = INT


def check_module(module: ast.Module, library: Library | None = None, *,
                 source: str | None = None, filename: str | None = None,
                 allow_function: bool = False, _prelude: bool = False) -> CheckedModule:
    """Resolve names and infer types of ``module``; see the module docstring.

    ``allow_function`` lets the result be a function (for the repl's ``:type``); a
    program to run never may be one.  The returned module is elaborated (classes
    compiled to dictionaries).

    Raises TypeCheckError or UnknownFunctionError with line and column (and the
    source attached when ``source`` is given).
    """
    library = library if library is not None else default_library()
    try:
        lib = library_env(library, _prelude)
        world = World() if _prelude else library_world(library)
        declares = module.datas or module.classes or module.instances
        if declares:
            world = world.extend()
            taken = frozenset(d.name for d in module.defines)
            declare_datas(module.datas, world, "prelude" if _prelude else "user", taken)
            classes = declare_classes(module.classes, world, "user", taken)
            instances = declare_instances(module.instances, world, "user")
            check_superclasses(instances, world)
        checker = _Checker(lib, world)
        if world.classes:
            with class_env(world.env):
                result = _check(checker, module, declares and (instances or classes),
                                allow_function, _prelude)
        else:
            result = _check(checker, module, False, allow_function, _prelude)
        elaborated = elaborate.elaborate(module, checker)
        warnings = elaborate.case_warnings(checker.cases) if checker.cases else []
    except ExathunkError as err:
        if source is not None:
            err.with_source(source, filename)
        raise
    used = tuple(sorted(i.key for i in checker.instances_used if i.origin == "library")) \
        if checker.instances_used else ()
    return CheckedModule(elaborated, result, show_type(result), checker.define_types,
                         world.cons, warnings, world, used)


def _check(checker, module, methods: bool, allow_function: bool, prelude: bool):
    """Defines, then the program's instance and default methods, then the body; the
    result type."""
    checker.define_types = checker.check_defines(module.defines)
    if methods:
        world = checker.world
        checker.check_methods([world.instances[(d.class_name, _head_of(d, world))]
                               for d in module.instances],
                              [world.classes[d.name] for d in module.classes])
    checker.level = 0
    body = module.body
    body_type = checker.infer(body)
    if checker.uses and not prelude:
        checker.check_library_defaults()
    return checker.finish(body_type, body, allow_function)


def _head_of(decl, world) -> str:
    from .declarations import instance_head
    return instance_head(decl.type, world)[0]


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
                                            filename="prelude.xt", _prelude=True)
        return _prelude_checked
