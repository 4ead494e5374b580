"""Print any AST node (module, define, declaration, expression, pattern or type) back
as source.

The output parses back to an equal tree: literals are written the way ``show`` writes
values (values.py), lets always in their long form, a program one top-level form per
line (data types, then classes, instances and defines), a cons pattern chain ending in
nil as a list pattern (so that its printed nesting stays flat), a nullary constructor
bare.  A desugared ``cond`` prints as the ifs it became, and its failing end as
``(case true)``.
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
        for form in node.datas + node.classes + node.instances + node.defines:
            _emit(form, out)
            out.append("\n")
        _emit(node.body, out)
    elif kind is ast.Case:
        out.append("(case")
        _form_rest((node.scrutinee,) + node.alts, out)
    elif kind is ast.Alt:
        out.append("(")
        _emit(node.pattern, out)
        _form_rest((node.body,), out)
    elif kind is ast.PCon:
        _pattern(node, out)
    elif kind is ast.PVar:
        out.append(node.name)
    elif kind is ast.PWild:
        out.append("_")
    elif kind is ast.PLit:
        out.append(_literal(node.lit))
    elif kind is ast.TyApp:
        out.append(f"({node.name}")
        _form_rest(node.args, out)
    elif kind is ast.Pred:
        out.append(f"({node.name}")
        _form_rest((node.type,), out)
    elif kind is ast.TyQual:
        out.append("(=>")
        _form_rest(node.context + (node.body,), out)
    elif kind is ast.DataDecl:
        if node.params:
            out.append(f"(data ({node.name} {' '.join(node.params)})")
        else:
            out.append(f"(data {node.name}")
        _form_rest(node.constructors, out)
    elif kind is ast.ConDecl:
        if node.field_names is not None:
            out.append(f"({node.name}")
            for name, field_type in zip(node.field_names, node.fields):
                out.append(f" ({name} ")
                _emit(field_type, out)
                out.append(")")
            out.append(")")
        elif node.fields:
            out.append(f"({node.name}")
            _form_rest(node.fields, out)
        else:
            out.append(node.name)
    elif kind is ast.MethodSig:
        out.append(f"({node.name}")
        _form_rest((node.type,), out)
    elif kind is ast.ClassDecl:
        out.append("(class ")
        _head(node.superclasses, ast.Pred(node.name, ast.TyVar(node.param)), out)
        _form_rest(node.methods + node.defaults, out)
    elif kind is ast.InstanceDecl:
        out.append("(instance ")
        _head(node.context, ast.Pred(node.class_name, node.type), out)
        _form_rest(node.defines, out)
    elif kind is ast.TyList:
        out.append("(List")
        _form_rest((node.elem,), out)
    elif kind is ast.TyFun:
        out.append("(->")
        _form_rest(node.params + (node.result,), out)
    else:
        raise TypeError(f"not an exathunk AST node: {node!r}")


def _pattern(node: ast.PCon, out: list[str]) -> None:
    """A constructor pattern; a chain of conses ending in nil is a (list ...) pattern."""
    if node.name == "nil" and not node.args:
        out.append("nil")
        return
    items = []
    tail = node
    while tail.__class__ is ast.PCon and tail.name == "cons" and len(tail.args) == 2:
        items.append(tail.args[0])
        tail = tail.args[1]
    if items and tail.__class__ is ast.PCon and tail.name == "nil" and not tail.args:
        out.append("(list")
        _form_rest(items, out)
    elif node.args:
        out.append(f"({node.name}")
        _form_rest(node.args, out)
    else:
        out.append(node.name)


def _head(context, pred: ast.Pred, out: list[str]) -> None:
    """A class's or an instance's head: (C t), or (=> (D a) ... (C t))."""
    if context:
        out.append("(=>")
        _form_rest(context + (pred,), out)
    else:
        _emit(pred, out)


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
