"""The reference interpreter: the plain-Python oracle the engine is tested against.

It walks the checked AST (the user's module plus the checked prelude) lazily, with
call-by-need sharing: every argument and let binding is a ``Thunk`` that is updated in
place the first time it is forced (minihaskell's ``r := v``); a thunk that demands
itself while being forced is a black hole and raises ``EvaluationError``.  It is meant
to be read, not to be fast: one small case per construct, one small function per
built-in, and the prelude interpreted from ``prelude.xt`` rather than re-implemented.

Data values are a constructor's ``ConInfo`` and a tuple of field thunks; the typechecker
resolves every constructor (``Var.con``, ``PCon.con``), so nothing here looks one up by
name except a host function's result (``values.Data`` carries only the name).

Deep recursion: the evaluator is an ordinary recursive Python function (tail calls
through ``if``, ``let``, ``case``, saturated closure calls, ``seq``/``and``/``or`` loop
instead of recursing), run in a dedicated thread with a large stack under a raised
recursion limit; walks over whole values (``to_host``, ``_compare``, pattern matching)
use work stacks, so long lists and deep data need no Python depth.  Its own depth counter raises ``LimitExceeded(limit="max_depth")`` long before
Python's limit, and a step counter ``LimitExceeded(limit="max_steps")``, so it can
neither overflow the C stack nor hang.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Callable

from . import ast
from .errors import (EvaluationError, ExathunkError, LimitExceeded, limit_message,
                     no_match_message)
from .library import BUILTINS, Library, specialise
from .values import Data, show_value

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1

DEFAULT_MAX_STEPS = 20_000_000
DEFAULT_MAX_DEPTH = 50_000
# Python frames per unit of our own depth is small (eval -> force -> eval, plus a
# built-in or a host call in between); the margin covers the frames above the run.
_PY_FRAMES_PER_DEPTH = 6
_THREAD_STACK_BYTES = 512 * 1024 * 1024
# Never restore below the driver's own raised limit (driver._RECURSION_LIMIT).
_FLOOR_RECURSION_LIMIT = 5000


# ---- runtime values ------------------------------------------------------------------
# Int, Double, Bool and String are Python int, float, bool and str; lists are NIL or
# Cons cells of thunks; data values are DataValue (a constructor and its field thunks);
# functions are Closure (a lambda or define, maybe partially applied), Prim (a built-in
# or host function, maybe partially applied) or Constructor (a data constructor with
# fields, maybe partially applied).

class _Nil:
    __slots__ = ()

    def __repr__(self):
        return "NIL"


NIL = _Nil()


class Cons:
    __slots__ = ("head", "tail")

    def __init__(self, head: "Thunk", tail: "Thunk"):
        self.head = head
        self.tail = tail


class DataValue:
    """A value of a data type: its constructor (a types.ConInfo) and its field thunks."""
    __slots__ = ("con", "fields")

    def __init__(self, con, fields: tuple):
        self.con = con
        self.fields = fields


class Constructor:
    """A constructor with fields as a curried function, lazy in every field."""
    __slots__ = ("con", "args")

    def __init__(self, con, args=()):
        self.con = con
        self.args = args


class Closure:
    __slots__ = ("params", "body", "env", "args")

    def __init__(self, params, body, env, args=()):
        self.params = params
        self.body = body
        self.env = env
        self.args = args


class Prim:
    __slots__ = ("name", "arity", "args")

    def __init__(self, name, arity, args=()):
        self.name = name
        self.arity = arity
        self.args = args


_UNEVALUATED, _BLACKHOLE, _DONE = 0, 1, 2


class Thunk:
    """A suspended expression in its environment; holds the value once forced."""
    __slots__ = ("expr", "env", "value", "state")

    def __init__(self, expr, env):
        self.expr = expr
        self.env = env
        self.value = None
        self.state = _UNEVALUATED

    @classmethod
    def done(cls, value) -> "Thunk":
        t = cls(None, None)
        t.value = value
        t.state = _DONE
        return t


class _Tail:
    """What a call hands back instead of a value when its body is a tail call."""
    __slots__ = ("expr", "env")

    def __init__(self, expr, env):
        self.expr = expr
        self.env = env


class _Scope:
    """The top level one piece of code sees: the user's module or the prelude.

    ``defines`` maps each top-level name to its (per-run) thunk.  ``is_prelude``
    decides what a name that is not a define means: prelude code sees only the
    prelude and the built-ins, user code also sees host functions.
    """
    __slots__ = ("defines", "is_prelude")

    def __init__(self, is_prelude: bool):
        self.defines: dict[str, Thunk] = {}
        self.is_prelude = is_prelude


_BUILTIN_SPECS = {spec.name: spec for spec in BUILTINS}


def _elem_type_of_fold(var: ast.Var) -> str | None:
    """'Int' / 'Double' when ``sum``/``product`` is used at (-> (List T) T), else None."""
    if var.inst_type is None:
        return None
    from .types import show_type
    text = show_type(var.inst_type)
    for elem in ("Int", "Double"):
        if text == f"(-> (List {elem}) {elem})":
            return elem
    return None


# ---- the interpreter -----------------------------------------------------------------

class _Run:
    """The state of one evaluation: counters, limits, the two top-level scopes and the
    constructors by name (only for turning a host function's ``Data`` into a value)."""

    def __init__(self, library: Library, prelude_module: ast.Module | None,
                 max_steps: int, max_depth: int, constructors: dict | None = None):
        self.library = library
        self.constructors = constructors or {}
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.steps = 0
        self.depth = 0
        self.prelude = _Scope(is_prelude=True)
        if prelude_module is not None:
            self._install_defines(self.prelude, prelude_module.defines)
        self.user = _Scope(is_prelude=False)

    def _install_defines(self, scope: _Scope, defines) -> None:
        for d in defines:
            env = ({}, scope)
            if d.params:
                scope.defines[d.name] = Thunk.done(Closure(d.params, d.body, env))
            else:
                scope.defines[d.name] = Thunk(d.body, env)   # a CAF: shared for the run

    def run(self, module: ast.Module):
        self._install_defines(self.user, module.defines)
        value = self.eval(module.body, ({}, self.user))
        return self.to_host(value)

    # -- forcing ------------------------------------------------------------------

    def force(self, thunk: Thunk):
        if thunk.state == _DONE:
            return thunk.value
        if thunk.state == _BLACKHOLE:
            expr = thunk.expr
            raise EvaluationError("a value depends on itself (infinite loop)",
                                  **_place(expr))
        thunk.state = _BLACKHOLE
        try:
            value = self.eval(thunk.expr, thunk.env)
        except BaseException:
            thunk.state = _UNEVALUATED
            raise
        thunk.value = value
        thunk.state = _DONE
        thunk.expr = thunk.env = None
        return value

    def delay(self, expr, env) -> Thunk:
        """A thunk for ``expr``; a local variable is passed on as its own thunk (shared)."""
        if type(expr) is ast.Lit:
            return Thunk.done(expr.value)
        if type(expr) is ast.Var and expr.con is None:
            local = env[0].get(expr.name)
            if local is not None:
                return local
        return Thunk(expr, env)

    def to_host(self, value):
        """Force a WHNF value to normal form as a host value: a list for a list, a
        values.Data for a data value.  Elements and fields are forced left to right,
        depth first; a stack of the containers being converted stands in for recursion.

        A list's frame is [None, items so far, the cell whose head was handed out last]
        (it starts at a dummy cell whose tail is the list); a data value's frame is
        [the DataValue, fields so far, index of the next field].
        """
        stack: list = []
        while True:
            if value is NIL or type(value) is Cons:          # open a container ...
                stack.append([None, [], Cons(None, Thunk.done(value))])
                self.tick()
            elif type(value) is DataValue:
                stack.append([value, [], 0])
                self.tick()
            elif type(value) in _FUNCTIONS:
                raise EvaluationError("a function cannot be handed back to the host")
            elif not stack:                                  # ... or a plain value is done
                return value
            else:
                stack[-1][1].append(value)
            while True:       # the next element to force, closing the finished containers
                frame = stack[-1]
                holder, out, cursor = frame
                if holder is None:
                    cursor = self.force(cursor.tail)
                    if cursor is not NIL:
                        frame[2] = cursor
                        if len(out) & 0xFFF == 0xFFF:
                            self.tick()
                        value = self.force(cursor.head)
                        break
                    finished = out
                elif cursor < len(holder.fields):
                    frame[2] = cursor + 1
                    value = self.force(holder.fields[cursor])
                    break
                else:
                    finished = Data(holder.con.name, tuple(out))
                stack.pop()
                if not stack:
                    return finished
                stack[-1][1].append(finished)

    def tick(self):
        self.steps += 1
        if self.steps > self.max_steps:
            raise LimitExceeded(limit_message("max_steps", self.max_steps, self.steps),
                                limit="max_steps", value=self.max_steps, used=self.steps)

    # -- evaluation to weak head normal form ---------------------------------------

    def eval(self, expr, env):
        self.depth += 1
        if self.depth > self.max_depth:
            self.depth -= 1
            raise LimitExceeded(limit_message("max_depth", self.max_depth, self.depth + 1),
                                limit="max_depth", value=self.max_depth,
                                used=self.depth + 1, **_place(expr))
        try:
            while True:
                self.steps += 1
                if self.steps > self.max_steps:
                    raise LimitExceeded(limit_message("max_steps", self.max_steps, self.steps),
                                        limit="max_steps", value=self.max_steps,
                                        used=self.steps)
                kind = type(expr)
                if kind is ast.Lit:
                    return expr.value
                if kind is ast.Var:
                    return self.var_value(expr, env)
                if kind is ast.If:
                    cond = self.eval(expr.cond, env)
                    expr = expr.then if cond else expr.orelse
                    continue
                if kind is ast.Let:
                    locals_ = dict(env[0])
                    env = (locals_, env[1])
                    for b in expr.bindings:          # recursive: all see the new env
                        locals_[b.name] = self.delay(b.expr, env) \
                            if type(b.expr) is not ast.Var else Thunk(b.expr, env)
                    expr = expr.body
                    continue
                if kind is ast.Lambda:
                    return Closure(expr.params, expr.body, env)
                if kind is ast.The:
                    expr = expr.expr
                    continue
                if kind is ast.ListLit:
                    value = NIL
                    for item in reversed(expr.items):
                        value = Cons(self.delay(item, env), Thunk.done(value))
                    return value
                if kind is ast.Case:                 # the chosen body in tail position
                    scrutinee = self.delay(expr.scrutinee, env)
                    for alt in expr.alts:
                        bound: dict = {}
                        if self.match(alt.pattern, scrutinee, bound):
                            break
                    else:
                        raise EvaluationError(
                            no_match_message(expr.form, expr.line, expr.column),
                            **_place(expr))
                    if bound:
                        env = ({**env[0], **bound}, env[1])
                    expr = alt.body
                    continue
                if kind is ast.App:
                    result = self.eval_app(expr, env)
                    if type(result) is _Tail:
                        expr, env = result.expr, result.env
                        continue
                    return result
                raise EvaluationError(f"not an expression: {expr!r}")
        finally:
            self.depth -= 1

    def eval_app(self, expr: ast.App, env):
        fn = self.eval(expr.fn, env)
        if type(fn) is Prim and not fn.args and fn.arity == len(expr.args) \
                and fn.name in _BUILTIN_SPECS:
            # A saturated direct call of a built-in: strict arguments are evaluated
            # right here and a lazy last argument (seq, and, or) in tail position.
            # Same meaning as making thunks and forcing them; fewer Python frames.
            return self.call_builtin_direct(fn.name, expr, env)
        args = tuple(self.delay(a, env) for a in expr.args)
        return self.apply(fn, args, expr)

    def apply(self, fn, args: tuple, site):
        """Apply a function value to argument thunks: a value, or a _Tail to continue."""
        while True:
            self.tick()
            if type(fn) is Closure:
                have = fn.args + args
                n = len(fn.params)
                if len(have) < n:
                    return Closure(fn.params, fn.body, fn.env, have)
                locals_ = dict(fn.env[0])
                locals_.update(zip(fn.params, have[:n]))
                env = (locals_, fn.env[1])
                rest = have[n:]
                if not rest:
                    return _Tail(fn.body, env)
                fn = self.eval(fn.body, env)
                args = rest
            elif type(fn) is Prim:
                have = fn.args + args
                if len(have) < fn.arity:
                    return Prim(fn.name, fn.arity, have)
                result = self.call_prim(fn.name, have[:fn.arity], site)
                rest = have[fn.arity:]
                if not rest:
                    return result
                fn = self.eval(result.expr, result.env) if type(result) is _Tail else result
                args = rest
            elif type(fn) is Constructor:
                have = fn.args + args
                n = fn.con.arity
                if len(have) < n:
                    return Constructor(fn.con, have)
                fn, args = DataValue(fn.con, have[:n]), have[n:]
                if not args:
                    return fn
            else:
                raise EvaluationError(f"cannot apply a non-function value {fn!r}",
                                      **_place(site))

    # -- case ----------------------------------------------------------------------

    def match(self, pattern, thunk: Thunk, bound: dict) -> bool:
        """Whether the value in ``thunk`` matches ``pattern``, binding its variables in
        ``bound``.  Left to right, depth first: a literal or constructor pattern forces
        its value to WHNF, a variable or ``_`` forces nothing (a variable is bound to
        the thunk itself, so the value stays shared)."""
        work = [(pattern, thunk)]              # still to match, the next one on top
        while work:
            pattern, thunk = work.pop()
            kind = type(pattern)
            if kind is ast.PVar:
                bound[pattern.name] = thunk
            elif kind is ast.PLit:
                if not _equal(self, self.force(thunk), pattern.lit.value):
                    return False
            elif kind is ast.PCon:
                value = self.force(thunk)
                if pattern.con is not None:
                    if value.con.tag != pattern.con.tag:
                        return False
                    fields = value.fields
                elif pattern.name == "nil":
                    if value is not NIL:
                        return False
                    fields = ()
                else:                                # cons
                    if value is NIL:
                        return False
                    fields = (value.head, value.tail)
                work.extend(zip(reversed(pattern.args), reversed(fields)))
            elif kind is not ast.PWild:
                raise EvaluationError(f"not a pattern: {pattern!r}")
        return True

    # -- names ---------------------------------------------------------------------

    def var_value(self, var: ast.Var, env):
        if var.con is not None:                     # a data constructor
            if var.con.arity == 0:
                return DataValue(var.con, ())
            return Constructor(var.con)
        local = env[0].get(var.name)
        if local is not None:
            return self.force(local)
        scope = env[1]
        defined = scope.defines.get(var.name)
        if defined is not None:
            return self.force(defined)
        return self.library_value(var, scope)

    def library_value(self, var: ast.Var, scope: _Scope):
        name = var.name
        if not scope.is_prelude:
            spec = self.library.lookup(name)
            if spec is not None and spec.kind == "host":
                if spec.arity == 0:
                    return self.call_host(spec, (), var)
                return Prim(name, spec.arity)
        builtin = _BUILTIN_SPECS.get(name)
        if builtin is not None:
            if name == "nil":
                return NIL
            if name == "bottom":
                raise EvaluationError("bottom was forced", **_place(var))
            return Prim(name, builtin.arity)
        target = specialise(name, _elem_type_of_fold(var))
        defined = self.prelude.defines.get(target)
        if defined is not None:
            return self.force(defined)
        raise EvaluationError(f"unknown name {name!r}", **_place(var))

    # -- built-ins and host functions ------------------------------------------------

    def call_prim(self, name: str, args: tuple, site):
        spec = _BUILTIN_SPECS.get(name)
        if spec is None:
            return self.call_host(self.library.lookup(name), args, site)
        values = [self.force(a) if strict else a for a, strict in zip(args, spec.strictness)]
        result = _IMPLS[name](self, values, site)
        if type(result) is Thunk:          # the lazy argument of seq, and, or
            return self.force(result)
        return result

    def call_builtin_direct(self, name: str, expr: ast.App, env):
        spec = _BUILTIN_SPECS[name]
        values = [self.eval(a, env) if strict else _Tail(a, env)
                  for a, strict in zip(expr.args, spec.strictness)]
        if name == "cons":
            return Cons(self.delay(expr.args[0], env), self.delay(expr.args[1], env))
        result = _IMPLS[name](self, values, expr)
        return result     # a value, or the lazy argument as a _Tail: evaluated in place

    def call_host(self, spec, args: tuple, site):
        def lazy(thunk):
            return lambda: self.to_host(self.force(thunk))
        host_args = [self.to_host(self.force(a)) if strict else lazy(a)
                     for a, strict in zip(args, spec.strictness)]
        try:
            result = spec.fn(*host_args)
        except ExathunkError:
            raise
        except Exception as exc:   # a host function's failure is the program's error
            raise EvaluationError(f"host function {spec.name!r} failed: "
                                  f"{type(exc).__name__}: {exc}",
                                  **_place(site)) from exc
        return self.from_host(result, spec.name, site)

    def from_host(self, value, name: str, site):
        """A host function's result as a runtime value: a Python list is a list, a
        values.Data a data value of the constructor of that name."""
        def fail(why):
            return EvaluationError(f"host function {name!r} {why}",
                                   **_place(site))
        if isinstance(value, (bool, int, float, str)):
            if type(value) is int and not INT_MIN <= value <= INT_MAX:
                raise fail("returned an Int out of range")
            return value
        if isinstance(value, list):
            out = NIL
            for item in reversed(value):
                out = Cons(Thunk.done(self.from_host(item, name, site)), Thunk.done(out))
            return out
        if isinstance(value, Data):
            con = self.constructors.get(value.constructor)
            if con is None:
                raise fail(f"returned an unknown constructor {value.constructor!r}")
            if len(value.fields) != con.arity:
                raise fail(f"returned {value.constructor} with {len(value.fields)} "
                           f"fields; it has {con.arity}")
            return DataValue(con, tuple(Thunk.done(self.from_host(f, name, site))
                                        for f in value.fields))
        if isinstance(value, tuple):
            raise fail("returned a tuple; a list is a Python list")
        raise fail(f"returned a {type(value).__name__}, not an exathunk value")


_FUNCTIONS = (Closure, Prim, Constructor)


# ---- the built-ins, one small function each ---------------------------------------
# Each takes the run, the argument list (forced values for strict parameters, the
# thunk or _Tail for lazy ones) and the call site for error positions.

_prelude_nodes: dict = {}


def _place(node) -> dict:
    """line= and column= of an error at ``node``: none for a node of the prelude (its
    positions are prelude.xt's, never to be shown against the user's file)."""
    if node is None:
        return {"line": None, "column": None}
    from .typecheck import checked_prelude
    module = checked_prelude().module
    ids = _prelude_nodes.get(id(module))
    if ids is None:
        ids = set()
        todo = [module]
        while todo:
            n = todo.pop()
            if id(n) in ids:
                continue
            ids.add(id(n))
            for f in getattr(n, "__dataclass_fields__", ()):
                v = getattr(n, f, None)
                items = v if isinstance(v, (tuple, list)) else (v,)
                todo.extend(x for x in items if hasattr(x, "__dataclass_fields__"))
        _prelude_nodes.clear()
        _prelude_nodes[id(module)] = ids
    if id(node) in ids:
        return {"line": None, "column": None}
    return {"line": getattr(node, "line", None), "column": getattr(node, "column", None)}


def _fail(message, site):
    return EvaluationError(message, **_place(site))


def _checked(n: int, site, op: str) -> int:
    if not INT_MIN <= n <= INT_MAX:
        raise _fail(f"Int overflow in {op}", site)
    return n


def _is_int(v) -> bool:
    return type(v) is int


def _add(run, a, site):
    x, y = a
    return _checked(x + y, site, "+") if _is_int(x) else x + y


def _sub(run, a, site):
    x, y = a
    return _checked(x - y, site, "-") if _is_int(x) else x - y


def _mul(run, a, site):
    x, y = a
    return _checked(x * y, site, "*") if _is_int(x) else x * y


def _div(run, a, site):
    x, y = a
    if _is_int(x):
        if y == 0:
            raise _fail("division by zero", site)
        q = abs(x) // abs(y)
        return _checked(-q if (x < 0) != (y < 0) else q, site, "/")
    if y == 0.0:       # IEEE: Python raises where the hardware gives inf or nan
        if math.isnan(x) or x == 0.0:
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(run, a, site):
    x, y = a
    if y == 0:
        raise _fail("division by zero", site)
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def _negate(run, a, site):
    x, = a
    return _checked(-x, site, "negate") if _is_int(x) else -x


def _abs(run, a, site):
    x, = a
    return _checked(abs(x), site, "abs") if _is_int(x) else abs(x)


def _compare(run, x, y):
    """Compare two WHNF values of one type: -1, 0 or 1, or None if unordered (a NaN).

    Lists lexicographically (nil first), data by constructor tag and then fields, the
    rest as Python compares them (Int; Double by IEEE; String by code point; Bool false
    first).  Left to right, depth first, forcing only up to the first difference; the
    pairs still to compare wait on a stack (next on top) instead of in Python frames.
    """
    pending: list = []
    while True:
        run.tick()
        if x is NIL or type(x) is Cons:
            if x is NIL or y is NIL:
                if x is not y:
                    return -1 if x is NIL else 1
            else:
                pending.append((x.tail, y.tail))
                pending.append((x.head, y.head))
        elif type(x) is DataValue:
            if x.con.tag != y.con.tag:
                return -1 if x.con.tag < y.con.tag else 1
            pending.extend(zip(reversed(x.fields), reversed(y.fields)))
        elif x != y:
            if x < y:
                return -1
            if x > y:
                return 1
            return None                              # a NaN: neither equal nor ordered
        if not pending:
            return 0
        a, b = pending.pop()
        x, y = run.force(a), run.force(b)


def _equal(run, x, y) -> bool:
    return _compare(run, x, y) == 0     # IEEE for Doubles: nan /= nan, 0.0 = -0.0


def _eq(run, a, site):
    return _equal(run, a[0], a[1])


def _neq(run, a, site):
    return not _equal(run, a[0], a[1])


def _lt(run, a, site):
    c = _compare(run, a[0], a[1])
    return c is not None and c < 0


def _le(run, a, site):
    c = _compare(run, a[0], a[1])
    return c is not None and c <= 0


def _gt(run, a, site):
    c = _compare(run, a[0], a[1])
    return c is not None and c > 0


def _ge(run, a, site):
    c = _compare(run, a[0], a[1])
    return c is not None and c >= 0


def _and(run, a, site):
    return a[1] if a[0] else False


def _or(run, a, site):
    return True if a[0] else a[1]


def _not(run, a, site):
    return not a[0]


def _xor(run, a, site):
    return a[0] != a[1]


def _len(run, a, site):
    return len(a[0])


def _concat(run, a, site):
    return a[0] + a[1]


def _show(run, a, site):
    return show_value(run.to_host(a[0]))


def _to_double(run, a, site):
    return float(a[0])


def _truncate(run, a, site):
    x, = a
    if math.isnan(x) or math.isinf(x):
        raise _fail(f"truncate of {show_value(x)}", site)
    n = int(x)
    if not INT_MIN <= n <= INT_MAX:
        raise _fail(f"truncate of {show_value(x)}: outside 64 bits", site)
    return n


def _error(run, a, site):
    raise _fail(a[0], site)


def _cons(run, a, site):
    return Cons(a[0], a[1])


def _head(run, a, site):
    if a[0] is NIL:
        raise _fail("head of an empty list", site)
    return run.force(a[0].head)


def _tail(run, a, site):
    if a[0] is NIL:
        raise _fail("tail of an empty list", site)
    return run.force(a[0].tail)


def _null(run, a, site):
    return a[0] is NIL


def _seq(run, a, site):
    return a[1]


def _substring(run, a, site):
    s, start, end = a
    start = min(max(start, 0), len(s))
    end = min(max(end, start), len(s))
    return s[start:end]


def _split(run, a, site):
    sep, s = a
    if not sep:
        raise _fail("split: the separator is empty", site)
    out = NIL
    for piece in reversed(s.split(sep)):
        out = Cons(Thunk.done(piece), Thunk.done(out))
    return out


def _join(run, a, site):
    sep, xs = a
    return sep.join(run.to_host(xs))


def _chars(run, a, site):
    out = NIL
    for ch in reversed(a[0]):
        out = Cons(Thunk.done(ch), Thunk.done(out))
    return out


def _is_int_text(s: str) -> bool:
    body = s[1:] if s.startswith("-") else s
    return (body != "" and all("0" <= c <= "9" for c in body)
            and INT_MIN <= int(s) <= INT_MAX)


def _int_p(run, a, site):
    return _is_int_text(a[0])


def _parse_int(run, a, site):
    if not _is_int_text(a[0]):
        raise _fail(f"not an Int: {show_value(a[0])}", site)
    return int(a[0])


_IMPLS: dict[str, Callable] = {
    "+": _add, "-": _sub, "*": _mul, "/": _div, "mod": _mod, "%": _mod,
    "negate": _negate, "abs": _abs,
    "eq": _eq, "=": _eq, "neq": _neq, "/=": _neq,
    "<": _lt, "<=": _le, ">": _gt, ">=": _ge,
    "and": _and, "or": _or, "not": _not, "xor": _xor,
    "len": _len, "concat": _concat, "++": _concat, "show": _show,
    "to-double": _to_double, "truncate": _truncate, "error": _error,
    "cons": _cons, "head": _head, "tail": _tail, "null?": _null, "seq": _seq,
    "substring": _substring, "split": _split, "join": _join, "chars": _chars,
    "%int?": _int_p, "%parse-int": _parse_int,
}
assert set(_IMPLS) | {"nil", "bottom"} == set(_BUILTIN_SPECS), "every built-in implemented"


# ---- entry point -----------------------------------------------------------------------

_limit_lock = threading.Lock()
_active_runs = 0
_saved_recursion_limit = 0


def evaluate(checked, library: Library | None = None, max_steps: int | None = None,
             max_depth: int | None = None):
    """Evaluate a checked module (``typecheck.check_module``'s result) to a host value.

    Raises EvaluationError for a failed run and LimitExceeded(limit="max_steps" or
    "max_depth") when a limit is passed.
    """
    from .library import default_library
    from .typecheck import checked_prelude
    module = checked.module if hasattr(checked, "module") else checked
    library = library or default_library()
    steps = DEFAULT_MAX_STEPS if max_steps is None else int(max_steps)
    depth = DEFAULT_MAX_DEPTH if max_depth is None else int(max_depth)
    prelude_module = checked_prelude().module
    run = _Run(library, prelude_module, steps, depth,
               getattr(checked, "constructors", None))
    return _in_big_thread(lambda: run.run(module), depth)


def evaluate_module(module: ast.Module, library: Library | None = None,
                    max_steps: int | None = None, max_depth: int | None = None,
                    prelude: ast.Module | None = None, constructors: dict | None = None):
    """Evaluate a bare (possibly hand-built) module; the prelude only if given.
    ``constructors`` (name -> types.ConInfo) is needed only by host functions that
    return data values."""
    from .library import default_library
    steps = DEFAULT_MAX_STEPS if max_steps is None else int(max_steps)
    depth = DEFAULT_MAX_DEPTH if max_depth is None else int(max_depth)
    run = _Run(library or default_library(), prelude, steps, depth, constructors)
    return _in_big_thread(lambda: run.run(module), depth)


def _in_big_thread(work: Callable, max_depth: int):
    """Run ``work`` in a thread with a big stack and a recursion limit above max_depth."""
    global _active_runs, _saved_recursion_limit
    needed = max_depth * _PY_FRAMES_PER_DEPTH + 2000
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as exc:   # handed to the caller's thread below
            outcome["error"] = exc

    with _limit_lock:
        if _active_runs == 0:
            _saved_recursion_limit = sys.getrecursionlimit()
        _active_runs += 1
        if sys.getrecursionlimit() < needed:
            sys.setrecursionlimit(needed)
        old_size = threading.stack_size()
        threading.stack_size(_THREAD_STACK_BYTES)
        try:
            worker = threading.Thread(target=target, name="exathunk-reference", daemon=True)
            worker.start()
        finally:
            threading.stack_size(old_size)
    try:
        worker.join()
    finally:
        with _limit_lock:
            _active_runs -= 1
            if _active_runs == 0:
                sys.setrecursionlimit(max(_saved_recursion_limit, _FLOOR_RECURSION_LIMIT))
    if "error" in outcome:
        exc = outcome["error"]
        if isinstance(exc, RecursionError):
            raise LimitExceeded("evaluation nested too deeply for the reference "
                                "interpreter", limit="max_depth") from None
        raise exc
    return outcome["value"]
