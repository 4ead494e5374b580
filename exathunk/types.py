"""Types of exathunk: representation, unification, schemes, signatures, printing.

Owns the type terms (``TVar``, ``TCon``, ``TList``, ``TFun``; functions are curried
binary arrows), class constraints (Num, Eq, Ord, Show, kept as a bit mask on each
type variable), ``Scheme`` (a type with generic variables), destructive unification
with an occurs check and instance checking, and the text forms: ``show_type``,
``parse_signature`` (the library's signature syntax) and ``to_tree``/``from_tree``
(the nested-tuple form the wire uses).  Every walk over a type is iterative, so
deep types never hit Python's recursion limit.

Type variables have no global names or counters: a variable is its object, and names
(a, b, c, ...) are given only when a type is printed, in order of appearance, so that
the same type always prints the same way.
"""

from __future__ import annotations

import functools
import re

from .errors import TypeCheckError

# ---- classes ------------------------------------------------------------------------

NUM, EQ, ORD, SHOW = 1, 2, 4, 8
CLASS_BITS: dict[str, int] = {"Num": NUM, "Eq": EQ, "Ord": ORD, "Show": SHOW}
# Printing order of constraints on one variable.
_CLASS_ORDER = (("Eq", EQ), ("Num", NUM), ("Ord", ORD), ("Show", SHOW))
# Classes that hold for (List a) exactly when they hold for a.
LIST_CLASSES = EQ | SHOW

# The most parts (nodes, counted as a tree) a type may have.  Hindley–Milner types can
# grow exponentially with the program (each let can double a type); every walk over a
# type counts its steps against this bound and fails with kind "size" beyond it, so
# that a short hostile program cannot keep a node busy.  Real types have tens of parts.
MAX_TYPE_SIZE = 5000

# A variable's level when it has been generalised (it then belongs to a Scheme and is
# never unified: instantiation replaces it with a fresh variable).
GENERIC = 1 << 30


def class_names(mask: int) -> list[str]:
    return [name for name, bit in _CLASS_ORDER if mask & bit]


# ---- type terms ----------------------------------------------------------------------

class TVar:
    """A type variable.  ``ref`` is the type it has been unified with (or None).

    ``level`` is the let-nesting depth at which it was made (level-based
    generalisation: variables deeper than the enclosing let are generalised there);
    ``classes`` is the bit mask of classes it must belong to; a ``rigid`` variable
    comes from a type annotation and may be unified with nothing but itself.
    """
    __slots__ = ("ref", "level", "classes", "rigid")

    def __init__(self, level: int = 0, classes: int = 0, rigid: bool = False):
        self.ref = None
        self.level = level
        self.classes = classes
        self.rigid = rigid

    def __repr__(self):
        return f"<TVar {show_type(self)}>"


class TCon:
    """A type constant: Int, Double, Bool or String (one shared object each)."""
    __slots__ = ("name", "instances")

    def __init__(self, name: str, instances: int):
        self.name = name
        self.instances = instances

    def __eq__(self, other):
        return self is other or (other.__class__ is TCon and other.name == self.name)

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return self.name


class _Compound:
    """A type term with parts: equal to another when the two are the same type
    (following variable bindings), hashed and printed by its text."""
    __slots__ = ()

    def __eq__(self, other):
        return types_equal(self, other)

    def __hash__(self):
        return hash(show_type(self))

    def __repr__(self):
        return show_type(self)


class TList(_Compound):
    """`(List elem)`."""
    __slots__ = ("elem",)

    def __init__(self, elem):
        self.elem = elem


class TFun(_Compound):
    """`(-> arg res)`; `(-> a b c)` is TFun(a, TFun(b, c))."""
    __slots__ = ("arg", "res")

    def __init__(self, arg, res):
        self.arg = arg
        self.res = res


INT = TCon("Int", NUM | EQ | ORD | SHOW)
DOUBLE = TCon("Double", NUM | EQ | ORD | SHOW)
BOOL = TCon("Bool", EQ | SHOW)
STRING = TCon("String", EQ | ORD | SHOW)
CONSTANTS: dict[str, TCon] = {c.name: c for c in (INT, DOUBLE, BOOL, STRING)}

Type = TVar | TCon | TList | TFun


def fun(*types):
    """fun(a, b, c) is the curried function type (-> a b c)."""
    result = types[-1]
    for t in reversed(types[:-1]):
        result = TFun(t, result)
    return result


def prune(t):
    """Follow a variable's bindings to the type it stands for (compressing the chain)."""
    if t.__class__ is not TVar or t.ref is None:
        return t
    root = t.ref
    while root.__class__ is TVar and root.ref is not None:
        root = root.ref
    while t.__class__ is TVar and t.ref is not None and t.ref is not root:
        t.ref, t = root, t.ref
    return root


def resolve(t):
    """The type with every bound variable replaced by what it stands for.

    This is the substitution applied in full; the result shares unchanged parts with
    ``t`` and its variables are all unbound.
    """
    t = prune(t)
    c = t.__class__
    if c is TCon or c is TVar:
        return t
    # Post-order rebuild with an explicit stack.
    work = [(t, False)]
    done: list = []
    steps = 0
    while work:
        steps += 1
        if steps > 2 * MAX_TYPE_SIZE:
            raise UnifyError("size")
        node, expanded = work.pop()
        c = node.__class__
        if c is TFun:
            if expanded:
                res = done.pop()
                arg = done.pop()
                done.append(node if arg is node.arg and res is node.res else TFun(arg, res))
            else:
                work.append((node, True))
                work.append((prune(node.res), False))
                work.append((prune(node.arg), False))
        elif c is TList:
            if expanded:
                elem = done.pop()
                done.append(node if elem is node.elem else TList(elem))
            else:
                work.append((node, True))
                work.append((prune(node.elem), False))
        else:
            done.append(node)
    return done[0]


def iter_type(t, limit: int = MAX_TYPE_SIZE):
    """Every node of ``t`` (bindings followed), pre-order, left to right.

    Raises UnifyError("size") after ``limit`` nodes.
    """
    stack = [t]
    steps = 0
    while stack:
        steps += 1
        if steps > limit:
            raise UnifyError("size")
        node = prune(stack.pop())
        yield node
        c = node.__class__
        if c is TFun:
            stack.append(node.res)
            stack.append(node.arg)
        elif c is TList:
            stack.append(node.elem)


def free_vars(t) -> list[TVar]:
    """The unbound variables of ``t`` in order of first appearance."""
    seen: dict[TVar, None] = {}
    for node in iter_type(t):
        if node.__class__ is TVar and node not in seen:
            seen[node] = None
    return list(seen)


def contains_function(t) -> bool:
    return any(node.__class__ is TFun for node in iter_type(t))


def type_depth(t) -> int:
    depth = 0
    stack = [(t, 1)]
    steps = 0
    while stack:
        steps += 1
        if steps > MAX_TYPE_SIZE:
            raise UnifyError("size")
        node, d = stack.pop()
        node = prune(node)
        if d > depth:
            depth = d
        c = node.__class__
        if c is TFun:
            stack.append((node.arg, d + 1))
            stack.append((node.res, d + 1))
        elif c is TList:
            stack.append((node.elem, d + 1))
    return depth


def types_equal(a, b) -> bool:
    """Structural equality; variables are equal only to themselves."""
    stack = [(a, b)]
    steps = 0
    while stack:
        steps += 1
        if steps > MAX_TYPE_SIZE:
            raise UnifyError("size")
        x, y = stack.pop()
        x, y = prune(x), prune(y)
        if x is y:
            continue
        cx = x.__class__
        if cx is not y.__class__:
            return False
        if cx is TCon:
            if x.name != y.name:
                return False
        elif cx is TFun:
            stack.append((x.arg, y.arg))
            stack.append((x.res, y.res))
        elif cx is TList:
            stack.append((x.elem, y.elem))
        else:
            return False
    return True


def list_elem_name(t) -> str | None:
    """For a function type whose first parameter is a list (sum, product at a use
    site): the element type's name when it is a constant ("Int", "Double"), else None.
    """
    t = prune(t)
    if t.__class__ is TFun:
        arg = prune(t.arg)
        if arg.__class__ is TList:
            elem = prune(arg.elem)
            if elem.__class__ is TCon:
                return elem.name
    return None


# ---- unification ---------------------------------------------------------------------

class UnifyError(Exception):
    """Why two types do not unify.  ``kind`` is one of:

    - "mismatch": different constructors (``left``, ``right`` the clashing parts);
    - "rigid": an annotation's variable met another type;
    - "escape": an annotation's variable would leak into the enclosing scope;
    - "occurs": ``left`` (a variable) occurs in ``right`` (infinite type);
    - "instance": no instance ``class_name`` for ``right``;
    - "size": a type grew beyond MAX_TYPE_SIZE parts.
    """

    def __init__(self, kind: str, left=None, right=None, class_name: str | None = None):
        super().__init__(kind)
        self.kind = kind
        self.left = left
        self.right = right
        self.class_name = class_name


def add_classes(t, mask: int) -> None:
    """Require ``t`` to belong to every class in ``mask`` (propagating into lists)."""
    stack = [(t, mask)]
    while stack:
        node, m = stack.pop()
        node = prune(node)
        c = node.__class__
        if c is TVar:
            if node.rigid:
                raise UnifyError("instance", None, node, class_names(m)[0])
            node.classes |= m
        elif c is TCon:
            missing = m & ~node.instances
            if missing:
                raise UnifyError("instance", None, node, class_names(missing)[0])
        elif c is TList:
            missing = m & ~LIST_CLASSES
            if missing:
                raise UnifyError("instance", None, node, class_names(missing)[0])
            stack.append((node.elem, m))
        else:
            raise UnifyError("instance", None, node, class_names(m)[0])


def bind(v: TVar, t) -> None:
    """Bind the unbound, flexible variable ``v`` to the pruned type ``t`` (not ``v``)."""
    c = t.__class__
    if c is TCon:
        if v.classes:
            missing = v.classes & ~t.instances
            if missing:
                raise UnifyError("instance", None, t, class_names(missing)[0])
        v.ref = t
        return
    if c is TVar:
        if t.rigid:
            if v.classes:
                raise UnifyError("instance", None, t, class_names(v.classes)[0])
            if t.level > v.level:
                raise UnifyError("escape", v, t)
        else:
            t.classes |= v.classes
            if v.level < t.level:
                t.level = v.level
        v.ref = t
        return
    # A structured type: occurs check, and pull every variable in it to v's level.
    level = v.level
    stack = [t]
    steps = 0
    while stack:
        steps += 1
        if steps > MAX_TYPE_SIZE:
            raise UnifyError("size")
        u = prune(stack.pop())
        cu = u.__class__
        if cu is TVar:
            if u is v:
                raise UnifyError("occurs", v, t)
            if u.level > level:
                if u.rigid:
                    raise UnifyError("escape", v, u)
                u.level = level
        elif cu is TFun:
            stack.append(u.res)
            stack.append(u.arg)
        elif cu is TList:
            stack.append(u.elem)
    if v.classes:
        add_classes(t, v.classes)
    v.ref = t


def unify(a, b) -> None:
    """Make ``a`` and ``b`` the same type by binding variables; raise UnifyError."""
    # Most unifications bind a variable: settle those without building a work stack.
    if a.__class__ is TVar:
        if a.ref is not None:
            a = prune(a)
        if a is b:
            return
        if a.__class__ is TVar and not a.rigid:
            if b.__class__ is TVar and b.ref is not None:
                b = prune(b)
                if a is b:
                    return
            bind(a, b)
            return
    if b.__class__ is TVar:
        if b.ref is not None:
            b = prune(b)
        if a is b:
            return
        if b.__class__ is TVar and not b.rigid:
            bind(b, a)
            return
    stack = [(a, b)]
    steps = 0
    while stack:
        steps += 1
        if steps > MAX_TYPE_SIZE:
            raise UnifyError("size")
        x, y = stack.pop()
        if x.__class__ is TVar and x.ref is not None:
            x = prune(x)
        if y.__class__ is TVar and y.ref is not None:
            y = prune(y)
        if x is y:
            continue
        cx = x.__class__
        cy = y.__class__
        if cx is TVar and not x.rigid:
            bind(x, y)
        elif cy is TVar and not y.rigid:
            bind(y, x)
        elif cx is TFun and cy is TFun:
            stack.append((x.res, y.res))
            stack.append((x.arg, y.arg))
        elif cx is TList and cy is TList:
            stack.append((x.elem, y.elem))
        elif cx is TCon and cy is TCon and x.name == y.name:
            continue
        elif cx is TVar or cy is TVar:
            raise UnifyError("rigid", x, y)
        else:
            raise UnifyError("mismatch", x, y)


# ---- schemes -------------------------------------------------------------------------

class Scheme:
    """A type with generic variables ``vars`` (each carrying its class mask).

    Instantiation replaces each generic variable with a fresh one of the same classes
    at the caller's level; other variables (from an enclosing scope) are shared.
    """
    __slots__ = ("vars", "type", "_deep", "_fast")

    def __init__(self, vars: tuple[TVar, ...], type):
        self.vars = tuple(vars)
        self.type = type
        self._deep = type_depth(type) > 200 if vars else False
        self._fast = None

    def instantiate(self, level: int = 0):
        fast = self._fast
        if fast is not None:
            return fast(level)
        vs = self.vars
        if not vs:
            return self.type
        if len(vs) == 1:
            v = vs[0]
            mapping = {v: TVar(level, v.classes)}
        else:
            mapping = {v: TVar(level, v.classes) for v in vs}
        if self._deep:
            return _copy_iter(self.type, mapping)
        return _copy(self.type, mapping)

    def prepare(self) -> "Scheme":
        """Compile a specialised instantiation function (worth it for a scheme that is
        instantiated many times, such as a library function's); returns self."""
        if self._fast is None and self.vars and type_depth(self.type) <= 32:
            self._fast = _compile_instantiate(self)
        return self

    @property
    def constraints(self) -> list[tuple[str, TVar]]:
        """(class name, variable) pairs, variables in order of appearance."""
        return [(name, v) for v in free_vars(self.type) if v in self.vars
                for name in class_names(v.classes)]

    def __eq__(self, other):
        return isinstance(other, Scheme) and show_type(self) == show_type(other)

    def __hash__(self):
        return hash(show_type(self))

    def __repr__(self):
        return f"Scheme({show_type(self)!r})"

    def __str__(self):
        return show_type(self)


def _copy(t, mapping):
    c = t.__class__
    if c is TVar:
        return mapping.get(t, t)
    if c is TFun:
        return TFun(_copy(t.arg, mapping), _copy(t.res, mapping))
    if c is TList:
        return TList(_copy(t.elem, mapping))
    return t


def _compile_instantiate(scheme: Scheme):
    """Generate ``inst(level)`` that builds a fresh instance of ``scheme`` directly."""
    var_names = {v: f"v{i}" for i, v in enumerate(scheme.vars)}
    constants: list = []

    def expr(t):
        c = t.__class__
        if c is TVar and t in var_names:
            return var_names[t]
        if c is TFun:
            return f"TFun({expr(t.arg)}, {expr(t.res)})"
        if c is TList:
            return f"TList({expr(t.elem)})"
        constants.append(t)
        return f"k{len(constants) - 1}"

    body = expr(scheme.type)
    lines = [f"    {var_names[v]} = TVar(level, {v.classes})" for v in scheme.vars]
    params = ", ".join(["TVar", "TFun", "TList"] + [f"k{i}" for i in range(len(constants))])
    source = f"def make({params}):\n  def inst(level):\n" + "\n".join(
        "  " + line for line in lines) + f"\n      return {body}\n  return inst\n"
    namespace: dict = {}
    exec(compile(source, "<instantiate>", "exec"), namespace)
    return namespace["make"](TVar, TFun, TList, *constants)


def _copy_iter(t, mapping):
    work = [(t, False)]
    done: list = []
    while work:
        node, expanded = work.pop()
        c = node.__class__
        if c is TFun:
            if expanded:
                res = done.pop()
                done.append(TFun(done.pop(), res))
            else:
                work.append((node, True))
                work.append((node.res, False))
                work.append((node.arg, False))
        elif c is TList:
            if expanded:
                done.append(TList(done.pop()))
            else:
                work.append((node, True))
                work.append((node.elem, False))
        elif c is TVar:
            done.append(mapping.get(node, node))
        else:
            done.append(node)
    return done[0]


def generalize(t, level: int) -> Scheme:
    """Generalise the variables of ``t`` made deeper than ``level`` (not rigid ones)."""
    t = resolve(t)
    vs = []
    for node in iter_type(t):
        if node.__class__ is TVar and not node.rigid:
            if node.level == GENERIC:
                if node not in vs:
                    vs.append(node)
            elif node.level > level:
                node.level = GENERIC
                vs.append(node)
    return Scheme(tuple(vs), t)


def arity_of(scheme) -> int:
    """The number of arrows at the top level: (-> a b c) has 2, a has 0."""
    t = scheme.type if isinstance(scheme, Scheme) else scheme
    n = 0
    t = prune(t)
    while t.__class__ is TFun:
        n += 1
        t = prune(t.res)
    return n


# ---- printing ------------------------------------------------------------------------

def _var_name(i: int) -> str:
    letter = chr(ord("a") + i % 26)
    return letter if i < 26 else f"{letter}{i // 26}"


class Namer:
    """Names variables a, b, c... in order of appearance, shared across calls."""
    __slots__ = ("names", "limit")

    def __init__(self, limit: int = MAX_TYPE_SIZE):
        self.names: dict[TVar, str] = {}
        self.limit = limit

    def name(self, v: TVar) -> str:
        n = self.names.get(v)
        if n is None:
            n = self.names[v] = _var_name(len(self.names))
        return n

    def show(self, t) -> str:
        """The text of ``t``; parts beyond the namer's limit are shown as "..."."""
        limit = self.limit
        out: list[str] = []
        stack = [t]
        steps = 0
        while stack:
            item = stack.pop()
            if item.__class__ is str:
                out.append(item)
                continue
            steps += 1
            if steps > limit:
                out.append("...")
                continue
            node = prune(item)
            c = node.__class__
            if c is TCon:
                out.append(node.name)
            elif c is TVar:
                out.append(self.name(node))
            elif c is TList:
                out.append("(List ")
                stack.append(")")
                stack.append(node.elem)
            else:
                parts = [node.arg]
                r = prune(node.res)
                while r.__class__ is TFun:
                    parts.append(r.arg)
                    r = prune(r.res)
                parts.append(r)
                out.append("(->")
                stack.append(")")
                for p in reversed(parts):
                    stack.append(p)
                    stack.append(" ")
        return "".join(out)

    def context(self, ts) -> str:
        """The constraints of the classed variables of ``ts`` ("" if none)."""
        pairs = []
        seen = set()
        for t in ts:
            try:
                nodes = list(iter_type(t))
            except UnifyError:
                continue
            for node in nodes:
                if node.__class__ is TVar and node.classes and node not in seen:
                    seen.add(node)
                    for cname in class_names(node.classes):
                        pairs.append(f"{cname} {self.name(node)}")
        if not pairs:
            return ""
        if len(pairs) == 1:
            return pairs[0] + " => "
        return "(" + ", ".join(pairs) + ") => "


def show_type(t, constraints: bool = True) -> str:
    """Readable text of a Type or Scheme: "Int", "(List a)", "Num a => (-> a a a)"."""
    if isinstance(t, Scheme):
        t = t.type
    if t.__class__ is TCon:
        return t.name
    namer = Namer()
    body = namer.show(t)
    if constraints:
        # Names come from the body's order of appearance, so name the body first.
        return namer.context([t]) + body
    return body


def show_types(*ts) -> list[str]:
    """Several types shown with one naming (the same variable gets the same name)."""
    namer = Namer()
    return [namer.show(t) for t in ts]


# ---- signatures ----------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(=>)|(->)|([(),])|([A-Za-z_][A-Za-z0-9_']*))")
_VAR_NAME = re.compile(r"[a-z_][A-Za-z0-9_']*\Z")


class SignatureError(TypeCheckError, ValueError):
    """A malformed signature or type tree (an ExathunkError, so registration and the
    wire report it like any other error)."""


def _tokenize(sig: str) -> list[str]:
    tokens = []
    pos = 0
    end = len(sig.rstrip())
    while pos < end:
        m = _TOKEN.match(sig, pos)
        if m is None or m.end() == pos:
            raise SignatureError(f"bad type signature {sig!r}: unexpected {sig[pos:].strip()[:10]!r}")
        tokens.append(m.group(m.lastindex))
        pos = m.end()
    return tokens


def _parse_type_tokens(tokens: list[str], sig: str, var_for) -> object:
    """Parse one type from the whole of ``tokens`` (iteratively)."""
    def bad(why):
        return SignatureError(f"bad type signature {sig!r}: {why}")

    # Each open frame: [kind, items]; kind is "List" or "->".
    frames: list[list] = []
    result = None
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        i += 1
        if tok == "(":
            if i >= n or tokens[i] not in ("List", "->"):
                raise bad("expected List or -> after '('")
            frames.append([tokens[i], []])
            i += 1
            continue
        if tok == ")":
            if not frames:
                raise bad("unbalanced ')'")
            kind, items = frames.pop()
            if kind == "List":
                if len(items) != 1:
                    raise bad("List takes exactly one type")
                value = TList(items[0])
            else:
                if len(items) < 2:
                    raise bad("-> takes at least two types")
                value = fun(*items)
        elif tok in CONSTANTS:
            value = CONSTANTS[tok]
        elif _VAR_NAME.match(tok):
            value = var_for(tok)
        else:
            raise bad(f"unknown type {tok!r}")
        if frames:
            frames[-1][1].append(value)
        elif result is None:
            result = value
        else:
            raise bad("more than one type")
    if frames:
        raise bad("unbalanced '('")
    if result is None:
        raise bad("no type")
    return result


@functools.lru_cache(maxsize=4096)
def parse_signature(sig: str) -> Scheme:
    """Parse the library's signature syntax into a Scheme (generic variables).

    ``"Num a => (-> a a a)"``, ``"(Eq a, Show b) => (-> a b String)"``, ``"a"``,
    ``"(List a)"``.  Raises SignatureError (a ValueError) for malformed text, unknown
    type or class names, or a constraint on a variable the type does not mention.
    Results are cached and shared: instantiate a scheme before unifying its type.
    """
    if not isinstance(sig, str):
        raise SignatureError(f"a type signature must be a string, not {type(sig).__name__}")
    tokens = _tokenize(sig)
    context: list[tuple[str, str]] = []
    if "=>" in tokens:
        k = tokens.index("=>")
        ctx = tokens[:k]
        tokens = tokens[k + 1:]
        if ctx and ctx[0] == "(" and ctx[-1] == ")":
            ctx = ctx[1:-1]
        groups: list[list[str]] = [[]]
        for tok in ctx:
            if tok == ",":
                groups.append([])
            else:
                groups[-1].append(tok)
        for g in groups:
            if len(g) != 2 or g[0] not in CLASS_BITS or not _VAR_NAME.match(g[1]):
                raise SignatureError(f"bad type signature {sig!r}: bad constraint {' '.join(g)!r}")
            context.append((g[0], g[1]))
    variables: dict[str, TVar] = {}

    def var_for(name):
        v = variables.get(name)
        if v is None:
            v = variables[name] = TVar(GENERIC)
        return v

    t = _parse_type_tokens(tokens, sig, var_for)
    for cname, vname in context:
        if vname not in variables:
            raise SignatureError(
                f"bad type signature {sig!r}: constraint on {vname!r}, which the type does not use")
        variables[vname].classes |= CLASS_BITS[cname]
    try:
        return Scheme(tuple(free_vars(t)), t)
    except UnifyError:
        raise SignatureError(f"type signature too large (more than {MAX_TYPE_SIZE} parts)") from None


# ---- the structured form for the wire ------------------------------------------------
#
# A type is a nested tuple:
#   ("con", "Int")                       Int, Double, Bool, String
#   ("var", "a")                         a type variable (named as show_type names it)
#   ("list", elem)                       (List elem)
#   ("fun", (param, ...), result)        (-> param ... result), uncurried view
# A Scheme is ("scheme", ((class, var), ...), type), e.g.
#   ("scheme", (("Num", "a"),), ("fun", (("var", "a"), ("var", "a")), ("var", "a")))


def to_tree(t):
    """The nested-tuple form of a Type or Scheme (see the table above)."""
    scheme = t if isinstance(t, Scheme) else None
    body = scheme.type if scheme is not None else t
    namer = Namer()
    work = [(body, False)]
    done: list = []
    while work:
        node, expanded = work.pop()
        node = prune(node)
        c = node.__class__
        if c is TCon:
            done.append(("con", node.name))
        elif c is TVar:
            done.append(("var", namer.name(node)))
        elif c is TList:
            if expanded:
                done.append(("list", done.pop()))
            else:
                work.append((node, True))
                work.append((node.elem, False))
        else:
            parts = [node.arg]
            r = prune(node.res)
            while r.__class__ is TFun:
                parts.append(r.arg)
                r = prune(r.res)
            parts.append(r)
            if expanded:
                k = len(parts)
                items = done[-k:]
                del done[-k:]
                done.append(("fun", tuple(items[:-1]), items[-1]))
            else:
                work.append((node, True))
                for p in reversed(parts):
                    work.append((p, False))
    tree = done[0]
    if scheme is None:
        return tree
    pairs = []
    for v in free_vars(body):
        for cname in class_names(v.classes):
            pairs.append((cname, namer.name(v)))
    return ("scheme", tuple(pairs), tree)


def from_tree(tree):
    """Inverse of to_tree: a Scheme for a ("scheme", ...) tree, else a Type."""
    try:
        return _from_tree(tree)
    except UnifyError:
        raise SignatureError(f"type tree too large (more than {MAX_TYPE_SIZE} parts)") from None


def _from_tree(tree):
    if isinstance(tree, (tuple, list)) and len(tree) == 3 and tree[0] == "scheme":
        body = _from_tree(tree[2])
        names: dict[str, TVar] = {}
        namer = Namer()
        for v in free_vars(body):
            names[namer.name(v)] = v
        for cname, vname in tree[1]:
            if cname not in CLASS_BITS or vname not in names:
                raise SignatureError(f"bad constraint {cname} {vname} in a type tree")
            names[vname].classes |= CLASS_BITS[cname]
        for v in names.values():
            v.level = GENERIC
        return Scheme(tuple(free_vars(body)), body)
    variables: dict[str, TVar] = {}
    work = [(tree, False)]
    done: list = []
    steps = 0
    while work:
        steps += 1
        if steps > 2 * MAX_TYPE_SIZE:
            raise UnifyError("size")
        node, expanded = work.pop()
        if not isinstance(node, (tuple, list)) or not node:
            raise SignatureError(f"bad type tree node {node!r}")
        tag = node[0]
        if tag == "con" and len(node) == 2 and node[1] in CONSTANTS:
            done.append(CONSTANTS[node[1]])
        elif tag == "var" and len(node) == 2 and isinstance(node[1], str):
            v = variables.get(node[1])
            if v is None:
                v = variables[node[1]] = TVar(0)
            done.append(v)
        elif tag == "list" and len(node) == 2:
            if expanded:
                done.append(TList(done.pop()))
            else:
                work.append((node, True))
                work.append((node[1], False))
        elif (tag == "fun" and len(node) == 3 and isinstance(node[1], (tuple, list))
              and node[1]):
            k = len(node[1]) + 1
            if expanded:
                items = done[-k:]
                del done[-k:]
                done.append(fun(*items))
            else:
                work.append((node, True))
                work.append((node[2], False))
                for p in reversed(node[1]):
                    work.append((p, False))
        else:
            raise SignatureError(f"bad type tree node {node!r}")
    return done[0]
