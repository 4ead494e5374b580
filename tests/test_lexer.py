"""Tests of the lexer: token kinds, values and positions from the PLY rules and from the
fast scanner (which must agree token for token), and every lexical error."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from exathunk import ast
from exathunk.errors import ParseError
from exathunk.lexer import MAX_NESTING, scan, tokenize


def ply_tokens(source):
    """(kind, plain value, line, column) of every token, from the PLY lexer."""
    return [(t.type, plain(t.value), t.lineno, t.column) for t in tokenize(source)]


def fast_tokens(source):
    """The same from the fast scanner (keywords carry no position there)."""
    scanned = scan(source)
    if scanned is None:
        return None
    out = []
    for kind, value in zip(scanned[0], scanned[1]):
        if isinstance(value, (ast.Lit, ast.Var)):
            out.append((kind, plain(value), value.line, value.column))
        elif isinstance(value, tuple):
            out.append((kind, plain(value), value[0], value[1]))
        else:
            out.append((kind, value, None, None))
    return out


def plain(value):
    if isinstance(value, ast.Lit):
        return value.value
    if isinstance(value, ast.Var):
        return value.name
    if isinstance(value, tuple):
        return None          # a parenthesis: its value is its position
    return value


def same_tokens(a, b):
    """Token lists equal, keyword positions (absent in the fast scan) excepted; NaN == NaN."""
    if len(a) != len(b):
        return False
    for (k1, v1, l1, c1), (k2, v2, l2, c2) in zip(a, b):
        if k1 != k2 or (l2 is not None and (l1, c1) != (l2, c2)):
            return False
        if isinstance(v1, float) and math.isnan(v1):
            if not (isinstance(v2, float) and math.isnan(v2)):
                return False
        elif v1 != v2 or type(v1) is not type(v2):
            return False
    return True


def kinds_values(source):
    return [(k, v) for k, v, _, _ in ply_tokens(source)]


# ---- literals and words -----------------------------------------------------------------

LITERALS = [
    ("42", "INT", 42),
    ("-7", "INT", -7),
    ("0", "INT", 0),
    ("-0", "INT", 0),
    ("9223372036854775807", "INT", 2**63 - 1),
    ("-9223372036854775808", "INT", -2**63),
    ("3.5", "DOUBLE", 3.5),
    ("-0.25", "DOUBLE", -0.25),
    ("1e3", "DOUBLE", 1000.0),
    ("2.", "DOUBLE", 2.0),
    ("1e+22", "DOUBLE", 1e22),
    ("2.5e-07", "DOUBLE", 2.5e-07),
    ("-1.5E2", "DOUBLE", -150.0),
    (".5", "DOUBLE", 0.5),
    ("inf", "DOUBLE", math.inf),
    ("-inf", "DOUBLE", -math.inf),
    ('"text"', "STRING", "text"),
    ('""', "STRING", ""),
    (r'"with \"escapes\"\n"', "STRING", 'with "escapes"\n'),
    (r'"\\ \t \r"', "STRING", "\\ \t \r"),
    (r'"\u{41}\u{1F600}\u{0}"', "STRING", "A\U0001F600\x00"),
    ('"semi ; colon ( paren"', "STRING", "semi ; colon ( paren"),
    ('"two\nlines"', "STRING", "two\nlines"),
    ("true", "BOOL", True),
    ("false", "BOOL", False),
    ("I64:42", "INT", 42),
    ("I64:-5", "INT", -5),
    ("DOUBLE:2.5", "DOUBLE", 2.5),
    ("DOUBLE:-0.5", "DOUBLE", -0.5),
    ("DOUBLE:2", "DOUBLE", 2.0),
    ("DOUBLE:-inf", "DOUBLE", -math.inf),
    ("BOOL:true", "BOOL", True),
    ("BOOL:false", "BOOL", False),
    ("STRING:foo", "STRING", "foo"),
    ('STRING:a"b;c', "STRING", 'a"b;c'),
    ("STRING:", "STRING", ""),
    ("x", "ID", "x"),
    ("-", "ID", "-"),
    ("->", "ID", "->"),
    ("+", "ID", "+"),
    ("<=", "ID", "<="),
    ("/=", "ID", "/="),
    ("null?", "ID", "null?"),
    ("zip-with", "ID", "zip-with"),
    ("%internal", "ID", "%internal"),
    ("a.b:c!", "ID", "a.b:c!"),
    ("foo:bar", "ID", "foo:bar"),
    ("1+", "ID", "1+"),
    ("-x", "ID", "-x"),
    ("1e", "ID", "1e"),
    ("nan?", "ID", "nan?"),
    ("True", "ID", "True"),
    ("Int", "ID", "Int"),
    ("define", "DEFINE", "define"),
    ("let", "LET", "let"),
    ("lambda", "LAMBDA", "lambda"),
    ("if", "IF", "if"),
    ("the", "THE", "the"),
    ("list", "LIST", "list"),
    ("data", "DATA", "data"),
    ("case", "CASE", "case"),
    ("class", "CLASS", "class"),
    ("instance", "INSTANCE", "instance"),
    ("cond", "COND", "cond"),
    ("else", "ELSE", "else"),
    ("=>", "ID", "=>"),
    ("Opt", "ID", "Opt"),
    ("_", "ID", "_"),
    ("datas", "ID", "datas"),
    ("else?", "ID", "else?"),
    ("Case", "ID", "Case"),
]


@pytest.mark.parametrize("source,kind,value", LITERALS)
def test_literal_and_word(source, kind, value):
    assert kinds_values(source) == [(kind, value)]
    got = kinds_values(source)[0][1]
    assert type(got) is type(value)
    assert same_tokens(ply_tokens(source), fast_tokens(source))


def test_nan_is_a_double():
    [(kind, value)] = kinds_values("nan")
    assert kind == "DOUBLE" and math.isnan(value)
    [(kind, value)] = kinds_values("DOUBLE:nan")
    assert kind == "DOUBLE" and math.isnan(value)


def test_tokens_carry_line_and_column():
    source = "(define (f x) ; comment\n  (+ x\t1))\n\n\"a\nb\" y"
    assert ply_tokens(source) == [
        ("LPAREN", None, 1, 1), ("DEFINE", "define", 1, 2), ("LPAREN", None, 1, 9),
        ("ID", "f", 1, 10), ("ID", "x", 1, 12), ("RPAREN", None, 1, 13),
        ("LPAREN", None, 2, 3), ("ID", "+", 2, 4), ("ID", "x", 2, 6), ("INT", 1, 2, 8),
        ("RPAREN", None, 2, 9), ("RPAREN", None, 2, 10),
        ("STRING", "a\nb", 4, 1), ("ID", "y", 5, 4),
    ]
    assert same_tokens(ply_tokens(source), fast_tokens(source))


def test_comments_and_blank_input_give_no_tokens():
    assert ply_tokens("; only a comment\n   \t\n;another") == []
    assert fast_tokens("; only a comment\n   \t\n;another") == []
    assert ply_tokens("") == []


def test_parentheses_separate_words():
    assert kinds_values("(f(g)h)") == [
        ("LPAREN", None), ("ID", "f"), ("LPAREN", None), ("ID", "g"), ("RPAREN", None),
        ("ID", "h"), ("RPAREN", None)]
    assert kinds_values('f"s"g') == [("ID", "f"), ("STRING", "s"), ("ID", "g")]


# ---- errors ---------------------------------------------------------------------------

LEX_ERRORS = [
    ("99999999999999999999", 1, 1, "integer literal out of range"),
    ("9223372036854775808", 1, 1, "integer literal out of range"),
    ("(f -9223372036854775809)", 1, 4, "integer literal out of range"),
    ("I64:9223372036854775808", 1, 1, "integer literal out of range"),
    ("x\n  I64:abc", 2, 3, "I64:abc is not an integer"),
    ("I64:2.5", 1, 1, "is not an integer"),
    ("DOUBLE:x", 1, 1, "is not a number"),
    ("BOOL:yes", 1, 1, "is not true or false"),
    ('"abc', 1, 1, "unterminated string"),
    ('(f "ok"\n   "no end)', 2, 4, "unterminated string"),
    ('"ends in backslash\\', 1, 1, "unterminated string"),
    ('"bad \\q escape"', 1, 6, "invalid escape '\\q'"),
    ('x\n"ab\\u{zz}"', 2, 4, "invalid \\u{HEX} escape"),
    ('"\\u{110000}"', 1, 2, "invalid code point U+110000"),
    ('"\\u{D800}"', 1, 2, "invalid code point"),
    ('"\\u{41"', 1, 2, "invalid"),
    ('"line\nbreak \\x"', 2, 7, "invalid escape"),
    ("(f #t)", 1, 4, "unexpected character '#'"),
    ("[1]", 1, 1, "unexpected character '['"),
    ("f\n x @", 2, 4, "unexpected character '@'"),
    ("a\u00a0b", 1, 2, "unexpected character"),
    (")", 1, 1, "unbalanced ')'"),
    ("(f))", 1, 4, "unbalanced ')'"),
    ("(" * (MAX_NESTING + 1), 1, MAX_NESTING + 1, "nesting too deep"),
]


@pytest.mark.parametrize("source,line,column,message", LEX_ERRORS)
def test_lexical_error(source, line, column, message):
    with pytest.raises(ParseError) as info:
        tokenize(source)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert message in err.message
    assert scan(source) is None          # the fast scanner defers every error to PLY


def test_nesting_at_the_limit_is_fine():
    source = "(" * MAX_NESTING + ")" * MAX_NESTING
    assert len(tokenize(source)) == 2 * MAX_NESTING
    assert fast_tokens(source) is not None


@pytest.mark.parametrize("source,deepest", [
    ("", 0), ("x", 0), ("()", 1), ("(()) (((a)))", 3), ("(f (g (h)) (i))", 3),
    ("(" * MAX_NESTING + ")" * MAX_NESTING, MAX_NESTING),
])
def test_the_fast_scanner_reports_the_deepest_nesting(source, deepest):
    assert scan(source)[2] == deepest


def test_error_renders_the_line_with_a_caret():
    with pytest.raises(ParseError) as info:
        tokenize('(f 1)\n(g "bad \\q")')
    text = str(info.value)
    assert ':2:9:' in text
    assert '(g "bad \\q")' in text
    assert text.splitlines()[-1] == "    " + " " * 8 + "^"


# ---- the fast scanner agrees with the PLY rules -----------------------------------------

FRAGMENTS = ["(", ")", " ", "\n", "\t", ";c\n", "x", "-", "->", "1", "-7", "2.", "1e3",
             "1e+2", ".5", "inf", "-inf", "nan", "true", "I64:", "DOUBLE:", "BOOL:",
             "STRING:", "define", "let", "data", "case", "class", "instance", "cond",
             "else", "=>", "Opt", "_", "\"", "\\", "\\n", "\\u{41}", "\\q", "#", "a",
             "9999999999999999999", ":", "é", "\u00a0", "\r"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join))
def test_fast_scanner_agrees_with_ply(source):
    try:
        expected = ply_tokens(source)
    except ParseError:
        assert scan(source) is None
        return
    got = fast_tokens(source)
    assert got is not None
    assert same_tokens(expected, got)
