"""Print any AST node (module, define, expression, binding or type) back as source.

The output parses back to an equal tree: literals are written the way ``show`` writes
values (values.py), lets always in their long form, and a program one define per line.
"""

from __future__ import annotations

from . import ast
from .values import show_double, show_string

__all__ = ["to_source"]


def to_source(node) -> str:
    out: list[str] = []
    _emit(node, out)
    return "".join(out)


def _emit(node, out: list[str]) -> None:
    kind = type(node)
    if kind is ast.Lit:
        out.append(_literal(node))
    elif kind is ast.Var or kind is ast.TyCon or kind is ast.TyVar:
        out.append(node.name)
    elif kind is ast.App:
        out.append("(")
        _emit(node.fn, out)
        _form_rest(node.args, out)
    elif kind is ast.If:
        out.append("(if")
        _form_rest((node.cond, node.then, node.orelse), out)
    elif kind is ast.Let:
        out.append("(let (")
        for i, binding in enumerate(node.bindings):
            if i:
                out.append(" ")
            _emit(binding, out)
        out.append(")")
        _form_rest((node.body,), out)
    elif kind is ast.Binding:
        out.append(f"({node.name}")
        _form_rest((node.expr,), out)
    elif kind is ast.Lambda:
        out.append(f"(lambda ({' '.join(node.params)})")
        _form_rest((node.body,), out)
    elif kind is ast.The:
        out.append("(the")
        _form_rest((node.type, node.expr), out)
    elif kind is ast.ListLit:
        out.append("(list")
        _form_rest(node.items, out)
    elif kind is ast.Define:
        if node.params is None:
            out.append(f"(define {node.name}")
        else:
            out.append(f"(define ({' '.join((node.name,) + tuple(node.params))})")
        _form_rest((node.body,), out)
    elif kind is ast.Module:
        for define in node.defines:
            _emit(define, out)
            out.append("\n")
        _emit(node.body, out)
    elif kind is ast.TyList:
        out.append("(List")
        _form_rest((node.elem,), out)
    elif kind is ast.TyFun:
        out.append("(->")
        _form_rest(node.params + (node.result,), out)
    else:
        raise TypeError(f"not an exathunk AST node: {node!r}")


def _form_rest(parts, out: list[str]) -> None:
    """The rest of a form whose head is already out: each part after a space, then ')'."""
    for part in parts:
        out.append(" ")
        _emit(part, out)
    out.append(")")


def _literal(lit: ast.Lit) -> str:
    value = lit.value
    if lit.type == "Int":
        return str(int(value))
    if lit.type == "Double":
        return show_double(float(value))
    if lit.type == "Bool":
        return "true" if value else "false"
    if lit.type == "String":
        return show_string(value)
    raise TypeError(f"literal of unknown type {lit.type!r}")
