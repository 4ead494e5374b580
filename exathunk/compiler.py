"""The compiler: a typechecked module to a Program of lambda-lifted supercombinators.

Every top-level function, every lambda and every lazily used compound expression
becomes a supercombinator (its free variables become leading parameters) whose body is
a flat list of int32 instructions (see opcodes.py) over a frame of local slots and an
operand stack.  Constants go to pools, each instruction gets a source line.

Linking: only the user defines and prelude functions the result reaches are compiled.
User code resolves names locals > user defines > library; prelude code always means the
prelude's own definitions and the built-ins, whatever the user defines.

Strictness: a parameter that a function certainly forces (found by a small fixpoint
analysis over the built-ins' strictness) is evaluated by direct callers before the call
instead of being wrapped in a thunk; the callee forces it on entry, a no-op then.
"""

from __future__ import annotations

import struct
import threading

from . import ast, fusion, typecheck
from .errors import ExathunkError, no_match_message
from .library import BUILTINS, SPECIALISED, Library, specialise
from .program import (FORMAT_VERSION, Constructor, DataType, Function, HostRef, Program,
                      stack_need)
from .types import TCon, TData, TFun, iter_type, prune
from .opcodes import BRANCH_FUSED, BRANCH_LOCALS, FUSED, OPERANDS, PRIMITIVES, Op

_BUILTIN_SPECS = {s.name: s for s in BUILTINS}
_KINDS = {int(op): OPERANDS[op] for op in Op}
_USER, _PRELUDE = "user", "prelude"


class CompileError(ExathunkError):
    """An internal compiler failure (a bug): the program was well-typed."""


# ---- name resolution ----------------------------------------------------------------

class _Global:
    """What a non-local name refers to."""
    __slots__ = ("kind", "name", "define", "spec")

    def __init__(self, kind, name, define=None, spec=None):
        self.kind = kind      # "user", "prelude", "builtin", "host"
        self.name = name
        self.define = define
        self.spec = spec


def _define_params(d: ast.Define):
    """(params, body) with `(define f (lambda (x) b))` treated as `(define (f x) b)`."""
    body = d.body
    params = tuple(d.params or ())
    while not params and isinstance(body, ast.The):
        body = body.expr
    if not params and isinstance(body, ast.Lambda):
        return tuple(body.params), body.body
    return params, d.body


# AST nodes are exact classes (never subclassed), so the hot paths test e.__class__
_The, _Var, _App, _Lit = ast.The, ast.Var, ast.App, ast.Lit
_Case, _PVar, _PWild, _PLit, _PCon = ast.Case, ast.PVar, ast.PWild, ast.PLit, ast.PCon
_EMPTY = frozenset()


def _strip(e):
    while e.__class__ is _The:
        e = e.expr
    return e


def _flatten_app(e: ast.App):
    """(function, arguments) of a curried application (a tuple or list of arguments)."""
    fn = e.fn
    if fn.__class__ is _Var:            # the common case: a name applied once
        return fn, e.args
    args = list(e.args)
    fn = _strip(fn)
    while isinstance(fn, ast.App):
        args = list(fn.args) + args
        fn = _strip(fn.fn)
    return fn, args


def _elem_type(var: ast.Var):
    """'Int'/'Double'/None: the element type of sum/product at this use."""
    t = getattr(var, "inst_type", None)
    if t is None:
        return None
    try:
        from .types import show_type
        text = show_type(t)
    except Exception:
        text = str(t)
    for elem in ("Int", "Double"):
        if text.startswith(f"(-> (List {elem})"):
            return elem
    return None


# result types that hold no data type (compile() then skips data_types())
_PLAIN = frozenset((TCon, type(None)))
_SCALARS = frozenset(("Int", "Double", "String", "Bool"))


def _scalar_operands(var: ast.Var) -> bool:
    """Whether the comparison operator ``var`` is used at Int, Double, String or Bool
    (the types BR_*_LL compare; lists and data need the general instruction)."""
    t = var.inst_type
    if t is None:
        return False
    t = prune(t)
    if t.__class__ is not TFun:
        return False
    a = prune(t.arg)
    return a.__class__ is TCon and a.name in _SCALARS


# ---- patterns -----------------------------------------------------------------------

def _pattern_vars(p) -> list:
    """The variables a pattern binds, left to right."""
    out = []
    stack = [p]
    while stack:
        p = stack.pop()
        cls = p.__class__
        if cls is _PVar:
            out.append(p.name)
        elif cls is _PCon:
            stack.extend(reversed(p.args))
    return out


def _refutable(p) -> bool:
    """A literal or constructor pattern: it forces its value and may fail."""
    return p.__class__ is _PCon or p.__class__ is _PLit


def _live_alts(alts):
    """The alternatives that can be tried: up to the first irrefutable one."""
    for i, a in enumerate(alts):
        if not _refutable(a.pattern):
            return alts[:i + 1]
    return alts


def _test_key(p):
    """For a top-level pattern that fails only on its own test (its sub-patterns are
    all irrefutable): what it tests, as a key of _universe(p); else None."""
    cls = p.__class__
    if cls is _PCon:
        for a in p.args:
            if a.__class__ is not _PVar and a.__class__ is not _PWild:
                return None
        return p.con.name if p.con is not None else p.name
    if cls is _PLit and (p.lit.type == "Bool" or isinstance(p.lit.value, bool)):
        return bool(p.lit.value)
    return None


def _universe(p) -> set:
    """Every key _test_key can give for the type of refutable pattern p."""
    if p.__class__ is _PCon:
        if p.con is not None:
            return {c.name for c in p.con.data.constructors}
        return {"nil", "cons"}
    return {True, False}


def _exhaustive(alts) -> bool:
    """Whether the (live) alternatives certainly match every value: one irrefutable,
    or each constructor (nil/cons, true/false) caught with irrefutable sub-patterns."""
    covered: set = set()
    universe = None
    for a in alts:
        p = a.pattern
        if not _refutable(p):
            return True
        k = _test_key(p)
        if k is None:
            continue
        covered.add(k)
        if universe is None:
            universe = _universe(p)
        if covered >= universe:
            return True
    return False


# ---- strictness analysis ------------------------------------------------------------

class _Scope:
    """Resolution of global names for one namespace (user or prelude code)."""

    def __init__(self, namespace, user_defs, prelude_defs, library, shared=None):
        self.namespace = namespace
        self.user_defs = user_defs
        self.prelude_defs = prelude_defs
        self.library = library
        # name -> _Global: a name resolves the same way every time, except
        # sum/product, whose target depends on the use's type (never cached).
        # ``resolved`` holds this scope's user defines; ``shared`` the names resolved
        # by the library and the prelude, which outlive one compilation (see
        # _library_resolutions: keyed by library version, so never stale).
        self.resolved: dict = {}
        self.shared: dict = self.resolved if shared is None else shared
        # names that resolve to nothing here (locals, mostly): as fixed as the scope's
        # defines and library, and bounded by this scope's code
        self.unresolved: set = set()

    def resolve(self, name: str, var: ast.Var | None = None) -> _Global | None:
        g = self.resolved.get(name)
        if g is not None or name in self.unresolved:
            return g
        if name in SPECIALISED:
            return self._resolve(name, var)
        if self.namespace == _USER and name in self.user_defs:
            g = self.resolved[name] = _Global(_USER, name, self.user_defs[name])
            return g
        g = self.shared.get(name)
        if g is None:
            g = self._resolve(name, var)
            # only names that resolve: the shared cache stays bounded by the library
            # and prelude names, however many local names the programs use
            if g is not None:
                self.shared[name] = g
            else:
                self.unresolved.add(name)
        return g

    def _resolve(self, name: str, var: ast.Var | None) -> _Global | None:
        if self.namespace == _USER:
            d = self.user_defs.get(name)
            if d is not None:
                return _Global(_USER, name, d)
            spec = self.library.lookup(name) if self.library is not None else None
            if spec is None:
                spec = _BUILTIN_SPECS.get(name)
            if spec is not None and spec.kind == "host":
                return _Global("host", name, spec=spec)
            if name in _BUILTIN_SPECS:
                return _Global("builtin", name, spec=_BUILTIN_SPECS[name])
            target = name
            if var is not None and name in SPECIALISED:
                target = specialise(name, _elem_type(var))
            d = self.prelude_defs.get(target)
            if d is not None:
                return _Global(_PRELUDE, target, d)
            return None
        d = self.prelude_defs.get(name)
        if d is not None:
            return _Global(_PRELUDE, name, d)
        if name in _BUILTIN_SPECS:
            return _Global("builtin", name, spec=_BUILTIN_SPECS[name])
        return None


_resolutions: dict = {}


def _library_resolutions(library) -> dict:
    """The resolution cache shared by user scopes compiling against this library state
    (a registration bumps library.version, so a new cache; a few are kept)."""
    key = (library.id, library.version)
    shared = _resolutions.get(key)
    if shared is None:
        if len(_resolutions) >= 16:
            _resolutions.clear()
        shared = _resolutions[key] = {}
    return shared


def _strict_vars(e, locals_, scope: _Scope, strictness) -> frozenset:
    """Local names certainly forced when ``e`` is evaluated to WHNF."""
    if e.__class__ is _The:
        e = _strip(e)
    if e.__class__ is _Var:
        return frozenset((e.name,)) if e.name in locals_ else _EMPTY
    cls = e.__class__
    if cls is ast.If:
        c = _strict_vars(e.cond, locals_, scope, strictness)
        t = _strict_vars(e.then, locals_, scope, strictness)
        f = _strict_vars(e.orelse, locals_, scope, strictness)
        return c | (t & f)
    if cls is ast.Let:
        bound = {b.name for b in e.bindings}
        inner = locals_ | bound
        body = _strict_vars(e.body, inner, scope, strictness)
        out = set(body - bound)
        for b in e.bindings:
            if b.name in body:
                out |= _strict_vars(b.expr, inner, scope, strictness) - bound
        return frozenset(out)
    if cls is _App:
        fn, args = _flatten_app(e)
        if fn.__class__ is _Var:
            if fn.name in locals_:
                return frozenset((fn.name,))
            # a constructor (lazy in every field) resolves to None here: the
            # typechecker gives a name to a constructor only when no local, define
            # or library function has it (see _Compiler.resolve)
            g = scope.resolve(fn.name, fn)
            if g is None:
                return _EMPTY
            if g.kind in (_USER, _PRELUDE):
                flags = strictness.get((g.kind, g.name), ())
                if flags and len(args) >= len(flags):
                    return _strict_args(args, flags, locals_, scope, strictness)
                return _EMPTY
            spec = g.spec
            if len(args) < spec.arity or g.name in ("error", "cons"):
                return _EMPTY
            out = _EMPTY
            if g.name == "seq":
                for a in args[:2]:
                    out |= _strict_vars(a, locals_, scope, strictness)
                return out
            return _strict_args(args, spec.strictness, locals_, scope, strictness)
        return _strict_vars(fn, locals_, scope, strictness)
    if cls is _Case:
        return _strict_case(e, locals_, scope, strictness)
    return _EMPTY


def _strict_case(e, locals_, scope, strictness) -> frozenset:
    """A case forces its scrutinee's strict locals when its first pattern forces it,
    and, when it certainly matches (no fall-through error, whose message must not
    change), what every alternative's body forces (its pattern variables aside; a
    variable bound to the whole scrutinee stands for it)."""
    alts = _live_alts(e.alts)
    if not alts:
        return _EMPTY
    scrut = _strict_vars(e.scrutinee, locals_, scope, strictness)
    out = scrut if _refutable(alts[0].pattern) else _EMPTY
    if not _exhaustive(alts):
        return out
    common = None
    for a in alts:
        pv = _pattern_vars(a.pattern)
        if pv:
            f = _strict_vars(a.body, locals_ | frozenset(pv), scope, strictness)
            p = a.pattern
            if p.__class__ is _PVar and p.name in f:
                f = f | scrut
            f = f - frozenset(pv)
        else:
            f = _strict_vars(a.body, locals_, scope, strictness)
        common = f if common is None else common & f
        if not common:
            break
    return out | common


def _strict_args(args, flags, locals_, scope, strictness) -> frozenset:
    """The union of _strict_vars over the arguments flagged strict; literal and
    variable arguments (most of them) without a recursive call."""
    out = _EMPTY
    for a, s in zip(args, flags):
        if s:
            cls = a.__class__
            if cls is _Lit:
                continue
            if cls is _Var:
                if a.name in locals_:
                    out = out | {a.name}
                continue
            out = out | _strict_vars(a, locals_, scope, strictness)
    return out


def _global_refs(e, scope: _Scope, out: set) -> None:
    """Keys of the user/prelude functions that e mentions (iterative: no recursion)."""
    stack = [e]
    for _ in range(100_000_000):
        if not stack:
            return
        e = stack.pop()
        cls = e.__class__
        if cls is _Var:
            g = scope.resolve(e.name, e)        # None for a constructor
            if g is not None and g.kind in (_USER, _PRELUDE):
                out.add((g.kind, g.name))
        elif cls is _App:
            stack.append(e.fn)
            stack.extend(e.args)
        elif isinstance(e, ast.If):
            stack.extend((e.cond, e.then, e.orelse))
        elif isinstance(e, ast.Let):
            stack.extend(b.expr for b in e.bindings)
            stack.append(e.body)
        elif isinstance(e, (ast.Lambda, ast.The)):
            stack.append(e.body if isinstance(e, ast.Lambda) else e.expr)
        elif isinstance(e, ast.ListLit):
            stack.extend(e.items)
        elif cls is _Case:
            stack.append(e.scrutinee)
            stack.extend(a.body for a in e.alts)


def _analyse(defs: dict, namespace, scope: _Scope, strictness: dict) -> None:
    """Fixpoint from 'strict in everything' down (a diverging function is strict).

    A worklist: when a function's flags drop, only its callers are looked at again,
    so a long chain of definitions settles in linear time whatever their order."""
    funcs = {}
    for name, d in defs.items():
        params, body = _define_params(d)
        if params:
            funcs[(namespace, name)] = (params, body)
            strictness[(namespace, name)] = (True,) * len(params)
    callers: dict = {key: set() for key in funcs}
    for key, (params, body) in funcs.items():
        refs: set = set()
        _global_refs(body, scope, refs)
        for r in refs:
            if r in callers:
                callers[r].add(key)
    pending = list(funcs)
    queued = set(pending)
    # each function's flags can only drop, at most once per parameter
    for _round in range(sum(len(p) for p, _ in funcs.values()) * len(funcs) + len(funcs) + 1):
        if not pending:
            break
        key = pending.pop()
        queued.discard(key)
        params, body = funcs[key]
        forced = _strict_vars(body, frozenset(params), scope, strictness)
        # a parameter shadowed by a later parameter of the same name is lazy
        flags = tuple(p in forced and params.index(p) == i for i, p in enumerate(params))
        flags = tuple(a and b for a, b in zip(flags, strictness[key]))
        if flags != strictness[key]:
            strictness[key] = flags
            for c in callers[key]:
                if c not in queued:
                    queued.add(c)
                    pending.append(c)


_prelude_cache: dict = {}
_prelude_lock = threading.Lock()


def _prelude_info():
    """(prelude defines by name, prelude strictness): computed once."""
    checked = typecheck.checked_prelude()
    cached = _prelude_cache.get(id(checked))        # lock-free once computed
    if cached is not None and cached[0] is checked:
        return cached[1], cached[2]
    with _prelude_lock:
        cached = _prelude_cache.get(id(checked))
        if cached is not None and cached[0] is checked:
            return cached[1], cached[2]
        defs = {d.name: d for d in checked.module.defines}
        strictness: dict = {}
        scope = _Scope(_PRELUDE, {}, defs, None)
        _analyse(defs, _PRELUDE, scope, strictness)
        _prelude_cache.clear()
        _prelude_cache[id(checked)] = (checked, defs, strictness)
        return defs, strictness


# ---- code emission ------------------------------------------------------------------

class _Local:
    """A local slot; ``evaluated``: it holds a WHNF value (indirections resolved);
    ``cons``: that value is a cons cell (so head/tail are plain field reads)."""
    __slots__ = ("slot", "evaluated", "cons")

    def __init__(self, slot, evaluated=False, cons=False):
        self.slot = slot
        self.evaluated = evaluated
        self.cons = cons


class _FnBuilder:
    """One supercombinator being emitted."""

    def __init__(self, name, arity):
        self.name = name
        self.arity = arity
        self.code: list[int] = []
        self.lines: list[int] = []
        self.columns: list[int] = []
        self.nslots = arity
        self.next_slot = arity
        self.line = 0
        self.column = 0
        self.max_stack = None        # known when copied from the verified prelude image

    def emit(self, op: Op, *operands):
        code = self.code
        at = len(code)
        code.append(int(op))
        if operands:
            code.extend(operands)      # ints by construction (slots, indices, counts)
            self.lines.extend([self.line] * (1 + len(operands)))
            self.columns.extend([self.column] * (1 + len(operands)))
        else:
            self.lines.append(self.line)
            self.columns.append(self.column)
        return at

    def patch_target(self, at: int, target: int):
        op = Op(self.code[at])
        self.code[at + len(OPERANDS[op])] = target

    def new_slot(self) -> int:
        s = self.next_slot
        self.next_slot += 1
        self.nslots = max(self.nslots, self.next_slot)
        return s



def _free_vars(e, bound: frozenset, out: set, locals_) -> None:
    """Add to ``out`` the names of enclosing locals that ``e`` uses."""
    e = _strip(e)
    if isinstance(e, ast.Var):
        if e.name not in bound and e.name in locals_:
            out.add(e.name)
    elif isinstance(e, ast.App):
        _free_vars(e.fn, bound, out, locals_)
        for a in e.args:
            _free_vars(a, bound, out, locals_)
    elif isinstance(e, ast.If):
        _free_vars(e.cond, bound, out, locals_)
        _free_vars(e.then, bound, out, locals_)
        _free_vars(e.orelse, bound, out, locals_)
    elif isinstance(e, ast.Let):
        inner = bound | {b.name for b in e.bindings}
        for b in e.bindings:
            _free_vars(b.expr, inner, out, locals_)
        _free_vars(e.body, inner, out, locals_)
    elif isinstance(e, ast.Lambda):
        _free_vars(e.body, bound | set(e.params), out, locals_)
    elif isinstance(e, ast.ListLit):
        for a in e.items:
            _free_vars(a, bound, out, locals_)
    elif isinstance(e, ast.Case):
        _free_vars(e.scrutinee, bound, out, locals_)
        for a in e.alts:
            pv = _pattern_vars(a.pattern)
            _free_vars(a.body, bound | frozenset(pv) if pv else bound, out, locals_)


class _Compiler:
    # data types, in order of first use: a type's constructors take consecutive
    # indices from its base (Program.constructors() order)
    datatypes: list = ()             # DataInfo
    data_base: dict = {}             # data type name -> index of its first constructor
    n_cons = 0
    con_infos: dict = {}             # constructor name -> ConInfo (for wrappers)
    noted_types: list = ()           # host functions' types at their uses

    def __init__(self, checked, library: Library, image=None, prelude_scope=None):
        self.library = library
        self.image = image               # the prelude compiled once (see _prelude_image)
        self.image_map: dict = {}        # image function index -> index here
        self.module = checked.module
        self.result_type = checked.result_type_text
        self.checked = checked
        self.user_defs = {d.name: d for d in self.module.defines}
        self.prelude_defs, prelude_strictness = _prelude_info()
        self.scopes = {
            _USER: _Scope(_USER, self.user_defs, self.prelude_defs, library,
                          _library_resolutions(library) if library is not None else None),
            # shared between compilations when given (its resolutions never change)
            _PRELUDE: prelude_scope or _Scope(_PRELUDE, {}, self.prelude_defs, None),
        }
        self.strictness = dict(prelude_strictness)
        if self.user_defs:
            _analyse(self.user_defs, _USER, self.scopes[_USER], self.strictness)
        self.functions: list = []        # index -> _FnBuilder (None while pending)
        self.fn_index: dict = {}         # global key -> index
        self.pending: list = []          # (index, key) to compile
        self.ints: list[int] = []
        self.int_index: dict = {}
        self.doubles: list[float] = []
        self.dbl_index: dict = {}
        self.strings: list[str] = []
        self.str_index: dict = {}
        self.hosts: list = []
        self.host_index: dict = {}
        self.used: set[str] = set()
        self.lifted = 0
        # data types (datatypes, data_base, n_cons, con_infos, noted_types): the class
        # attributes below until a program uses one, so that the rest pay nothing

    # -- pools
    def int_const(self, v: int) -> int:
        k = self.int_index.get(v)
        if k is None:
            k = self.int_index[v] = len(self.ints)
            self.ints.append(v)
        return k

    def dbl_const(self, v: float) -> int:
        key = struct.pack("<d", v)
        k = self.dbl_index.get(key)
        if k is None:
            k = self.dbl_index[key] = len(self.doubles)
            self.doubles.append(v)
        return k

    def str_const(self, v: str) -> int:
        k = self.str_index.get(v)
        if k is None:
            k = self.str_index[v] = len(self.strings)
            self.strings.append(v)
        return k

    def host_ref(self, spec, var=None) -> int:
        k = self.host_index.get(spec.name)
        if k is None:
            k = self.host_index[spec.name] = len(self.hosts)
            self.hosts.append(HostRef(spec.name, spec.signature, tuple(spec.strictness)))
        if var is not None and var.inst_type is not None:
            self.note_later(var.inst_type)
        return k

    def note_later(self, t) -> None:
        if not self.noted_types:
            self.noted_types = []
        self.noted_types.append(t)

    # -- data types
    def con_index(self, con) -> int:
        """The constructor operand of ConInfo ``con`` (its type joins the table)."""
        base = self.data_base.get(con.data.name)
        if base is None:
            base = self.add_data(con.data)
        return base + con.tag

    def add_data(self, info) -> int:
        if not self.datatypes:
            self.datatypes, self.data_base = [], {}
        base = self.data_base[info.name] = self.n_cons
        self.datatypes.append(info)
        self.n_cons += len(info.constructors)
        return base

    def con_wrapper(self, con) -> int:
        """The supercombinator building ``con`` from its arguments (constructor values)."""
        if not self.con_infos:
            self.con_infos = {}
        self.con_infos[con.name] = con
        return self.global_fn(("con", con.name))

    def note_type(self, t) -> None:
        """Add the data types occurring in type t to the table."""
        if t is None or t.__class__ is TCon:
            return
        for node in iter_type(t):
            if node.__class__ is TData and node.info.name not in self.data_base:
                self.add_data(node.info)

    def data_types(self) -> list:
        """Program.datatypes: the types built or matched, those of the host functions'
        signatures and of the result, closed under the types in their fields."""
        self.note_type(getattr(self.checked, "result_type", None))
        if self.hosts and self.library is not None:
            for h in self.hosts:
                try:
                    scheme = typecheck.library_scheme(self.library, h.name)
                except ExathunkError:
                    scheme = None
                if scheme is not None:
                    self.note_type(scheme.type)
        for t in self.noted_types:
            self.note_type(t)
        i = 0
        while i < len(self.datatypes):
            for r in self.datatypes[i].referenced():
                if r.name not in self.data_base:
                    self.add_data(r)
            i += 1
        return _data_table(self.datatypes)

    # -- global functions
    def global_fn(self, key) -> int:
        """Index of a global function (user/prelude define, or a wrapper), compiled later."""
        idx = self.fn_index.get(key)
        if idx is None:
            idx = self.fn_index[key] = len(self.functions)
            self.functions.append(None)
            self.pending.append((idx, key))
        return idx

    def global_arity(self, g: _Global) -> int:
        if g.kind in (_USER, _PRELUDE):
            return len(_define_params(g.define)[0])
        return g.spec.arity

    def fn_name(self, key) -> str:
        kind, name = key
        if kind == _PRELUDE and name in self.user_defs:
            return "prelude:" + name
        if kind in ("builtin", "host", "con"):
            return f"%{kind}:{name}"
        return name

    # -- the driver
    def compile(self):
        entry = len(self.functions)
        self.functions.append(None)
        fb = _FnBuilder("%main", 0)
        self.functions[entry] = fb
        self.compile_body(fb, self.module.body, {}, _USER)
        self.drain()
        functions = []
        for fb in self.functions:
            # functions copied from the prelude image bring their (verified) max_stack
            max_stack = fb.max_stack if fb.max_stack is not None else stack_need(fb.code)
            functions.append(Function(fb.name, fb.arity, fb.nslots, fb.code, fb.lines,
                                      max_stack, fb.columns))
        # trusted: well-formed by construction, so the Program skips the verifier
        # (tests/test_compiler_output.py verifies the output of every golden program)
        return Program(FORMAT_VERSION, functions, self.ints, self.doubles, self.strings,
                       self.hosts, entry, self.result_type, sorted(self.used),
                       datatypes=self.data_types() if self.datatypes or self.hosts
                       or getattr(self.checked, "result_type", None).__class__ not in _PLAIN
                       else [], trusted=True)

    def drain(self):
        """Compile (or copy from the prelude image) every function still pending."""
        for _round in range(10_000_000):
            if not self.pending:
                break
            idx, key = self.pending.pop()
            if key[0] == "image":
                self.functions[idx] = self.copy_from_image(key[1])
            elif key[0] == _PRELUDE and self.image is not None:
                j = self.image.fn_index[key]
                self.image_map[j] = idx
                self.functions[idx] = self.copy_from_image(j)
            else:
                self.functions[idx] = self.compile_global(key)

    def image_fn(self, j: int) -> int:
        """Index here of image function j (queued for copying on first use)."""
        idx = self.image_map.get(j)
        if idx is None:
            key = self.image.key_of.get(j)
            if key is not None:
                idx = self.global_fn(key)
            else:
                idx = len(self.functions)
                self.functions.append(None)
                self.pending.append((idx, ("image", j)))
            self.image_map[j] = idx
        return idx

    def copy_from_image(self, j: int) -> _FnBuilder:
        """Image function j with its function and constant references relocated."""
        img = self.image
        src = img.functions[j]
        code = list(src.code)
        for at, kind, v in img.relocations[j]:     # in code order
            if kind == "fn":
                code[at] = self.image_fn(v)
            elif kind == "int":
                code[at] = self.int_const(img.ints[v])
            elif kind == "str":
                code[at] = self.str_const(img.strings[v])
            elif kind == "dbl":
                code[at] = self.dbl_const(img.doubles[v])
            else:
                code[at] = self.con_index(img.cons[v])
        name = src.name
        if name.split("/")[0] in self.user_defs:
            name = "prelude:" + name
        fb = _FnBuilder(name, src.arity)
        fb.code = code
        fb.lines = list(src.lines)
        fb.columns = list(src.columns)
        fb.nslots = src.nslots
        fb.max_stack = img.max_stacks[j]
        return fb

    def compile_global(self, key) -> _FnBuilder:
        kind, name = key
        if kind == "con":
            con = self.con_infos.get(name)
            if con is None:                 # a wrapper the prelude image refers to
                con = self.image.con_infos[name]
            fb = _FnBuilder(self.fn_name(key), con.arity)
            for i in range(con.arity):
                fb.emit(Op.LOCAL, i)
            fb.emit(Op.MKCON, self.con_index(con), con.arity)
            fb.emit(Op.RET)
            return fb
        if kind in (_USER, _PRELUDE):
            d = (self.user_defs if kind == _USER else self.prelude_defs)[name]
            params, body = _define_params(d)
            fb = _FnBuilder(self.fn_name(key), len(params))
            fb.line = d.line
            fb.column = d.column
            env = {}
            flags = self.strictness.get(key, ())
            for i, p in enumerate(params):
                env[p] = _Local(i)
            # force certainly-needed parameters on entry (a no-op for direct callers,
            # who evaluated them already)
            for i, p in enumerate(params):
                if i < len(flags) and flags[i] and env[p].slot == i:
                    fb.emit(Op.LOCAL_EVAL, i)
                    fb.emit(Op.STORE, i)
                    env[p].evaluated = True
            self.compile_body(fb, body, env, kind)
            return fb
        # a built-in or host function used as a value: a wrapper taking lazy arguments
        spec = _BUILTIN_SPECS[name] if kind == "builtin" else self.library.lookup(name)
        fb = _FnBuilder(self.fn_name(key), spec.arity)
        params = [f"%a{i}" for i in range(spec.arity)]
        env = {p: _Local(i) for i, p in enumerate(params)}
        call = ast.App(ast.Var(name), tuple(ast.Var(p) for p in params))
        self.compile_body(fb, call, env, _PRELUDE if kind == "builtin" else ("host", spec))
        return fb

    def compile_body(self, fb, body, env, ns):
        self.c_strict(fb, body, env, ns, tail=True)

    # -- resolution
    def resolve(self, name, var, env, ns):
        if name in env:
            return env[name]
        if isinstance(ns, tuple):            # host wrapper: the host spec itself
            return _Global("host", name, spec=ns[1])
        g = self.scopes[ns].resolve(name, var)
        if g is None:
            # a data constructor: the typechecker resolves a name to one (setting
            # var.con) only when no local, define or library function has that name
            if var is not None and var.con is not None:
                return _Global("con", name, spec=var.con)
            raise CompileError(f"unknown name {name!r}", line=var.line if var else None,
                               column=var.column if var else None)
        if ns == _USER and g.kind != _USER:
            self.used.add(name)
        return g

    # -- expressions
    def ret(self, fb, tail):
        if tail:
            fb.emit(Op.RET)

    def c_strict(self, fb, e, env, ns, tail=False):
        """Emit code leaving e's WHNF on the stack (or returning it when tail).  The
        instructions get e's position; the enclosing expression's is restored after,
        so that an operation emitted after its arguments (a division, ``error``) has
        the position of its own call, not of its last argument."""
        line, column = fb.line, fb.column
        try:
            return self._c_strict(fb, e, env, ns, tail)
        finally:
            fb.line, fb.column = line, column

    def _c_strict(self, fb, e, env, ns, tail=False):
        cls = e.__class__
        if cls is _The:
            e = _strip(e)
            cls = e.__class__
        if e.line:
            fb.line = e.line
            fb.column = e.column
        if cls is _App:
            return self.c_app(fb, e, env, ns, tail)
        if cls is _Lit:
            self.c_lit(fb, e)
            if tail:
                fb.emit(Op.RET)
            return
        if cls is _Var:
            return self.c_var(fb, e, env, ns, tail, strict=True)
        if cls is ast.If:
            e = self.without_not(e, env, ns)
            jf = self.c_branch_if_false(fb, e.cond, env, ns)
            then_env, else_env = self.branch_envs(e.cond, env, ns)
            self.c_strict(fb, e.then, then_env, ns, tail)
            if tail:
                fb.patch_target(jf, len(fb.code))
                self.c_strict(fb, e.orelse, else_env, ns, tail)
                return
            j = fb.emit(Op.JUMP, 0)
            fb.patch_target(jf, len(fb.code))
            self.c_strict(fb, e.orelse, else_env, ns, tail)
            fb.patch_target(j, len(fb.code))
            return
        if cls is ast.Let:
            inner, saved = self.c_let(fb, e, env, ns)
            self.c_strict(fb, e.body, inner, ns, tail)
            fb.next_slot = saved
            return
        if cls is ast.Lambda:
            self.c_lambda(fb, e, env, ns)
            return self.ret(fb, tail)
        if cls is ast.ListLit:
            self.c_list(fb, e, env, ns)
            return self.ret(fb, tail)
        if cls is _Case:
            return self.c_case(fb, e, env, ns, tail)
        raise CompileError(f"cannot compile {type(e).__name__}")

    def c_lazy(self, fb, e, env, ns):
        """Emit code pushing e's value without evaluating it (a thunk when needed);
        positions as in c_strict."""
        line, column = fb.line, fb.column
        try:
            return self._c_lazy(fb, e, env, ns)
        finally:
            fb.line, fb.column = line, column

    def _c_lazy(self, fb, e, env, ns):
        if e.__class__ is _The:
            e = _strip(e)
        if e.line:
            fb.line = e.line
            fb.column = e.column
        if isinstance(e, ast.Lit):
            return self.c_lit(fb, e)
        if isinstance(e, ast.Var):
            if e.name in env:
                fb.emit(Op.LOCAL, env[e.name].slot)
                return
            g = self.resolve(e.name, e, env, ns)
            if g.kind in (_USER, _PRELUDE) or (g.kind == "builtin" and g.spec.arity > 0) \
                    or (g.kind == "host" and g.spec.arity > 0) or g.name == "nil" \
                    or g.kind == "con":
                return self.c_var(fb, e, env, ns, False, strict=False)
            return self.c_thunk(fb, e, env, ns)
        if isinstance(e, ast.Lambda):
            return self.c_lambda(fb, e, env, ns)
        if isinstance(e, ast.ListLit):
            return self.c_list(fb, e, env, ns)
        if isinstance(e, ast.App):
            fn, args = _flatten_app(e)
            if isinstance(fn, ast.Var) and fn.name not in env:
                g = self.resolve(fn.name, fn, env, ns)
                if g.kind == "builtin" and g.name == "cons" and len(args) == 2:
                    return self.c_app(fb, e, env, ns, False)
                if g.kind == "builtin" and g.name in ("head", "tail") and len(args) == 1:
                    a = _strip(args[0])
                    if isinstance(a, ast.Var) and a.name in env and env[a.name].cons:
                        # the field itself, unevaluated: no thunk, nothing forced
                        fb.emit(Op.LOCAL, env[a.name].slot)
                        fb.emit(Op.HEAD if g.name == "head" else Op.TAIL)
                        return
                if g.kind in (_USER, _PRELUDE) and 0 < len(args) < self.global_arity(g):
                    return self.c_app(fb, e, env, ns, False)
                if g.kind == "con":        # a constructor is lazy: built, not delayed
                    return self.c_app(fb, e, env, ns, False)
        return self.c_thunk(fb, e, env, ns)

    def fusable(self, name, args, env):
        """(slot, int constant index) when `(name local literal)` can be fused."""
        if len(args) != 2 or args[1].__class__ is _App:
            return None
        a, b = _strip(args[0]), _strip(args[1])
        if isinstance(a, ast.Var) and a.name in env and env[a.name].evaluated \
                and isinstance(b, ast.Lit) and b.type == "Int" and not isinstance(b.value, bool):
            return env[a.name].slot, self.int_const(int(b.value))
        return None

    def guard_forced(self, e, env, ns) -> set:
        """Locals that evaluating e certainly forces in this frame (each such use is a
        LOCAL_EVAL here, which leaves the slot holding its WHNF value)."""
        e = _strip(e)
        if isinstance(e, ast.Var):
            return {e.name} if e.name in env else set()
        if e.__class__ is _Case:
            return self.guard_forced_case(e, env, ns)
        if isinstance(e, ast.If):
            e = self.without_not(e, env, ns)
            return self.guard_forced(e.cond, env, ns) | (
                self.guard_forced(e.then, env, ns) & self.guard_forced(e.orelse, env, ns))
        if not isinstance(e, ast.App):
            return set()
        fn, args = _flatten_app(e)
        if not isinstance(fn, ast.Var) or fn.name in env:
            return set()
        g = self.resolve(fn.name, fn, env, ns)
        if g.kind in (_USER, _PRELUDE):
            flags = self.strictness.get((g.kind, g.name), ())
            if not flags or len(args) < len(flags):
                return set()
        elif g.kind == "builtin":
            if g.name in ("and", "or", "error", "seq", "cons") or len(args) < g.spec.arity:
                return set()
            flags = g.spec.strictness
        else:
            return set()
        out = set()
        for a, strict in zip(args, flags):
            if strict:
                out |= self.guard_forced(a, env, ns)
        return out

    def guard_forced_case(self, e: ast.Case, env, ns) -> set:
        """The scrutinee's when the first pattern forces it, and what every
        alternative's body forces (the code after a case is reached only through one;
        a fall-through raises)."""
        alts = _live_alts(e.alts)
        if not alts:
            return set()
        out = self.guard_forced(e.scrutinee, env, ns) if _refutable(alts[0].pattern) \
            else set()
        common = None
        for a in alts:
            pv = _pattern_vars(a.pattern)
            inner = env
            if pv:
                inner = dict(env)
                for n in pv:
                    inner[n] = _Local(-1)
            f = self.guard_forced(a.body, inner, ns).difference(pv)
            common = f if common is None else common & f
            if not common:
                break
        return out | common

    def branch_envs(self, cond, env, ns):
        """The environments of the two branches of an if on cond."""
        forced = self.guard_forced(cond, env, ns)
        tested = None
        c = _strip(cond)
        if isinstance(c, ast.App):
            fn, args = _flatten_app(c)
            if isinstance(fn, ast.Var) and fn.name not in env and len(args) == 1:
                g = self.resolve(fn.name, fn, env, ns)
                a = _strip(args[0])
                if g.kind == "builtin" and g.name == "null?" and isinstance(a, ast.Var) \
                        and a.name in env:
                    tested = a.name
        if not forced and tested is None:
            return env, env
        then_env, else_env = dict(env), dict(env)
        for name in forced:
            loc = env[name]
            then_env[name] = _Local(loc.slot, True, loc.cons)
            else_env[name] = _Local(loc.slot, True, loc.cons or name == tested)
        return then_env, else_env

    def without_not(self, e: ast.If, env, ns) -> ast.If:
        """(if (not c) a b) as (if c b a)."""
        for _ in range(1000):
            c = _strip(e.cond)
            if not isinstance(c, ast.App):
                break
            fn, args = _flatten_app(c)
            if not (isinstance(fn, ast.Var) and fn.name not in env and len(args) == 1):
                break
            g = self.resolve(fn.name, fn, env, ns)
            if g.kind != "builtin" or g.name != "not":
                break
            e = ast.If(args[0], e.orelse, e.then, e.line, e.column)
        return e

    def c_branch_if_false(self, fb, cond, env, ns) -> int:
        """Emit a test of cond that jumps (to a target patched later) when false."""
        c = _strip(cond)
        if isinstance(c, ast.App):
            fn, args = _flatten_app(c)
            if isinstance(fn, ast.Var) and fn.name not in env:
                g = self.resolve(fn.name, fn, env, ns)
                if g.kind == "builtin" and PRIMITIVES.get(g.name) in BRANCH_FUSED:
                    fused = self.fusable(g.name, args, env)
                    if fused is not None:
                        return fb.emit(BRANCH_FUSED[PRIMITIVES[g.name]], fused[0], fused[1], 0)
                if g.kind == "builtin" and PRIMITIVES.get(g.name) in BRANCH_LOCALS \
                        and len(args) == 2 and _scalar_operands(fn):
                    a, b = _strip(args[0]), _strip(args[1])
                    if all(isinstance(x, ast.Var) and x.name in env and env[x.name].evaluated
                           for x in (a, b)):
                        return fb.emit(BRANCH_LOCALS[PRIMITIVES[g.name]], env[a.name].slot,
                                       env[b.name].slot, 0)
        self.c_strict(fb, cond, env, ns)
        return fb.emit(Op.JUMPF, 0)

    def c_lit(self, fb, e: ast.Lit):
        if e.type == "Bool" or isinstance(e.value, bool):
            fb.emit(Op.BOOL, 1 if e.value else 0)
        elif e.type == "Int":
            fb.emit(Op.INT, self.int_const(int(e.value)))
        elif e.type == "Double":
            fb.emit(Op.DBL, self.dbl_const(float(e.value)))
        else:
            fb.emit(Op.STR, self.str_const(str(e.value)))

    def c_var(self, fb, e: ast.Var, env, ns, tail, strict):
        loc = env.get(e.name)
        if loc is not None:
            if tail:
                fb.emit(Op.RET_LOCAL, loc.slot)    # forces it, in tail position
            elif loc.evaluated or not strict:
                fb.emit(Op.LOCAL, loc.slot)
            else:
                fb.emit(Op.LOCAL_EVAL, loc.slot)
            return
        g = self.resolve(e.name, e, env, ns)
        if g.kind in (_USER, _PRELUDE):
            idx = self.global_fn((g.kind, g.name))
            if self.global_arity(g) == 0:
                fb.emit(Op.CAF, idx)
                if strict and not tail:
                    fb.emit(Op.EVAL)
            else:
                fb.emit(Op.FUN, idx)
            return self.ret(fb, tail)
        if g.kind == "builtin":
            if g.name == "nil":
                fb.emit(Op.NIL)
            elif g.name == "bottom":
                fb.emit(Op.BOTTOM)
            else:
                fb.emit(Op.FUN, self.global_fn(("builtin", g.name)))
            return self.ret(fb, tail)
        if g.kind == "con":
            self.c_con(fb, g.spec, (), env, ns)
            return self.ret(fb, tail)
        # host
        if g.spec.arity == 0:
            fb.emit(Op.HOST, self.host_ref(g.spec, e), 0)
        else:
            if e.inst_type is not None:
                self.note_later(e.inst_type)
            fb.emit(Op.FUN, self.global_fn(("host", g.name)))
        return self.ret(fb, tail)

    def c_con(self, fb, con, args, env, ns):
        """A constructor applied to args (lazy fields): built when saturated, else a
        partial application of (or the bare) wrapper; a nullary one is immediate."""
        n = con.arity
        if len(args) == n:
            for a in args:
                self.c_lazy(fb, a, env, ns)
            fb.emit(Op.MKCON, self.con_index(con), n)
        elif not args:
            fb.emit(Op.FUN, self.con_wrapper(con))
        elif len(args) < n:
            for a in args:
                self.c_lazy(fb, a, env, ns)
            fb.emit(Op.MKPAP, self.con_wrapper(con), len(args))
        else:
            raise CompileError(f"constructor {con.name} applied to {len(args)} arguments "
                               f"(it has {n} fields)")

    # -- case
    def c_case(self, fb, e: ast.Case, env, ns, tail):
        """Alternatives as chains of tests jumping forward to the next on failure; the
        scrutinee is evaluated (into a slot) only when the first pattern forces it."""
        alts = _live_alts(e.alts)
        saved = fb.next_slot
        if not alts or not _refutable(alts[0].pattern):
            if not alts:
                self.c_no_match(fb, e, tail)
                return
            a = alts[0]
            p = a.pattern
            inner = env
            if p.__class__ is _PVar:      # bound as it is, unevaluated and shared
                inner = dict(env)
                scrut = _strip(e.scrutinee)
                if scrut.__class__ is _Var and scrut.name in env:
                    inner[p.name] = env[scrut.name]
                else:
                    self.c_lazy(fb, scrut, env, ns)
                    loc = _Local(fb.new_slot(),
                                 isinstance(scrut, (ast.Lambda, ast.Lit, ast.ListLit)))
                    fb.emit(Op.STORE, loc.slot)
                    inner[p.name] = loc
            self.c_strict(fb, a.body, inner, ns, tail)
            fb.next_slot = saved
            return
        # the scrutinee in WHNF in a slot: a local's own slot, or a new one
        scrut = _strip(e.scrutinee)
        name = None
        top_env = env
        if scrut.__class__ is _Var and scrut.name in env:
            name = scrut.name
            top = env[name]
            if not top.evaluated:
                fb.emit(Op.LOCAL_EVAL, top.slot)
                fb.emit(Op.STORE, top.slot)
                top = _Local(top.slot, True, top.cons)
                top_env = dict(env)
                top_env[name] = top
        else:
            self.c_strict(fb, scrut, env, ns)
            top = _Local(fb.new_slot(), True)
            fb.emit(Op.STORE, top.slot)
        alt_saved = fb.next_slot
        excluded: set = set()         # what the alternatives tried so far have caught
        fall: list = []               # failing tests of the previous alternative
        ends: list = []
        for a in alts:
            p = a.pattern
            key = _test_key(p) if _refutable(p) else None
            if key is not None and key in excluded:
                continue              # an earlier alternative catches all of these
            here = len(fb.code)
            for j in fall:
                fb.patch_target(j, here)
            fall = []
            inner = dict(top_env)
            pv = _pattern_vars(p)
            used = None
            if pv:
                used = set()
                _free_vars(a.body, frozenset(), used, frozenset(pv))
            refined = self.c_match(fb, p, top, inner, fall, used, excluded)
            if name is not None and name not in pv:
                inner[name] = refined
            self.c_strict(fb, a.body, inner, ns, tail)
            if not tail:
                ends.append(fb.emit(Op.JUMP, 0))
            fb.next_slot = alt_saved
            if key is not None:
                excluded.add(key)
            if not fall:
                break                 # it always matches: the rest is unreachable
        if fall:
            for j in fall:
                fb.patch_target(j, len(fb.code))
            self.c_no_match(fb, e, tail)
        elif ends:
            # the last alternative's jump to the end would jump to the next instruction
            at = ends.pop()
            del fb.code[at:]
            del fb.lines[at:]
            del fb.columns[at:]
        for j in ends:
            fb.patch_target(j, len(fb.code))
        fb.next_slot = saved

    def c_no_match(self, fb, e: ast.Case, tail):
        fb.line = e.line
        fb.column = e.column
        fb.emit(Op.STR, self.str_const(no_match_message(e.form, e.line, e.column)))
        fb.emit(Op.ERROR)
        self.ret(fb, tail)

    def c_match(self, fb, p, loc, env, fall, used, excluded=None):
        """Emit the tests of pattern p against the value in local ``loc`` (forced here
        if p needs it), binding p's variables (those in ``used``) in env; failing tests
        append their jumps to ``fall``.  ``excluded`` (top level only): the keys earlier
        alternatives caught, so a test that cannot fail is left out.  Returns what is
        then known of loc."""
        cls = p.__class__
        if cls is _PWild:
            return loc
        if cls is _PVar:
            env[p.name] = loc
            return loc
        slot = loc.slot
        if not loc.evaluated:
            fb.emit(Op.LOCAL_EVAL, slot)
            fb.emit(Op.STORE, slot)
            loc = _Local(slot, True, loc.cons)
        test = True
        if excluded:
            key = _test_key(p)
            if key is None:
                key = p.con.name if cls is _PCon and p.con is not None else \
                    (p.name if cls is _PCon else None)
            if key is not None and _universe(p) - excluded == {key}:
                test = False          # the only value left
        if cls is _PLit:
            lit = p.lit
            if lit.type == "Bool" or isinstance(lit.value, bool):
                if test:
                    fb.emit(Op.LOCAL, slot)
                    if not lit.value:
                        fb.emit(Op.NOT)
                    fall.append(fb.emit(Op.JUMPF, 0))
            elif lit.type == "Int":
                fall.append(fb.emit(Op.BR_EQ_LI, slot, self.int_const(int(lit.value)), 0))
            else:
                fb.emit(Op.LOCAL, slot)
                self.c_lit(fb, lit)
                fb.emit(Op.EQ)
                fall.append(fb.emit(Op.JUMPF, 0))
            return loc
        con = p.con
        if con is None:               # nil or cons
            if test:
                fb.emit(Op.LOCAL, slot)
                fb.emit(Op.NULLP)
                if p.name == "cons":
                    fb.emit(Op.NOT)
                fall.append(fb.emit(Op.JUMPF, 0))
            if p.name != "cons":
                return loc
            loc = _Local(slot, True, True)
            fields = ((Op.HEAD,), (Op.TAIL,))
        else:
            index = self.con_index(con)
            if test and len(con.data.constructors) > 1:
                fall.append(fb.emit(Op.BR_NCON, slot, index, 0))
            fields = [(Op.FIELD, k) for k in range(con.arity)]
        for sub, read in zip(p.args, fields):
            c = sub.__class__
            if c is _PWild or (c is _PVar and used is not None and sub.name not in used):
                continue
            fb.emit(Op.LOCAL, slot)
            fb.emit(*read)
            if c is _PVar:
                s = fb.new_slot()
                fb.emit(Op.STORE, s)
                env[sub.name] = _Local(s)
            else:
                fb.emit(Op.EVAL)
                s = fb.new_slot()
                fb.emit(Op.STORE, s)
                self.c_match(fb, sub, _Local(s, True), env, fall, used)
        return loc

    def c_list(self, fb, e: ast.ListLit, env, ns):
        fb.emit(Op.NIL)
        for item in reversed(e.items):
            self.c_lazy(fb, item, env, ns)
            fb.emit(Op.CONS)

    def lift(self, fb, e, env, ns, params=()):
        """Lambda-lift e: a new supercombinator over e's free locals (then params)."""
        free: set = set()
        _free_vars(e, frozenset(params), free, env)
        free_list = sorted(free, key=lambda n: env[n].slot)
        self.lifted += 1
        kind = "lambda" if params else "thunk"
        lf = _FnBuilder(f"{fb.name.split('/')[0]}/{kind}{self.lifted}", len(free_list) + len(params))
        lf.line = fb.line
        lf.column = fb.column
        inner = {}
        for i, n in enumerate(free_list):
            inner[n] = _Local(i, env[n].evaluated, env[n].cons)
        for j, p in enumerate(params):
            inner[p] = _Local(len(free_list) + j)
        idx = len(self.functions)
        self.functions.append(lf)
        self.compile_body(lf, e, inner, ns)
        return idx, free_list

    def c_thunk(self, fb, e, env, ns):
        idx, free = self.lift(fb, e, env, ns)
        for n in free:
            fb.emit(Op.LOCAL, env[n].slot)
        fb.emit(Op.MKTHUNK, idx, len(free))

    def c_lambda(self, fb, e: ast.Lambda, env, ns):
        idx, free = self.lift(fb, e.body, env, ns, tuple(e.params))
        if not free:
            fb.emit(Op.FUN, idx)
            return
        for n in free:
            fb.emit(Op.LOCAL, env[n].slot)
        fb.emit(Op.MKPAP, idx, len(free))

    def c_let(self, fb, e: ast.Let, env, ns):
        saved = fb.next_slot
        inner = dict(env)
        names = [b.name for b in e.bindings]
        # later bindings of the same name win (each name one slot)
        slots = {}
        for n in names:
            if n not in slots:
                slots[n] = _Local(fb.new_slot())
        inner.update(slots)
        final = {}
        for b in e.bindings:
            final[b.name] = b
        bindings = list(final.values())
        group = set(slots)
        body_forced = _strict_vars(e.body, frozenset(inner), self.scopes.get(ns if isinstance(ns, str) else _PRELUDE),
                                   self.strictness)
        recursive = []
        for b in bindings:
            free: set = set()
            _free_vars(b.expr, frozenset(), free, inner)
            rhs = _strip(b.expr)
            loc = slots[b.name]
            if free & group:
                recursive.append((b, rhs))
                continue
            if b.name in body_forced and not isinstance(rhs, ast.Lambda):
                self.c_strict(fb, rhs, env, ns)
                loc.evaluated = True
            else:
                self.c_lazy(fb, rhs, env, ns)
                if isinstance(rhs, (ast.Lambda, ast.Lit, ast.ListLit)):
                    loc.evaluated = True
            fb.emit(Op.STORE, loc.slot)
        # recursive bindings: allocate every object first, then fill in its fields
        fills = []
        for b, rhs in recursive:
            loc = slots[b.name]
            if isinstance(rhs, ast.Lambda):
                idx, free = self.lift(fb, rhs.body, inner, ns, tuple(rhs.params))
                fb.emit(Op.ALLOC_PAP, idx, len(free))
                loc.evaluated = True
            else:
                idx, free = self.lift(fb, rhs, inner, ns)
                fb.emit(Op.ALLOC_THUNK, idx, len(free))
            fb.emit(Op.STORE, loc.slot)
            fills.append((loc, free))
        for loc, free in fills:
            for j, n in enumerate(free):
                fb.emit(Op.LOCAL, inner[n].slot)
                fb.emit(Op.SETFIELD, loc.slot, j)
        return inner, saved

    def c_args(self, fb, args, flags, env, ns):
        for i, a in enumerate(args):
            if i < len(flags) and flags[i]:
                self.c_strict(fb, a, env, ns)
            else:
                self.c_lazy(fb, a, env, ns)

    def c_apply_rest(self, fb, rest, env, ns, tail):
        for a in rest:
            self.c_lazy(fb, a, env, ns)
        fb.emit(Op.TAILAPPLY if tail else Op.APPLY, len(rest))

    def c_app(self, fb, e: ast.App, env, ns, tail):
        fn, args = _flatten_app(e)
        if not args:
            return self.c_strict(fb, fn, env, ns, tail)
        if not isinstance(fn, ast.Var) or fn.name in env:
            self.c_strict(fb, fn, env, ns)
            return self.c_apply_rest(fb, args, env, ns, tail)
        g = self.resolve(fn.name, fn, env, ns)
        if g.kind in (_USER, _PRELUDE):
            arity = self.global_arity(g)
            idx = self.global_fn((g.kind, g.name))
            if arity == 0:
                fb.emit(Op.CAF, idx)
                fb.emit(Op.EVAL)
                return self.c_apply_rest(fb, args, env, ns, tail)
            if len(args) < arity:
                for a in args:
                    self.c_lazy(fb, a, env, ns)
                fb.emit(Op.MKPAP, idx, len(args))
                return self.ret(fb, tail)
            flags = self.strictness.get((g.kind, g.name), ())
            self.c_args(fb, args[:arity], flags, env, ns)
            if len(args) == arity:
                if tail and self.keeps_caller(fb, g, ns):
                    fb.emit(Op.CALL, idx, arity)
                    fb.emit(Op.RET)
                else:
                    fb.emit(Op.TAILCALL if tail else Op.CALL, idx, arity)
                return
            fb.emit(Op.CALL, idx, arity)
            return self.c_apply_rest(fb, args[arity:], env, ns, tail)
        if g.kind == "con":
            self.c_con(fb, g.spec, args, env, ns)
            return self.ret(fb, tail)
        spec = g.spec
        if len(args) < spec.arity or spec.arity == 0:
            self.c_var(fb, fn, env, ns, False, strict=True)
            return self.c_apply_rest(fb, args, env, ns, tail)
        rest = args[spec.arity:]
        if g.kind == "host":
            self.c_args(fb, args[:spec.arity], spec.strictness, env, ns)
            fb.emit(Op.HOST, self.host_ref(spec, fn), spec.arity)
        else:
            done = self.c_builtin(fb, g.name, args[:spec.arity], env, ns, tail and not rest)
            if done:
                return
        if rest:
            return self.c_apply_rest(fb, rest, env, ns, tail)
        return self.ret(fb, tail)

    def keeps_caller(self, fb, g, ns) -> bool:
        """Whether a call in tail position keeps the caller's frame (a CALL and a RET
        instead of a TAILCALL), so that a run that fails in the callee has the call's
        place in the user's source.  Only where that costs at most one frame: from the
        main expression (run once), and from user code into a prelude function that
        can never call user code again (its type has no function in it and no class
        constraint, so by parametricity it calls nothing it is given), so no loop
        through it grows the stack."""
        if ns != _USER:
            return False
        if fb.name == "%main":
            return True
        return g.kind == _PRELUDE and g.name in _leaf_prelude()

    def c_builtin(self, fb, name, args, env, ns, tail) -> bool:
        """Emit a saturated built-in; True when it already returned (tail)."""
        if name in ("and", "or"):
            self.c_strict(fb, args[0], env, ns)
            jf = fb.emit(Op.JUMPF, 0)
            if name == "and":
                self.c_strict(fb, args[1], env, ns, tail)
                if tail:
                    fb.patch_target(jf, len(fb.code))
                    fb.emit(Op.BOOL, 0)
                    fb.emit(Op.RET)
                    return True
                j = fb.emit(Op.JUMP, 0)
                fb.patch_target(jf, len(fb.code))
                fb.emit(Op.BOOL, 0)
            else:
                fb.emit(Op.BOOL, 1)
                if tail:
                    fb.emit(Op.RET)
                    fb.patch_target(jf, len(fb.code))
                    self.c_strict(fb, args[1], env, ns, tail)
                    return True
                j = fb.emit(Op.JUMP, 0)
                fb.patch_target(jf, len(fb.code))
                self.c_strict(fb, args[1], env, ns)
            fb.patch_target(j, len(fb.code))
            return False
        if name == "seq":
            self.c_strict(fb, args[0], env, ns)
            fb.emit(Op.POP)
            self.c_strict(fb, args[1], env, ns, tail)
            return tail
        if name == "cons":
            self.c_lazy(fb, args[1], env, ns)
            self.c_lazy(fb, args[0], env, ns)
            fb.emit(Op.CONS)
            return False
        op = PRIMITIVES[name]
        if op in FUSED:
            fused = self.fusable(name, args, env)
            if fused is not None:
                fb.emit(FUSED[op], *fused)
                return False
        for a in args:
            self.c_strict(fb, a, env, ns)
        fb.emit(op)
        if op in (Op.HEAD, Op.TAIL) and not tail:
            fb.emit(Op.EVAL)
        return False


_leaf_cache: dict = {}


def _leaf_prelude() -> frozenset:
    """Prelude functions whose type holds no function and no constraint (``nth``,
    ``length``, ``fst``): they never call back into user code."""
    checked = typecheck.checked_prelude()
    leaves = _leaf_cache.get(id(checked))
    if leaves is None:
        names = set()
        for name, scheme in (checked.define_types or {}).items():
            text = str(scheme)
            if "=>" not in text and text.count("(->") == 1 and text.startswith("(->"):
                names.add(name)
        leaves = frozenset(names)
        _leaf_cache.clear()
        _leaf_cache[id(checked)] = leaves
    return leaves


class _PreludeImage:
    """Every prelude function compiled once, for programs to copy what they reach."""

    def __init__(self, compiler: "_Compiler"):
        self.functions = compiler.functions
        self.ints = compiler.ints
        self.doubles = compiler.doubles
        self.strings = compiler.strings
        self.fn_index = dict(compiler.fn_index)
        self.key_of = {i: k for k, i in compiler.fn_index.items()}
        # constructor operand -> ConInfo (relocated by the constructor's type and tag)
        self.cons = [c for info in compiler.datatypes for c in info.constructors]
        self.con_infos = dict(compiler.con_infos)
        # per function: (position, kind, image value) of every operand a copy relocates
        self.relocations = [_relocations(f.code) for f in self.functions]
        # the prelude's name resolution, shared by every compilation (it caches)
        self.prelude_scope = _Scope(_PRELUDE, {}, compiler.prelude_defs, None)
        # verified once here, so that programs copying these functions need not be
        from types import SimpleNamespace
        from .program import PRELUDE_LINE, Function, _verify_code
        # the prelude's positions are in prelude.xt, not in any user's file: the line
        # table marks them (PRELUDE_LINE), so that a run's error never shows them
        # against the user's source (programs copy these tables)
        for f in self.functions:
            f.lines = [PRELUDE_LINE | line for line in f.lines]
        funcs = [Function(f.name, f.arity, f.nslots, f.code, f.lines) for f in self.functions]
        arities = [f.arity for f in funcs]
        datatypes = _data_table(compiler.datatypes)
        pools = SimpleNamespace(ints=self.ints, doubles=self.doubles, strings=self.strings,
                                hosts=[], datatypes=datatypes)
        con_arities = [len(c.field_types) for d in datatypes for c in d.constructors]
        self.max_stacks = [_verify_code(pools, f, arities, con_arities) for f in funcs]


_RELOCATED = frozenset(("fn", "int", "dbl", "str", "con"))


def _relocations(code) -> list:
    out = []
    pc, n = 0, len(code)
    while pc < n:
        kinds = _KINDS[code[pc]]
        for t, kind in enumerate(kinds, 1):
            if kind in _RELOCATED:
                out.append((pc + t, kind, code[pc + t]))
        pc += 1 + len(kinds)
    return out


def _data_table(infos) -> list:
    """Program.datatypes for these DataInfos, in order."""
    return [DataType(info.name, info.params,
                     tuple(Constructor(c.name, info.field_type_texts(c),
                                       c.field_names or ("",) * c.arity)
                           for c in info.constructors))
            for info in infos]


class _EmptyModule:
    module = ast.Module((), ast.Lit(0, "Int"))
    result_type_text = "Int"


_image_lock = threading.Lock()
_image_cache: dict = {}


def _prelude_image() -> _PreludeImage:
    checked = typecheck.checked_prelude()
    cached = _image_cache.get("image")             # lock-free once built
    if cached is not None and cached[0] is checked:
        return cached[1]
    with _image_lock:
        cached = _image_cache.get("image")
        if cached is not None and cached[0] is checked:
            return cached[1]
    compiler = _Compiler(_EmptyModule(), None)
    for name in sorted(compiler.prelude_defs):
        compiler.global_fn((_PRELUDE, name))
    compiler.drain()
    image = _PreludeImage(compiler)
    with _image_lock:
        _image_cache["image"] = (checked, image)
    return image


def compile_module(checked, library: Library | None = None, *, fuse: bool = True):
    """Compile a CheckedModule (user defines + result expression) into a Program.

    `fuse=False` skips the fusion rewrite (docs/optimisations.md), so the graph
    allocates every list it names: the collector's tests need that."""
    if library is None:
        from .library import default_library
        library = default_library()
    image = _prelude_image()
    if fuse:
        checked = fusion.fuse(checked, library)     # the reference interpreter never does
    return _Compiler(checked, library, image, image.prelude_scope).compile()


__all__ = ["compile_module", "CompileError"]
