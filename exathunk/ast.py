"""The untyped syntax tree that the parser builds and every later stage reads.

Nodes are small frozen dataclasses.  Every node carries the ``line`` and ``column``
(both 1-based) of its first character; positions do not take part in equality, so a
tree parsed from pretty-printed source equals the original.

The typechecker adds information outside the dataclass fields' equality: on every
``Var`` it sets ``inst_type`` (the type at which that occurrence is used, fully
resolved once the enclosing program is solved) and, on a name that is a data
constructor, ``con`` (its ``types.ConInfo``); on every ``PCon`` pattern it sets ``con``
too.  These never affect equality.

Data types, classes and instances are top-level forms (``DataDecl``, ``ClassDecl``,
``InstanceDecl``) kept on the ``Module`` beside its defines.  The typechecker's
elaboration (``elaborate.py``) removes classes and instances again: what the compiler
and the reference interpreter read is plain defines, data types and ``case``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

_pos = dict(default=0, compare=False, repr=False)


# ---- type expressions (as written in `(the T e)` and in signatures) ----------------

@dataclass(frozen=True, slots=True)
class TyCon:
    """A type constant: Int, Double, Bool, String."""
    name: str
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class TyVar:
    """A lower-case type variable: a, b, elem."""
    name: str
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class TyList:
    """`(List t)`."""
    elem: "TypeExpr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class TyApp:
    """`(Opt a)`, `(Pair Int b)`: a data type applied to types; also a class applied to
    a type in a predicate, `(Size a)` (see ``Pred``).  A data type without parameters is
    written as a bare name and parsed as ``TyCon``."""
    name: str
    args: tuple["TypeExpr", ...]
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Pred:
    """A class constraint `(Size a)`: class ``name`` holds for ``type``."""
    name: str
    type: "TypeExpr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class TyQual:
    """`(=> (Show b) (Size b) (-> a b String))`: a type with class constraints."""
    context: tuple[Pred, ...]
    body: "TypeExpr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class TyFun:
    """`(-> a b c)`: curried, params (a, b) and result c."""
    params: tuple["TypeExpr", ...]
    result: "TypeExpr"
    line: int = field(**_pos)
    column: int = field(**_pos)


TypeExpr = Union[TyCon, TyVar, TyList, TyFun, TyApp, TyQual]


# ---- expressions --------------------------------------------------------------------

LIT_TYPES = ("Int", "Double", "Bool", "String")


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal; ``type`` is one of LIT_TYPES and ``value`` the Python value."""
    value: Union[int, float, bool, str]
    type: str
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Var:
    """A name: a local, a top-level define, a built-in or a host function."""
    name: str
    line: int = field(**_pos)
    column: int = field(**_pos)
    # Set by the typechecker (see module docstring); not compared.
    inst_type: object = field(default=None, compare=False, repr=False)
    con: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class App:
    """`(f a b)`: application of ``fn`` to one or more ``args`` (curried)."""
    fn: "Expr"
    args: tuple["Expr", ...]
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class If:
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Binding:
    """One `(name expr)` of a let."""
    name: str
    expr: "Expr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Let:
    """`(let ((x e1) (y e2)) body)`: recursive, lazy and shared bindings."""
    bindings: tuple[Binding, ...]
    body: "Expr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Lambda:
    """`(lambda (x y) body)`; at least one parameter."""
    params: tuple[str, ...]
    body: "Expr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class The:
    """`(the T e)`: a type annotation."""
    type: TypeExpr
    expr: "Expr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class ListLit:
    """`(list a b c)`: sugar for cons cells ending in nil; `(list)` is nil.

    Kept flat (not desugared by the parser) so that a 10,000-element literal does not
    become a 10,000-deep tree that later stages would have to recurse through.
    """
    items: tuple["Expr", ...]
    line: int = field(**_pos)
    column: int = field(**_pos)


# ---- patterns (of `case`) ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PWild:
    """`_`: matches anything, binds nothing, forces nothing."""
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class PVar:
    """A name: matches anything and binds it (forces nothing)."""
    name: str
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class PLit:
    """A literal pattern (`0`, `-3`, `2.5`, `"a"`, `true`): forces the value and
    compares it with ``=`` (so a NaN literal never matches)."""
    lit: Lit
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class PCon:
    """`(Yes p)`, `(Node l v r)`, `(No)` or a bare `No`: a constructor applied to one
    sub-pattern per field.  The list patterns are PCon too: name "nil" (no args) and
    name "cons" (head and tail patterns); `(list p1 p2)` is parsed as the nested
    cons/nil patterns.  ``con`` is set by the typechecker (None for nil/cons)."""
    name: str
    args: tuple["Pattern", ...]
    line: int = field(**_pos)
    column: int = field(**_pos)
    con: object = field(default=None, compare=False, repr=False)


Pattern = Union[PWild, PVar, PLit, PCon]


@dataclass(frozen=True, slots=True)
class Alt:
    """One `(pattern body)` of a case."""
    pattern: Pattern
    body: "Expr"
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Case:
    """`(case e (p1 b1) (p2 b2) ...)`: the first alternative whose pattern matches.

    The scrutinee is forced only as far as the patterns tried need (a variable or `_`
    forces nothing); no match is an EvaluationError naming the place.  ``form`` says
    what the source wrote ("case", or "cond" for a `cond` without `else`, which the
    parser desugars to ifs ending in a case with no alternatives); messages use it.
    """
    scrutinee: "Expr"
    alts: tuple[Alt, ...]
    line: int = field(**_pos)
    column: int = field(**_pos)
    form: str = field(default="case", compare=False, repr=False)


Expr = Union[Lit, Var, App, If, Let, Lambda, The, ListLit, Case]


@dataclass(frozen=True, slots=True)
class Define:
    """`(define (f x y) body)` (params a tuple) or `(define n body)` (params None).

    `(define (f) body)` has params () and means the same as `(define f body)`.
    """
    name: str
    params: Union[tuple[str, ...], None]
    body: Expr
    line: int = field(**_pos)
    column: int = field(**_pos)


# ---- data types, classes, instances ----------------------------------------------

@dataclass(frozen=True, slots=True)
class ConDecl:
    """One constructor of a data type: `(Yes a)`, `(Leaf)` (or a bare `Leaf`), or a
    record `(Pt (px Double) (py Double))`, whose ``field_names`` are the accessors
    (None for a positional constructor; never a mix)."""
    name: str
    fields: tuple[TypeExpr, ...]
    field_names: Union[tuple[str, ...], None]
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class DataDecl:
    """`(data (Opt a) (No) (Yes a))` or `(data Tree (Leaf) (Node Tree Int Tree))`."""
    name: str
    params: tuple[str, ...]
    constructors: tuple[ConDecl, ...]
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class MethodSig:
    """`(size (-> a Int))` in a class: a method and its type (which may be a TyQual
    with constraints on other type variables)."""
    name: str
    type: TypeExpr
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class ClassDecl:
    """`(class (=> (Eq a) (Keyed a)) (key (-> a Int)) (define (key x) 0))`.

    ``param`` is the class's type variable, ``superclasses`` the classes that must hold
    for it, ``methods`` the signatures and ``defaults`` the default definitions."""
    name: str
    param: str
    superclasses: tuple[Pred, ...]
    methods: tuple[MethodSig, ...]
    defaults: tuple[Define, ...]
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class InstanceDecl:
    """`(instance (=> (Size a) (Size (List a))) (define (size xs) ...))`.

    ``type`` is the instance type: a TyCon (Int, String, a data type without
    parameters), a TyList or a TyApp whose arguments are distinct TyVars; ``context``
    the constraints on those variables."""
    class_name: str
    type: TypeExpr
    context: tuple[Pred, ...]
    defines: tuple[Define, ...]
    line: int = field(**_pos)
    column: int = field(**_pos)


@dataclass(frozen=True, slots=True)
class Module:
    """A whole program: zero or more top-level forms, then exactly one result
    expression.  The forms may come in any order (the top level is recursive)."""
    defines: tuple[Define, ...]
    body: Expr
    line: int = field(**_pos)
    column: int = field(**_pos)
    datas: tuple[DataDecl, ...] = ()
    classes: tuple[ClassDecl, ...] = ()
    instances: tuple[InstanceDecl, ...] = ()
