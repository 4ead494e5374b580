"""Exhaustiveness and redundancy of ``case`` patterns: the compile-time warnings.

Maranget's usefulness algorithm ("Warnings for pattern matching", JFP 2007) over the
patterns of each case: a case is exhaustive when the wildcard is not useful after its
alternatives, and an alternative is redundant when it is not useful after the ones
before it.  Constructor sets are complete for a data type (all its constructors), a
list (nil, cons) and Bool (true, false); Int, Double and String literals never cover
their type.  For a case that is not exhaustive a value it misses is shown, such as
``(Yes _)``.  The search is bounded: on a pathological case it gives up silently
rather than keep the compiler busy.
"""

from __future__ import annotations

from . import ast

__all__ = ["case_warnings"]

_WILD = None          # a pattern that matches anything


class _Budget(Exception):
    pass


class _Con:
    """A head constructor: its key (what it is), arity, and the complete set it
    belongs to (None for literals of infinite types)."""
    __slots__ = ("key", "arity", "siblings", "text")

    def __init__(self, key, arity, siblings, text):
        self.key = key
        self.arity = arity
        self.siblings = siblings
        self.text = text


_NIL = _Con(("list", "nil"), 0, None, "nil")
_CONS = _Con(("list", "cons"), 2, None, "cons")
_NIL.siblings = _CONS.siblings = (_NIL, _CONS)
_TRUE = _Con(("bool", True), 0, None, "true")
_FALSE = _Con(("bool", False), 0, None, "false")
_TRUE.siblings = _FALSE.siblings = (_FALSE, _TRUE)

_data_cons: dict = {}


def _data_con(con):
    """The _Con of a data constructor (the siblings shared per data type)."""
    info = con.data
    cached = _data_cons.get(id(info))
    if cached is None or cached[0] is not info:
        sibs = tuple(_Con(("data", info.name, c.name), c.arity, None, c.name)
                     for c in info.constructors)
        for s in sibs:
            s.siblings = sibs
        cached = (info, sibs)
        if len(_data_cons) > 4096:
            _data_cons.clear()
        _data_cons[id(info)] = cached
    return cached[1][con.tag]


def _norm(p):
    """A pattern as (con, [sub-patterns]) or _WILD."""
    cls = p.__class__
    if cls is ast.PWild or cls is ast.PVar:
        return _WILD
    if cls is ast.PLit:
        lit = p.lit
        if lit.type == "Bool":
            return (_TRUE if lit.value else _FALSE, [])
        return (_Con(("lit", lit.type, repr(lit.value)), 0, None, None), [])
    if p.name == "nil" and p.con is None:
        return (_NIL, [])
    if p.name == "cons" and p.con is None:
        return (_CONS, [_norm(a) for a in p.args])
    if p.con is None:                     # unresolved: treat as matching anything
        return _WILD
    return (_data_con(p.con), [_norm(a) for a in p.args])


def _specialise(rows, con):
    out = []
    for row in rows:
        first = row[0]
        if first is _WILD:
            out.append([_WILD] * con.arity + row[1:])
        elif first[0].key == con.key:
            out.append(list(first[1]) + row[1:])
    return out


def _default(rows):
    return [row[1:] for row in rows if row[0] is _WILD]


def _heads(rows):
    seen = {}
    for row in rows:
        if row[0] is not _WILD:
            seen.setdefault(row[0][0].key, row[0][0])
    return list(seen.values())


def _complete(heads):
    if not heads or heads[0].siblings is None:
        return False
    keys = {h.key for h in heads}
    return all(s.key in keys for s in heads[0].siblings)


def _useful(rows, q, budget):
    budget[0] -= 1
    if budget[0] < 0:
        raise _Budget()
    if not q:
        return not rows
    first = q[0]
    if first is not _WILD:
        con = first[0]
        return _useful(_specialise(rows, con), list(first[1]) + q[1:], budget)
    heads = _heads(rows)
    if _complete(heads):
        return any(_useful(_specialise(rows, c), [_WILD] * c.arity + q[1:], budget)
                   for c in heads[0].siblings)
    return _useful(_default(rows), q[1:], budget)


def _witness(rows, n, budget):
    """n patterns that no row matches (as text pieces), or None."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _Budget()
    if n == 0:
        return [] if not rows else None
    heads = _heads(rows)
    if _complete(heads):
        for c in heads[0].siblings:
            w = _witness(_specialise(rows, c), c.arity + n - 1, budget)
            if w is not None:
                return [_show(c, w[:c.arity])] + w[c.arity:]
        return None
    w = _witness(_default(rows), n - 1, budget)
    if w is None:
        return None
    if heads and heads[0].siblings is not None:
        keys = {h.key for h in heads}
        for c in heads[0].siblings:
            if c.key not in keys:
                return [_show(c, ["_"] * c.arity)] + w
    return ["_"] + w


def _show(con, args):
    if not args:
        return con.text
    if con is _CONS:
        return f"(cons {args[0]} {args[1]})"
    return f"({con.text} {' '.join(args)})"


def case_warnings(cases) -> list:
    """(message, line, column) warnings for the given Case nodes."""
    out = []
    for case in cases:
        if not case.alts:
            if case.form == "cond":
                out.append(("this cond has no else: when no condition holds, it fails at "
                            "run time", case.line, case.column))
            elif case.form == "case":
                out.append(("this case has no alternatives: it always fails",
                            case.line, case.column))
            continue
        if case.form != "case":
            continue
        budget = [20_000]
        try:
            rows = []
            for alt in case.alts:
                row = [_norm(alt.pattern)]
                if rows and not _useful(rows, row, budget):
                    out.append(("this alternative is never used: the ones before it match "
                                "every value it matches", alt.line, alt.column))
                rows.append(row)
            w = _witness(rows, 1, budget)
        except _Budget:
            continue
        if w is not None:
            out.append((f"this case does not cover every value: {w[0]} is not matched "
                        "(it fails at run time if that value comes)", case.line, case.column))
    return out
