"""Host-side values: what a result handed back to Python is, and how it prints.

The engine returns int, float, bool, str, list and ``Data`` (a value of a data type:
its constructor's name and its fields).  ``show_value`` renders them the way the
built-in ``show`` does, as source that reads back: ``-5``, ``2.5``, ``1e+22``, ``inf``,
``-inf``, ``nan``, ``true``, ``"a\\"b"``, ``(list 1 2 3)``, ``(list)``, ``(Yes 3)``,
``No``.  A Python tuple is not a value: a list is a ``list``, a pair ``Data("Pair",
(a, b))``.

String escapes (shared by the lexer, ``show`` and this module): ``\\"`` ``\\\\`` ``\\n``
``\\t`` ``\\r`` and ``\\u{HEX}`` for any code point; ``show`` writes other control
characters (below U+0020, and U+007F) as ``\\u{HEX}``.
"""

from __future__ import annotations

import math

_SIMPLE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def show_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _SIMPLE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def show_double(x: float) -> str:
    """Shortest text that reads back to the same Double, always with '.' or 'e'."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)   # CPython's repr is the shortest round-tripping form


class Data:
    """A value of a data type, as the host sees it: ``Data("Just", (3,))``, ``Data("No")``.

    ``constructor`` is the constructor's name, ``fields`` a tuple of values (in the
    constructor's order; record fields by position too).  ``str()`` is the ``show``
    text, ``(Just 3)``; two Data are equal when constructor and fields are.
    """
    __slots__ = ("constructor", "fields")

    def __init__(self, constructor: str, fields=()):
        if not isinstance(constructor, str) or not constructor:
            raise TypeError("a Data constructor is a non-empty string")
        if isinstance(fields, (str, bytes)) or not hasattr(fields, "__iter__"):
            raise TypeError("Data fields are a sequence of values")
        object.__setattr__(self, "constructor", constructor)
        object.__setattr__(self, "fields", tuple(fields))

    def __setattr__(self, name, value):
        raise AttributeError("Data values are immutable")

    def __eq__(self, other):
        return (isinstance(other, Data) and other.constructor == self.constructor
                and other.fields == self.fields)

    def __hash__(self):
        return hash((self.constructor, self.fields))

    def __repr__(self):
        if not self.fields:
            return f"Data({self.constructor!r})"
        return f"Data({self.constructor!r}, {self.fields!r})"

    def __str__(self):
        return show_value(self)

    def __reduce__(self):
        return (Data, (self.constructor, self.fields))


def show_value(v) -> str:
    """Render a host value as exathunk source (iterative: lists may be long or deep)."""
    out: list[str] = []
    stack = [v]
    while stack:
        item = stack.pop()
        if isinstance(item, _Close):
            out.append(")")
        elif isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int):
            out.append(str(item))
        elif isinstance(item, float):
            out.append(show_double(item))
        elif isinstance(item, str):
            out.append(show_string(item))
        elif isinstance(item, list):
            out.append("(list")
            stack.append(_CLOSE)
            for elem in reversed(item):
                stack.append(elem)
                stack.append(_SPACE)
        elif isinstance(item, Data):
            if not item.fields:
                out.append(item.constructor)
                continue
            out.append("(" + item.constructor)
            stack.append(_CLOSE)
            for elem in reversed(item.fields):
                stack.append(elem)
                stack.append(_SPACE)
        elif item is _SPACE:
            out.append(" ")
        else:
            raise TypeError(f"not an exathunk value: {item!r}")
    return "".join(out)


class _Close:
    __slots__ = ()


_CLOSE = _Close()
_SPACE = object()
