"""Host-side values: how a result handed back to Python is printed as exathunk source.

The engine returns int, float, bool, str and list.  ``show_value`` renders them the
way the built-in ``show`` does, as source that reads back: ``-5``, ``2.5``, ``1e+22``,
``inf``, ``-inf``, ``nan``, ``true``, ``"a\\"b"``, ``(list 1 2 3)``, ``(list)``.

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
        elif isinstance(item, (list, tuple)):
            out.append("(list")
            stack.append(_CLOSE)
            for elem in reversed(item):
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
