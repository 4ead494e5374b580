"""What a program may call: built-ins, the prelude and a node's host functions.

A ``Library`` is a table of ``FuncSpec``s.  Built-ins are implemented natively by the
engine (and by the reference interpreter); prelude functions are written in exathunk
(``prelude.xt``) and linked into each Program that reaches them; host functions are
Python callables a node registers with a type signature.  Signatures are written as in
the language, with optional class constraints: ``"Num a => (-> a a a)"``,
``"(Eq a, Show b) => (-> a b String)"``.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Optional, Sequence

from .errors import ExathunkError

STRICT, LAZY = True, False


@dataclass(frozen=True)
class FuncSpec:
    """One callable name.  ``strictness[i]`` is STRICT (True) or LAZY for parameter i."""
    name: str
    signature: str
    kind: str                      # "builtin", "prelude" or "host"
    strictness: tuple[bool, ...] = ()
    fn: Optional[Callable] = field(default=None, compare=False, repr=False)
    doc: str = ""

    @property
    def arity(self) -> int:
        return len(self.strictness)


def _b(name, sig, strictness, doc=""):
    return FuncSpec(name, sig, "builtin", tuple(strictness), None, doc)


S, L = STRICT, LAZY

# The engine implements exactly these (aliases share an implementation).
BUILTINS: tuple[FuncSpec, ...] = (
    _b("+", "Num a => (-> a a a)", (S, S), "addition; Int overflow is an error"),
    _b("-", "Num a => (-> a a a)", (S, S), "subtraction; Int overflow is an error"),
    _b("*", "Num a => (-> a a a)", (S, S), "multiplication; Int overflow is an error"),
    _b("/", "Num a => (-> a a a)", (S, S),
       "division: Int truncates toward zero (by zero is an error), Double is IEEE"),
    _b("mod", "(-> Int Int Int)", (S, S), "remainder with the sign of the dividend"),
    _b("%", "(-> Int Int Int)", (S, S), "alias of mod"),
    _b("negate", "Num a => (-> a a)", (S,), "negation; Int overflow is an error"),
    _b("abs", "Num a => (-> a a)", (S,), "absolute value; Int overflow is an error"),
    _b("eq", "Eq a => (-> a a Bool)", (S, S), "equality (lists compare element-wise)"),
    _b("=", "Eq a => (-> a a Bool)", (S, S), "alias of eq"),
    _b("neq", "Eq a => (-> a a Bool)", (S, S), "inequality"),
    _b("/=", "Eq a => (-> a a Bool)", (S, S), "alias of neq"),
    _b("<", "Ord a => (-> a a Bool)", (S, S), "less than (strings by code point)"),
    _b("<=", "Ord a => (-> a a Bool)", (S, S), "less than or equal"),
    _b(">", "Ord a => (-> a a Bool)", (S, S), "greater than"),
    _b(">=", "Ord a => (-> a a Bool)", (S, S), "greater than or equal"),
    _b("and", "(-> Bool Bool Bool)", (S, L), "conjunction, lazy in its second argument"),
    _b("or", "(-> Bool Bool Bool)", (S, L), "disjunction, lazy in its second argument"),
    _b("not", "(-> Bool Bool)", (S,), "negation"),
    _b("xor", "(-> Bool Bool Bool)", (S, S), "exclusive or"),
    _b("len", "(-> String Int)", (S,), "length in code points"),
    _b("concat", "(-> String String String)", (S, S), "string concatenation"),
    _b("++", "(-> String String String)", (S, S), "alias of concat"),
    _b("show", "Show a => (-> a String)", (S,), "the value as source text that reads back"),
    _b("to-double", "(-> Int Double)", (S,), "Int to Double"),
    _b("truncate", "(-> Double Int)", (S,),
       "Double to Int toward zero; NaN, infinities and out-of-range values are errors"),
    _b("error", "(-> String a)", (S,), "raises EvaluationError with the message when forced"),
    _b("bottom", "a", (), "raises EvaluationError when forced"),
    _b("nil", "(List a)", (), "the empty list"),
    _b("cons", "(-> a (List a) (List a))", (L, L), "a list cell, lazy in both fields"),
    _b("head", "(-> (List a) a)", (S,), "first element; head of nil is an error"),
    _b("tail", "(-> (List a) (List a))", (S,), "all but the first; tail of nil is an error"),
    _b("null?", "(-> (List a) Bool)", (S,), "true for the empty list"),
    _b("seq", "(-> a b b)", (S, L), "forces its first argument (to a value), returns its second"),
)


PRELUDE_SIGNATURES: dict[str, str] = {
    "map": "(-> (-> a b) (List a) (List b))",
    "filter": "(-> (-> a Bool) (List a) (List a))",
    "foldl": "(-> (-> b a b) b (List a) b)",
    "foldl-strict": "(-> (-> b a b) b (List a) b)",
    "foldr": "(-> (-> a b b) b (List a) b)",
    "take": "(-> Int (List a) (List a))",
    "drop": "(-> Int (List a) (List a))",
    "iterate": "(-> (-> a a) a (List a))",
    "range": "(-> Int Int (List Int))",
    "length": "(-> (List a) Int)",
    "sum": "Num a => (-> (List a) a)",
    "product": "Num a => (-> (List a) a)",
    "zip-with": "(-> (-> a b c) (List a) (List b) (List c))",
    "append": "(-> (List a) (List a) (List a))",
    "reverse": "(-> (List a) (List a))",
    "nth": "(-> (List a) Int a)",
}

# Names whose implementation depends on the type they are used at, because the runtime
# cannot learn it from a value (the sum of an empty list of Doubles is 0.0).  The
# typechecker records each Var's instantiated type; the compiler and the reference
# interpreter call ``specialise`` to pick the prelude definition.  Where the element
# type is still a variable (inside a user's polymorphic function) the "poly" variant
# starts from the first element, so it is right for every non-empty list and an
# EvaluationError (head of nil) for an empty one.
SPECIALISED: dict[str, dict[str, str]] = {
    "sum": {"Int": "%sum-int", "Double": "%sum-double", "poly": "%sum-poly"},
    "product": {"Int": "%product-int", "Double": "%product-double", "poly": "%product-poly"},
}


def specialise(name: str, elem_type: str | None) -> str:
    """The prelude definition that implements ``name`` at element type ``elem_type``.

    ``elem_type`` is "Int", "Double" or None (unresolved); names that are not
    specialised come back unchanged.
    """
    table = SPECIALISED.get(name)
    if table is None:
        return name
    return table.get(elem_type or "poly", table["poly"])


_prelude_lock = threading.Lock()
_prelude_text: str | None = None


def prelude_source() -> str:
    """The text of prelude.xt (read once, from the installed package)."""
    global _prelude_text
    with _prelude_lock:
        if _prelude_text is None:
            _prelude_text = resources.files(__package__).joinpath("prelude.xt").read_text("utf-8")
        return _prelude_text


_versions = itertools.count(1)


class Library:
    """Built-ins and prelude, plus the host functions a node registers.

    ``version`` changes on every registration, so caches keyed by
    ``(library.id, library.version)`` never serve a stale compilation.
    """

    def __init__(self):
        self._specs: dict[str, FuncSpec] = {s.name: s for s in BUILTINS}
        for name, sig in PRELUDE_SIGNATURES.items():
            self._specs[name] = FuncSpec(name, sig, "prelude", ())
        self.id = next(_versions)
        self.version = 0
        self._lock = threading.Lock()

    def register(self, name: str, signature: str, fn: Callable,
                 strict: bool | Sequence[bool] = True, doc: str = "") -> FuncSpec:
        """Export a Python callable as ``name`` with the given type signature.

        ``strict`` is one flag for every parameter or one flag per parameter: a strict
        argument arrives forced to a Python value (int, float, bool, str, list); a lazy
        one arrives as a zero-argument callable that forces it on demand.
        """
        if not callable(fn):
            raise ExathunkError(f"host function {name!r} is not callable")
        if not name or any(c.isspace() or c in '()";' for c in name):
            raise ExathunkError(f"{name!r} is not a valid function name")
        if name in self._specs and self._specs[name].kind != "host":
            raise ExathunkError(f"{name!r} is a built-in and cannot be replaced")
        from .types import parse_signature, arity_of   # checks the signature now
        arity = arity_of(parse_signature(signature))
        if isinstance(strict, bool):
            flags = (strict,) * arity
        else:
            flags = tuple(bool(s) for s in strict)
            if len(flags) != arity:
                raise ExathunkError(
                    f"{name!r}: {len(flags)} strictness flags for {arity} parameters")
        spec = FuncSpec(name, signature, "host", flags, fn, doc or (fn.__doc__ or "").strip())
        with self._lock:
            self._specs[name] = spec
            self.version += 1
        return spec

    def lookup(self, name: str) -> FuncSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[FuncSpec]:
        return [self._specs[n] for n in self.names()]

    def host_functions(self) -> list[FuncSpec]:
        return [s for s in self.specs() if s.kind == "host"]


_default: Library | None = None


def default_library() -> Library:
    """The shared library of built-ins and prelude (no host functions)."""
    global _default
    if _default is None:
        _default = Library()
    return _default
