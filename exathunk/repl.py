"""``exathunk repl``: an interactive session, local or against a remote node.

Line editing and history come from readline (history in ~/.exathunk_history); a form
typed over several lines is kept in the history as one entry.  Input continues over
several lines until its parentheses balance.  A ``define`` is kept and seen by every
later input, as are ``data``, ``class`` and ``instance`` declarations; anything else is
evaluated and its value printed.

Redefinition: entering a definition of a name already defined replaces the old one in
its place, and the whole session is checked again, so later definitions that used the
name now use the new one (unlike ghci, which keeps the old binding for them).  If the
new definition breaks one of them, it is refused with that error and the old one stays.

Ctrl-C during an evaluation stops it (a CancelToken locally, ``thunkCancel`` by request
id on a remote node) and returns to the prompt with every definition kept; Ctrl-C at
the prompt discards the line; Ctrl-D leaves.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
import time
import uuid

from .errors import ExathunkError
from .values import show_value

HELP = """\
Enter an expression to evaluate it, or (define ...), (data ...), (class ...) or
(instance ...) to add a definition; defining a name again replaces it.
Input continues on the next line while parentheses are open.
Ctrl-C stops an evaluation (definitions are kept) or discards the line being typed.
  :type EXPR   show the type of EXPR, with its constraints (Num a => ...)
  :defs        list the definitions entered so far
  :load FILE   add FILE's definitions; if it ends in an expression, evaluate it
  :time        toggle timing: wall time and steps after each evaluation
  :time EXPR   evaluate EXPR once and show its wall time and steps
  :reset       forget all definitions
  :help        this text
  :quit        leave (or Ctrl-D)"""


_DEFINITION = re.compile(r"\(\s*(define|data|class|instance)[\s()]")

# How long an interrupted evaluation may take to stop before the REPL gives up on it
# (a remote node that no longer answers); the prompt comes back either way.
_STOP_WAIT = 5.0


class Interrupted(Exception):
    """The user pressed Ctrl-C during an evaluation."""


def paren_balance(text: str) -> int:
    """Open minus close parentheses, ignoring strings and comments (for continuation)."""
    depth, in_string, escaped, in_comment = 0, False, False, False
    for ch in text:
        if in_comment:
            in_comment = ch != "\n"
        elif in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ";":
            in_comment = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
    return depth


def split_forms(text: str) -> list[tuple[int, str]]:
    """The top-level forms of ``text`` as (0-based line of their start, text); each
    form's text starts at its line's start when nothing precedes it there, so that
    columns inside it are the file's."""
    forms, depth, start = [], 0, None
    in_string = escaped = in_comment = False
    atom_start = None
    for i, ch in enumerate(text + "\n"):
        if in_comment:
            in_comment = ch != "\n"
            continue
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if depth == 0:
                    forms.append(_form(text, atom_start, i + 1))
                    atom_start = None
            continue
        if depth == 0 and atom_start is not None and not in_string and (
                ch.isspace() or ch in '();"'):
            forms.append(_form(text, atom_start, i))
            atom_start = None
        if ch == ";":
            in_comment = True
        elif ch == '"':
            in_string = True
            if depth == 0:
                atom_start = i
        elif ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and start is not None:
                forms.append(_form(text, start, i + 1))
                start = None
        elif depth == 0 and not ch.isspace() and atom_start is None:
            atom_start = i
    if depth > 0 and start is not None:
        forms.append(_form(text, start, len(text)))    # unbalanced: let the parser say so
    return [f for f in forms if f[1].strip()]


def _form(text: str, start: int, end: int) -> tuple[int, str]:
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:start].strip():
        start = line_start
    return text.count("\n", 0, start), text[start:end]


def _head(text: str) -> list:
    """The first elements of a form as nested lists of atoms (enough to name it)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[()]|[^\s()";]+', re.sub(r";[^\n]*", "", text))
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                break
            inner = stack.pop()
            stack[-1].append(inner)
            if len(stack) == 1:
                break
        else:
            stack[-1].append(tok)
    while len(stack) > 1:
        inner = stack.pop()
        stack[-1].append(inner)
    top = stack[0]
    return top[0] if top and isinstance(top[0], list) else []


def _flat(x) -> str:
    return "(" + " ".join(_flat(y) for y in x) + ")" if isinstance(x, list) else x


def definition_key(text: str) -> tuple[str, str] | None:
    """What a definition defines: ("define", name), ("data", Type), ("class", Class) or
    ("instance", head text); a later definition with the same key replaces it."""
    form = _head(text)
    if len(form) < 2 or not isinstance(form[0], str):
        return None
    kind, target = form[0], form[1]
    if kind in ("define", "data"):
        name = target[0] if isinstance(target, list) and target else target
        return (kind, name) if isinstance(name, str) else None
    if kind == "class":
        if isinstance(target, list) and target and target[0] == "=>":
            target = target[-1]
        name = target[0] if isinstance(target, list) and target else target
        return (kind, name) if isinstance(name, str) else None
    if kind == "instance":
        if isinstance(target, list) and target and target[0] == "=>":
            target = target[-1]
        return kind, _flat(target)
    return None


def history_entry(lines: list[str]) -> str:
    """One history entry for a form typed over ``lines``: joined by spaces when that
    cannot change its meaning (no comment, no string broken across lines), so that the
    history file keeps it as one line; by newlines otherwise."""
    text = "\n".join(lines)
    if len(lines) > 1 and ";" not in text and all(line.count('"') % 2 == 0 for line in lines):
        return " ".join(line.strip() for line in lines if line.strip())
    return text


class _Def:
    """One definition of the session and where it came from (to place its errors)."""
    __slots__ = ("key", "text", "filename", "source", "line0")

    def __init__(self, key, text, filename="<repl>", source=None, line0=0):
        self.key, self.text, self.filename = key, text, filename
        self.source, self.line0 = (source if source is not None else text), line0


class Repl:
    def __init__(self, remote: tuple[str, int] | None = None, stdin=None, stdout=None,
                 security=None):
        self.remote = remote
        self.security = security           # token and TLS toward the remote node
        self._defs: list[_Def] = []
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.timing = False
        self._client = None
        self._ids = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]

    @property
    def defines(self) -> list[str]:
        """The definitions' texts, in order."""
        return [d.text for d in self._defs]

    # -- assembling programs -----------------------------------------------------------
    def _assemble(self, defs: list[_Def], tail: _Def | None) -> tuple[str, list]:
        """The program text of ``defs`` then ``tail``, and (first line, def) per chunk."""
        chunks, places, line = [], [], 1
        for d in defs + ([tail] if tail is not None else []):
            chunks.append(d.text)
            places.append((line, d))
            line += d.text.count("\n") + 1
        return "\n".join(chunks), places

    def _relocate(self, err: ExathunkError, places: list) -> ExathunkError:
        # Show the error against the input (or file) it is in, not the whole session.
        err.filename = "<repl>"
        for frame in getattr(err, "trace", None) or []:    # a run's trace: lines only
            for first, d in reversed(places):
                if frame.line and frame.line >= first:
                    frame.line = frame.line - first + 1 + d.line0
                    break
        if err.line is None:
            return err
        for first, d in reversed(places):
            if err.line >= first:
                err.line = err.line - first + 1 + d.line0
                err.source, err.filename = d.source, d.filename
                break
        return err

    # -- evaluation ------------------------------------------------------------------
    def _connect(self):
        if self._client is None:
            from .client import connect
            self._client = connect(*self.remote, security=self.security)
        return self._client

    def _interruptible(self, work, stop) -> object:
        """Run ``work()`` in a thread; Ctrl-C calls ``stop()`` and raises Interrupted once
        the work has ended (or after _STOP_WAIT if it does not)."""
        box: dict = {}

        def target():
            try:
                box["value"] = work()
            except BaseException as err:   # handed to the waiting thread
                box["error"] = err

        thread = threading.Thread(target=target, name="exathunk-repl-eval", daemon=True)
        thread.start()
        interrupted_at = None
        while thread.is_alive():
            try:
                thread.join(0.05)
            except KeyboardInterrupt:
                if interrupted_at is None:
                    interrupted_at = time.monotonic()
                    stop()
            if interrupted_at is not None and time.monotonic() - interrupted_at > _STOP_WAIT:
                break
        if interrupted_at is not None:
            if thread.is_alive() and self._client is not None:
                # The node did not stop the run: drop this connection, open a new one later.
                client, self._client = self._client, None
                threading.Thread(target=client.close, daemon=True).start()
            raise Interrupted
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _run(self, source: str) -> tuple[object, int | None]:
        """Evaluate ``source`` here or remotely; (value, steps)."""
        if self.remote:
            client = self._connect()
            rid = f"repl-{self._session}-{next(self._ids)}"

            def stop():
                try:
                    client.cancel_request(rid)
                except (ExathunkError, OSError):
                    pass             # gone or not listening: _interruptible stops waiting

            value, stats = self._interruptible(
                lambda: client.evaluate_with_stats(source, request_id=rid), stop)
            return value, stats.get("steps")
        from . import _core
        from .driver import compile as compile_source
        token = _core.CancelToken()

        def work():
            program = compile_source(source)
            return program.run_with_stats(cancel=token)
        value, stats = self._interruptible(work, token.cancel)
        return value, stats.get("steps")

    def evaluate(self, text: str, timed: bool = False) -> str:
        source, places = self._assemble(self._defs, _Def(None, text))
        started = time.perf_counter()
        try:
            value, steps = self._run(source)
        except ExathunkError as err:
            raise self._relocate(err.with_source(source), places)
        elapsed = time.perf_counter() - started
        shown = show_value(value)
        if timed or self.timing:
            shown += "\n" + self._timing_line(elapsed, steps)
        return shown

    def _timing_line(self, elapsed: float, steps) -> str:
        where = f"on {self.remote[0]}:{self.remote[1]}, round trip" if self.remote else "wall"
        text = f"; {elapsed * 1e3:.2f} ms {where}"
        if steps is not None:
            return text + f", {steps:,} step{'' if steps == 1 else 's'}"
        return text + (", steps not reported by the node" if self.remote else "")

    def type_of(self, text: str) -> str:
        from .driver import check
        source, places = self._assemble(self._defs, _Def(None, text))
        try:
            return check(source, allow_function=True).result_type_text
        except ExathunkError as err:
            raise self._relocate(err, places)

    def _with(self, new: list[_Def]) -> tuple[list[_Def], list[str]]:
        """The session's definitions with ``new`` ones added, each replacing an earlier
        one with its key in place; and the names replaced."""
        defs, replaced = list(self._defs), []
        for d in new:
            for i, old in enumerate(defs):
                if d.key is not None and old.key == d.key:
                    defs[i] = d
                    replaced.append(d.key[1])
                    break
            else:
                defs.append(d)
        return defs, replaced

    def _check_defs(self, defs: list[_Def]) -> None:
        from .driver import check
        source, places = self._assemble(defs, _Def(None, "0"))
        try:
            check(source)
        except ExathunkError as err:
            raise self._relocate(err, places)

    def define(self, text: str) -> str:
        defs, replaced = self._with([_Def(definition_key(text), text)])
        try:
            self._check_defs(defs)
        except ExathunkError as err:
            if replaced and err.source is not text:
                err.message += (f" (this definition uses {replaced[0]}, which the new "
                                f"definition would break; the old {replaced[0]} is kept)")
            raise
        self._defs = defs
        return f"redefined {replaced[0]}" if replaced else "defined"

    def load(self, path: str) -> str:
        """Add the definitions of the file at ``path`` (all or none); evaluate its final
        expression if it has one, showing its value."""
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as f:
                source = f.read()
        except OSError as err:
            return f"cannot read {path}: {err.strerror}"
        new, exprs = [], []
        for line0, form in split_forms(source):
            if _DEFINITION.match(form.lstrip()):
                new.append(_Def(definition_key(form), form, path, source, line0))
            else:
                exprs.append((line0, form))
        if len(exprs) > 1:
            return (f"{path}: {len(exprs)} expressions outside definitions; a program has "
                    "at most one, at its end")
        defs, replaced = self._with(new)
        self._check_defs(defs)
        self._defs = defs
        count = len(new)
        reply = f"loaded {path}: {count} definition{'s' if count != 1 else ''}"
        if replaced:
            reply += f" (replaced {', '.join(replaced)})"
        if exprs:
            line0, form = exprs[0]
            tail = _Def(None, form, path, source, line0)
            program, places = self._assemble(self._defs, tail)
            started = time.perf_counter()
            try:
                value, steps = self._run(program)
            except ExathunkError as err:
                print(reply, file=self.stdout)
                raise self._relocate(err.with_source(program), places)
            reply += "\n" + show_value(value)
            if self.timing:
                reply += "\n" + self._timing_line(time.perf_counter() - started, steps)
        return reply

    def handle(self, text: str) -> str | None:
        """One complete input; returns what to print (None to quit)."""
        stripped = text.strip()
        if not stripped:
            return ""
        if stripped.startswith(":"):
            command, _, rest = stripped.partition(" ")
            rest = rest.strip()
            if command in (":q", ":quit"):
                return None
            if command in (":h", ":help", ":?"):
                return HELP
            if command in (":t", ":type"):
                return self.type_of(rest) if rest else "usage: :type EXPR"
            if command == ":defs":
                return "\n".join(self.defines) or "(no definitions)"
            if command in (":l", ":load"):
                return self.load(rest) if rest else "usage: :load FILE"
            if command == ":time":
                if rest:
                    return self.evaluate(rest, timed=True)
                self.timing = not self.timing
                return f"timing {'on' if self.timing else 'off'}"
            if command == ":reset":
                self._defs.clear()
                return "definitions cleared"
            return f"unknown command {command}; :help lists them"
        if _DEFINITION.match(stripped):
            return self.define(stripped)
        return self.evaluate(stripped)

    # -- the loop --------------------------------------------------------------------
    def _interactive(self) -> bool:
        return self.stdin is sys.stdin and sys.stdin.isatty()

    def _read(self, prompt: str) -> str:
        if self._interactive():
            return input(prompt)
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def _read_form(self, readline) -> str:
        """One input, continued while parentheses are open; with readline, the lines
        of a multi-line form become one history entry."""
        start = readline.get_current_history_length() if readline else 0
        lines = [self._read("xt> ")]
        while paren_balance("\n".join(lines)) > 0:
            lines.append(self._read("... "))
        if readline and len(lines) > 1:
            for pos in range(readline.get_current_history_length() - 1, start - 1, -1):
                readline.remove_history_item(pos)
            readline.add_history(history_entry(lines))
        return "\n".join(lines)

    def loop(self) -> int:
        interactive = self._interactive()
        history = os.path.expanduser("~/.exathunk_history")
        readline = None
        if interactive:
            try:
                import readline
                try:
                    readline.read_history_file(history)
                except OSError:
                    pass
            except ImportError:
                readline = None
            where = f"{self.remote[0]}:{self.remote[1]}" if self.remote else "local engine"
            print(f"exathunk repl ({where}); :help for commands, Ctrl-D to leave",
                  file=self.stdout)
        try:
            while True:
                try:
                    text = self._read_form(readline)
                except EOFError:
                    if interactive:
                        print("", file=self.stdout)   # leave the shell's prompt on its own line
                    break
                except KeyboardInterrupt:
                    print("", file=self.stdout)       # the line is dropped, as in Python
                    continue
                try:
                    reply = self.handle(text)
                except ExathunkError as err:
                    print(err.render(), file=self.stdout)
                    continue
                except Interrupted:
                    print("interrupted", file=self.stdout)
                    continue
                except KeyboardInterrupt:             # during a :type or a define's check
                    print("\ninterrupted", file=self.stdout)
                    continue
                if reply is None:
                    break
                if reply:
                    print(reply, file=self.stdout)
        finally:
            if readline is not None:
                try:
                    readline.write_history_file(history)
                except OSError:
                    pass
            if self._client is not None:
                self._client.close()
        return 0
