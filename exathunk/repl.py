"""``exathunk repl``: an interactive session, local or against a remote node.

Line editing and history come from readline (history in ~/.exathunk_history).  Input
continues over several lines until its parentheses balance.  A ``define`` is kept and
seen by every later input, as are ``data``, ``class`` and ``instance`` declarations;
anything else is evaluated and its value printed.
Commands: ``:type EXPR``, ``:defs``, ``:reset``, ``:help``, ``:quit``.
"""

from __future__ import annotations

import os
import re
import sys

from .errors import ExathunkError
from .values import show_value

HELP = """\
Enter an expression to evaluate it, or (define ...), (data ...), (class ...) or
(instance ...) to add a definition.
Input continues on the next line while parentheses are open.
  :type EXPR   show the type of EXPR
  :defs        list the definitions entered so far
  :reset       forget all definitions
  :help        this text
  :quit        leave (or Ctrl-D)"""


_DEFINITION = re.compile(r"\(\s*(define|data|class|instance)[\s()]")


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


class Repl:
    def __init__(self, remote: tuple[str, int] | None = None, stdin=None, stdout=None):
        self.remote = remote
        self.defines: list[str] = []
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._client = None

    # -- evaluation ------------------------------------------------------------------
    def _program(self, text: str) -> tuple[str, int]:
        prefix = "\n".join(self.defines)
        offset = prefix.count("\n") + 1 if prefix else 0
        return (prefix + "\n" + text if prefix else text), offset

    def _relocate(self, err: ExathunkError, text: str, offset: int) -> ExathunkError:
        # Show the error against what the user typed, not the accumulated definitions.
        if err.line is not None and err.line > offset:
            err.line -= offset
            err.source = text
        err.filename = "<repl>"
        return err

    def evaluate(self, text: str) -> str:
        source, offset = self._program(text)
        try:
            if self.remote:
                if self._client is None:
                    from .client import connect
                    self._client = connect(*self.remote)
                value = self._client.evaluate(source)
            else:
                from .driver import evaluate
                value = evaluate(source)
        except ExathunkError as err:
            raise self._relocate(err, text, offset)
        return show_value(value)

    def type_of(self, text: str) -> str:
        from .driver import check
        source, offset = self._program(text)
        try:
            return check(source, allow_function=True).result_type_text
        except ExathunkError as err:
            raise self._relocate(err, text, offset)

    def define(self, text: str) -> str:
        from .driver import check
        source, offset = self._program(text + "\n0")
        try:
            check(source)
        except ExathunkError as err:
            raise self._relocate(err, text, offset)
        self.defines.append(text)
        return "defined"

    def handle(self, text: str) -> str | None:
        """One complete input; returns what to print (None to quit)."""
        stripped = text.strip()
        if not stripped:
            return ""
        if stripped.startswith(":"):
            command, _, rest = stripped.partition(" ")
            if command in (":q", ":quit"):
                return None
            if command in (":h", ":help"):
                return HELP
            if command in (":t", ":type"):
                return self.type_of(rest) if rest.strip() else "usage: :type EXPR"
            if command == ":defs":
                return "\n".join(self.defines) or "(no definitions)"
            if command == ":reset":
                self.defines.clear()
                return "definitions cleared"
            return f"unknown command {command}; :help lists them"
        if _DEFINITION.match(stripped):
            return self.define(stripped)
        return self.evaluate(stripped)

    # -- the loop --------------------------------------------------------------------
    def _read(self, prompt: str) -> str:
        if self.stdin is sys.stdin and sys.stdin.isatty():
            return input(prompt)
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def loop(self) -> int:
        interactive = self.stdin is sys.stdin and sys.stdin.isatty()
        history = os.path.expanduser("~/.exathunk_history")
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
            print(f"exathunk repl ({where}); :help for commands, Ctrl-D to leave", file=self.stdout)
        try:
            while True:
                try:
                    text = self._read("xt> ")
                    while paren_balance(text) > 0:
                        text += "\n" + self._read("... ")
                except EOFError:
                    break
                except KeyboardInterrupt:
                    print("", file=self.stdout)
                    continue
                try:
                    reply = self.handle(text)
                except ExathunkError as err:
                    print(err.render(), file=self.stdout)
                    continue
                if reply is None:
                    break
                if reply:
                    print(reply, file=self.stdout)
        finally:
            if interactive:
                try:
                    import readline
                    readline.write_history_file(history)
                except (ImportError, OSError):
                    pass
            if self._client is not None:
                self._client.close()
        return 0
