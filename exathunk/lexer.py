"""The exathunk lexer: PLY token rules for the s-expression syntax (DESIGN §3).

``Lexer`` holds the rules; ``build()`` makes the PLY lexer (kept out of ``__init__``, as
pycparser does, because the PLY manual warns against lexing in a constructor).  Every
token carries ``lineno``, ``lexpos`` and a 1-based ``column``.  Token values are what
the parser needs, positions included: a literal's value is its ``ast.Lit`` node, a
name's its ``ast.Var``, a parenthesis's its ``(line, column)``, a keyword's its text.
Malformed input raises ``ParseError`` with its place.  ``scan()`` (below) is the fast
scanner the parser uses for well-formed input; it yields the same tokens.

Rules are given to PLY through ``@TOKEN`` (not docstrings) so that ``python -OO`` keeps
them.  Per-input state (line start, paren depth) lives on the PLY lexer object, so a
``clone()`` per thread is independent.
"""

from __future__ import annotations

import dataclasses
import re
import threading

from ply import lex
from ply.lex import TOKEN

from . import ast
from .errors import ParseError

# Source nesting deeper than this many parentheses is a ParseError, so that every later
# stage may recurse on tree depth.
MAX_NESTING = 256

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1

KEYWORDS = {
    "define": "DEFINE", "let": "LET", "lambda": "LAMBDA",
    "if": "IF", "the": "THE", "list": "LIST",
    "data": "DATA", "case": "CASE", "class": "CLASS", "instance": "INSTANCE",
    "cond": "COND", "else": "ELSE",
}

tokens = ("LPAREN", "RPAREN", "INT", "DOUBLE", "STRING", "BOOL", "ID") + tuple(
    KEYWORDS.values())

# Token kinds that start an expression; the parser uses this to word its errors.
EXPR_START = frozenset({"LPAREN", "INT", "DOUBLE", "STRING", "BOOL", "ID"})

IDENT_CHARS = r"\w+\-*/%<>=!?.:"
_ATOM_RE = r"[" + IDENT_CHARS + r"]+"
_INT_RE = re.compile(r"-?[0-9]+")
_DOUBLE_RE = re.compile(r"-?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                        r"|[0-9]+[eE][-+]?[0-9]+)")
_SPECIAL_DOUBLES = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}
_BOOLS = {"true": True, "false": False}
_ESCAPE_RE = re.compile(r"\\(?:u\{([^}\"]*)\}|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def line_col(source: str, pos: int) -> tuple[int, int]:
    """1-based line and column of offset ``pos`` (only for errors: it scans)."""
    line = source.count("\n", 0, pos) + 1
    return line, pos - source.rfind("\n", 0, pos)


def source_text(source) -> str:
    """``source`` as text: a str as it is, bytes (or a bytearray or memoryview, as a
    wire string that is not UTF-8 arrives) decoded as UTF-8.  Bytes that are not UTF-8
    are a ParseError naming the byte offset of the first bad byte (its ``offset``), with
    the line and column it falls on; anything else is a ParseError too."""
    if source.__class__ is str:
        return source
    if isinstance(source, str):
        return str(source)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        raise ParseError(f"source must be text (str, or UTF-8 bytes), not "
                         f"{type(source).__name__}")
    data = bytes(source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start
        line_start = data.rfind(b"\n", 0, at) + 1
        line = data.count(b"\n", 0, at) + 1
        column = len(data[line_start:at].decode("utf-8")) + 1   # the prefix is valid
        shown = data.decode("utf-8", "replace")
        exc = ParseError(f"source is not valid UTF-8: byte 0x{data[at]:02x} at byte "
                         f"offset {at} ({err.reason})", line, column, shown)
        exc.offset = at
        raise exc from None


def eof_position(source: str) -> tuple[int, int]:
    """Where an error at end of input points: just after the last non-blank text."""
    return line_col(source, len(source.rstrip()))


def error_at(message: str, source: str, pos: int) -> ParseError:
    line, col = line_col(source, pos)
    return ParseError(message, line, col, source)


def parse_int(text: str, source: str = "", pos: int = 0) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise error_at("integer literal out of range (64-bit)", source, pos)
    return value


def decode_string(body: str, source: str, body_pos: int) -> str:
    """Decode the escapes of a string literal body that starts at ``body_pos``."""

    def replace(m):
        hexdigits, simple = m.group(1), m.group(2)
        if simple is not None:
            ch = _SIMPLE_ESCAPES.get(simple)
            if ch is None:
                shown = simple if simple.isprintable() else repr(simple)
                raise error_at(f"invalid escape '\\{shown}' in string literal "
                               r'(expected \" \\ \n \t \r or \u{HEX})',
                               source, body_pos + m.start())
            return ch
        if not re.fullmatch(r"[0-9A-Fa-f]{1,6}", hexdigits):
            raise error_at("invalid \\u{HEX} escape: expected 1 to 6 hex digits",
                           source, body_pos + m.start())
        code = int(hexdigits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise error_at(f"invalid code point U+{code:X} in \\u{{...}} escape",
                           source, body_pos + m.start())
        return chr(code)

    return _ESCAPE_RE.sub(replace, body)


def classify_atom(text: str, source: str, pos: int) -> tuple[str, object]:
    """The token kind and value of a bare word: number, typed literal, keyword or name.

    STRING: typed literals have their own lexer rule (they may contain any character
    but whitespace and parentheses), so they never reach here.
    """
    kind = KEYWORDS.get(text)
    if kind is not None:
        return kind, text
    value = _BOOLS.get(text)
    if value is not None:
        return "BOOL", value
    first = text[0]
    if first in "0123456789-.":
        if _INT_RE.fullmatch(text):
            return "INT", parse_int(text, source, pos)
        if _DOUBLE_RE.fullmatch(text):
            return "DOUBLE", float(text)
    special = _SPECIAL_DOUBLES.get(text)
    if special is not None:
        return "DOUBLE", special
    if ":" in text:
        prefix, _, rest = text.partition(":")
        if prefix in _TYPED_PREFIXES:
            return _typed_literal(prefix, rest, source, pos)
    return "ID", text


_LIT_TYPE = {"INT": "Int", "DOUBLE": "Double", "STRING": "String", "BOOL": "Bool"}


def make_atom(kind: str, value, line: int, column: int):
    """The token value of a word: a Lit or Var node (the parser passes these through)."""
    if kind == "ID":
        return ast.Var(value, line, column)
    lit_type = _LIT_TYPE.get(kind)
    if lit_type is not None:
        return ast.Lit(value, lit_type, line, column)
    return value         # a keyword


_TYPED_PREFIXES = {"I64": "INT", "DOUBLE": "DOUBLE", "BOOL": "BOOL"}


def _typed_literal(prefix: str, rest: str, source: str, pos: int):
    if prefix == "I64":
        if _INT_RE.fullmatch(rest):
            return "INT", parse_int(rest, source, pos)
        raise error_at(f"typed literal I64:{rest} is not an integer", source, pos)
    if prefix == "DOUBLE":
        if rest in _SPECIAL_DOUBLES:
            return "DOUBLE", _SPECIAL_DOUBLES[rest]
        if _DOUBLE_RE.fullmatch(rest) or _INT_RE.fullmatch(rest):
            return "DOUBLE", float(rest)
        raise error_at(f"typed literal DOUBLE:{rest} is not a number", source, pos)
    if rest in _BOOLS:
        return "BOOL", _BOOLS[rest]
    raise error_at(f"typed literal BOOL:{rest} is not true or false", source, pos)


class Lexer:
    """PLY rules for exathunk tokens; call ``build()`` once, then ``clone()`` per use."""

    tokens = tokens
    t_ignore = " \t\r\f\v"

    def __init__(self):
        self.lexer = None

    def build(self, **kwargs) -> "Lexer":
        # optimize=False: PLY writes a lextab module only when optimizing.
        self.lexer = lex.lex(module=self, optimize=False, reflags=re.DOTALL, **kwargs)
        self.lexer.line_start = 0
        self.lexer.depth = 0
        return self

    def input(self, source: str):
        """A fresh PLY lexer over ``source`` (a clone: the built one stays pristine)."""
        return start(self.lexer.clone(), source)

    # Rule order matters: PLY tries function rules in definition order.

    @TOKEN(r"\n+")
    def t_newline(self, t):
        lexer = t.lexer
        lexer.lineno += len(t.value)
        lexer.line_start = lexer.lexpos

    @TOKEN(r";[^\n]*")
    def t_comment(self, t):
        return None

    @TOKEN(r"\(")
    def t_LPAREN(self, t):
        lexer = t.lexer
        t.column = t.lexpos - lexer.line_start + 1
        t.value = (t.lineno, t.column)
        lexer.depth += 1
        if lexer.depth > MAX_NESTING:
            raise ParseError(f"nesting too deep (more than {MAX_NESTING} parentheses)",
                             t.lineno, t.column, lexer.lexdata)
        return t

    @TOKEN(r"\)")
    def t_RPAREN(self, t):
        lexer = t.lexer
        t.column = t.lexpos - lexer.line_start + 1
        t.value = (t.lineno, t.column)
        if lexer.depth == 0:
            raise ParseError("unbalanced ')': there is no '(' for it to close",
                             t.lineno, t.column, lexer.lexdata)
        lexer.depth -= 1
        return t

    @TOKEN(r'"[^"\\]*(?:\\.[^"\\]*)*"')
    def t_STRING(self, t):
        lexer = t.lexer
        t.column = t.lexpos - lexer.line_start + 1
        text = t.value
        body = text[1:-1]
        if "\\" in body:
            body = decode_string(body, lexer.lexdata, t.lexpos + 1)
        t.value = ast.Lit(body, "String", t.lineno, t.column)
        newlines = text.count("\n")
        if newlines:
            lexer.lineno += newlines
            lexer.line_start = t.lexpos + text.rfind("\n") + 1
        return t

    @TOKEN(r'"')
    def t_unterminated_string(self, t):
        raise ParseError("unterminated string literal (no closing '\"')", t.lineno,
                         t.lexpos - t.lexer.line_start + 1, t.lexer.lexdata)

    @TOKEN(r"STRING:[^\s()]*")
    def t_typed_string(self, t):
        t.column = t.lexpos - t.lexer.line_start + 1
        t.type = "STRING"
        t.value = ast.Lit(t.value[7:], "String", t.lineno, t.column)
        return t

    @TOKEN(_ATOM_RE)
    def t_ID(self, t):
        t.column = t.lexpos - t.lexer.line_start + 1
        t.type, value = classify_atom(t.value, t.lexer.lexdata, t.lexpos)
        t.value = make_atom(t.type, value, t.lineno, t.column)
        return t

    def t_error(self, t):
        ch = t.value[0]
        shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
        raise ParseError(f"unexpected character '{shown}'", t.lineno,
                         t.lexpos - t.lexer.line_start + 1, t.lexer.lexdata)


def start(lexer, source: str):
    """Reset a PLY lexer (from ``Lexer.build``) to the start of ``source``."""
    lexer.input(source)
    lexer.lineno = 1
    lexer.line_start = 0
    lexer.depth = 0
    return lexer


def tokenize(source: str) -> list:
    """All tokens of ``source`` (for tests and tools; the parser pulls them lazily)."""
    source = source_text(source)
    lexer = _shared_lexer().input(source)
    out = []
    for _ in range(len(source) + 1):   # at most one token per character
        tok = lexer.token()
        if tok is None:
            break
        out.append(tok)
    return out


# PLY's builders are not thread-safe: every lazy build (lexer or parser) takes this lock.
BUILD_LOCK = threading.RLock()
_BUILT = None


def _shared_lexer() -> Lexer:
    global _BUILT
    if _BUILT is None:
        with BUILD_LOCK:
            if _BUILT is None:
                _BUILT = Lexer().build()
    return _BUILT


# ---- the fast scanner -----------------------------------------------------------------
# parse() tokenizes with one C-level findall instead of PLY's per-token loop: the same
# token kinds, values and positions as the PLY rules above (tests check that they agree
# token for token).  Anything irregular (every error) makes scan() give up and return
# None, and the parser then runs the PLY lexer, which raises the located ParseError.

_PIECES = re.compile(
    r"[ \t\r\f\v\n]+"                      # blanks (only \n counts as a line break)
    r"|;[^\n]*"                            # a comment
    r"|[()]"
    r'|"[^"\\]*(?:\\.[^"\\]*)*"'           # a complete string literal
    r"|STRING:[^\s()]*"                    # a typed string literal
    r"|" + _ATOM_RE +                      # a word: number, typed literal, keyword, name
    r"|.", re.DOTALL)                      # anything else: an error, found by PLY
_ATOM_FULL = re.compile(_ATOM_RE)
_BLANKS = frozenset(" \t\r\f\v\n")


def fast_constructor(cls):
    """A function building ``cls(*fields)`` without the frozen dataclass ``__init__``.

    Frozen dataclasses set each field through ``object.__setattr__``; writing the slots
    through their descriptors gives an equal object in about 60% of the time, which
    matters on the parser's hot path (tests check the objects are the same).  Fields
    left out take their defaults (``Var.inst_type`` and ``Var.con`` are None; a
    ``Module``'s datas, classes and instances are () unless given).
    """
    fields = dataclasses.fields(cls)
    setters = tuple(getattr(cls, f.name).__set__ for f in fields)
    new = object.__new__
    if cls is ast.Var:                  # inst_type, con: fields, not parameters
        assert [f.name for f in fields] == ["name", "line", "column", "inst_type", "con"]
        s0, s1, s2, s3, s4 = setters

        def make_var(name, line, column):
            node = new(cls)
            s0(node, name)
            s1(node, line)
            s2(node, column)
            s3(node, None)
            s4(node, None)
            return node
        return make_var
    if cls is ast.Module:               # datas, classes, instances: () unless given
        assert [f.name for f in fields] == ["defines", "body", "line", "column", "datas",
                                            "classes", "instances"]
        s0, s1, s2, s3, s4, s5, s6 = setters

        def make_module(defines, body, line, column, datas=(), classes=(), instances=()):
            node = new(cls)
            s0(node, defines)
            s1(node, body)
            s2(node, line)
            s3(node, column)
            s4(node, datas)
            s5(node, classes)
            s6(node, instances)
            return node
        return make_module
    if len(fields) == 3:
        s0, s1, s2 = setters

        def make3(a, b, c):
            node = new(cls)
            s0(node, a)
            s1(node, b)
            s2(node, c)
            return node
        return make3
    if len(fields) == 4:
        s0, s1, s2, s3 = setters

        def make4(a, b, c, d):
            node = new(cls)
            s0(node, a)
            s1(node, b)
            s2(node, c)
            s3(node, d)
            return node
        return make4
    if len(fields) == 5:
        s0, s1, s2, s3, s4 = setters

        def make5(a, b, c, d, e):
            node = new(cls)
            s0(node, a)
            s1(node, b)
            s2(node, c)
            s3(node, d)
            s4(node, e)
            return node
        return make5
    return cls                          # no fast form for this shape: the class itself


make_lit = fast_constructor(ast.Lit)
make_var = fast_constructor(ast.Var)

# One dictionary dispatches every piece the scanner has seen before: a word, a
# parenthesis or a run of blanks.  Entries are (code, kind, value, Lit type).
_LP, _RP, _BLANK, _NEWLINES, _NAME, _LITERAL, _KEYWORD = range(7)
_PIECE_CACHE: dict[str, tuple] = {}
_PIECE_CACHE_MAX = 50_000
_PIECE_CACHE_FIXED = {"(": (_LP, "LPAREN", None, None), ")": (_RP, "RPAREN", None, None)}


def _reset_piece_cache():
    _PIECE_CACHE.clear()
    _PIECE_CACHE.update(_PIECE_CACHE_FIXED)


_reset_piece_cache()


def _classify_piece(piece: str):
    """The cache entry for a piece not seen before, or None for an error."""
    if piece[0] in _BLANKS:
        newlines = piece.count("\n")
        if newlines:
            return (_NEWLINES, newlines, len(piece) - piece.rfind("\n") - 1, None)
        return (_BLANK, None, None, None)
    if not _ATOM_FULL.fullmatch(piece):
        return None
    try:
        kind, value = classify_atom(piece, "", 0)
    except ParseError:
        return None
    if kind == "ID":
        return (_NAME, kind, value, None)
    lit_type = _LIT_TYPE.get(kind)
    if lit_type is not None:
        return (_LITERAL, kind, value, lit_type)
    return (_KEYWORD, kind, value, None)


def scan(source: str):
    """(kinds, values, deepest) of the tokens of ``source``, or None if it has any error.

    ``deepest`` is the deepest parenthesis nesting reached (the parser uses it to skip
    its depth check of desugared forms).
    """
    kinds: list[str] = []
    values: list = []
    add_kind = kinds.append
    add_value = values.append
    cache = _PIECE_CACHE
    get = cache.get
    pos = line_start = depth = deepest = 0
    line = 1
    for piece in _PIECES.findall(source):
        entry = get(piece)
        if entry is None:
            first = piece[0]
            if first == ";":
                pos += len(piece)
                continue
            if first == '"':
                if len(piece) == 1:
                    return None                      # unterminated
                body = piece[1:-1]
                if "\\" in body:
                    try:
                        body = decode_string(body, source, pos + 1)
                    except ParseError:
                        return None
                add_kind("STRING")
                add_value(make_lit(body, "String", line, pos - line_start + 1))
                newlines = piece.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + piece.rfind("\n") + 1
                pos += len(piece)
                continue
            if piece.startswith("STRING:"):
                add_kind("STRING")
                add_value(make_lit(piece[7:], "String", line, pos - line_start + 1))
                pos += len(piece)
                continue
            entry = _classify_piece(piece)
            if entry is None:
                return None
            if len(cache) >= _PIECE_CACHE_MAX:
                _reset_piece_cache()
            cache[piece] = entry
        code = entry[0]
        if code == _NAME:
            add_kind("ID")
            add_value(make_var(entry[2], line, pos - line_start + 1))
        elif code == _LP:
            depth += 1
            if depth > deepest:                      # a new high-water mark: rare
                if depth > MAX_NESTING:
                    return None
                deepest = depth
            add_kind("LPAREN")
            add_value((line, pos - line_start + 1))
        elif code == _RP:
            if not depth:
                return None
            depth -= 1
            add_kind("RPAREN")
            add_value((line, pos - line_start + 1))
        elif code == _LITERAL:
            add_kind(entry[1])
            add_value(make_lit(entry[2], entry[3], line, pos - line_start + 1))
        elif code == _NEWLINES:
            line += entry[1]
            line_start = pos + len(piece) - entry[2]
        elif code == _KEYWORD:
            add_kind(entry[1])
            add_value(entry[2])
        pos += len(piece)
    return kinds, values, deepest
