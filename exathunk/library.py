"""What a program may call: built-ins, the prelude and what a node offers.

A ``Library`` is a table of ``FuncSpec``s.  Built-ins are implemented natively by the
engine (and by the reference interpreter); prelude functions are written in exathunk
(``prelude.xt``) and linked into each Program that reaches them; host functions are
Python callables a node registers with a type signature.  Signatures are written as in
the language, with optional class constraints: ``"Num a => (-> a a a)"``,
``"(Eq a, Show b) => (-> a b String)"``, and may name the prelude's and the node's data
types and classes.

A node also offers typed contracts beyond functions: data types
(``declare_data("(data Point (Pt (px Double) (py Double)))")``), classes
(``declare_class("(class (Hashable a) (hash (-> a Int)))")``) and instances of them
implemented in Python (``register_instance("Hashable", "String", hash=fn)``).  A
program compiled against the library may use them as if it had declared them; an
instance's methods become host functions named ``hash@Hashable String``, which is how
a program's bytecode refers to them and how a broker routes it.
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
    _b("substring", "(-> String Int Int String)", (S, S, S),
       "(substring s start end): the code points from start up to end, both clamped to "
       "the string"),
    _b("split", "(-> String String (List String))", (S, S),
       "(split sep s): the pieces of s between occurrences of sep (sep must not be empty)"),
    _b("join", "(-> String (List String) String)", (S, S),
       "(join sep xs): the strings of xs with sep between them"),
    _b("chars", "(-> String (List String))", (S,),
       "the string's code points, each a one-character string"),
    _b("%int?", "(-> String Bool)", (S,),
       "whether the string is an Int literal: -?[0-9]+ within 64 bits"),
    _b("%parse-int", "(-> String Int)", (S,),
       "the Int a string spells (an error unless %int? holds)"),
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
    "pair": "(-> a b (Pair a b))",
    "fst": "(-> (Pair a b) a)",
    "snd": "(-> (Pair a b) b)",
    "maybe": "(-> b (-> a b) (Maybe a) b)",
    "from-maybe": "(-> a (Maybe a) a)",
    "either": "(-> (-> a c) (-> b c) (Either a b) c)",
    "zip": "(-> (List a) (List b) (List (Pair a b)))",
    "lookup": "Eq a => (-> a (List (Pair a b)) (Maybe b))",
    "min": "Ord a => (-> a a a)",
    "max": "Ord a => (-> a a a)",
    "string-of": "(-> (List String) String)",
    "string->int": "(-> String (Maybe Int))",
    "int->string": "(-> Int String)",
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


@dataclass(frozen=True)
class InstanceSpec:
    """An instance a node implements in Python: class ``class_name`` for the type
    ``type_text`` (head ``head``, parameters ``params``); ``methods`` maps each method
    the node implements to its host FuncSpec (the others take the class's default)."""
    class_name: str
    type_text: str
    head: str
    params: tuple
    methods: dict = field(compare=False)

    @property
    def key(self) -> str:
        return f"{self.class_name} {self.head}"


class Library:
    """Built-ins and prelude, plus what a node offers: host functions, data types,
    classes and instances.

    ``version`` changes on every registration, so caches keyed by
    ``(library.id, library.version)`` never serve a stale compilation.
    """

    def __init__(self):
        self._specs: dict[str, FuncSpec] = {s.name: s for s in BUILTINS}
        for name, sig in PRELUDE_SIGNATURES.items():
            self._specs[name] = FuncSpec(name, sig, "prelude", ())
        # Every node runs sub-thunks (or, without a runner, evaluates them in place).
        from .subthunks import HOST_FUNCTIONS
        for name, (sig, flags, fn) in HOST_FUNCTIONS.items():
            self._specs[name] = FuncSpec(name, sig, "host", flags, fn, fn.__doc__ or "")
        self._datas: list = []            # DataDecl nodes, in declaration order
        self._classes: list = []          # ClassDecl nodes
        self._instances: dict = {}        # (class, head) -> InstanceSpec
        self._instance_methods: dict = {}  # "hash@Hashable String" -> FuncSpec
        self.id = next(_versions)
        self.version = 0
        self._lock = threading.RLock()

    def _world(self):
        from .typecheck import library_world
        return library_world(self)

    def register(self, name: str, signature: str, fn: Callable,
                 strict: bool | Sequence[bool] = True, doc: str = "",
                 replace: bool = False) -> FuncSpec:
        """Export a Python callable as ``name`` with the given type signature.

        ``strict`` is one flag for every parameter or one flag per parameter: a strict
        argument arrives forced to a Python value (int, float, bool, str, list,
        exathunk.Data); a lazy one arrives as a zero-argument callable that forces it on
        demand.  Registering a name again with the same signature replaces the
        callable; with another signature it is an error unless ``replace=True`` (a
        program compiled against the old type must not meet the new one by surprise).
        A constraint of a user class (``"Hashable a => (-> a String)"``) restricts the
        types a program may pass; the function receives the value, not the instance.
        """
        if not callable(fn):
            raise ExathunkError(f"host function {name!r} is not callable")
        if (not name or any(c.isspace() or c in '()";@' for c in name)
                or name[:1] in "0123456789" or name[:1].isupper()):
            raise ExathunkError(f"{name!r} is not a valid function name (names start with "
                                "a lower-case letter or a symbol, and hold no spaces, "
                                "parentheses, quotes, ; or @)")
        old = self._specs.get(name)
        if old is not None and old.kind != "host":
            raise ExathunkError(f"{name!r} is a built-in and cannot be replaced")
        if old is not None and old.signature != signature and not replace:
            raise ExathunkError(f"{name!r} is already registered with the type "
                                f"{old.signature}; registering it as {signature} would "
                                "change its type (pass replace=True to do so)")
        from .types import arity_of, parse_signature   # checks the signature now
        world = self._world()
        if name in world.methods or name in world.fields or name in world.cons:
            raise ExathunkError(f"{name!r} is already a method, field or constructor of "
                                "this library")
        arity = arity_of(parse_signature(signature, world.scope))
        flags = _flags(name, strict, arity)
        spec = FuncSpec(name, signature, "host", flags, fn, doc or (fn.__doc__ or "").strip())
        with self._lock:
            self._specs[name] = spec
            self.version += 1
        return spec

    def declare_data(self, text: str) -> None:
        """Declare a data type the node's functions take or return, written as in the
        language: ``"(data Point (Pt (px Double) (py Double)))"``.  Programs compiled
        against this library can build, match and receive its values."""
        from .parser import parse_declaration
        from . import ast
        decl = parse_declaration(text)
        if decl.__class__ is not ast.DataDecl:
            raise ExathunkError("declare_data takes a (data ...) declaration")
        self._add_declaration(self._datas, decl, text)

    def declare_class(self, text: str) -> None:
        """Declare a class whose instances the node offers (or programs may write):
        ``"(class (Hashable a) (hash (-> a Int)))"``; default methods are allowed."""
        from .parser import parse_declaration
        from . import ast
        decl = parse_declaration(text)
        if decl.__class__ is not ast.ClassDecl:
            raise ExathunkError("declare_class takes a (class ...) declaration")
        self._add_declaration(self._classes, decl, text)
        try:     # its default methods are checked now, not at the first program
            from .driver import check
            check("0", library=self)
        except ExathunkError:
            self._remove_declaration(self._classes, decl)
            raise

    def _add_declaration(self, table: list, decl, text: str) -> None:
        with self._lock:
            table.append(decl)
            self.version += 1
            try:
                world = self._world()
            except ExathunkError as err:
                self._remove_declaration(table, decl)
                raise ExathunkError(f"cannot declare {text.strip()[:80]!r}: {err.message}") \
                    from None
            clash = [n for n in list(world.methods) + list(world.fields) + list(world.cons)
                     if n in self._specs]
            if clash:
                self._remove_declaration(table, decl)
                raise ExathunkError(f"cannot declare {text.strip()[:80]!r}: {clash[0]!r} is "
                                    "already a function of this library")

    def _remove_declaration(self, table: list, decl) -> None:
        with self._lock:
            table.remove(decl)
            self.version += 1

    def register_instance(self, class_name: str, type_text: str,
                          strict: bool | Sequence[bool] = True, doc: str = "",
                          **methods: Callable) -> InstanceSpec:
        """Offer an instance implemented in Python: ``register_instance("Hashable",
        "String", hash=fn)``.  The class must be declared (``declare_class``); the type
        is a base type, a data type, or ``(List a)``/``(T a ...)`` for every element
        type; each method the class has no default for must be given.  The methods are
        host functions of the instance's types (``hash@Hashable String : (-> String
        Int)``), strict as ``strict`` says."""
        from .declarations import instance_head
        from .parser import parse_type
        from .types import Scheme, TVar, _copy_iter, arity_of, show_type
        from .declarations import instance_type
        from .types import InstanceInfo
        world = self._world()
        cinfo = world.classes.get(class_name)
        if cinfo is None:
            raise ExathunkError(f"unknown class {class_name!r}: declare it first with "
                                "declare_class")
        texpr = parse_type(type_text)
        head, params = instance_head(texpr, world)
        key = (class_name, head)
        if key in world.instances:
            raise ExathunkError(f"overlapping instances: {class_name} {head} is already "
                                "offered")
        unknown = sorted(set(methods) - set(cinfo.methods))
        if unknown:
            raise ExathunkError(f"{unknown[0]!r} is not a method of {class_name} (its "
                                f"methods: {', '.join(cinfo.method_order)})")
        missing = [m for m in cinfo.method_order if m not in methods and m not in cinfo.defaults]
        if missing:
            raise ExathunkError(f"the instance {class_name} {type_text} must implement "
                                f"{missing[0]!r} (the class has no default for it)")
        probe = InstanceInfo(class_name, head, params, (), "library")
        target, _ = instance_type(probe, world, rigid=False)
        specs = {}
        for m, fn in methods.items():
            if not callable(fn):
                raise ExathunkError(f"the method {m!r} of {class_name} {type_text} is not "
                                    "callable")
            scheme = cinfo.methods[m]
            if any(v.preds for v in scheme.vars[1:]):
                raise ExathunkError(f"the method {m!r} has class constraints of its own: "
                                    "it cannot be implemented by a host function")
            mapping = {scheme.vars[0]: target}
            sig_type = _copy_iter(scheme.type, mapping)
            signature = show_type(sig_type)
            flags = _flags(m, strict, arity_of(Scheme((), sig_type)))
            name = f"{m}@{class_name} {head}"
            specs[m] = FuncSpec(name, signature, "host", flags, fn,
                                doc or (fn.__doc__ or "").strip())
        spec = InstanceSpec(class_name, type_text.strip(), head, params, specs)
        with self._lock:
            self._instances[key] = spec
            for f in specs.values():
                self._instance_methods[f.name] = f
            self.version += 1
            try:
                self._world()
            except ExathunkError as err:
                del self._instances[key]
                for f in specs.values():
                    self._instance_methods.pop(f.name, None)
                self.version += 1
                raise ExathunkError(f"cannot register {class_name} {type_text}: "
                                    f"{err.message}") from None
        return spec

    def copy(self) -> "Library":
        """A new Library offering what this one offers (the same callables), to extend
        without touching this one (a worker's per-request stubs)."""
        new = Library()
        with self._lock:
            new._specs = dict(self._specs)
            new._datas = list(self._datas)
            new._classes = list(self._classes)
            new._instances = dict(self._instances)
            new._instance_methods = dict(self._instance_methods)
        new.version = 1
        return new

    def declarations(self) -> tuple:
        """(data declarations, class declarations, InstanceSpecs) the node offers."""
        with self._lock:
            return tuple(self._datas), tuple(self._classes), tuple(self._instances.values())

    def lookup(self, name: str) -> FuncSpec | None:
        spec = self._specs.get(name)
        if spec is None and "@" in name:
            return self._instance_methods.get(name)
        return spec

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[FuncSpec]:
        return [self._specs[n] for n in self.names()]

    def host_functions(self) -> list[FuncSpec]:
        return [s for s in self.specs() if s.kind == "host"]

    def instance_methods(self) -> list[FuncSpec]:
        """The host functions implementing the node's instances."""
        return [self._instance_methods[n] for n in sorted(self._instance_methods)]


def _flags(name, strict, arity) -> tuple:
    if isinstance(strict, bool):
        return (strict,) * arity
    flags = tuple(bool(s) for s in strict)
    if len(flags) != arity:
        raise ExathunkError(f"{name!r}: {len(flags)} strictness flags for {arity} parameters")
    return flags


_default: Library | None = None


def default_library() -> Library:
    """The shared library of built-ins and prelude (no host functions)."""
    global _default
    if _default is None:
        _default = Library()
    return _default
