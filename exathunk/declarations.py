"""Declarations: the type-level world a check runs in.

A ``World`` holds every data type, constructor, record field, user class, method and
instance a program can see: the prelude's, then a node's (``Library.declare_data``,
``declare_class``, ``register_instance``), then the program's own.  This module turns
``DataDecl``/``ClassDecl``/``InstanceDecl`` nodes into ``types.DataInfo``/``ClassInfo``/
``InstanceInfo`` and checks what can be checked without inferring expressions: names,
arities, type variables, the classes a data type derives (Eq, Ord, Show when every
field has them: a fixpoint over mutually recursive types), superclasses and their
cycles, instance heads, contexts and overlap.  Method bodies (instances' and default
ones) are the typechecker's.
"""

from __future__ import annotations

from . import ast
from .errors import TypeCheckError, UnknownFunctionError
from .types import (CLASS_BITS, CONSTANTS, DERIVABLE, GENERIC, ClassEnv, ClassInfo, DataInfo,
                    InstanceInfo, TCon, TData, TFun, TList, TVar, TypeScope, UnifyError,
                    add_classes, add_preds, class_env, class_names, fun, iter_type)

BUILTIN_CLASSES = frozenset(CLASS_BITS)
_RESERVED_TYPES = frozenset(CONSTANTS) | {"List"}


def is_upper(name: str) -> bool:
    return bool(name) and "A" <= name[0] <= "Z"


def is_lower(name: str) -> bool:
    return bool(name) and "a" <= name[0] <= "z"


class World:
    """Data types, constructors, record fields, classes, methods and instances."""

    def __init__(self):
        self.data: dict[str, DataInfo] = {}
        self.cons: dict = {}                 # constructor name -> ConInfo
        self.fields: dict = {}               # field name -> (DataInfo, field type index map)
        self.classes: dict[str, ClassInfo] = {}
        self.methods: dict[str, ClassInfo] = {}   # method name -> its class
        self.instances: dict = {}            # (class, head) -> InstanceInfo
        self._scope = None
        self._env = None

    def extend(self) -> "World":
        """A copy to add a program's declarations to (the infos themselves are shared)."""
        w = World()
        w.data = dict(self.data)
        w.cons = dict(self.cons)
        w.fields = dict(self.fields)
        w.classes = dict(self.classes)
        w.methods = dict(self.methods)
        w.instances = dict(self.instances)
        return w

    @property
    def scope(self) -> TypeScope:
        if self._scope is None:
            self._scope = TypeScope(self.data, self.classes)
        return self._scope

    @property
    def env(self) -> ClassEnv:
        if self._env is None:
            self._env = ClassEnv(self.classes, self.instances)
        return self._env

    def changed(self) -> None:
        self._scope = None
        self._env = None

    @property
    def has_classes(self) -> bool:
        return bool(self.classes)


# ---- type expressions -------------------------------------------------------------

def convert(texpr, world: World, var_for):
    """A type term for the written type ``texpr`` (TyCon/TyVar/TyList/TyFun/TyApp);
    ``var_for(TyVar node)`` gives each type variable's TVar (or raises)."""
    cls = texpr.__class__
    if cls is ast.TyVar:
        return var_for(texpr)
    if cls is ast.TyCon:
        base = CONSTANTS.get(texpr.name)
        if base is not None:
            return base
        return _data_type(texpr.name, (), world, texpr)
    if cls is ast.TyList:
        return TList(convert(texpr.elem, world, var_for))
    if cls is ast.TyFun:
        parts = [convert(p, world, var_for) for p in texpr.params]
        return fun(*parts, convert(texpr.result, world, var_for))
    if cls is ast.TyApp:
        args = tuple(convert(a, world, var_for) for a in texpr.args)
        if texpr.name == "List":
            if len(args) != 1:
                raise TypeCheckError(f"(List t) takes exactly one type, found {len(args)}",
                                     texpr.line, texpr.column)
            return TList(args[0])
        return _data_type(texpr.name, args, world, texpr)
    if cls is ast.TyQual:
        raise TypeCheckError("a type with constraints (=> ...) is allowed only at the top "
                             "of an annotation or a method signature",
                             texpr.line, texpr.column)
    raise TypeCheckError(f"not a type: {cls.__name__}", getattr(texpr, "line", None),
                         getattr(texpr, "column", None))


def _data_type(name, args, world, node):
    info = world.data.get(name)
    if info is None:
        if name in world.classes or name in BUILTIN_CLASSES:
            raise TypeCheckError(f"'{name}' is a class, not a type", node.line, node.column)
        known = ", ".join(["Int", "Double", "Bool", "String"] + sorted(world.data)[:12])
        raise TypeCheckError(f"unknown type '{name}' (known types: {known}, (List t), "
                             "(-> a b))", node.line, node.column)
    if len(args) != len(info.params):
        want = len(info.params)
        raise TypeCheckError(f"{name} takes {want} type argument{'s' if want != 1 else ''}, "
                             f"found {len(args)}", node.line, node.column)
    return TData(info, args)


def type_vars_of(texpr, out: list) -> list:
    """The names of the type variables written in ``texpr``, in order (iterative)."""
    stack = [texpr]
    while stack:
        t = stack.pop()
        cls = t.__class__
        if cls is ast.TyVar:
            if t.name not in out:
                out.append(t.name)
        elif cls is ast.TyList:
            stack.append(t.elem)
        elif cls is ast.TyFun:
            stack.append(t.result)
            stack.extend(reversed(t.params))
        elif cls is ast.TyApp:
            stack.extend(reversed(t.args))
        elif cls is ast.TyQual:
            stack.append(t.body)
            for p in reversed(t.context):
                stack.append(p.type)
    return out


# ---- data types ---------------------------------------------------------------------

def declare_datas(decls, world: World, origin: str, taken_names=frozenset()) -> list:
    """Enter the data types ``decls`` into ``world`` (mutual recursion allowed among
    them); returns their DataInfos.  ``taken_names`` are value names (defines) that a
    record field may not reuse."""
    infos = []
    for d in decls:
        if not is_upper(d.name):
            raise TypeCheckError(f"a type name starts with an upper-case letter: '{d.name}'",
                                 d.line, d.column)
        if d.name in _RESERVED_TYPES:
            raise TypeCheckError(f"'{d.name}' is a built-in type and cannot be declared",
                                 d.line, d.column)
        old = world.data.get(d.name)
        if old is not None:
            where = "the prelude" if old.origin == "prelude" else \
                "this node's library" if old.origin == "library" else "this program"
            raise TypeCheckError(f"the data type '{d.name}' is already declared by {where}",
                                 d.line, d.column)
        if d.name in world.classes:
            raise TypeCheckError(f"'{d.name}' is already a class", d.line, d.column)
        if len(set(d.params)) != len(d.params):
            raise TypeCheckError(f"a type parameter of '{d.name}' is repeated", d.line, d.column)
        for p in d.params:
            if not is_lower(p):
                raise TypeCheckError(f"a type parameter starts with a lower-case letter: '{p}'",
                                     d.line, d.column)
        if not d.constructors:
            raise TypeCheckError(f"the data type '{d.name}' has no constructors",
                                 d.line, d.column)
        info = DataInfo(d.name, d.params, origin)
        world.data[d.name] = info
        infos.append(info)
    world.changed()
    for d, info in zip(decls, infos):
        params = dict(zip(d.params, info.param_vars))

        def var_for(node, d=d, params=params):
            v = params.get(node.name)
            if v is None:
                raise TypeCheckError(f"type variable '{node.name}' is not a parameter of "
                                     f"'{d.name}' (declare it: (data ({d.name} ... "
                                     f"{node.name}) ...))", node.line, node.column)
            return v

        field_types: dict[str, object] = {}
        for c in d.constructors:
            if not is_upper(c.name):
                raise TypeCheckError(f"a constructor name starts with an upper-case letter: "
                                     f"'{c.name}'", c.line, c.column)
            if c.name in world.cons:
                other = world.cons[c.name].data
                raise TypeCheckError(f"the constructor '{c.name}' is already defined (by the "
                                     f"data type '{other.name}')", c.line, c.column)
            types_ = tuple(convert(t, world, var_for) for t in c.fields)
            names = c.field_names
            if names is not None:
                if len(names) != len(types_):
                    raise TypeCheckError("a record constructor names every field",
                                         c.line, c.column)
                if len(set(names)) != len(names):
                    raise TypeCheckError(f"a field name of '{c.name}' is repeated",
                                         c.line, c.column)
                for n, t in zip(names, types_):
                    if not is_lower(n):
                        raise TypeCheckError(f"a field name starts with a lower-case letter: "
                                             f"'{n}'", c.line, c.column)
                    if n in taken_names or n in world.methods:
                        raise TypeCheckError(f"the field '{n}' has the name of a definition "
                                             "of this program", c.line, c.column)
                    owner = world.fields.get(n)
                    if owner is not None and owner[0] is not info:
                        raise TypeCheckError(f"the field '{n}' is already a field of "
                                             f"'{owner[0].name}'", c.line, c.column)
                    if n in field_types:
                        from .types import types_equal
                        if not types_equal(field_types[n], t):
                            raise TypeCheckError(f"the field '{n}' has different types in "
                                                 f"two constructors of '{d.name}'",
                                                 c.line, c.column)
                    field_types[n] = t
            con = info.add_constructor(c.name, types_, names)
            world.cons[c.name] = con
        for n in field_types:
            world.fields[n] = (info, field_types[n])
    derive(infos)
    world.changed()
    return infos


def derive(infos) -> None:
    """Set each new type's ``derives``: the built-in classes (Eq, Ord, Show) every field
    type has when the parameters have them, as a greatest fixpoint (so mutually
    recursive types derive together)."""
    for info in infos:
        info.derives = DERIVABLE
    for _round in range(len(infos) * 3 + 2):
        changed = False
        for info in infos:
            mask = info.derives
            for con in info.constructors:
                for t in con.field_types:
                    mask &= _field_classes(t, info.param_vars)
            if mask != info.derives:
                info.derives = mask
                changed = True
        if not changed:
            return


def _field_classes(t, params) -> int:
    mask = DERIVABLE
    for node in iter_type(t):
        c = node.__class__
        if c is TFun:
            return 0
        if c is TCon:
            mask &= node.instances
        elif c is TData:
            mask &= node.info.derives
    return mask


# ---- classes ------------------------------------------------------------------------

def declare_classes(decls, world: World, origin: str, taken_names=frozenset()) -> list:
    """Enter the classes ``decls`` into ``world``; returns their ClassInfos (method
    schemes included; default bodies are checked later, by the typechecker)."""
    from .types import Scheme
    infos = []
    for d in decls:
        if not is_upper(d.name):
            raise TypeCheckError(f"a class name starts with an upper-case letter: '{d.name}'",
                                 d.line, d.column)
        if d.name in BUILTIN_CLASSES:
            raise TypeCheckError(f"'{d.name}' is a built-in class and cannot be declared",
                                 d.line, d.column)
        if d.name in world.classes:
            raise TypeCheckError(f"the class '{d.name}' is already declared", d.line, d.column)
        if d.name in world.data:
            raise TypeCheckError(f"'{d.name}' is already a data type", d.line, d.column)
        if not is_lower(d.param):
            raise TypeCheckError("a class's type variable starts with a lower-case letter",
                                 d.line, d.column)
        info = ClassInfo(d.name, d.param, (), origin)
        info.decl = d
        world.classes[d.name] = info
        infos.append(info)
    world.changed()
    for d, info in zip(decls, infos):
        supers = []
        for p in d.superclasses:
            if not (p.type.__class__ is ast.TyVar and p.type.name == d.param):
                raise TypeCheckError(f"a superclass of '{d.name}' constrains the class's own "
                                     f"variable: ({p.name} {d.param})", p.line, p.column)
            if p.name not in BUILTIN_CLASSES and p.name not in world.classes:
                raise UnknownFunctionError(f"unknown class '{p.name}'", p.line, p.column)
            if p.name == "Num":
                raise TypeCheckError("Num cannot be a superclass of a user class",
                                     p.line, p.column)
            supers.append(p.name)
        info.supers = tuple(supers)
    _check_cycles(infos, world)
    for d, info in zip(decls, infos):
        if not d.methods:
            raise TypeCheckError(f"the class '{d.name}' has no methods", d.line, d.column)
        for m in d.methods:
            if is_upper(m.name):
                raise TypeCheckError(f"a method name starts with a lower-case letter or a "
                                     f"symbol: '{m.name}'", m.line, m.column)
            if m.name in world.methods:
                raise TypeCheckError(f"'{m.name}' is already a method of the class "
                                     f"'{world.methods[m.name].name}'", m.line, m.column)
            if m.name in taken_names or m.name in world.fields:
                raise TypeCheckError(f"the method '{m.name}' has the name of a definition "
                                     "of this program", m.line, m.column)
            info.methods[m.name] = method_scheme(info, m, world)
            info.method_order.append(m.name)
            world.methods[m.name] = info
        for df in d.defaults:
            if df.name not in info.methods:
                raise TypeCheckError(f"'{df.name}' is not a method of the class '{d.name}' "
                                     f"(its methods: {', '.join(info.method_order)})",
                                     df.line, df.column)
            if df.name in info.defaults:
                raise TypeCheckError(f"two default definitions of '{df.name}'",
                                     df.line, df.column)
            info.defaults[df.name] = df
    world.changed()
    return infos


def _check_cycles(infos, world) -> None:
    for info in infos:
        seen = set()
        work = list(info.supers)
        while work:
            s = work.pop()
            if s == info.name:
                d = info.decl
                raise TypeCheckError(f"the class '{info.name}' is its own superclass "
                                     "(a cycle of superclasses)", d.line, d.column)
            if s in seen or s in BUILTIN_CLASSES:
                continue
            seen.add(s)
            work.extend(world.classes[s].supers)


def method_scheme(info: ClassInfo, m: ast.MethodSig, world: World):
    """forall a others. (C a, the signature's own constraints) => type."""
    from .types import Scheme
    texpr = m.type
    context = ()
    if texpr.__class__ is ast.TyQual:
        context, texpr = texpr.context, texpr.body
    names = type_vars_of(texpr, [])
    if info.param not in names:
        raise TypeCheckError(f"the type of the method '{m.name}' does not mention the class "
                             f"variable '{info.param}'", m.line, m.column)
    class_var = TVar(GENERIC, 0, False, frozenset((info.name,)))
    variables = {info.param: class_var}
    for n in names:
        if n != info.param:
            variables[n] = TVar(GENERIC)
    for p in context:
        if p.type.__class__ is not ast.TyVar or p.type.name not in variables:
            raise TypeCheckError("a constraint in a method's type names one of its type "
                                 "variables", p.line, p.column)
        if p.type.name == info.param:
            raise TypeCheckError(f"a method's type cannot constrain the class variable "
                                 f"'{info.param}' (declare a superclass instead)",
                                 p.line, p.column)
        _constrain(variables[p.type.name], p.name, world, p)
    t = convert(texpr, world, lambda node: variables[node.name])
    order = [class_var] + [variables[n] for n in names if n != info.param]
    return Scheme(tuple(order), t)


def _constrain(v: TVar, class_name: str, world: World, node) -> None:
    bit = CLASS_BITS.get(class_name)
    if bit is not None:
        v.classes |= bit
    elif class_name in world.classes:
        v.preds = v.preds | {class_name}
    else:
        raise UnknownFunctionError(f"unknown class '{class_name}'", node.line, node.column)


# ---- instances ----------------------------------------------------------------------

def instance_head(texpr, world: World):
    """(head name, parameter names) of an instance type, or a TypeCheckError."""
    cls = texpr.__class__
    what = ("an instance is for a type constructor applied to distinct type variables: "
            "Int, String, Tree, (List a), (Opt a), (Pair a b)")
    if cls is ast.TyCon:
        if texpr.name in CONSTANTS:
            return texpr.name, ()
        info = world.data.get(texpr.name)
        if info is None:
            _data_type(texpr.name, (), world, texpr)       # the unknown-type message
        if info.params:
            raise TypeCheckError(f"{texpr.name} takes {len(info.params)} type argument(s): "
                                 f"write the instance for ({texpr.name} a ...)",
                                 texpr.line, texpr.column)
        return info.name, ()
    if cls is ast.TyList or (cls is ast.TyApp and texpr.name == "List"):
        elem = texpr.elem if cls is ast.TyList else (texpr.args[0] if texpr.args else None)
        if elem.__class__ is not ast.TyVar:
            raise TypeCheckError(what, texpr.line, texpr.column)
        return "List", (elem.name,)
    if cls is ast.TyApp:
        info = world.data.get(texpr.name)
        if info is None:
            _data_type(texpr.name, (), world, texpr)
        if len(texpr.args) != len(info.params):
            _data_type(texpr.name, texpr.args, world, texpr)
        names = []
        for a in texpr.args:
            if a.__class__ is not ast.TyVar or a.name in names:
                raise TypeCheckError(what, a.line, a.column)
            names.append(a.name)
        return info.name, tuple(names)
    if cls is ast.TyFun:
        raise TypeCheckError("instances for function types are not supported",
                             texpr.line, texpr.column)
    raise TypeCheckError(what, texpr.line, texpr.column)


def instance_type(info: InstanceInfo, world: World, rigid: bool = True, level: int = 0):
    """The instance's type over fresh variables (rigid ones given the context), and
    those variables."""
    variables = []
    for i, _name in enumerate(info.params):
        classes, preds = 0, set()
        for cname, idx in info.context:
            if idx == i:
                m, u = world.env.closure(cname)
                classes |= m
                preds |= u
        variables.append(TVar(level, classes, rigid, frozenset(preds)))
    if info.head in CONSTANTS:
        return CONSTANTS[info.head], variables
    if info.head == "List":
        return TList(variables[0]), variables
    return TData(world.data[info.head], tuple(variables)), variables


def declare_instances(decls, world: World, origin: str) -> list:
    """Enter the instances ``decls`` into ``world`` (heads, contexts, overlap); their
    methods are checked by the typechecker, their superclasses by check_superclasses."""
    infos = []
    for d in decls:
        cinfo = world.classes.get(d.class_name)
        if cinfo is None:
            if d.class_name in BUILTIN_CLASSES:
                raise TypeCheckError(
                    f"instances of the built-in class {d.class_name} cannot be declared: "
                    + ("Num is built into the engine" if d.class_name == "Num" else
                       "Eq, Ord and Show are derived for every data type whose fields "
                       "have them"), d.line, d.column)
            raise UnknownFunctionError(f"unknown class '{d.class_name}'", d.line, d.column)
        head, params = instance_head(d.type, world)
        context = []
        for p in d.context:
            if p.type.__class__ is not ast.TyVar or p.type.name not in params:
                raise TypeCheckError("an instance's context constrains the type variables "
                                     "of the instance type", p.line, p.column)
            if p.name not in BUILTIN_CLASSES and p.name not in world.classes:
                raise UnknownFunctionError(f"unknown class '{p.name}'", p.line, p.column)
            context.append((p.name, params.index(p.type.name)))
        key = (d.class_name, head)
        old = world.instances.get(key)
        if old is not None:
            where = "this node" if old.origin == "library" else "this program"
            line = getattr(old.decl, "line", None)
            at = f" at line {line}" if line and old.origin == "user" else ""
            raise TypeCheckError(f"overlapping instances: {d.class_name} {head} is already "
                                 f"declared by {where}{at}", d.line, d.column)
        info = InstanceInfo(d.class_name, head, params, context, origin)
        info.decl = d
        info.type_text = _type_text(head, params)
        world.instances[key] = info
        infos.append(info)
        seen = set()
        for df in d.defines:
            if df.name not in cinfo.methods:
                raise TypeCheckError(f"'{df.name}' is not a method of the class "
                                     f"'{cinfo.name}' (its methods: "
                                     f"{', '.join(cinfo.method_order)})", df.line, df.column)
            if df.name in seen:
                raise TypeCheckError(f"two definitions of '{df.name}' in one instance",
                                     df.line, df.column)
            seen.add(df.name)
            info.methods[df.name] = df
        for m in cinfo.method_order:
            if m not in seen and m not in cinfo.defaults:
                raise TypeCheckError(f"the instance {d.class_name} {info.type_text} does not "
                                     f"define the method '{m}', which has no default",
                                     d.line, d.column)
    world.changed()
    return infos


def _type_text(head, params) -> str:
    return head if not params else f"({head} {' '.join(params)})"


def check_superclasses(infos, world: World) -> None:
    """Every superclass of an instance's class holds for its type, given its context."""
    with class_env(world.env):
        for info in infos:
            cinfo = world.classes[info.class_name]
            for sup in cinfo.supers:
                t, _ = instance_type(info, world, rigid=True)
                try:
                    bit = CLASS_BITS.get(sup)
                    if bit is not None:
                        add_classes(t, bit)
                    else:
                        add_preds(t, frozenset((sup,)))
                except UnifyError as err:
                    d = info.decl
                    need = f"{sup} {info.type_text}"
                    extra = ""
                    if err.right is not None and err.right.__class__ is TVar:
                        extra = f" (add ({err.class_name} ...) to the instance's context)"
                    raise TypeCheckError(f"the instance {info.class_name} {info.type_text} needs "
                                         f"an instance {need}: {sup} is a superclass of "
                                         f"{info.class_name}{extra}",
                                         getattr(d, "line", None), getattr(d, "column", None)
                                         ) from None


__all__ = ["World", "convert", "declare_datas", "declare_classes", "declare_instances",
           "check_superclasses", "instance_head", "instance_type", "method_scheme",
           "BUILTIN_CLASSES", "is_upper", "is_lower", "type_vars_of", "class_names", "TCon"]
