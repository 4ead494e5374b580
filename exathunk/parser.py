"""The exathunk parser: a PLY (LALR) grammar from tokens to the AST of ``ast.py``.

``parse(source)`` is the entry point.  The grammar is the ``p_`` rules of ``Grammar``;
PLY builds its LALR tables once, lazily, under the lexer's build lock, and never writes
them to disk (importing or using exathunk writes no files).  Grammar strings are attached
with ``@rule`` rather than written as docstrings, so ``python -OO`` builds the same parser.

Two ways run the same tables and the same actions.  The fast path (``_drive``) feeds
the fast scanner's tokens through a tight loop over PLY's action/goto tables: it keeps
no state outside its locals, so threads need neither a lock nor a copy.  On any error
it gives up, and ``parse_with_ply`` (PLY's lexer and LR loop, one copy per thread, as
PLY keeps its stacks on the parser object) finds the error and describes it: the place
of the offending token, what was expected there and, inside a special form, its shape.
"""

from __future__ import annotations

import copy
import gc
import threading

from ply import yacc

from . import ast
from .errors import ParseError
from .lexer import (BUILD_LOCK, EXPR_START, KEYWORDS, MAX_NESTING, Lexer, eof_position,
                    fast_constructor, scan, start, tokens)

# The node constructors of the hot path (see lexer.fast_constructor).
_Module = fast_constructor(ast.Module)
_Define = fast_constructor(ast.Define)
_If = fast_constructor(ast.If)
_Let = fast_constructor(ast.Let)
_Binding = fast_constructor(ast.Binding)
_Lambda = fast_constructor(ast.Lambda)
_The = fast_constructor(ast.The)
_ListLit = fast_constructor(ast.ListLit)
_App = fast_constructor(ast.App)
_TyCon = fast_constructor(ast.TyCon)
_TyVar = fast_constructor(ast.TyVar)
_TyList = fast_constructor(ast.TyList)
_TyFun = fast_constructor(ast.TyFun)

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


def rule(grammar: str, fast: str | None = None):
    """Attach a PLY grammar rule to a p_ function (a docstring would vanish under -OO).

    ``fast`` names what the action does when it is one of the three trivial shapes, so
    that the fast driver can do it inline: "pass" (p[0] = p[1]), "empty" (p[0] = [])
    or "append" (p[1].append(p[2]); p[0] = p[1]).
    """

    def attach(func):
        func.__doc__ = grammar
        func.fast = fast
        return func

    return attach


class _Stuck(Exception):
    """Raised by p_error; parse() turns it into a ParseError with the parser's state."""

    def __init__(self, token):
        super().__init__()
        self.token = token


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
        p[0] = _Module(defines, p[2], first.line, first.column)

    @rule("defines : ", fast="empty")
    def p_defines_none(self, p):
        p[0] = []

    @rule("defines : defines define", fast="append")
    def p_defines_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("define : LPAREN DEFINE ID expr RPAREN")
    def p_define_value(self, p):
        line, col = p[1]
        p[0] = _Define(p[3].name, None, p[4], line, col)

    @rule("define : LPAREN DEFINE LPAREN ID names RPAREN expr RPAREN")
    def p_define_function(self, p):
        line, col = p[1]
        p[0] = _Define(p[4].name, _distinct(p[5]), p[7], line, col)

    @rule("names : ", fast="empty")
    def p_names_none(self, p):
        p[0] = []

    @rule("names : names ID", fast="append")
    def p_names_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("""expr : INT
                  | DOUBLE
                  | STRING
                  | BOOL""", fast="pass")
    def p_expr_literal(self, p):
        p[0] = p[1]      # the lexer already made the Lit node

    @rule("expr : ID", fast="pass")
    def p_expr_var(self, p):
        p[0] = p[1]      # the lexer already made the Var node

    @rule("expr : LPAREN IF expr expr expr RPAREN")
    def p_expr_if(self, p):
        line, col = p[1]
        p[0] = _If(p[3], p[4], p[5], line, col)

    @rule("expr : LPAREN LET LPAREN bindings RPAREN expr RPAREN")
    def p_expr_let(self, p):
        line, col = p[1]
        bindings = p[4]
        seen = set()
        for b in bindings:
            if b.name in seen:
                raise ParseError(f"duplicate binding name '{b.name}' in let",
                                 b.line, b.column)
            seen.add(b.name)
        p[0] = _Let(tuple(bindings), p[6], line, col)

    @rule("expr : LPAREN LET ID expr expr RPAREN")
    def p_expr_let_one(self, p):
        line, col = p[1]
        name = p[3]
        p[0] = _Let((_Binding(name.name, p[4], name.line, name.column),), p[5],
                       line, col)

    @rule("bindings : binding")
    def p_bindings_one(self, p):
        p[0] = [p[1]]

    @rule("bindings : bindings binding", fast="append")
    def p_bindings_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("binding : LPAREN ID expr RPAREN")
    def p_binding(self, p):
        line, col = p[1]
        p[0] = _Binding(p[2].name, p[3], line, col)

    @rule("expr : LPAREN LAMBDA LPAREN ID names RPAREN expr RPAREN")
    def p_expr_lambda(self, p):
        line, col = p[1]
        p[5].insert(0, p[4])
        p[0] = _Lambda(_distinct(p[5]), p[7], line, col)

    @rule("expr : LPAREN THE type expr RPAREN")
    def p_expr_the(self, p):
        line, col = p[1]
        p[0] = _The(p[3], p[4], line, col)

    @rule("expr : LPAREN LIST exprs RPAREN")
    def p_expr_list(self, p):
        line, col = p[1]
        p[0] = _ListLit(tuple(p[3]), line, col)

    @rule("expr : LPAREN expr exprs RPAREN")
    def p_expr_apply(self, p):
        args = p[3]
        if args:
            line, col = p[1]
            p[0] = _App(p[2], tuple(args), line, col)
        else:
            p[0] = p[2]          # `(e)` is e itself: a nullary call is the value

    @rule("exprs : ", fast="empty")
    def p_exprs_none(self, p):
        p[0] = []

    @rule("exprs : exprs expr", fast="append")
    def p_exprs_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("type : ID")
    def p_type_name(self, p):
        name, line, col = p[1].name, p[1].line, p[1].column
        if name in TYPE_CONSTANTS:
            p[0] = _TyCon(name, line, col)
        elif name[0].islower() and name.isidentifier():
            p[0] = _TyVar(name, line, col)
        else:
            raise ParseError(f"unknown type '{name}': expected Int, Double, Bool, String, "
                             "a lower-case type variable, (List t) or (-> a b)", line, col)

    @rule("type : LPAREN ID types RPAREN")
    def p_type_apply(self, p):
        line, col = p[1]
        head, args = p[2].name, p[3]
        if head == "List":
            if len(args) != 1:
                raise ParseError(f"(List t) takes exactly one type, found {len(args)}",
                                 *(p[4] if not args else (args[1].line, args[1].column)))
            p[0] = _TyList(args[0], line, col)
        elif head == "->":
            if len(args) < 2:
                raise ParseError("a function type (-> a b ...) needs at least a parameter "
                                 "type and a result type", *p[4])
            p[0] = _TyFun(tuple(args[:-1]), args[-1], line, col)
        else:
            raise ParseError(f"unknown type constructor '{head}': expected List or ->",
                             p[2].line, p[2].column)

    @rule("types : ", fast="empty")
    def p_types_none(self, p):
        p[0] = []

    @rule("types : types type", fast="append")
    def p_types_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    def p_error(self, tok):
        raise _Stuck(tok)


def _distinct(params) -> tuple[str, ...]:
    """The names of the parameter Vars, rejecting repeats."""
    names = []
    for var in params:
        if var.name in names:
            raise ParseError(f"duplicate parameter name '{var.name}'", var.line, var.column)
        names.append(var.name)
    return tuple(names)


# ---- building (once, lazily) and parsing ----------------------------------------------

_MASTER = None          # (Lexer, LRParser, fast tables) once built
_local = threading.local()

_PASS, _EMPTY, _APPEND, _CALL = 1, 2, 3, 4


def build(errorlog=None):
    """Build the lexer and the LALR tables (no files written); returns (Lexer, LRParser)."""
    lexer = Lexer().build()
    parser = yacc.yacc(module=Grammar(), start="module", debug=False, write_tables=False,
                       tabmodule="exathunk._parsetab_never_written",
                       errorlog=errorlog if errorlog is not None else yacc.NullLogger())
    return lexer, parser


def _fast_tables(parser):
    """PLY's LALR tables, arranged for ``_drive``: lists indexed by state/production."""
    n_states = max(parser.action) + 1
    action = [parser.action.get(i, {}) for i in range(n_states)]
    goto = [parser.goto.get(i, {}) for i in range(n_states)]
    shapes = {"pass": _PASS, "empty": _EMPTY, "append": _APPEND, None: _CALL}
    prods = []
    for prod in parser.productions:
        func = prod.callable
        shape = shapes[getattr(func, "fast", None)] if func is not None else _CALL
        prods.append((shape, func, prod.len, prod.name))
    # Shifting a literal or a name lands in a state whose only move is the "pass"
    # reduction to expr: shift straight into the state that reduction would reach.
    for state, moves in enumerate(action):
        composed = dict(moves)
        for kind, t in moves.items():
            if t > 0:
                reductions = set(parser.action[t].values())
                if len(reductions) == 1:
                    r = reductions.pop()
                    if r < 0 and prods[-r][0] == _PASS and prods[-r][2] == 1:
                        composed[kind] = goto[state][prods[-r][3]]
        action[state] = composed
    return action, goto, prods


def _master():
    global _MASTER
    if _MASTER is None:
        with BUILD_LOCK:
            if _MASTER is None:
                lexer, parser = build()
                _MASTER = (lexer, parser, _fast_tables(parser))
    return _MASTER


def _thread_state():
    """This thread's own (PLY lexer, LRParser): PLY keeps parse stacks on both."""
    try:
        return _local.state
    except AttributeError:
        lexer, parser, _ = _master()
        state = (lexer.lexer.clone(), copy.copy(parser))
        _local.state = state
        return state


def parse(source: str, filename: str | None = None) -> ast.Module:
    """Parse a whole program: zero or more defines, then exactly one expression.

    The fast path (one-regex scanner, table-driven loop over PLY's LALR tables, the
    same p_ actions) handles every well-formed program; on any error the PLY lexer and
    parser run over the source to find and describe it.
    """
    if len(source) >= _BIG_SOURCE:
        with _collector_paused():
            module = _parse_fast(source, filename)
    else:
        module = _parse_fast(source, filename)
    if module is not None:
        return module
    return parse_with_ply(source, filename)


def _parse_fast(source, filename):
    scanned = scan(source)
    if scanned is None:
        return None
    try:
        return _drive(scanned[0], scanned[1], (_MASTER or _master())[2])
    except ParseError as err:
        raise err.with_source(source, filename) from None


# Parsing a large source allocates a node per token and frees none, so the cyclic
# collector keeps re-scanning a growing tree that has no cycles: at 1 MB that doubled
# the parse time (measured).  The collector is paused while large sources parse; the
# count keeps concurrent parses from re-enabling it under one another.
_BIG_SOURCE = 128 * 1024
_pause_lock = threading.Lock()
_pause_count = 0
_paused_by_us = False


class _collector_paused:
    def __enter__(self):
        global _pause_count, _paused_by_us
        with _pause_lock:
            if _pause_count == 0:
                _paused_by_us = gc.isenabled()
                gc.disable()
            _pause_count += 1

    def __exit__(self, *exc):
        global _pause_count
        with _pause_lock:
            _pause_count -= 1
            if _pause_count == 0 and _paused_by_us:
                gc.enable()
        return False


def _drive(kinds, values, tables):
    """Run the LALR automaton over scanned tokens; None on a syntax error."""
    action, goto, prods = tables
    kinds.append("$end")
    values.append(None)
    states = [0]
    stack = [None]
    state = i = 0
    kind = kinds[0]
    while True:
        t = action[state].get(kind)
        if t is None:
            return None
        if t > 0:
            states.append(t)
            stack.append(values[i])
            state = t
            i += 1
            kind = kinds[i]
            continue
        if t == 0:
            return stack[-1]
        shape, func, n, name = prods[-t]
        if shape == _PASS:
            state = goto[states[-2]][name]
            states[-1] = state
        elif shape == _APPEND:
            item = stack.pop()
            states.pop()
            stack[-1].append(item)
            state = goto[states[-2]][name]
            states[-1] = state
        elif shape == _EMPTY:
            stack.append([])
            state = goto[state][name]
            states.append(state)
        else:
            if n:
                p = stack[-n - 1:]
                del stack[-n:]
                del states[-n:]
            else:
                p = [None]
            func(p)
            stack.append(p[0])
            state = goto[states[-1]][name]
            states.append(state)


def parse_with_ply(source: str, filename: str | None = None) -> ast.Module:
    """Parse with PLY's own lexer and LR loop: the reference path, and the one that
    describes errors."""
    lexer, parser = _thread_state()
    start(lexer, source)
    try:
        return parser.parse(lexer=lexer)
    except _Stuck as stuck:
        err = _syntax_error(stuck.token, parser, lexer, source)
    except ParseError as e:
        err = e
    err.with_source(source, filename)
    raise err from None


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


def _acceptable_next(parser) -> set[str]:
    """The token kinds that could come next, exactly.

    An LALR state may reduce on lookaheads that a later state then rejects, so the
    error state's own action table can list too much: each candidate is tried by
    running the pending reductions on a copy of the state stack until it would shift.
    """
    action, goto, productions = parser.action, parser.goto, parser.productions
    acceptable = set()
    for kind in tokens + ("$end",):
        states = list(parser.statestack)
        for _ in range(len(states) + len(productions) + 10):   # reductions are finite
            t = action[states[-1]].get(kind)
            if t is None:
                break
            if t >= 0:
                acceptable.add(kind)
                break
            prod = productions[-t]
            if prod.len:
                del states[-prod.len:]
            states.append(goto[states[-1]][prod.name])
    return acceptable


def _syntax_error(tok, parser, lexer, source) -> ParseError:
    expected = _acceptable_next(parser)
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
