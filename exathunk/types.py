"""Types of exathunk: representation, unification, schemes, signatures, printing.

Owns the type terms (``TVar``, ``TCon``, ``TList``, ``TFun``, ``TData``; functions are
curried binary arrows), data types' declarations as the later stages need them
(``DataInfo``, ``ConInfo``), class constraints, ``Scheme`` (a type with generic
variables), destructive unification with an occurs check and instance checking, and
the text forms: ``show_type``, ``parse_signature`` (the library's signature syntax) and
``to_tree``/``from_tree`` (the nested-tuple form the wire uses).  Every walk over a type
is iterative, so deep types never hit Python's recursion limit.

Constraints: the built-in classes (Num, Eq, Ord, Show) are a bit mask on each type
variable (``classes``); user classes, declared by a program or a node, are a set of
class names (``preds``).  A variable's constraints travel with it through unification;
when it meets a concrete type the constraint is checked there at once: a built-in class
against the type's own mask (derived for data types), a user class against the
instances of the check in progress (``ClassEnv``, installed per check with
``class_env``).  A rigid variable (from an annotation, an instance or a class
declaration) carries the constraints it is given and accepts no others.

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
LIST_CLASSES = EQ | ORD | SHOW
# The built-in classes a data type can derive (Num never).
DERIVABLE = EQ | ORD | SHOW
_NOPREDS = frozenset()

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
    ``classes`` is the bit mask of built-in classes it must belong to and ``preds`` the
    frozenset of user classes; a ``rigid`` variable comes from a type annotation (or an
    instance or class declaration) and may be unified with nothing but itself: its
    ``classes`` and ``preds`` are then what it is given (superclasses included).
    """
    __slots__ = ("ref", "level", "classes", "rigid", "preds")

    def __init__(self, level: int = 0, classes: int = 0, rigid: bool = False,
                 preds: frozenset = _NOPREDS):
        self.ref = None
        self.level = level
        self.classes = classes
        self.rigid = rigid
        self.preds = preds

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


class TData(_Compound):
    """A data type applied to its arguments: `(Opt Int)`, `Tree` (no arguments).

    ``info`` is the type's DataInfo (shared by every occurrence of the type), ``args``
    a tuple of types, one per parameter."""
    __slots__ = ("info", "args")

    def __init__(self, info, args=()):
        self.info = info
        self.args = tuple(args)


class DataInfo:
    """A data type's declaration as the later stages need it.

    ``params`` are the declared parameter names and ``param_vars`` the generic type
    variables that stand for them in the constructors' field types; ``constructors``
    the ConInfo list in declaration order (a constructor's position is its ``tag``);
    ``derives`` the mask of the built-in classes (Eq, Ord, Show) that the type has
    when its parameters have them; ``origin`` is "prelude", "library", "user" or
    "dict" (a class's dictionary, made by the elaborator).
    """
    __slots__ = ("name", "params", "param_vars", "constructors", "derives", "origin",
                 "decl_text", "__weakref__")

    def __init__(self, name: str, params=(), origin: str = "user"):
        self.name = name
        self.params = tuple(params)
        self.param_vars = tuple(TVar(GENERIC) for _ in self.params)
        self.constructors: list = []
        self.derives = 0
        self.origin = origin
        self.decl_text = ""

    def add_constructor(self, name: str, field_types=(), field_names=None) -> "ConInfo":
        con = ConInfo(name, self, len(self.constructors), tuple(field_types),
                      tuple(field_names) if field_names is not None else None)
        self.constructors.append(con)
        return con

    def type(self):
        """The type itself over its parameter variables: (T a b)."""
        return TData(self, self.param_vars)

    def field_type_texts(self, con: "ConInfo") -> tuple:
        """Each field's type as text, the parameters named as declared: ("a", "Tree")."""
        namer = Namer()
        for v, name in zip(self.param_vars, self.params):
            namer.names[v] = name
        return tuple(namer.show(t) for t in con.field_types)

    def referenced(self) -> list:
        """The DataInfo of every data type that occurs in this one's fields."""
        out = []
        for con in self.constructors:
            for t in con.field_types:
                for node in iter_type(t):
                    if node.__class__ is TData and node.info not in out:
                        out.append(node.info)
        return out

    def __repr__(self):
        return f"<DataInfo {self.name}>"


class ConInfo:
    """One constructor: its ``name``, its type's DataInfo (``data``), its ``tag`` (its
    position in the declaration), its ``field_types`` (over ``data.param_vars``) and
    its record ``field_names`` (None for a positional constructor)."""
    __slots__ = ("name", "data", "tag", "field_types", "field_names", "_scheme")

    def __init__(self, name, data, tag, field_types, field_names):
        self.name = name
        self.data = data
        self.tag = tag
        self.field_types = field_types
        self.field_names = field_names
        self._scheme = None

    @property
    def arity(self) -> int:
        return len(self.field_types)

    def scheme(self) -> "Scheme":
        """The constructor as a function: forall params. f1 -> ... -> (T params)."""
        if self._scheme is None:
            self._scheme = Scheme(self.data.param_vars,
                                  fun(*self.field_types, self.data.type())).prepare()
        return self._scheme

    def __repr__(self):
        return f"<ConInfo {self.name} of {self.data.name}>"


INT = TCon("Int", NUM | EQ | ORD | SHOW)
DOUBLE = TCon("Double", NUM | EQ | ORD | SHOW)
BOOL = TCon("Bool", EQ | ORD | SHOW)
STRING = TCon("String", EQ | ORD | SHOW)
CONSTANTS: dict[str, TCon] = {c.name: c for c in (INT, DOUBLE, BOOL, STRING)}

Type = TVar | TCon | TList | TFun | TData


def head_name(t) -> str | None:
    """The name instances are keyed by: "Int", "List", "Opt"...; None otherwise."""
    c = t.__class__
    if c is TCon:
        return t.name
    if c is TList:
        return "List"
    if c is TData:
        return t.info.name
    return None


def head_args(t) -> tuple:
    """The argument types of a TList or TData (the parameters an instance binds)."""
    c = t.__class__
    if c is TList:
        return (t.elem,)
    if c is TData:
        return t.args
    return ()


# ---- user classes: the environment of one check ---------------------------------------

class ClassInfo:
    """A user class: ``name``, its variable ``param``, its superclasses ``supers`` (class
    names, built-in or user), its ``methods`` (name -> Scheme over ``param_var``, whose
    preds hold the class itself), the default methods' names, where it comes from."""
    __slots__ = ("name", "param", "param_var", "supers", "methods", "method_order",
                 "defaults", "origin", "decl", "decl_text", "_closure")

    def __init__(self, name: str, param: str, supers=(), origin: str = "user"):
        self.name = name
        self.param = param
        self.param_var = TVar(GENERIC)
        self.supers = tuple(supers)
        self.methods: dict = {}
        self.method_order: list = []
        self.defaults: dict = {}
        self.origin = origin
        self.decl = None
        self.decl_text = ""
        self._closure = None

    def __repr__(self):
        return f"<ClassInfo {self.name}>"


class InstanceInfo:
    """An instance: class ``class_name`` for the type whose head is ``head``, over the
    parameter names ``params``; ``context`` lists (class, parameter index) pairs that
    must hold; ``origin`` "user" (the program's) or "library" (a node's)."""
    __slots__ = ("class_name", "head", "params", "context", "origin", "decl", "methods",
                 "type_text")

    def __init__(self, class_name, head, params=(), context=(), origin="user"):
        self.class_name = class_name
        self.head = head
        self.params = tuple(params)
        self.context = tuple(context)
        self.origin = origin
        self.decl = None
        self.methods: dict = {}
        self.type_text = head

    @property
    def key(self) -> str:
        """How the instance is named: "Size String", "Size List"."""
        return f"{self.class_name} {self.head}"

    def __repr__(self):
        return f"<InstanceInfo {self.key}>"


class ClassEnv:
    """The user classes (name -> ClassInfo) and instances ((class, head) ->
    InstanceInfo) visible to one check."""
    __slots__ = ("classes", "instances")

    def __init__(self, classes=None, instances=None):
        self.classes: dict = dict(classes or {})
        self.instances: dict = dict(instances or {})

    def closure(self, name: str) -> tuple[int, frozenset]:
        """(built-in class mask, user class names) implied by class ``name``: itself and
        every superclass, transitively."""
        info = self.classes.get(name)
        if info is None:
            return CLASS_BITS.get(name, 0), _NOPREDS
        if info._closure is None:
            mask, users = 0, {name}
            work = list(info.supers)
            seen = set()
            while work:
                sup = work.pop()
                if sup in seen:
                    continue
                seen.add(sup)
                if sup in CLASS_BITS:
                    mask |= CLASS_BITS[sup]
                    continue
                users.add(sup)
                sinfo = self.classes.get(sup)
                if sinfo is not None:
                    work.extend(sinfo.supers)
            info._closure = (mask, frozenset(users))
        return info._closure

    def given(self, names) -> tuple[int, frozenset]:
        """The closure of a set of class names (for a rigid variable's constraints)."""
        mask, users = 0, set()
        for n in names:
            m, u = self.closure(n)
            mask |= m
            users |= u
        return mask, frozenset(users)


import threading as _threading

_check_state = _threading.local()
_EMPTY_ENV = ClassEnv()


def current_env() -> ClassEnv:
    return getattr(_check_state, "env", None) or _EMPTY_ENV


class class_env:
    """``with class_env(env):`` makes ``env`` the one user constraints are checked in."""
    __slots__ = ("env", "saved")

    def __init__(self, env: ClassEnv):
        self.env = env

    def __enter__(self):
        self.saved = getattr(_check_state, "env", None)
        _check_state.env = self.env
        return self.env

    def __exit__(self, *exc):
        _check_state.env = self.saved
        return False


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
        elif c is TData and node.args:
            k = len(node.args)
            if expanded:
                args = tuple(done[-k:])
                del done[-k:]
                same = all(a is b for a, b in zip(args, node.args))
                done.append(node if same else TData(node.info, args))
            else:
                work.append((node, True))
                for a in reversed(node.args):
                    work.append((prune(a), False))
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
        elif c is TData:
            stack.extend(reversed(node.args))


def free_vars(t) -> list[TVar]:
    """The unbound variables of ``t`` in order of first appearance."""
    seen: dict[TVar, None] = {}
    for node in iter_type(t):
        if node.__class__ is TVar and node not in seen:
            seen[node] = None
    return list(seen)


def contains_function(t) -> bool:
    """Whether a value of type ``t`` may hold a function (a function type anywhere,
    or a data type with a function in a field)."""
    return any(node.__class__ is TFun
               or (node.__class__ is TData and not node.info.derives & SHOW)
               for node in iter_type(t))


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
        elif c is TData:
            for a in node.args:
                stack.append((a, d + 1))
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
        elif cx is TData:
            if x.info.name != y.info.name or len(x.args) != len(y.args):
                return False
            stack.extend(zip(x.args, y.args))
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
    """Require ``t`` to belong to every built-in class in ``mask`` (propagating into
    lists and data types' arguments)."""
    stack = [(t, mask)]
    while stack:
        node, m = stack.pop()
        node = prune(node)
        c = node.__class__
        if c is TVar:
            if node.rigid:
                missing = m & ~node.classes
                if missing:
                    raise UnifyError("instance", None, node, class_names(missing)[0])
            else:
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
        elif c is TData:
            missing = m & ~node.info.derives
            if missing:
                raise UnifyError("instance", None, node, class_names(missing)[0])
            for a in node.args:
                stack.append((a, m))
        else:
            raise UnifyError("instance", None, node, class_names(m)[0])


def add_preds(t, preds: frozenset) -> None:
    """Require ``t`` to belong to every user class in ``preds``: a flexible variable
    takes them on, a rigid one must have been given them, a concrete type needs an
    instance (whose context is then required of the type's arguments)."""
    stack = [(t, preds)]
    env = None
    while stack:
        node, ps = stack.pop()
        node = prune(node)
        c = node.__class__
        if c is TVar:
            if node.rigid:
                missing = ps - node.preds
                if missing:
                    raise UnifyError("instance", None, node, min(missing))
            else:
                node.preds = node.preds | ps
            continue
        if env is None:
            env = current_env()
        head = head_name(node)
        args = head_args(node)
        for cname in sorted(ps):
            inst = env.instances.get((cname, head)) if head is not None else None
            if inst is None:
                raise UnifyError("instance", None, node, cname)
            for ctx_class, i in inst.context:
                bit = CLASS_BITS.get(ctx_class)
                if bit is not None:
                    add_classes(args[i], bit)
                else:
                    stack.append((args[i], frozenset((ctx_class,))))


def bind(v: TVar, t) -> None:
    """Bind the unbound, flexible variable ``v`` to the pruned type ``t`` (not ``v``)."""
    c = t.__class__
    if c is TCon:
        if v.classes:
            missing = v.classes & ~t.instances
            if missing:
                raise UnifyError("instance", None, t, class_names(missing)[0])
        if v.preds:
            add_preds(t, v.preds)
        v.ref = t
        return
    if c is TVar:
        if t.rigid:
            if v.classes:
                missing = v.classes & ~t.classes
                if missing:
                    raise UnifyError("instance", None, t, class_names(missing)[0])
            if v.preds:
                missing = v.preds - t.preds
                if missing:
                    raise UnifyError("instance", None, t, min(missing))
            if t.level > v.level:
                raise UnifyError("escape", v, t)
        else:
            t.classes |= v.classes
            if v.preds:
                t.preds = t.preds | v.preds
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
        elif cu is TData:
            stack.extend(u.args)
    if v.classes:
        add_classes(t, v.classes)
    if v.preds:
        add_preds(t, v.preds)
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
        elif (cx is TData and cy is TData and x.info.name == y.info.name
              and len(x.args) == len(y.args)):
            stack.extend(zip(reversed(x.args), reversed(y.args)))
        elif cx is TVar or cy is TVar:
            raise UnifyError("rigid", x, y)
        else:
            raise UnifyError("mismatch", x, y)


# ---- schemes -------------------------------------------------------------------------

def _dicts_of(vs) -> tuple:
    for v in vs:
        if v.preds:
            return tuple((i, c) for i, v in enumerate(vs) for c in sorted(v.preds))
    return ()


class Scheme:
    """A type with generic variables ``vars`` (each carrying its class constraints).

    Instantiation replaces each generic variable with a fresh one of the same classes
    at the caller's level; other variables (from an enclosing scope) are shared.
    ``dicts`` lists the user-class constraints as (index into vars, class name), in the
    order a binding of this scheme takes its dictionaries (dictionary passing).
    """
    __slots__ = ("vars", "type", "dicts", "_deep", "_fast")

    def __init__(self, vars: tuple[TVar, ...], type):
        self.vars = tuple(vars)
        self.type = type
        self.dicts = _dicts_of(self.vars) if vars else ()
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
            mapping = {v: TVar(level, v.classes, False, v.preds)}
        else:
            mapping = {v: TVar(level, v.classes, False, v.preds) for v in vs}
        if self._deep:
            return _copy_iter(self.type, mapping)
        return _copy(self.type, mapping)

    def instantiate_vars(self, level: int = 0):
        """(instance type, the fresh variable standing for each of ``vars``)."""
        fresh = tuple(TVar(level, v.classes, False, v.preds) for v in self.vars)
        if not fresh:
            return self.type, fresh
        mapping = dict(zip(self.vars, fresh))
        if self._deep:
            return _copy_iter(self.type, mapping), fresh
        return _copy(self.type, mapping), fresh

    def prepare(self) -> "Scheme":
        """Compile a specialised instantiation function (worth it for a scheme that is
        instantiated many times, such as a library function's); returns self."""
        if (self._fast is None and self.vars and not self.dicts
                and not any(v.preds for v in self.vars) and type_depth(self.type) <= 32):
            self._fast = _compile_instantiate(self)
        return self

    @property
    def constraints(self) -> list[tuple[str, TVar]]:
        """(class name, variable) pairs, variables in order of appearance."""
        return [(name, v) for v in free_vars(self.type) if v in self.vars
                for name in sorted(class_names(v.classes) + list(v.preds))]

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
    if c is TData and t.args:
        return TData(t.info, tuple(_copy(a, mapping) for a in t.args))
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
        if c is TData and t.args:
            constants.append(t.info)
            return f"TData(k{len(constants) - 1}, ({''.join(expr(a) + ', ' for a in t.args)}))"
        constants.append(t)
        return f"k{len(constants) - 1}"

    body = expr(scheme.type)
    lines = [f"    {var_names[v]} = TVar(level, {v.classes})" for v in scheme.vars]
    params = ", ".join(["TVar", "TFun", "TList", "TData"]
                       + [f"k{i}" for i in range(len(constants))])
    source = f"def make({params}):\n  def inst(level):\n" + "\n".join(
        "  " + line for line in lines) + f"\n      return {body}\n  return inst\n"
    namespace: dict = {}
    exec(compile(source, "<instantiate>", "exec"), namespace)
    return namespace["make"](TVar, TFun, TList, TData, *constants)


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
        elif c is TData and node.args:
            k = len(node.args)
            if expanded:
                args = tuple(done[-k:])
                del done[-k:]
                done.append(TData(node.info, args))
            else:
                work.append((node, True))
                for a in reversed(node.args):
                    work.append((a, False))
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
            elif c is TData:
                if not node.args:
                    out.append(node.info.name)
                    continue
                out.append("(" + node.info.name)
                stack.append(")")
                for a in reversed(node.args):
                    stack.append(a)
                    stack.append(" ")
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
                if (node.__class__ is TVar and (node.classes or node.preds)
                        and node not in seen):
                    seen.add(node)
                    for cname in sorted(class_names(node.classes) + list(node.preds)):
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

_TOKEN = re.compile(r"\s*(?:(=>)|(->)|([(),])|([A-Za-z_][\w'.?!*/%<>=:+-]*))")
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


class TypeScope:
    """The data types and user classes a signature may name (besides the base types
    and the built-in classes): ``data`` maps a type name to its DataInfo, ``classes``
    is the set of user class names.  Compared by identity (signatures are cached per
    scope)."""
    __slots__ = ("data", "classes", "__weakref__")

    def __init__(self, data=None, classes=()):
        self.data: dict = dict(data or {})
        self.classes = frozenset(classes)


_NO_SCOPE = TypeScope()


def _data_type(scope: TypeScope, name: str, args: list, bad) -> "TData":
    info = scope.data.get(name)
    if info is None:
        raise bad(f"unknown type {name!r}")
    if len(args) != len(info.params):
        raise bad(f"{name} takes {len(info.params)} type argument"
                  f"{'s' if len(info.params) != 1 else ''}, found {len(args)}")
    return TData(info, tuple(args))


def _parse_type_tokens(tokens: list[str], sig: str, var_for,
                       scope: TypeScope = _NO_SCOPE) -> object:
    """Parse one type from the whole of ``tokens`` (iteratively)."""
    def bad(why):
        return SignatureError(f"bad type signature {sig!r}: {why}")

    # Each open frame: [kind, items]; kind is "List", "->" or a data type's name.
    frames: list[list] = []
    result = None
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        i += 1
        if tok == "(":
            if i >= n or not (tokens[i] in ("List", "->") or tokens[i][:1].isupper()):
                raise bad("expected List, -> or a data type after '('")
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
            elif kind == "->":
                if len(items) < 2:
                    raise bad("-> takes at least two types")
                value = fun(*items)
            else:
                value = _data_type(scope, kind, items, bad)
        elif tok in CONSTANTS:
            value = CONSTANTS[tok]
        elif _VAR_NAME.match(tok):
            value = var_for(tok)
        elif tok[:1].isupper() and tok != "List":
            value = _data_type(scope, tok, [], bad)
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
def parse_signature(sig: str, scope: TypeScope = _NO_SCOPE) -> Scheme:
    """Parse the library's signature syntax into a Scheme (generic variables).

    ``"Num a => (-> a a a)"``, ``"(Eq a, Show b) => (-> a b String)"``, ``"a"``,
    ``"(List a)"``, and with a ``scope`` naming them, data types ``"(-> (Maybe Int)
    Tree)"`` and user classes ``"Hashable a => (-> a Int)"``.  Raises SignatureError
    (a ValueError) for malformed text, unknown type or class names, or a constraint on
    a variable the type does not mention.  Results are cached and shared: instantiate
    a scheme before unifying its type.
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
            if len(g) != 2 or not _VAR_NAME.match(g[1]):
                raise SignatureError(f"bad type signature {sig!r}: bad constraint {' '.join(g)!r}")
            if g[0] not in CLASS_BITS and g[0] not in scope.classes:
                raise SignatureError(f"bad type signature {sig!r}: unknown class {g[0]!r}"
                                     + ("" if g[0][:1].islower() else
                                        " (a node declares its classes with "
                                        "Library.declare_class first)"))
            context.append((g[0], g[1]))
    variables: dict[str, TVar] = {}

    def var_for(name):
        v = variables.get(name)
        if v is None:
            v = variables[name] = TVar(GENERIC)
        return v

    t = _parse_type_tokens(tokens, sig, var_for, scope)
    for cname, vname in context:
        if vname not in variables:
            raise SignatureError(
                f"bad type signature {sig!r}: constraint on {vname!r}, which the type does not use")
        v = variables[vname]
        bit = CLASS_BITS.get(cname)
        if bit is not None:
            v.classes |= bit
        else:
            v.preds = v.preds | {cname}
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
#   ("data", name, (arg, ...))           a data type applied to its arguments
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
        elif c is TData:
            k = len(node.args)
            if expanded:
                args = tuple(done[len(done) - k:])
                del done[len(done) - k:]
                done.append(("data", node.info.name, args))
            else:
                work.append((node, True))
                for a in reversed(node.args):
                    work.append((a, False))
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
        for cname in sorted(class_names(v.classes) + list(v.preds)):
            pairs.append((cname, namer.name(v)))
    return ("scheme", tuple(pairs), tree)


def from_tree(tree, scope: TypeScope = _NO_SCOPE):
    """Inverse of to_tree: a Scheme for a ("scheme", ...) tree, else a Type."""
    try:
        return _from_tree(tree, scope)
    except UnifyError:
        raise SignatureError(f"type tree too large (more than {MAX_TYPE_SIZE} parts)") from None


def _from_tree(tree, scope):
    if isinstance(tree, (tuple, list)) and len(tree) == 3 and tree[0] == "scheme":
        body = _from_tree(tree[2], scope)
        names: dict[str, TVar] = {}
        namer = Namer()
        for v in free_vars(body):
            names[namer.name(v)] = v
        for cname, vname in tree[1]:
            if (cname not in CLASS_BITS and cname not in scope.classes) or vname not in names:
                raise SignatureError(f"bad constraint {cname} {vname} in a type tree")
            if cname in CLASS_BITS:
                names[vname].classes |= CLASS_BITS[cname]
            else:
                names[vname].preds = names[vname].preds | {cname}
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
        elif (tag == "data" and len(node) == 3 and isinstance(node[1], str)
              and isinstance(node[2], (tuple, list))):
            k = len(node[2])
            if expanded:
                args = done[len(done) - k:]
                del done[len(done) - k:]
                done.append(_data_type(scope, node[1], args,
                                       lambda why: SignatureError(f"bad type tree: {why}")))
            else:
                work.append((node, True))
                for a in reversed(node[2]):
                    work.append((a, False))
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
