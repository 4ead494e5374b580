"""The exathunk parser: a PLY (LALR) grammar from tokens to the AST of ``ast.py``.

``parse(source)`` is the entry point; ``parse_declaration`` (one ``data`` or ``class``
form) and ``parse_type`` (one type) serve a library declaring what its host functions
use.  The grammar is the ``p_`` rules of ``Grammar``; PLY builds its LALR tables once
per entry point, lazily, under the lexer's build lock, and never writes them to disk
(importing or using exathunk writes no files).  Grammar strings are attached with
``@rule`` rather than written as docstrings, so ``python -OO`` builds the same parser.

Two ways run the same tables and the same actions.  The fast path (``_drive``) feeds
the fast scanner's tokens through a tight loop over PLY's action/goto tables: it keeps
no state outside its locals, so threads need neither a lock nor a copy.  On any error
it gives up, and ``parse_with_ply`` (PLY's lexer and LR loop, one copy per thread, as
PLY keeps its stacks on the parser object) finds the error and describes it: the place
of the offending token, what was expected there and, inside a special form, its shape.

``cond`` and list patterns are desugared here (to nested ``If``s, to nested ``cons``
patterns), which makes the tree deeper than the source's parentheses.  So that every
later stage may still recurse on tree depth, a parse that desugared anything checks the
tree's depth against ``MAX_NESTING`` (one walk, skipped when the source's own nesting
plus what desugaring can add stays within it).
"""

from __future__ import annotations

import copy
import gc
import threading

from ply import yacc

from . import ast
from .errors import ParseError
from .lexer import (BUILD_LOCK, EXPR_START, KEYWORDS, MAX_NESTING, Lexer, eof_position,
                    fast_constructor, scan, source_text, start, tokens)

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
_TyApp = fast_constructor(ast.TyApp)
_Case = fast_constructor(ast.Case)
_Alt = fast_constructor(ast.Alt)
_PCon = fast_constructor(ast.PCon)
_PVar = fast_constructor(ast.PVar)
_PLit = fast_constructor(ast.PLit)
_PWild = fast_constructor(ast.PWild)
_Lit = fast_constructor(ast.Lit)

__all__ = ["parse", "parse_expr", "parse_declaration", "parse_type", "MAX_NESTING",
           "FORM_SHAPES"]

# How each special form is written, quoted in error messages.
FORM_SHAPES = {
    "IF": "(if condition then else)",
    "LET": "(let ((name expr) ...) body) or (let name expr body)",
    "LAMBDA": "(lambda (param ...) body)",
    "THE": "(the Type expr)",
    "LIST": "(list expr ...)",
    "DEFINE": "(define name expr) or (define (name param ...) body)",
    "DATA": "(data Name con ...) or (data (Name param ...) con ...), each con being "
            "Con, (Con type ...) or (Con (field type) ...)",
    "CASE": "(case expr (pattern expr) ...)",
    "COND": "(cond (test expr) ... (else expr))",
    "CLASS": "(class (Name a) member ...) or (class (=> (Super a) ... (Name a)) "
             "member ...), each member being (method type) or (define ...)",
    "INSTANCE": "(instance (Class type) (define ...) ...) or "
                "(instance (=> (Class a) ... (Class type)) (define ...) ...)",
}
# The shape of a list pattern (the LIST keyword inside a pattern).
_LIST_PATTERN_SHAPE = "(list pattern ...)"

# What each top-level-only keyword introduces, for "must come before" messages.
_TOP_FORMS = {"DEFINE": "a define", "DATA": "a data declaration", "CLASS": "a class",
              "INSTANCE": "an instance"}


def is_upper(name: str) -> bool:
    """A type, constructor or class name: first character A-Z."""
    return "A" <= name[0] <= "Z"


def is_type_var(name: str) -> bool:
    """A type variable: a lower-case first letter, and an identifier."""
    return name[0].islower() and name.isidentifier()


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


class _Depth(threading.local):
    """How much deeper than its parentheses this thread's current parse made the tree:
    a ``cond`` of k clauses nests k ifs, a list pattern of n elements n conses.  Only
    those actions touch it; a parse with ``extra`` still 0 needs no depth check."""
    extra = 0


_depth = _Depth()


class Grammar:
    """The PLY productions.  Methods are stateless: all per-parse state is on the lexer
    (and the desugaring depth count, ``_depth``)."""

    tokens = tokens
    start = "module"

    # ---- the program ----------------------------------------------------------------

    @rule("module : decls expr")
    def p_module(self, p):
        items = p[1]
        if not items:
            body = p[2]
            p[0] = _Module((), body, body.line, body.column)
            return
        defines, datas, classes, instances = [], [], [], []
        seen = set()
        for d in items:
            kind = d.__class__
            if kind is ast.Define:
                if d.name in seen:
                    raise ParseError(f"duplicate definition of '{d.name}'", d.line,
                                     d.column)
                seen.add(d.name)
                defines.append(d)
            elif kind is ast.DataDecl:
                datas.append(d)
            elif kind is ast.ClassDecl:
                classes.append(d)
            else:
                instances.append(d)
        first = items[0]
        p[0] = _Module(tuple(defines), p[2], first.line, first.column,
                       tuple(datas), tuple(classes), tuple(instances))

    @rule("decls : ", fast="empty")
    def p_decls_none(self, p):
        p[0] = []

    @rule("""decls : decls define
                   | decls declaration
                   | decls instance""", fast="append")
    def p_decls_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("""declaration : data
                         | class""", fast="pass")
    def p_declaration(self, p):
        p[0] = p[1]

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

    # ---- expressions ----------------------------------------------------------------

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
        p[0] = _The(p[3], p[4], line, col)        # the one place a TyQual may stand

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

    # ---- case and patterns ----------------------------------------------------------

    @rule("expr : LPAREN CASE expr alts RPAREN")
    def p_expr_case(self, p):
        line, col = p[1]
        p[0] = _Case(p[3], tuple(p[4]), line, col, "case")

    @rule("alts : ", fast="empty")
    def p_alts_none(self, p):
        p[0] = []

    @rule("alts : alts alt", fast="append")
    def p_alts_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("alt : LPAREN pattern expr RPAREN")
    def p_alt(self, p):
        line, col = p[1]
        pattern = p[2]
        if pattern.__class__ is ast.PCon and pattern.args:
            _check_pattern_vars(pattern)
        p[0] = _Alt(pattern, p[3], line, col)

    @rule("pattern : ID")
    def p_pattern_name(self, p):
        var = p[1]
        name = var.name
        if name == "_":
            p[0] = _PWild(var.line, var.column)
        elif name == "nil" or is_upper(name):
            p[0] = _PCon(name, (), var.line, var.column, None)
        else:
            p[0] = _PVar(name, var.line, var.column)

    @rule("""pattern : INT
                     | DOUBLE
                     | STRING
                     | BOOL""")
    def p_pattern_literal(self, p):
        lit = p[1]
        p[0] = _PLit(lit, lit.line, lit.column)

    @rule("pattern : LPAREN ID patterns RPAREN")
    def p_pattern_constructor(self, p):
        line, col = p[1]
        head, args = p[2], p[3]
        name = head.name
        if name == "cons":
            if len(args) != 2:
                raise ParseError(f"the pattern (cons head tail) takes two patterns, found "
                                 f"{len(args)}", *_after(args, 2, p[4]))
        elif name == "nil":
            if args:
                raise ParseError("the pattern nil takes no patterns: it is the empty list",
                                 args[0].line, args[0].column)
        elif not is_upper(name):
            raise ParseError(f"'{name}' is not a constructor: a pattern (Con pattern ...) "
                             "needs a constructor name, which starts with an upper-case "
                             "letter (or is cons or nil)", head.line, head.column)
        p[0] = _PCon(name, tuple(args), line, col, None)

    @rule("pattern : LPAREN LIST patterns RPAREN")
    def p_pattern_list(self, p):
        items = p[3]
        line, col = p[4]                 # nil at the closing parenthesis
        tail = _PCon("nil", (), line, col, None)
        if items:
            for i in range(len(items) - 1, 0, -1):
                item = items[i]
                tail = _PCon("cons", (item, tail), item.line, item.column, None)
            line, col = p[1]
            tail = _PCon("cons", (items[0], tail), line, col, None)
            if len(items) > 1:
                _depth.extra += len(items) - 1
        p[0] = tail

    @rule("patterns : ", fast="empty")
    def p_patterns_none(self, p):
        p[0] = []

    @rule("patterns : patterns pattern", fast="append")
    def p_patterns_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    # ---- cond -----------------------------------------------------------------------

    @rule("expr : LPAREN COND clauses RPAREN")
    def p_expr_cond(self, p):
        line, col = p[1]
        clauses = p[3]
        for test, _, cl, cc in clauses[:-1]:
            if test is None:
                raise ParseError("(else expr) must be the last clause of a cond", cl, cc)
        test, result, _, _ = clauses[-1]
        if test is None:                 # (else e): the innermost else
            tail = result
            clauses.pop()
            extra = len(clauses) - 1
        else:                            # no else: a case that always fails
            tail = _Case(_Lit(True, "Bool", line, col), (), line, col, "cond")
            extra = len(clauses)
        for i in range(len(clauses) - 1, -1, -1):
            test, result, cl, cc = clauses[i]
            if i == 0:
                cl, cc = line, col       # the whole cond is the outermost if
            tail = _If(test, result, tail, cl, cc)
        if extra > 0:
            _depth.extra += extra
        p[0] = tail

    @rule("clauses : clause")
    def p_clauses_one(self, p):
        p[0] = [p[1]]

    @rule("clauses : clauses clause", fast="append")
    def p_clauses_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("clause : LPAREN expr expr RPAREN")
    def p_clause(self, p):
        p[0] = (p[2], p[3]) + p[1]

    @rule("clause : LPAREN ELSE expr RPAREN")
    def p_clause_else(self, p):
        p[0] = (None, p[3]) + p[1]

    # ---- data declarations ----------------------------------------------------------

    @rule("data : LPAREN DATA dataname condecls RPAREN")
    def p_data(self, p):
        line, col = p[1]
        name, params = p[3]
        p[0] = ast.DataDecl(name, params, tuple(p[4]), line, col)

    @rule("dataname : ID")
    def p_dataname(self, p):
        var = p[1]
        _check_upper(var, "a data type's name")
        p[0] = (var.name, ())

    @rule("dataname : LPAREN ID names RPAREN")
    def p_dataname_params(self, p):
        var, params = p[2], p[3]
        _check_upper(var, "a data type's name")
        if not params:
            raise ParseError(f"a data type without parameters is written as a bare name: "
                             f"(data {var.name} ...), not (data ({var.name}) ...)", *p[1])
        for param in params:
            if not is_type_var(param.name):
                raise ParseError(f"a data type's parameter is a type variable, which "
                                 f"starts with a lower-case letter: '{param.name}' is not "
                                 "one", param.line, param.column)
        p[0] = (var.name, _distinct(params, "parameter"))

    @rule("condecls : condecl")
    def p_condecls_one(self, p):
        p[0] = [p[1]]

    @rule("condecls : condecls condecl", fast="append")
    def p_condecls_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("condecl : ID")
    def p_condecl_bare(self, p):
        var = p[1]
        _check_upper(var, "a constructor's name")
        p[0] = ast.ConDecl(var.name, (), None, var.line, var.column)

    @rule("condecl : LPAREN ID conargs RPAREN")
    def p_condecl(self, p):
        line, col = p[1]
        var, args = p[2], p[3]
        _check_upper(var, "a constructor's name")
        if not args or args[0].__class__ is not tuple:
            for arg in args:
                if arg.__class__ is tuple:
                    raise ParseError(_MIXED_FIELDS.format(con=var.name), arg[2], arg[3])
            p[0] = ast.ConDecl(var.name, tuple(args), None, line, col)
            return
        names = []
        for arg in args:
            if arg.__class__ is not tuple:
                raise ParseError(_MIXED_FIELDS.format(con=var.name), arg.line, arg.column)
            if arg[0] in names:
                raise ParseError(f"duplicate field name '{arg[0]}' in constructor "
                                 f"{var.name}", arg[2], arg[3])
            names.append(arg[0])
        p[0] = ast.ConDecl(var.name, tuple(arg[1] for arg in args), tuple(names),
                           line, col)

    @rule("conargs : ", fast="empty")
    def p_conargs_none(self, p):
        p[0] = []

    @rule("conargs : conargs conarg", fast="append")
    def p_conargs_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("conarg : ID")
    def p_conarg_name(self, p):
        p[0] = _type_name(p[1])

    @rule("conarg : LPAREN ID types RPAREN")
    def p_conarg_apply(self, p):
        head, args = p[2], p[3]
        name = head.name
        if is_upper(name) or name in ("->", "=>"):
            if name == "=>":
                raise ParseError("a field's type cannot have constraints (=> ...): "
                                 "constraints belong on functions' types", *p[1])
            p[0] = _apply_type(head, args, p[1], p[4])
            return
        if not name[0].islower():
            raise ParseError(f"'{name}' is not a field name or a type: a field is "
                             "(name type) with a lower-case name, a type (Name type ...)",
                             head.line, head.column)
        if len(args) != 1:
            raise ParseError(f"a record field is (name type): '{name}' has {len(args)} "
                             "types", *_after(args, 1, p[4]))
        # a record field: (name, type, line, column); the constructor checks the rest
        p[0] = (name, _plain(args[0]), head.line, head.column)

    # ---- classes and instances ------------------------------------------------------

    @rule("class : LPAREN CLASS head members RPAREN")
    def p_class(self, p):
        line, col = p[1]
        context, pred = _split_head(p[3], "class")
        name, arg = pred.name, pred.type
        if arg.__class__ is not ast.TyVar:
            raise ParseError(f"a class has one type variable: (class ({name} a) ...), "
                             "with a lower-case name", arg.line, arg.column)
        for sup in context:
            if sup.type != arg:
                raise ParseError(f"a superclass constrains the class's own variable: "
                                 f"({sup.name} {arg.name})", sup.type.line,
                                 sup.type.column)
        methods, defaults = [], []
        for member in p[4]:
            (defaults if member.__class__ is ast.Define else methods).append(member)
        p[0] = ast.ClassDecl(name, arg.name, context, tuple(methods), tuple(defaults),
                             line, col)

    @rule("instance : LPAREN INSTANCE head members RPAREN")
    def p_instance(self, p):
        line, col = p[1]
        context, pred = _split_head(p[3], "instance")
        defines = p[4]
        for member in defines:
            if member.__class__ is not ast.Define:
                raise ParseError(f"an instance holds only (define ...) forms: the type of "
                                 f"'{member.name}' comes from the class", member.line,
                                 member.column)
        p[0] = ast.InstanceDecl(pred.name, pred.type, context, tuple(defines), line, col)

    @rule("head : LPAREN ID types RPAREN")
    def p_head(self, p):
        p[0] = (p[2], p[3], p[1], p[4])     # (name, types, '(' place, ')' place)

    @rule("members : ", fast="empty")
    def p_members_none(self, p):
        p[0] = []

    @rule("""members : members method
                     | members define""", fast="append")
    def p_members_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    @rule("method : LPAREN ID type RPAREN")
    def p_method(self, p):
        line, col = p[1]
        var = p[2]
        if is_upper(var.name):
            raise ParseError(f"a method's name cannot start with an upper-case letter "
                             f"(those name constructors and types): '{var.name}'",
                             var.line, var.column)
        p[0] = ast.MethodSig(var.name, p[3], line, col)   # a TyQual may stand here

    # ---- types ----------------------------------------------------------------------

    @rule("type : ID")
    def p_type_name(self, p):
        p[0] = _type_name(p[1])

    @rule("type : LPAREN ID types RPAREN")
    def p_type_apply(self, p):
        p[0] = _apply_type(p[2], p[3], p[1], p[4])

    @rule("types : ", fast="empty")
    def p_types_none(self, p):
        p[0] = []

    @rule("types : types type", fast="append")
    def p_types_more(self, p):
        p[0] = p[1]
        p[0].append(p[2])

    def p_error(self, tok):
        raise _Stuck(tok)


_MIXED_FIELDS = ("the fields of constructor {con} are either all named, (field type) "
                 "each, or all unnamed types: not a mix")


def _distinct(params, what: str = "parameter") -> tuple[str, ...]:
    """The names of the parameter Vars, rejecting repeats."""
    names = []
    for var in params:
        if var.name in names:
            raise ParseError(f"duplicate {what} name '{var.name}'", var.line, var.column)
        names.append(var.name)
    return tuple(names)


def _after(items, count, close):
    """Where a form with too many or too few items goes wrong: the first item past
    ``count``, or its closing parenthesis."""
    if len(items) > count:
        return items[count].line, items[count].column
    return close


def _check_upper(var, what: str) -> None:
    if not is_upper(var.name):
        raise ParseError(f"{what} starts with an upper-case letter (A-Z): "
                         f"'{var.name}' does not", var.line, var.column)


def _type_name(var):
    """A bare name in a type: a type (upper-case) or a type variable (lower-case)."""
    name, line, col = var.name, var.line, var.column
    if is_upper(name):
        return _TyCon(name, line, col)
    if is_type_var(name):
        return _TyVar(name, line, col)
    raise ParseError(f"unknown type '{name}': a type is a name starting with an "
                     "upper-case letter (Int, Double, Bool, String, a data type), a "
                     "lower-case type variable, (List t), (-> a b) or (Name t ...)",
                     line, col)


def _plain(t):
    """``t``, which must not be a constrained type (those stand only at the top)."""
    if t.__class__ is ast.TyQual:
        raise ParseError("a constrained type (=> ...) may stand only at the top of a "
                         "(the ...) annotation or of a method's type", t.line, t.column)
    return t


def _apply_type(head, args, open_at, close_at):
    """``(head arg ...)`` in a type: (List t), (-> a ... r), (=> pred ... t), (Name t ...)."""
    line, col = open_at
    name = head.name
    if name == "List":
        if len(args) != 1:
            raise ParseError(f"(List t) takes exactly one type, found {len(args)}",
                             *_after(args, 1, close_at))
        return _TyList(_plain(args[0]), line, col)
    if name == "->":
        if len(args) < 2:
            raise ParseError("a function type (-> a b ...) needs at least a parameter "
                             "type and a result type", *close_at)
        for arg in args:
            _plain(arg)
        return _TyFun(tuple(args[:-1]), args[-1], line, col)
    if name == "=>":
        if len(args) < 2:
            raise ParseError("a constrained type (=> (Class type) ... type) needs at least "
                             "one constraint and the type", *close_at)
        context = tuple(_pred(t) for t in args[:-1])
        return ast.TyQual(context, _plain(args[-1]), line, col)
    if is_upper(name):
        if not args:
            raise ParseError(f"a type without parameters is written without parentheses: "
                             f"{name}, not ({name})", head.line, head.column)
        for arg in args:
            _plain(arg)
        return _TyApp(name, tuple(args), line, col)
    raise ParseError(f"unknown type constructor '{name}': an applied type is (List t), "
                     "(-> a b ...) or (Name t ...) with Name starting with an upper-case "
                     "letter", head.line, head.column)


def _pred(t):
    """A constraint ``(Class type)``, parsed as the type TyApp(Class, (type,))."""
    if t.__class__ is not ast.TyApp or len(t.args) != 1:
        raise ParseError("a constraint is (Class type): a class name and one type",
                         t.line, t.column)
    return ast.Pred(t.name, t.args[0], t.line, t.column)


def _split_head(head, form: str):
    """The (context, Pred) of a class or instance head ``(C t)`` or ``(=> pred ... (C t))``."""
    var, types, open_at, close_at = head
    if var.name == "=>":
        if len(types) < 2:
            raise ParseError(f"(=> (C a) ... ({'Name a' if form == 'class' else 'Class type'}"
                             f")) needs at least one constraint and the {form}'s head",
                             *close_at)
        context = tuple(_pred(t) for t in types[:-1])
        last = types[-1]
        if last.__class__ is not ast.TyApp or len(last.args) != 1:
            raise ParseError(_head_message(form), last.line, last.column)
        return context, ast.Pred(last.name, last.args[0], last.line, last.column)
    if not is_upper(var.name):
        raise ParseError(f"a class name starts with an upper-case letter (A-Z): "
                         f"'{var.name}' does not", var.line, var.column)
    if len(types) != 1:
        raise ParseError(_head_message(form), *_after(types, 1, close_at))
    line, col = open_at
    return (), ast.Pred(var.name, _plain(types[0]), line, col)


def _head_message(form: str) -> str:
    if form == "class":
        return "a class is declared as (Name a): its name and one type variable"
    return "an instance is for (Class type): a class name and one type"


def _check_pattern_vars(pattern) -> None:
    """A variable may occur only once in one pattern."""
    seen = set()
    stack = [pattern]
    while stack:
        node = stack.pop()
        kind = node.__class__
        if kind is ast.PCon:
            stack.extend(reversed(node.args))
        elif kind is ast.PVar:
            if node.name in seen:
                raise ParseError(f"the variable '{node.name}' occurs twice in one pattern",
                                 node.line, node.column)
            seen.add(node.name)


# ---- the depth of desugared trees -------------------------------------------------------

def _children_fields():
    fields = {}
    for name in dir(ast):
        cls = getattr(ast, name)
        if isinstance(cls, type) and hasattr(cls, "__dataclass_fields__"):
            fields[cls] = tuple(f for f in cls.__dataclass_fields__
                                if f not in ("line", "column", "inst_type", "con", "form"))
    fields[ast.PLit] = ()           # a literal pattern is a leaf (as its source is)
    return fields


_CHILDREN = _children_fields()
# Under a Module, a source of parenthesis depth d gives nodes at most d + 1 deep.
_MAX_TREE_DEPTH = MAX_NESTING + 1


def _check_depth(root, deepest: int | None = None) -> None:
    """Raise if desugaring made the tree deeper than nesting allows (see module doc)."""
    extra = _depth.extra
    _depth.extra = 0
    if deepest is not None and deepest + extra <= MAX_NESTING:
        return
    children = _CHILDREN
    stack = [(root, 0 if root.__class__ is ast.Module else 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_TREE_DEPTH:
            raise ParseError(f"nesting too deep (more than {MAX_NESTING} levels, counting "
                             "each clause of a cond and each element of a list pattern as "
                             "one)", node.line, node.column)
        depth += 1
        for name in children[node.__class__]:
            value = getattr(node, name)
            if value.__class__ is tuple:
                for item in value:
                    if item.__class__ in children:
                        stack.append((item, depth))
            elif value.__class__ in children:
                stack.append((value, depth))


# ---- building (once, lazily) and parsing ----------------------------------------------

# The entry points: each is a start symbol of the one grammar, with its own LALR tables.
ENTRIES = ("module", "declaration", "type")
_MASTERS: dict = {}     # start symbol -> (Lexer, LRParser, fast tables) once built
_MODULE_TABLES = None   # _MASTERS["module"]'s fast tables: the hot path's
_local = threading.local()

_PASS, _EMPTY, _APPEND, _CALL = 1, 2, 3, 4


def build(errorlog=None, start: str = "module"):
    """Build the lexer and the LALR tables (no files written); returns (Lexer, LRParser)."""
    lexer = Lexer().build()
    parser = yacc.yacc(module=Grammar(), start=start, debug=False, write_tables=False,
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


def _master(entry: str = "module"):
    global _MODULE_TABLES
    master = _MASTERS.get(entry)
    if master is None:
        with BUILD_LOCK:
            master = _MASTERS.get(entry)
            if master is None:
                lexer, parser = build(start=entry)
                master = (lexer, parser, _fast_tables(parser))
                _MASTERS[entry] = master
                if entry == "module":
                    _MODULE_TABLES = master[2]
    return master


def _thread_state(entry: str = "module"):
    """This thread's own (PLY lexer, LRParser) for ``entry``: PLY keeps parse stacks on
    both."""
    try:
        states = _local.states
    except AttributeError:
        states = _local.states = {}
    state = states.get(entry)
    if state is None:
        lexer, parser, _ = _master(entry)
        state = states[entry] = (lexer.lexer.clone(), copy.copy(parser))
    return state


def parse(source: str, filename: str | None = None) -> ast.Module:
    """Parse a whole program: zero or more top-level forms (define, data, class,
    instance, in any order), then exactly one expression.

    The fast path (one-regex scanner, table-driven loop over PLY's LALR tables, the
    same p_ actions) handles every well-formed program; on any error the PLY lexer and
    parser run over the source to find and describe it.  Bytes are read as UTF-8
    (lexer.source_text: bytes that are not UTF-8 are a ParseError with the offset).
    """
    source = source_text(source)
    if len(source) >= _BIG_SOURCE:
        with _collector_paused():
            module = _parse_fast(source, filename, _MODULE_TABLES or _master()[2])
    else:
        module = _parse_fast(source, filename, _MODULE_TABLES or _master()[2])
    if module is not None:
        return module
    return _parse_ply(source, filename, "module")


def parse_declaration(source: str, filename: str | None = None):
    """Parse exactly one ``(data ...)`` or ``(class ...)`` form: a DataDecl or ClassDecl."""
    source = source_text(source)
    tree = _parse_fast(source, filename, _master("declaration")[2])
    if tree is None:
        tree = _parse_ply(source, filename, "declaration")
    return tree


def parse_type(source: str, filename: str | None = None) -> ast.TypeExpr:
    """Parse exactly one type: ``String``, ``(List a)``, ``(Opt a)``, ``(-> a b)``; at the
    top, ``(=> (Class a) ... type)`` too."""
    tree = _parse_fast(source, filename, _master("type")[2])
    if tree is None:
        tree = _parse_ply(source, filename, "type")
    return tree


def _parse_fast(source, filename, tables):
    scanned = scan(source)
    if scanned is None:
        return None
    kinds, values, deepest = scanned
    try:
        tree = _drive(kinds, values, tables)
        if _depth.extra and tree is not None:
            _check_depth(tree, deepest)
        return tree
    except ParseError as err:
        _depth.extra = 0
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
    return _parse_ply(source, filename, "module")


def _parse_ply(source: str, filename: str | None, entry: str):
    lexer, parser = _thread_state(entry)
    start(lexer, source)
    _depth.extra = 0
    try:
        tree = parser.parse(lexer=lexer)
        if _depth.extra:
            _check_depth(tree)
        return tree
    except _Stuck as stuck:
        err = _syntax_error(stuck.token, parser, lexer, source, entry)
    except ParseError as e:
        err = e
    _depth.extra = 0
    err.with_source(source, filename)
    raise err from None


def parse_expr(source: str) -> ast.Expr:
    """Parse source that must be a single expression (no top-level forms)."""
    module = parse(source)
    forms = [(d, "a define") for d in module.defines[:1]] + \
        [(d, "a data declaration") for d in module.datas[:1]] + \
        [(d, "a class") for d in module.classes[:1]] + \
        [(d, "an instance") for d in module.instances[:1]]
    if forms:
        form, what = min(forms, key=lambda f: (f[0].line, f[0].column))
        raise ParseError(f"expected a single expression, found {what}", form.line,
                         form.column, source)
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


def _describe_expected(kinds, start_word: str = "an expression") -> str:
    """``start_word`` names what the tokens that start an expression start here (an
    expression, or a pattern, which starts with the same tokens)."""
    kinds = set(kinds)
    words = []
    if EXPR_START <= kinds:
        kinds -= EXPR_START
        kinds -= set(KEYWORDS.values())
        words.append(start_word)
    for kind in ("ID", "LPAREN", "RPAREN", "INT", "DOUBLE", "STRING", "BOOL", "$end"):
        if kind in kinds:
            words.append(_TOKEN_WORDS[kind])
            kinds.discard(kind)
    words.extend(f"'{k.lower()}'" for k in sorted(kinds))
    if len(words) <= 1:
        return words[0] if words else "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


# A '(' right after one of these is part of the enclosing special form (a parameter
# list, a binding, a type, a constructor, a pattern, a clause, a member), not an
# expression of its own; so is a '(' right after "( X" for X in _CLIMB_AFTER_PAREN.
_CLIMB_AFTER = frozenset({"LAMBDA", "DEFINE", "LET", "THE", "bindings", "types",
                          "DATA", "dataname", "condecls", "conargs", "alts", "patterns",
                          "COND", "clauses", "CLASS", "INSTANCE", "members"})
_CLIMB_AFTER_PAREN = frozenset({"LET", "alts"})


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
    """The innermost unclosed '(' and the shape of the special form it is part of (or
    None).

    A parameter list, a binding list, a type, a constructor, a pattern or a clause
    inside a special form counts as part of that form; an expression inside it does
    not.  A (list ...) inside a pattern is a list pattern.
    """
    i = _unclosed(symstack, len(symstack) - 1)
    paren = symstack[i] if i else None
    while i:
        after = symstack[i + 1].type if i + 1 < len(symstack) else None
        before = symstack[i - 1].type
        before_paren = symstack[i - 2].type if i >= 2 and before == "LPAREN" else None
        if after in FORM_SHAPES:
            if after != "LIST":
                return paren, FORM_SHAPES[after]
            if before == "patterns" or before_paren == "alts":
                return paren, _LIST_PATTERN_SHAPE
            return paren, FORM_SHAPES[after]
        if not (before in _CLIMB_AFTER or before_paren in _CLIMB_AFTER_PAREN
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


def _wants_pattern(parser) -> bool:
    """Whether the tokens that start an expression would start a pattern here (they
    are the same tokens): the state that would shift an integer expects a pattern."""
    action, goto, productions = parser.action, parser.goto, parser.productions
    states = list(parser.statestack)
    for _ in range(len(states) + len(productions) + 10):
        t = action[states[-1]].get("INT")
        if t is None:
            return False
        if t >= 0:
            wants = goto.get(states[-1], {})
            return "pattern" in wants and "expr" not in wants
        prod = productions[-t]
        if prod.len:
            del states[-prod.len:]
        states.append(goto[states[-1]][prod.name])
    return False


def _syntax_error(tok, parser, lexer, source, entry: str = "module") -> ParseError:
    expected = _acceptable_next(parser)
    symstack = parser.symstack
    found = _describe_token(tok)
    if tok is None:
        line, col = eof_position(source)
    else:
        line, col = tok.lineno, tok.column
    paren, shape = _open_form(symstack)
    kind = tok.type if tok is not None else None

    if entry != "module":
        what = "one type" if entry == "type" else "one (data ...) or (class ...) declaration"
        if expected == {"$end"} and tok is not None:
            return ParseError(f"expected {what}, but more follows it", line, col)
        if tok is None and len(symstack) <= 1:
            return ParseError(f"empty input: expected {what}", line, col)
    elif kind in _TOP_FORMS and ("IF" in expected or "ID" not in expected) \
            and not (kind == "DEFINE" and shape in (FORM_SHAPES["CLASS"],
                                                    FORM_SHAPES["INSTANCE"])):
        # a form's keyword where another form could start (not where a name must be)
        where = ", or inside a class or an instance" if kind == "DEFINE" else ""
        return ParseError(f"'{tok.value}' is only allowed at the top level, before the "
                          f"result expression{where}", line, col)
    elif expected == {"$end"} and tok is not None:
        nxt = _peek(lexer)
        if nxt is not None and nxt.type in _TOP_FORMS:
            return ParseError(f"{_TOP_FORMS[nxt.type]} must come before the result "
                              "expression (a program is its defines, data types, classes "
                              "and instances, then one expression)", line, col)
        return ParseError("a program has exactly one result expression, but another "
                          "expression follows it", line, col)
    elif tok is None and lexer.depth == 0:
        if len(symstack) <= 2 and not getattr(symstack[-1], "value", None):
            return ParseError("empty program: expected an expression", line, col)
        return ParseError("expected the result expression after the defines and "
                          "declarations, found end of input", line, col)

    if kind == "ELSE":
        message = "'else' may only begin the last clause of a cond, as (else expr)"
    elif kind in KEYWORDS.values() and "ID" in expected:
        message = f"'{tok.value}' is a reserved word and cannot be used as a name"
    else:
        start_word = "a pattern" if _wants_pattern(parser) else "an expression"
        message = f"expected {_describe_expected(expected, start_word)}, found {found}"
    if shape is not None:
        message += f" (the form is {shape})"
    if tok is None and paren is not None:
        message += (f"; the '(' at line {paren.lineno}, column {paren.column} "
                    "is never closed")
    return ParseError(message, line, col)


def _peek(lexer):
    try:
        return lexer.token()
    except ParseError:
        return None
