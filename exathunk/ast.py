"""The untyped syntax tree that the parser builds and every later stage reads.

Nodes are small frozen dataclasses.  Every node carries the ``line`` and ``column``
(both 1-based) of its first character; positions do not take part in equality, so a
tree parsed from pretty-printed source equals the original.

The typechecker adds one piece of information: on every ``Var`` it sets
``inst_type`` (the type at which that occurrence is used, fully resolved once the
enclosing program is solved).  It is stored outside the dataclass fields so that it
never affects equality.
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
class TyFun:
    """`(-> a b c)`: curried, params (a, b) and result c."""
    params: tuple["TypeExpr", ...]
    result: "TypeExpr"
    line: int = field(**_pos)
    column: int = field(**_pos)


TypeExpr = Union[TyCon, TyVar, TyList, TyFun]


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
    # Set by the typechecker (see module docstring); not a dataclass field.
    inst_type: object = field(default=None, compare=False, repr=False)


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


Expr = Union[Lit, Var, App, If, Let, Lambda, The, ListLit]


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


@dataclass(frozen=True, slots=True)
class Module:
    """A whole program: zero or more defines, then exactly one result expression."""
    defines: tuple[Define, ...]
    body: Expr
    line: int = field(**_pos)
    column: int = field(**_pos)
