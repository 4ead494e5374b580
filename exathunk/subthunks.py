"""Sub-thunks: the parts of a program that are evaluated on other nodes.

Owns three things, each small:

- The *runner* of a run: whoever runs a program may give it one (``using(runner)``, a
  thread-local, since a run and its host calls stay on one thread).  A runner has one
  method, ``submit(source) -> Future`` (``.result()`` gives the Python value or raises
  the ExathunkError), and evaluates a closed sub-program somewhere else: a worker told
  by its broker to call it back (``CallbackRunner``), or the Dask backend.  Without a
  runner every sub-thunk is evaluated in place, so a program means the same everywhere.
- The host functions behind the forms that make sub-thunks: ``(par-map f xs)`` (one
  sub-thunk per element, all in flight at once) and ``(par e)`` (one; a *spark*: the
  closed ``par`` expressions of the program's result expression, outside any function,
  all start when the run starts, as GHC's ``par`` sparks them, and each is awaited
  where it is needed), and the stubs of the host functions a node does not offer
  itself but its caller delegates to it.
- ``desugar``: the pass between parser and typechecker that turns ``(par-map f xs)``
  and ``(par e)`` whose function or expression is *closed* (it names no local variable)
  into calls of those host functions, with the closed sub-program's text as a template;
  one that is not closed stays a local ``map`` / identity, with a warning saying why.

A sub-program is the program's own declarations (defines, data types, classes,
instances) followed by one expression: ``(f v)`` where ``v`` is the element's value as
a literal, or the closed ``e``.  Its text is canonical (pretty-printed), so equal
sub-computations have equal texts and digests: a cache keyed by them computes each once.
Values travel as literals: a function or a lazy infinite structure cannot be an element
of a par-map (the run fails with an EvaluationError saying so).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from concurrent.futures import Future

from . import ast
from .errors import EvaluationError, ExathunkError, LimitExceeded

# Where the element's literal goes in a par-map template: a character no pretty-printed
# program contains (string literals escape control characters).
HOLE = "\x00"

_local = threading.local()


# ---- the runner of the current run -----------------------------------------------------

def current():
    """The runner of the run on this thread, or None (sub-thunks run in place)."""
    return getattr(_local, "runner", None)


@contextlib.contextmanager
def using(runner):
    """Run the body with ``runner`` evaluating this thread's sub-thunks."""
    previous = getattr(_local, "runner", None)
    _local.runner = runner
    try:
        yield runner
    finally:
        _local.runner = previous


class CallbackRunner:
    """Sub-thunks sent back to the node that asked for this run (its broker), as plain
    ``submitEvalRequest`` calls with source text: the broker routes, checks and caches
    them like any request.  ``parent`` (the request id) lets the broker count them."""

    def __init__(self, client, parent: str | None = None, timeout_ms: int | None = None):
        self.client = client
        self.parent = parent
        self.timeout_ms = timeout_ms
        self.submitted = 0
        # Set by the server: a context in which the run gives back its evaluation slot,
        # so that a node whose runs all wait on sub-thunks can still compute them.
        self.pause = contextlib.nullcontext

    def wait(self, futures) -> list:
        with self.pause():
            return [f.result() for f in futures]

    def submit(self, source: str) -> Future:
        self.submitted += 1
        limits = {"timeout_ms": self.timeout_ms} if self.timeout_ms else {}
        if self.parent:
            limits["request_id"] = f"{self.parent}/sub{self.submitted}"
        return self.client.submit(source, **limits)


# ---- values as literals ------------------------------------------------------------------

def value_to_source(value) -> str:
    """A host value (int, float, bool, str, list, exathunk.Data) as a literal that
    evaluates to it; iterative.  Anything else is an EvaluationError."""
    from .values import Data, show_double, show_string
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is _Close:                 # punctuation the walk itself pushed
            out.append(v)
            continue
        if t is bool:
            out.append("true" if v else "false")
        elif t is int:
            out.append(str(v))
        elif t is float:
            out.append("nan" if math.isnan(v) else show_double(v))
        elif t is str:
            out.append(show_string(v))
        elif t is list:
            if not v:
                out.append("nil")
                continue
            out.append("(list")
            stack.append(_CLOSE)
            for item in reversed(v):
                stack.append(item)
                stack.append(_SPACE)
        elif isinstance(v, Data):
            out.append("(" + v.constructor)
            stack.append(_CLOSE)
            for item in reversed(v.fields):
                stack.append(item)
                stack.append(_SPACE)
        else:
            raise EvaluationError(f"a sub-thunk's argument must be a value (a number, "
                                  f"string, Bool, list or data value), not "
                                  f"{t.__name__}")
    return "".join(out)


class _Close(str):
    pass


_CLOSE, _SPACE = _Close(")"), _Close(" ")


# ---- the host functions ------------------------------------------------------------------

def _await(runner, futures, sources=()) -> list:
    """The futures' values, in order; a runner may wait in its own way (giving back its
    node's evaluation slot, or seceding from a Dask worker's thread pool).  A sub-thunk's
    error comes back as the same class, its message naming the sub-thunk, and without
    the sub-program's line and column (they are not places in this program)."""
    wait = getattr(runner, "wait", None)
    try:
        if wait is not None:
            return wait(futures)
        return [f.result() for f in futures]
    except ExathunkError as err:
        where = ""
        for src, f in zip(sources, futures):
            if f.done() and not f.cancelled() and f.exception() is err:
                where = src.rsplit("\n", 1)[-1]
                break
        raise _elsewhere(err, where) from None


def _elsewhere(err, where: str):
    text = where if len(where) <= 80 else where[:77] + "..."
    message = f"{err.message} (in the sub-thunk {text})" if text else err.message
    if isinstance(err, LimitExceeded):
        new = LimitExceeded(message, limit=err.limit)
    else:
        try:
            new = type(err)(message)
        except TypeError:
            new = EvaluationError(message)
    new.elsewhere = True          # the engine hands it on as it is
    return new


def par_map_host(template: str, xs: list, local):
    """``%par-map``: one sub-thunk per element, all submitted before any is awaited."""
    runner = current()
    if runner is None or not xs or not template:
        return local()
    sources = [template.replace(HOLE, value_to_source(x)) for x in xs]
    return _await(runner, [runner.submit(src) for src in sources], sources)


def par_host(template: str, local):
    """``%par``: the closed expression as one sub-thunk (started already, if the
    program sparked it)."""
    runner = current()
    if runner is None or not template:
        return local()
    sparked = getattr(runner, "sparks", None)
    future = sparked.pop(template, None) if sparked else None
    if future is None:
        future = runner.submit(template)
    return _await(runner, [future], [template])[0]


def sparks_host(templates: list) -> bool:
    """``%sparks``: start the program's sparks (its closed ``par`` expressions outside
    any function) at once; each ``par`` then takes its started sub-thunk."""
    runner = current()
    if runner is not None:
        sparked = getattr(runner, "sparks", None)
        if sparked is None:
            try:
                sparked = runner.sparks = {}
            except AttributeError:
                return True                # a runner that keeps no sparks
        for t in templates:
            if t not in sparked:
                sparked[t] = runner.submit(t)
    return True


def delegated_stub(name: str, signature: str, call_text: str):
    """A host function this node does not offer, delegated by its caller: each call is
    a sub-thunk ``(call_text arg ...)`` evaluated where it is offered."""
    def stub(*args):
        runner = current()
        if runner is None:
            raise EvaluationError(f"{name} is not offered by this node and the run has "
                                  "no caller to ask for it")
        parts = [call_text] + [value_to_source(a) for a in args]
        source = "(" + " ".join(parts) + ")"
        return _await(runner, [runner.submit(source)], [source])[0]
    stub.__name__ = f"delegated {name}"
    stub.__doc__ = f"{name} :: {signature}, computed by another node"
    return stub


# Registered in every Library (library.py): name -> (signature, strictness, function).
HOST_FUNCTIONS = {
    "%par-map": ("(-> String (List a) (List b) (List b))", (True, True, False),
                 par_map_host),
    "%par": ("(-> String a a)", (True, False), par_host),
    "%sparks": ("(-> (List String) Bool)", (True,), sparks_host),
}


# ---- the desugaring pass -----------------------------------------------------------------

# Where a source names par or par-map at all (a C-speed scan: most programs do not).
_MENTION = re.compile(r"(?:^|[\s(])par(?:-map)?(?=[\s()]|$)")

FORMS = ("par-map", "par")


def desugar(module: ast.Module, source: str | None = None):
    """``module`` with every ``(par-map f xs)`` and ``(par e)`` as a call of ``%par-map``
    / ``%par``, and the warnings (message, line, column) for those that must run here.

    A closed function or expression gets its sub-program's text as a template; one that
    names a local variable gets none (it runs here, with a warning).  Either way the list
    and its elements, or the value, are forced in full, so that a program means the same
    wherever its sub-thunks run.  ``par-map`` and ``par`` are forms: used otherwise
    (``(map par xs)``, ``(par-map f)``) they are a ParseError, unless the program
    defines the name itself.
    """
    if source is not None and _MENTION.search(source) is None:
        return module, []
    taken = {d.name for d in module.defines}
    if all(f in taken for f in FORMS):
        return module, []
    rewriter = _Rewriter(module, frozenset(f for f in FORMS if f not in taken))
    return rewriter.run(), rewriter.warnings


class _Rewriter:
    def __init__(self, module: ast.Module, forms: frozenset):
        self.module = module
        self.forms = forms
        self.sparks: list = []         # templates of closed pars outside any function
        self.collect = False
        self.warnings: list = []
        self.fresh = 0
        self._prefix = None

    def prefix(self) -> str:
        """The sub-programs' declarations: every top-level form but the result."""
        if self._prefix is None:
            from .pretty import to_source
            m = self.module
            forms = list(m.datas) + list(m.classes) + list(m.instances) + list(m.defines)
            forms.sort(key=lambda f: (f.line, f.column))
            self._prefix = "".join(to_source(f) + "\n" for f in forms)
        return self._prefix

    def run(self) -> ast.Module:
        import dataclasses
        m = self.module
        defines = tuple(dataclasses.replace(d, body=self.expr(d.body, frozenset(
            d.params or ()))) for d in m.defines)
        instances = tuple(self.instance(i) for i in m.instances)
        self.collect = True
        body = self.expr(m.body, frozenset())
        self.collect = False
        if self.sparks:
            # (seq (%sparks (list t ...)) body): started before the body is evaluated.
            lits = tuple(_lit(t, m.body) for t in dict.fromkeys(self.sparks))
            start = ast.App(_var("%sparks", m.body),
                            (ast.ListLit(lits, m.body.line, m.body.column),),
                            m.body.line, m.body.column)
            body = ast.App(_var("seq", m.body), (start, body), m.body.line, m.body.column)
        return dataclasses.replace(m, defines=defines, instances=instances, body=body)

    def instance(self, inst):
        import dataclasses
        new = tuple(dataclasses.replace(d, body=self.expr(d.body, frozenset(d.params or ())))
                    for d in inst.defines)
        return dataclasses.replace(inst, defines=new)

    # The expression walk is recursive: desugar runs only on programs that name par or
    # par-map, and the parser bounds the nesting depth of every tree.
    def expr(self, e, bound: frozenset):
        import dataclasses
        cls = e.__class__
        if cls is ast.Var:
            if e.name in self.forms and e.name not in bound:
                raise self.misuse(e.name, e)
            return e
        if cls is ast.App:
            fn = e.fn
            if fn.__class__ is ast.Var and fn.name in self.forms and fn.name not in bound:
                if fn.name == "par-map" and len(e.args) == 2:
                    return self.par_map(e, bound)
                if fn.name == "par" and len(e.args) == 1:
                    return self.par(e, bound)
                raise self.misuse(fn.name, e)
            return dataclasses.replace(e, fn=self.expr(e.fn, bound),
                                       args=tuple(self.expr(a, bound) for a in e.args))
        if cls is ast.If:
            return dataclasses.replace(e, cond=self.expr(e.cond, bound),
                                       then=self.expr(e.then, bound),
                                       orelse=self.expr(e.orelse, bound))
        if cls is ast.Lambda:
            collect, self.collect = self.collect, False
            try:
                return dataclasses.replace(e, body=self.expr(e.body, bound | set(e.params)))
            finally:
                self.collect = collect
        if cls is ast.Let:
            inner = bound | {b.name for b in e.bindings}
            return dataclasses.replace(
                e, bindings=tuple(dataclasses.replace(b, expr=self.expr(b.expr, inner))
                                  for b in e.bindings),
                body=self.expr(e.body, inner))
        if cls is ast.The:
            return dataclasses.replace(e, expr=self.expr(e.expr, bound))
        if cls is ast.ListLit:
            return dataclasses.replace(e, items=tuple(self.expr(i, bound) for i in e.items))
        if cls is ast.Case:
            from .typecheck import pattern_vars
            return dataclasses.replace(
                e, scrutinee=self.expr(e.scrutinee, bound),
                alts=tuple(dataclasses.replace(a, body=self.expr(
                    a.body, bound | set(pattern_vars(a.pattern, [])))) for a in e.alts))
        return e

    @staticmethod
    def misuse(name: str, at):
        from .errors import ParseError
        shape = "(par-map f xs)" if name == "par-map" else "(par e)"
        return ParseError(f"{name} is a form, written {shape}: it cannot be passed, "
                          "or applied to other arguments", at.line, at.column)

    def template(self, form: str, part, text_of, e, bound) -> str:
        """The sub-program text for a closed ``part`` of a par/par-map (``text_of``
        makes its expression from the part's source), or "" with a warning when the
        part names a local variable."""
        from .typecheck import free_names
        used = sorted(free_names(part, bound)) if bound else []
        if used:
            what = "function" if form == "par-map" else "expression"
            self.warnings.append((f"{form} runs here: its {what} uses the local variable "
                                  f"{used[0]!r} (a sub-thunk must be closed)",
                                  e.line, e.column))
            return ""
        from .pretty import to_source
        return self.prefix() + text_of(to_source(part))

    def par_map(self, e, bound):
        f, xs = e.args
        xs = self.expr(xs, bound)
        f_local = self.expr(f, bound)
        template = self.template("par-map", f, lambda text: f"({text} {HOLE})", e, bound)
        self.fresh += 1
        name = f"%par-xs-{self.fresh}"
        ref = _var(name, e)
        call = ast.App(_var("%par-map", e),
                       (_lit(template, e), ref, ast.App(_var("map", e), (f_local, ref),
                                                        e.line, e.column)),
                       e.line, e.column)
        return ast.Let((ast.Binding(name, xs, e.line, e.column),), call, e.line, e.column)

    def par(self, e, bound):
        (inner,) = e.args
        local = self.expr(inner, bound)
        template = self.template("par", inner, lambda text: text, e, bound)
        if template and self.collect:
            self.sparks.append(template)
        return ast.App(_var("%par", e), (_lit(template, e), local), e.line, e.column)


def _var(name: str, at) -> ast.Var:
    return ast.Var(name, at.line, at.column)


def _lit(text: str, at) -> ast.Lit:
    return ast.Lit(text, "String", at.line, at.column)
