"""docs/language.md is kept in step with the implementation: every example in it runs.

The reference holds four kinds of checked material:

* ```lisp blocks.  A block is split into *groups* at blank lines.  In a group, source
  lines are followed by *annotation* lines, each a comment of one of these forms:

      ; => VALUE          the value, exactly as `exathunk eval` prints it
      ; :: TYPE           the type, as `exathunk check` (and the REPL's :type) prints it
      ; !! ErrorClass     compiling or running fails with this exathunk error class
      ; !! ErrorClass: t  ... and its message contains the text t
      ; warning: t        compiling warns, and a warning's message contains t
      ; limits: max_steps=N ...   the run's limits (as in grammar/cases)

  The source lines since the previous run of annotations (or the start of the group)
  are one *chunk*; the program an annotation checks is the chunk, preceded by the
  declarations (define, data, class, instance) of the earlier chunks of the same group
  that did not fail.  So a group may declare a data type once and annotate several
  expressions that use it.  Every chunk must be annotated (nothing in a lisp block goes
  unchecked), and a chunk without a ``warning:`` line must compile without warnings.
  Blocks fenced as ```text (or with no language) are not checked.

* ```console blocks: ``$ exathunk ARGS`` lines run the CLI in-process (``cli.main``);
  the lines up to the next ``$`` line are its output, stdout and stderr together, and
  an optional last line ``[exit N]`` gives the exit status (0 when absent).

* ```python blocks: doctests (``>>>`` prompts), run in order in one namespace.

* The function tables of the "Function reference" section: every public built-in and
  prelude name (``exathunk.library.BUILTINS`` and ``PRELUDE_SIGNATURES``, without the
  %-named internal helpers) has a row ``| `name` | `signature` | notes |`` with the
  library's exact signature text, and every row's type is the one the typechecker
  infers for the name (up to the names of type variables).

Run ``python3 tests/test_docs.py`` to print the function tables generated from the
library (with the built-ins' own descriptions), to paste into the reference.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import pathlib
import re
import shlex
from dataclasses import dataclass, field

import pytest

import exathunk
from exathunk import cli, driver
from exathunk.library import BUILTINS, PRELUDE_SIGNATURES, default_library

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "language.md"
STATIC_ERRORS = {"ParseError", "TypeCheckError", "UnknownFunctionError"}
RUNTIME_ERRORS = {"EvaluationError", "LimitExceeded"}
DECLARATION_KEYWORDS = ("define", "data", "class", "instance")

_ANNOTATION = re.compile(r"^\s*;\s*(=>|::|!!|warning:|limits:)\s?(.*?)\s*$")


# ---- reading the document ---------------------------------------------------------------

@dataclass
class Block:
    lang: str
    line: int                 # line number of the first line of the body
    lines: list


def read_doc() -> str:
    return DOC.read_text("utf-8")


def fenced_blocks(text: str) -> list[Block]:
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if current is None:
            m = re.match(r"^```(\S*)\s*$", line)
            if m:
                current = Block(m.group(1), number + 1, [])
        elif line.startswith("```"):
            blocks.append(current)
            current = None
        else:
            current.lines.append(line)
    assert current is None, f"docs/language.md: unclosed ``` block at line {current.line - 1}"
    return blocks


@dataclass
class Example:
    line: int                 # where the chunk starts in the document
    source: str               # the whole program checked
    chunk: str                # the chunk's own text
    value: str | None = None
    type: str | None = None
    error: str | None = None
    error_text: str | None = None
    warnings: list = field(default_factory=list)
    limits: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"docs/language.md:{self.line}"


def top_level_forms(text: str) -> list[str]:
    """The top-level forms of well-formed source text (comments and blanks skipped)."""
    forms, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == ";":
            while i < n and text[i] != "\n":
                i += 1
        else:
            start, depth = i, 0
            while i < n:
                ch = text[i]
                if ch == '"':
                    i += 1
                    while i < n and text[i] != '"':
                        i += 2 if text[i] == "\\" else 1
                    i += 1
                elif ch == ";":
                    while i < n and text[i] != "\n":
                        i += 1
                elif ch == "(":
                    depth += 1
                    i += 1
                elif ch == ")":
                    depth -= 1
                    i += 1
                elif text.startswith("STRING:", i):
                    while i < n and not text[i].isspace() and text[i] not in "()":
                        i += 1
                elif ch.isspace():
                    i += 1
                else:
                    while i < n and not text[i].isspace() and text[i] not in '();"':
                        i += 1
                if depth == 0:
                    break
            forms.append(text[start:i])
    return forms


def is_declaration(form: str) -> bool:
    m = re.match(r"^\(\s*([^\s()]+)", form)
    return m is not None and m.group(1) in DECLARATION_KEYWORDS


def lisp_examples(text: str) -> list[Example]:
    examples = []
    for block in fenced_blocks(text):
        if block.lang != "lisp":
            continue
        groups, current, start = [], [], None
        for offset, line in enumerate(block.lines):
            if line.strip():
                if not current:
                    start = block.line + offset
                current.append(line)
            elif current:
                groups.append((start, current))
                current = []
        if current:
            groups.append((start, current))
        assert groups, f"docs/language.md:{block.line}: an empty lisp block"
        for start, lines in groups:
            examples.extend(_group_examples(start, lines))
    return examples


def _group_examples(start: int, lines: list) -> list[Example]:
    examples, context = [], []
    chunk, chunk_line, example = [], start, None
    for offset, line in enumerate(lines + [None]):
        m = _ANNOTATION.match(line) if line is not None else None
        if m is not None:
            assert chunk, f"docs/language.md:{start + offset}: an annotation with no example"
            if example is None:
                text = "\n".join(chunk)
                example = Example(chunk_line, "\n".join(context + [text]), text)
            tag, rest = m.groups()
            if tag == "=>":
                assert example.value is None, example.where
                example.value = rest
            elif tag == "::":
                assert example.type is None, example.where
                example.type = rest
            elif tag == "!!":
                assert example.error is None, example.where
                name, _, detail = rest.partition(":")
                example.error, example.error_text = name.strip(), detail.strip() or None
            elif tag == "warning:":
                example.warnings.append(rest)
            else:
                for item in rest.split():
                    key, _, val = item.partition("=")
                    example.limits[key] = int(val)
            continue
        if example is not None:             # the run of annotations has ended
            assert example.value or example.type or example.error, (
                f"{example.where}: a chunk needs => :: or !!")
            examples.append(example)
            if example.error is None:
                context.extend(f for f in top_level_forms(example.chunk)
                               if is_declaration(f))
            chunk, example = [], None
        if line is None:
            break
        if not chunk:
            chunk_line = start + offset
        chunk.append(line)
    assert not chunk, (f"docs/language.md:{chunk_line}: source lines with no annotation "
                       "after them (every lisp example is checked)")
    return examples


# ---- checking ------------------------------------------------------------------------------

def run_cli(args: list[str]) -> tuple[int, str]:
    """Run the exathunk command in-process: (exit status, stdout and stderr together)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = cli.main(args)
        except SystemExit as exit_:      # argparse's usage errors
            status = exit_.code
    return status, out.getvalue()


def limit_args(limits: dict) -> list[str]:
    args = []
    for key, val in limits.items():
        args += ["--" + key.replace("_", "-"), str(val)]
    return args


def check_example(ex: Example) -> None:
    where = ex.where
    if ex.error is not None:
        assert ex.value is None, f"{where}: both => and !!"
        assert ex.error in STATIC_ERRORS | RUNTIME_ERRORS, f"{where}: unknown class {ex.error}"
    # the type, and the warnings, from the typechecker
    checked = None
    try:
        checked = driver.check(ex.source, allow_function=True)
    except exathunk.ExathunkError as err:
        assert ex.error == type(err).__name__, (
            f"{where}: expected {ex.error or 'success'}, got {err.kind}: {err.message}")
        assert ex.error in STATIC_ERRORS, where
        if ex.error_text:
            assert ex.error_text in err.message, f"{where}: message was {err.message!r}"
        assert ex.type is None, f"{where}: a program that does not compile has no type"
        assert not ex.warnings, f"{where}: a program that does not compile has no warnings"
    if checked is not None:
        if ex.type is not None:
            assert checked.result_type_text == ex.type, (
                f"{where}: type is {checked.result_type_text}, the doc says {ex.type}")
        messages = [msg for msg, _, _ in checked.warnings or ()]
        for text in ex.warnings:
            assert any(text in msg for msg in messages), (
                f"{where}: no warning contains {text!r}; warnings: {messages}")
        if not ex.warnings:
            assert not messages, f"{where}: unexpected warnings {messages}"
    if ex.value is None and ex.error is None:
        return                      # a type-only example (it may be a function)
    if ex.error in STATIC_ERRORS and checked is not None:
        # an error the checker does not raise: compile must (e.g. a function result)
        with pytest.raises(exathunk.ExathunkError) as info:
            exathunk.compile(ex.source)
        err = info.value
        assert type(err).__name__ == ex.error, f"{where}: got {err.kind}: {err.message}"
        if ex.error_text:
            assert ex.error_text in err.message, f"{where}: message was {err.message!r}"
    if ex.error in RUNTIME_ERRORS:
        program = exathunk.compile(ex.source)
        with pytest.raises(exathunk.ExathunkError) as info:
            program.run(**ex.limits)
        err = info.value
        assert type(err).__name__ == ex.error, f"{where}: got {err.kind}: {err.message}"
        if ex.error_text:
            assert ex.error_text in err.message, f"{where}: message was {err.message!r}"
    # and through the command line, as a user sees it
    status, output = run_cli(["eval", "-e", ex.source] + limit_args(ex.limits))
    if ex.error is None:
        assert status == 0, f"{where}: exathunk eval failed: {output}"
        assert output == ex.value + "\n", (
            f"{where}: exathunk eval prints {output!r}, the doc says {ex.value!r}")
    else:
        assert status == (65 if ex.error in STATIC_ERRORS else 70), (where, status, output)
        assert f": {ex.error}: " in output, (where, output)


EXAMPLES = lisp_examples(read_doc()) if DOC.exists() else []


def test_the_reference_exists_and_has_many_examples():
    assert DOC.exists()
    assert len(EXAMPLES) >= 150
    kinds = {"value": sum(e.value is not None for e in EXAMPLES),
             "type": sum(e.type is not None for e in EXAMPLES),
             "error": sum(e.error is not None for e in EXAMPLES),
             "warning": sum(bool(e.warnings) for e in EXAMPLES)}
    assert all(kinds.values()), kinds
    errors = {e.error for e in EXAMPLES if e.error}
    assert errors == STATIC_ERRORS | RUNTIME_ERRORS, errors


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}")
def test_lisp_example(example: Example):
    check_example(example)


# ---- console sessions ----------------------------------------------------------------------

def console_sessions(text: str) -> list[tuple[int, list, str, int]]:
    """(line, argv, expected output, expected exit status) per `$ exathunk` command."""
    sessions = []
    for block in fenced_blocks(text):
        if block.lang != "console":
            continue
        current = None
        for offset, line in enumerate(block.lines + ["$ <end>"]):
            if line.startswith("$ "):
                if current is not None:
                    out = current[2]
                    status = 0
                    if out and re.fullmatch(r"\[exit \d+\]", out[-1]):
                        status = int(out.pop()[6:-1])
                    sessions.append((current[0], current[1], "\n".join(out), status))
                if line == "$ <end>":
                    break
                argv = shlex.split(line[2:])
                assert argv[0] == "exathunk", f"docs/language.md:{block.line + offset}"
                current = (block.line + offset, argv[1:], [])
            else:
                assert current is not None, f"docs/language.md:{block.line + offset}"
                current[2].append(line)
    return sessions


SESSIONS = console_sessions(read_doc()) if DOC.exists() else []


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: f"line{s[0]}")
def test_console_session(session):
    line, argv, expected, status = session
    assert argv[0] in ("eval", "check"), f"docs/language.md:{line}: only eval and check run here"
    got_status, output = run_cli(argv)
    assert output.rstrip("\n") == expected, f"docs/language.md:{line}:\n{output}"
    assert got_status == status, f"docs/language.md:{line}: exit status {got_status}"


def test_console_sessions_cover_every_exit_code():
    assert {s[3] for s in SESSIONS} >= {0, 2, 65, 70}


# ---- the Python interface --------------------------------------------------------------------

def test_python_examples():
    blocks = [b for b in fenced_blocks(read_doc()) if b.lang == "python"]
    assert blocks
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict = {}
    for block in blocks:
        text = "\n".join(block.lines) + "\n"
        assert ">>> " in text, f"docs/language.md:{block.line}: a python block is a doctest"
        test = parser.get_doctest(text, globs, f"language.md:{block.line}", str(DOC),
                                  block.line - 1)
        out = io.StringIO()
        result = runner.run(test, out=out.write, clear_globs=False)
        globs.update(test.globs)
        assert result.failed == 0, out.getvalue()


# ---- the function tables --------------------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|")


def section(text: str, title: str) -> str:
    """The text under the heading that contains ``title`` (up to the next heading of the
    same or a higher level)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s", line)
        if m and title in line:
            level = len(m.group(1))
            out = []
            for rest in lines[i + 1:]:
                m2 = re.match(r"^(#+)\s", rest)
                if m2 and len(m2.group(1)) <= level:
                    break
                out.append(rest)
            return "\n".join(out)
    raise AssertionError(f"docs/language.md has no section {title!r}")


def table_rows(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            name, sig = m.groups()
            assert name not in rows, f"{name} has two rows"
            rows[name] = sig
    return rows


def is_public(name: str) -> bool:
    """%-named helpers are internal (but % itself is the alias of mod)."""
    return name == "%" or not name.startswith("%")


def canonical(type_text: str) -> str:
    """Type text with its type variables renamed a, b, c... in order of appearance."""
    names: dict[str, str] = {}

    def rename(m):
        word = m.group(0)
        if word[0].islower() and word not in ("->", "=>"):
            names.setdefault(word, "v%d" % len(names))
            return names[word]
        return word
    return re.sub(r"[^\s(),]+", rename, type_text)


def test_builtin_table_is_the_library():
    rows = table_rows(section(read_doc(), "Built-in functions"))
    expected = {b.name: b.signature for b in BUILTINS if is_public(b.name)}
    assert set(rows) == set(expected), (set(expected) - set(rows), set(rows) - set(expected))
    for name, sig in expected.items():
        assert rows[name] == sig, f"{name}: the doc says {rows[name]}, the library {sig}"


def test_prelude_table_is_the_library():
    rows = table_rows(section(read_doc(), "Prelude functions"))
    expected = {n: s for n, s in PRELUDE_SIGNATURES.items() if is_public(n)}
    assert set(rows) == set(expected), (set(expected) - set(rows), set(rows) - set(expected))
    for name, sig in expected.items():
        assert rows[name] == sig, f"{name}: the doc says {rows[name]}, the library {sig}"


def test_prelude_constructor_table():
    from exathunk.typecheck import library_world
    rows = table_rows(section(read_doc(), "Prelude data types"))
    world = library_world(default_library())
    assert set(rows) == set(world.cons)


def test_every_documented_type_is_inferred():
    text = section(read_doc(), "Function reference")
    rows = table_rows(text)
    assert len(rows) >= len(BUILTINS) + len(PRELUDE_SIGNATURES) - 3
    for name, sig in rows.items():
        inferred = driver.check(name, allow_function=True).result_type_text
        assert canonical(inferred) == canonical(sig), f"{name}: {inferred} vs {sig}"


def test_internal_names_are_all_named_with_percent():
    hidden = [b.name for b in BUILTINS if not is_public(b.name)]
    hidden += [n for n in PRELUDE_SIGNATURES if not is_public(n)]
    doc = read_doc()
    for name in hidden:
        assert f"`{name}`" in doc, f"{name} is not mentioned"


# ---- the table generator ------------------------------------------------------------------

def generate_tables() -> str:
    from exathunk.typecheck import library_world
    out = ["| name | type | notes |", "|---|---|---|"]
    out += [f"| `{b.name}` | `{b.signature}` | {b.doc} |" for b in BUILTINS if is_public(b.name)]
    out += ["", "| name | type | notes |", "|---|---|---|"]
    out += [f"| `{n}` | `{s}` | |" for n, s in PRELUDE_SIGNATURES.items() if is_public(n)]
    out += ["", "| constructor | type | notes |", "|---|---|---|"]
    for name in library_world(default_library()).cons:
        t = driver.check(name, allow_function=True).result_type_text
        out.append(f"| `{name}` | `{t}` | |")
    return "\n".join(out)


if __name__ == "__main__":
    print(generate_tables())
