"""grammar/exathunk.ebnf is kept in step with the parser and the lexer: its syntax rules
are exactly the PLY productions (nonterminal by nonterminal, alternative by alternative)
and its lexical rules name exactly the lexer's token kinds."""

import os
import re
from collections import Counter

import pytest

from exathunk.lexer import KEYWORDS, tokenize, tokens
from exathunk.parser import build

EBNF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "grammar", "exathunk.ebnf")
LEXICAL_MARKER = "(* ======================= lexical ======================= *)"


def read_sections():
    with open(EBNF, encoding="utf-8") as f:
        text = f.read()
    assert LEXICAL_MARKER in text
    syntax, lexical = text.split(LEXICAL_MARKER, 1)
    return rules(syntax), rules(lexical)


def rules(text):
    """{name: [alternative, ...]} with each alternative a list of symbols as written."""
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.DOTALL)
    out = {}
    for m in re.finditer(r"([A-Za-z_]+)\s*::=(.*?);\s*(?=[A-Za-z_]+\s*::=|\Z)", text,
                         flags=re.DOTALL):
        name, body = m.group(1), m.group(2)
        assert name not in out, f"rule {name} defined twice"
        out[name] = [re.findall(r'"[^"]*"|\'[^\']*\'|[^\s"\']+', alt)
                     for alt in split_alternatives(body)]
    return out


def split_alternatives(body):
    """Split at top-level '|' (not inside quotes or brackets)."""
    alts, depth, current, quote = [], 0, [], None
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch in "([{":
            depth += 1
            current.append(ch)
        elif ch in ")]}":
            depth -= 1
            current.append(ch)
        elif ch == "|" and depth == 0:
            alts.append("".join(current))
            current = []
        else:
            current.append(ch)
    alts.append("".join(current))
    return alts


QUOTED_TOKENS = {'"("': "LPAREN", '")"': "RPAREN"}
QUOTED_TOKENS.update({f'"{word}"': kind for word, kind in KEYWORDS.items()})


def as_production(symbols):
    out = []
    for sym in symbols:
        if sym == "ε":
            continue
        if sym.startswith('"'):
            assert sym in QUOTED_TOKENS, f"{sym} is not a token of the parser"
            out.append(QUOTED_TOKENS[sym])
        else:
            out.append(sym)
    return tuple(out)


def parser_productions():
    _, parser = build()
    prods = Counter()
    for prod in parser.productions:
        if prod.name != "S'":
            prods[(prod.name, tuple(prod.prod))] += 1
    return prods


def test_document_rules_are_the_parser_productions():
    syntax, _ = read_sections()
    documented = Counter()
    for name, alternatives in syntax.items():
        for alt in alternatives:
            documented[(name, as_production(alt))] += 1
    actual = parser_productions()
    missing = actual - documented
    extra = documented - actual
    assert not missing, f"parser productions missing from the EBNF: {sorted(missing)}"
    assert not extra, f"EBNF alternatives the parser lacks: {sorted(extra)}"


def test_every_nonterminal_is_documented_and_every_document_rule_is_a_nonterminal():
    syntax, _ = read_sections()
    nonterminals = {name for name, _ in parser_productions()}
    assert set(syntax) == nonterminals


def test_every_token_kind_has_a_lexical_rule():
    syntax, lexical = read_sections()
    documented_kinds = {name for name in lexical if name.isupper()}
    assert documented_kinds == set(tokens)
    used_in_syntax = {sym for alts in syntax.values() for alt in alts
                      for sym in as_production(alt) if sym.isupper()}
    assert used_in_syntax <= set(tokens)


def test_keyword_rules_are_the_reserved_words():
    _, lexical = read_sections()
    for word, kind in KEYWORDS.items():
        assert lexical[kind] == [[f'"{word}"']]


# INT, STRING and ID are defined by patterns only: they have no quoted word to check.
@pytest.mark.parametrize("kind", ["BOOL", "DOUBLE", "LPAREN", "RPAREN"]
                         + list(KEYWORDS.values()))
def test_whole_quoted_alternatives_lex_as_their_kind(kind):
    """An alternative written as one quoted word (like "inf" or "BOOL:true") is that token."""
    _, lexical = read_sections()
    quoted = [alt for alt in lexical[kind]
              if len(alt) == 1 and alt[0][0] in "\"'" and not alt[0][1:-1].endswith(":")]
    assert quoted, f"{kind} has no quoted alternative to check"
    for alt in quoted:
        toks = tokenize(alt[0][1:-1] if kind != "RPAREN" else "()")
        assert toks[-1].type == kind, (kind, alt)


def test_every_form_keyword_has_a_shape_for_errors():
    """A malformed form's error quotes its shape: every keyword that starts a form has
    one (else only begins a cond's clause, which the cond's shape shows)."""
    from exathunk.parser import FORM_SHAPES
    assert set(FORM_SHAPES) == set(KEYWORDS.values()) - {"ELSE"}
    for kind, shape in FORM_SHAPES.items():
        word = next(w for w, k in KEYWORDS.items() if k == kind)
        assert shape.startswith(f"({word}"), shape


def test_every_entry_point_builds_without_conflicts():
    from exathunk.parser import ENTRIES

    class Recorder:
        def __init__(self):
            self.messages = []

        def warning(self, msg, *args, **kwargs):
            self.messages.append(msg % args)

        error = critical = info = debug = warning

    for entry in ENTRIES:
        log = Recorder()
        build(errorlog=log, start=entry)
        assert not [m for m in log.messages if "conflict" in m], (entry, log.messages)
