"""The exathunk parser: a PLY (LALR) grammar from tokens to the AST of ``ast.py``.

``parse(source)`` is the entry point.  The PLY tables are built once, lazily, under
the lexer's build lock, and never written to disk (importing exathunk writes no files).
The grammar strings are attached with ``@rule`` rather than written as docstrings, so
``python -OO`` (which strips docstrings) still builds the same parser.  PLY parsers keep
their stacks on the parser object, so each thread parses with its own cheap copy.

Syntax errors are reported with the place of the offending token, what was expected
there and, inside a special form, the shape that form takes.
"""

from __future__ import annotations

import copy
import threading

from ply import yacc

from . import ast
from .errors import ParseError
from .lexer import (BUILD_LOCK, EXPR_START, KEYWORDS, MAX_NESTING, Lexer, eof_position,
                    tokens)

__all__ = ["parse", "parse_expr", "MAX_NESTING", "FORM_SHAPES"]

TYPE_CONSTANTS = frozenset(ast.LIT_TYPES)

# How each special form is written, quoted in error messages.
FORM_SHAPES = {
    "IF": "(if condition then else)",
    "LET": "(let ((name expr) ...) body) or (let name expr body)",
    "LAMBDA": "(lambda (param ...) body)",
    "THE": "(the Type expr)",
    "LIST": "(list expr ...)",
    "DEFINE": "(define name expr) or (define (name param ...) body)",
}

_LIT_TYPE = {"INT": "Int", "DOUBLE": "Double", "STRING": "String", "BOOL": "Bool"}


def rule(grammar: str):
    """Attach a PLY grammar rule to a p_ function (a docstring would vanish under -OO)."""

    def attach(func):
        func.__doc__ = grammar
        return func

    return attach


class _Stuck(Exception):
    """Raised by p_error; parse() turns it into a ParseError with the parser's state."""

    def __init__(self, token):
        super().__init__()
        self.token = token


def _pos(p, i):
    tok = p.slice[i]
    return tok.lineno, tok.column


class Grammar:
    """The PLY productions.  Methods are stateless: all per-parse state is on the lexer."""

    tokens = tokens
    start = "module"

    @rule("module : defines expr")
    def p_module(self, p):
        defines = tuple(p[1])
        seen = set()
        for d in defines:
            if d.name in seen:
                raise ParseError(f"duplicate definition of '{d.name}'", d.line, d.column)
            seen.add(d.name)
        first = defines[0] if defines else p[2]
        p[0] = ast.Module(defines, p[2], first.line, first.column)

    @rule("""defines : defines define
                     | """)
    def p_defines(self, p):
        if len(p) == 1:
            p[0] = []
        else:
            p[0] = p[1]
            p[0].append(p[2])

    @rule("define : LPAREN DEFINE ID expr RPAREN")
    def p_define_value(self, p):
        line, col = _pos(p, 1)
        p[0] = ast.Define(p[3], None, p[4], line, col)

    @rule("define : LPAREN DEFINE LPAREN ID names RPAREN expr RPAREN")
    def p_define_function(self, p):
        line, col = _pos(p, 1)
        p[0] = ast.Define(p[4], _distinct(p, 5, "parameter"), p[7], line, col)

    @rule("""names : names ID
                   | """)
    def p_names(self, p):
        if len(p) == 1:
            p[0] = []
        else:
            p[0] = p[1]
            p[0].append(p.slice[2])

    @rule("""expr : INT
                  | DOUBLE
                  | STRING
                  | BOOL""")
    def p_expr_literal(self, p):
        tok = p.slice[1]
        p[0] = ast.Lit(tok.value, _LIT_TYPE[tok.type], tok.lineno, tok.column)

    @rule("expr : ID")
    def p_expr_var(self, p):
        tok = p.slice[1]
        p[0] = ast.Var(tok.value, tok.lineno, tok.column)

    @rule("expr : LPAREN IF expr expr expr RPAREN")
    def p_expr_if(self, p):
        line, col = _pos(p, 1)
        p[0] = ast.If(p[3], p[4], p[5], line, col)

    @rule("expr : LPAREN LET LPAREN bindings RPAREN expr RPAREN")
    def p_expr_let(self, p):
        line, col = _pos(p, 1)
        bindings = p[4]
        seen = set()
        for b in bindings:
            if b.name in seen:
                raise ParseError(f"duplicate binding name '{b.name}' in let",
                                 b.line, b.column)
            seen.add(b.name)
        p[0] = ast.Let(tuple(bindings), p[6], line, col)

    @rule("expr : LPAREN LET ID expr expr RPAREN")
    def p_expr_let_one(self, p):
        line, col = _pos(p, 1)
        name_line, name_col = _pos(p, 3)
        p[0] = ast.Let((ast.Binding(p[3], p[4], name_line, name_col),), p[5], line, col)

    @rule("""bindings : bindings binding
                      | binding""")
    def p_bindings(self, p):
        if len(p) == 2:
            p[0] = [p[1]]
        else:
            p[0] = p[1]
            p[0].append(p[2])

    @rule("binding : LPAREN ID expr RPAREN")
    def p_binding(self, p):
        line, col = _pos(p, 1)
        p[0] = ast.Binding(p[2], p[3], line, col)

    @rule("expr : LPAREN LAMBDA LPAREN ID names RPAREN expr RPAREN")
    def p_expr_lambda(self, p):
        line, col = _pos(p, 1)
        p[5].insert(0, p.slice[4])
        p[0] = ast.Lambda(_distinct(p, 5, "parameter"), p[7], line, col)

    @rule("expr : LPAREN THE type expr RPAREN")
    def p_expr_the(self, p):
        line, col = _pos(p, 1)
        p[0] = ast.The(p[3], p[4], line, col)

    @rule("expr : LPAREN LIST exprs RPAREN")
    def p_expr_list(self, p):
        line, col = _pos(p, 1)
        p[0] = ast.ListLit(tuple(p[3]), line, col)

    @rule("expr : LPAREN expr exprs RPAREN")
    def p_expr_apply(self, p):
        args = p[3]
        if args:
            line, col = _pos(p, 1)
            p[0] = ast.App(p[2], tuple(args), line, col)
        else:
            p[0] = p[2]          # `(e)` is e itself: a nullary call is the value

    @rule("""exprs : exprs expr
                   | """)
    def p_exprs(self, p):
        if len(p) == 1:
            p[0] = []
        else:
            p[0] = p[1]
            p[0].append(p[2])

    @rule("type : ID")
    def p_type_name(self, p):
        name = p[1]
        line, col = _pos(p, 1)
        if name in TYPE_CONSTANTS:
            p[0] = ast.TyCon(name, line, col)
        elif name[0].islower() and name.isidentifier():
            p[0] = ast.TyVar(name, line, col)
        else:
            raise ParseError(f"unknown type '{name}': expected Int, Double, Bool, String, "
                             "a lower-case type variable, (List t) or (-> a b)", line, col)

    @rule("type : LPAREN ID types RPAREN")
    def p_type_apply(self, p):
        line, col = _pos(p, 1)
        head, args = p[2], p[3]
        if head == "List":
            if len(args) != 1:
                raise ParseError(f"(List t) takes exactly one type, found {len(args)}",
                                 *(_pos(p, 4) if not args else (args[1].line, args[1].column)))
            p[0] = ast.TyList(args[0], line, col)
        elif head == "->":
            if len(args) < 2:
                raise ParseError("a function type (-> a b ...) needs at least a parameter "
                                 "type and a result type", *_pos(p, 4))
            p[0] = ast.TyFun(tuple(args[:-1]), args[-1], line, col)
        else:
            raise ParseError(f"unknown type constructor '{head}': expected List or ->",
                             *_pos(p, 2))

    @rule("""types : types type
                   | """)
    def p_types(self, p):
        if len(p) == 1:
            p[0] = []
        else:
            p[0] = p[1]
            p[0].append(p[2])

    def p_error(self, tok):
        raise _Stuck(tok)


def _distinct(p, i, what):
    """The names of the ID tokens collected in p[i], rejecting repeats."""
    names = []
    for tok in p[i]:
        if tok.value in names:
            raise ParseError(f"duplicate {what} name '{tok.value}'", tok.lineno, tok.column)
        names.append(tok.value)
    return tuple(names)


# ---- building (once, lazily) and per-thread parser state ------------------------------

_MASTER = None          # (Lexer, LRParser) once built
_local = threading.local()


def build(errorlog=None):
    """Build the lexer and the LALR tables (no files written); returns (Lexer, LRParser)."""
    lexer = Lexer().build()
    parser = yacc.yacc(module=Grammar(), start="module", debug=False, write_tables=False,
                       tabmodule="exathunk._parsetab_never_written",
                       errorlog=errorlog if errorlog is not None else yacc.NullLogger())
    return lexer, parser


def _master():
    global _MASTER
    if _MASTER is None:
        with BUILD_LOCK:
            if _MASTER is None:
                _MASTER = build()
    return _MASTER


def _thread_state():
    """This thread's own (PLY lexer, LRParser): PLY keeps parse stacks on both."""
    try:
        return _local.state
    except AttributeError:
        lexer, parser = _master()
        state = (lexer.lexer.clone(), copy.copy(parser))
        _local.state = state
        return state


def parse(source: str, filename: str | None = None) -> ast.Module:
    """Parse a whole program: zero or more defines, then exactly one expression."""
    lexer, parser = _thread_state()
    lexer.input(source)
    lexer.lineno = 1
    lexer.line_start = 0
    lexer.depth = 0
    try:
        return parser.parse(lexer=lexer)
    except _Stuck as stuck:
        err = _syntax_error(stuck.token, parser, lexer, source)
    except ParseError as e:
        err = e
    except RecursionError:
        err = ParseError("nesting too deep", *eof_position(source))
    err.with_source(source, filename)
    raise err


def parse_expr(source: str) -> ast.Expr:
    """Parse source that must be a single expression (no defines)."""
    module = parse(source)
    if module.defines:
        d = module.defines[0]
        raise ParseError("expected a single expression, found a define", d.line, d.column,
                         source)
    return module.body


# ---- turning a PLY error state into a helpful message ---------------------------------

_TOKEN_WORDS = {
    "LPAREN": "'('", "RPAREN": "')'", "INT": "an integer", "DOUBLE": "a double",
    "STRING": "a string", "BOOL": "a boolean", "ID": "a name", "$end": "end of input",
}


def _describe_token(tok) -> str:
    if tok is None:
        return "end of input"
    kind = tok.type
    if kind in ("INT", "DOUBLE", "BOOL", "ID"):
        text = tok.lexer.lexdata[tok.lexpos:tok.lexer.lexpos] if hasattr(tok, "lexer") \
            else str(tok.value)
        word = {"ID": "name"}.get(kind, _TOKEN_WORDS[kind][3:] if kind != "INT"
                                  else "integer")
        return f"{word} '{text[:40]}'"
    if kind == "STRING":
        return "a string"
    if kind in KEYWORDS.values():
        return f"'{tok.value}'"
    return _TOKEN_WORDS.get(kind, kind)


def _describe_expected(kinds) -> str:
    kinds = set(kinds)
    words = []
    if EXPR_START <= kinds:
        kinds -= EXPR_START
        kinds -= set(KEYWORDS.values())
        words.append("an expression")
    for kind in ("ID", "LPAREN", "RPAREN", "INT", "DOUBLE", "STRING", "BOOL", "$end"):
        if kind in kinds:
            words.append(_TOKEN_WORDS[kind])
            kinds.discard(kind)
    words.extend(f"'{k.lower()}'" for k in sorted(kinds))
    if len(words) <= 1:
        return words[0] if words else "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


_CLIMB_AFTER = frozenset({"LAMBDA", "DEFINE", "LET", "THE", "bindings", "types"})


def _unclosed(symstack, i):
    """Index of the innermost '(' at or below ``i`` that is still open, or 0."""
    closed = 0
    while i > 0:
        kind = symstack[i].type
        if kind == "RPAREN":
            closed += 1
        elif kind == "LPAREN":
            if closed == 0:
                return i
            closed -= 1
        i -= 1
    return 0


def _open_form(symstack):
    """The innermost unclosed '(' and the special form keyword it is part of, if any.

    A parameter list, a binding list or a type inside a special form counts as part
    of that form; an expression inside it does not.
    """
    i = _unclosed(symstack, len(symstack) - 1)
    paren = symstack[i] if i else None
    while i:
        after = symstack[i + 1].type if i + 1 < len(symstack) else None
        if after in FORM_SHAPES:
            return paren, after
        before = symstack[i - 1].type
        if not (before in _CLIMB_AFTER or (before == "LPAREN" and i >= 2
                                           and symstack[i - 2].type == "LET")
                or (before == "ID" and i >= 2 and symstack[i - 2].type == "LPAREN")):
            break
        i = _unclosed(symstack, i - 1)
    return paren, None


def _syntax_error(tok, parser, lexer, source) -> ParseError:
    state = parser.statestack[-1]
    expected = set(parser.action[state])
    symstack = parser.symstack
    found = _describe_token(tok)
    if tok is None:
        line, col = eof_position(source)
    else:
        line, col = tok.lineno, tok.column

    if tok is not None and tok.type == "DEFINE":
        return ParseError("'define' is only allowed at the top level, before the result "
                          "expression", line, col)
    if expected == {"$end"} and tok is not None:
        nxt = _peek(lexer)
        if nxt is not None and nxt.type == "DEFINE":
            return ParseError("a define must come before the result expression "
                              "(a program is defines followed by one expression)",
                              line, col)
        return ParseError("a program has exactly one result expression, but another "
                          "expression follows it", line, col)
    if tok is None and lexer.depth == 0:
        if len(symstack) <= 2 and not getattr(symstack[-1], "value", None):
            return ParseError("empty program: expected an expression", line, col)
        return ParseError("expected the result expression after the defines, found end "
                          "of input", line, col)

    if tok is not None and tok.type in KEYWORDS.values() and "ID" in expected:
        message = f"'{tok.value}' is a reserved word and cannot be used as a name"
    else:
        message = f"expected {_describe_expected(expected)}, found {found}"
    paren, keyword = _open_form(symstack)
    if keyword in FORM_SHAPES:
        message += f" (the form is {FORM_SHAPES[keyword]})"
    if tok is None and paren is not None:
        message += (f"; the '(' at line {paren.lineno}, column {paren.column} "
                    "is never closed")
    return ParseError(message, line, col)


def _peek(lexer):
    try:
        return lexer.token()
    except ParseError:
        return None
