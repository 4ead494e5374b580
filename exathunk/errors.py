"""The one error hierarchy of exathunk.

Every failure a user can see is an ``ExathunkError``: it has a ``kind`` (its class
name, which is also what travels on the wire), a message, and where known the line
and column of the offending source, which ``render()`` shows with a caret.
"""

from __future__ import annotations


class ExathunkError(Exception):
    """Root of every exathunk error.  ``str(err)`` is the rendered form."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 source: str | None = None, filename: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        self.filename = filename
        # For a run that failed: the innermost active frames at the failure, innermost
        # first, each a TraceFrame (see trace_lines); empty for compile-time errors.
        self.trace = []

    @property
    def kind(self) -> str:
        return type(self).__name__

    def source_line(self) -> str | None:
        """The text of the line the error points at, if the source is known."""
        if self.source is None or self.line is None:
            return None
        lines = self.source.split("\n")
        if 1 <= self.line <= len(lines):
            return lines[self.line - 1]
        return None

    def render(self) -> str:
        where = self.filename or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.kind}: {self.message}"
        line = self.source_line()
        if line is not None:
            # Long lines (1 MB of source on one line) are clipped around the column.
            col = max(1, self.column or 1)
            start = max(0, col - 60)
            shown = line[start:start + 120].replace("\t", " ")
            prefix = "..." if start else ""
            text += "\n    " + prefix + shown
            if self.column is not None:
                text += "\n    " + " " * (len(prefix) + col - 1 - start) + "^"
        if self.trace:
            text += "\n  evaluation trace (innermost first):"
            for frame in self.trace:
                text += "\n    " + frame.describe()
        return text

    def __str__(self) -> str:
        return self.render()

    def with_source(self, source: str | None, filename: str | None = None) -> "ExathunkError":
        """Attach the source text (and file name) so that render() can show the line."""
        if self.source is None:
            self.source = source
        if self.filename is None:
            self.filename = filename
        return self

    def __reduce__(self):
        return (_rebuild, (type(self).__name__, self.message, self.line, self.column,
                           self.source, self.filename, dict(self.__dict__)))


class TraceFrame:
    """One active frame of a failed run: ``kind`` is "user" (a function of the user's
    program: ``name``, and ``line``/``column`` of the expression it was evaluating),
    "main" (the program's main expression), "prelude" (a prelude function), "built-in"
    or "host"; prelude, built-in and host frames carry no position (their code is not
    in the user's file)."""

    __slots__ = ("kind", "name", "line", "column")

    def __init__(self, kind: str, name: str, line: int | None = None,
                 column: int | None = None):
        self.kind = kind
        self.name = name
        self.line = line
        self.column = column

    def describe(self) -> str:
        if self.kind == "main":
            text = "in the main expression"
        elif self.kind == "user":
            text = f"in '{self.name}'"
        elif self.kind == "host":
            text = f"in host function '{self.name}'"
        else:
            text = f"in {self.kind} '{self.name}'"
        if self.line:
            text += f" at line {self.line}"
            if self.column:
                text += f", column {self.column}"
        return text

    def __eq__(self, other):
        return isinstance(other, TraceFrame) and self.as_tuple() == other.as_tuple()

    def as_tuple(self) -> tuple:
        return (self.kind, self.name, self.line, self.column)

    def __repr__(self):
        return f"TraceFrame{self.as_tuple()!r}"

    def __reduce__(self):
        return (TraceFrame, self.as_tuple())


class ParseError(ExathunkError):
    """Malformed source: bad tokens, unbalanced parentheses, misplaced forms."""


class TypeCheckError(ExathunkError):
    """The program is ill-typed, or its result cannot be handed back to the host."""


class UnknownFunctionError(ExathunkError):
    """A name that is neither local, defined, a built-in nor a host function."""


class EvaluationError(ExathunkError):
    """A run failed: ``error``, ``bottom``, division by zero, overflow, head of nil..."""


class LimitExceeded(ExathunkError):
    """A run passed one of its limits; ``limit`` names it (max_steps, max_heap,
    max_depth, timeout, cancelled); ``value`` is the limit's value and ``used`` what the
    run had used when it stopped (steps, bytes, frames, seconds), where known."""

    def __init__(self, message: str, limit: str | None = None, value=None, used=None, **kw):
        super().__init__(message, **kw)
        self.limit = limit
        self.value = value
        self.used = used


# How a run's limit is raised: (what it counts, the command-line flag, the argument).
LIMIT_HINTS = {
    "max_steps": ("step", "--max-steps", "max_steps="),
    "max_heap": ("heap", "--max-heap", "max_heap="),
    "max_depth": ("stack depth", "--max-depth", "max_depth="),
    "timeout": ("time", "--timeout-ms", "timeout="),
}


def limit_message(limit: str, value, used=None) -> str:
    """What LimitExceeded says: the limit, its value, what was used, and how to raise
    it, e.g. "step limit of 1,000,000 reached (used 1,000,001 steps); raise it with
    --max-steps or max_steps=" (the engine and the reference interpreter alike)."""
    what, flag, arg = LIMIT_HINTS[limit]
    if limit == "max_steps":
        head = f"step limit of {value:,} reached"
        spent = f" (used {used:,} steps)" if used is not None else ""
    elif limit == "max_heap":
        head = f"heap limit of {value:,} bytes reached"
        spent = f" (live heap {used:,} bytes)" if used is not None else ""
    elif limit == "max_depth":
        head = f"stack depth limit of {value:,} frames reached"
        spent = f" (used {used:,} frames)" if used is not None else ""
    else:
        head = f"time limit of {_ms(value)} ms reached"
        spent = f" (ran {_ms(used)} ms)" if used is not None else ""
    return f"{head}{spent}; raise it with {flag} or {arg}"


def _ms(seconds) -> str:
    ms = float(seconds) * 1000.0
    return f"{ms:,.0f}" if ms >= 10 else f"{ms:.3g}"


class RemoteError(ExathunkError):
    """Transport or protocol failure talking to a remote node."""


class Expired(RemoteError):
    """A thunk whose result the node (or broker) no longer keeps: it finished more than
    ``thunk_ttl`` seconds ago (or was fetched and dropped under pressure).  Distinct from
    an id that was never issued (UnknownThunk); submit the request again."""


class AuthenticationError(RemoteError):
    """The node wants the deployment's shared token (``--token-file``) and did not get
    it: the base of AuthenticationRequired and AuthenticationFailed."""


class AuthenticationRequired(AuthenticationError):
    """A call on a connection that has not authenticated, to a node that requires it
    (connect with ``token=``/``token_file=``, or ``--token-file`` on the command line)."""


class AuthenticationFailed(AuthenticationError):
    """The token presented does not match the node's."""


class Unverifiable(ExathunkError):
    """A broker's refusal: only one worker could compute the value and nobody could check
    it (no second worker offers the host functions it calls, and the broker cannot run
    them); the message names those functions.  Ask with ``allow_unchecked=True`` (the
    request's allowUnchecked) to take such a value, marked verifiedBy "none"."""


class ConfigurationError(ExathunkError):
    """A security setting that cannot be used: a token file missing, empty or
    unreadable, a TLS certificate, key or CA file that does not load."""


class StoreError(ExathunkError):
    """The broker's reputation store cannot be used: not a SQLite database or damaged
    (with ``strict_store``/``--strict-store``; otherwise it is moved aside), or a file
    that cannot be opened or written."""


class WorkerRefused(ExathunkError):
    """registerWorker (or a worker given at start) refused: the address reaches the
    broker itself, by its own host:port, an alias of it, or by the node id it reports."""


class CompileWarning(ExathunkError):
    """Never raised: a warning with a place (a case that misses values, an alternative
    that is never used), kept on the checked module and rendered like an error."""

    @property
    def kind(self) -> str:
        return "warning"


def no_match_message(form: str, line: int | None, column: int | None) -> str:
    """What a run that falls through every alternative of a case says (engine and
    reference interpreter alike); ``form`` is "case" or "cond"."""
    where = f" at line {line}, column {column}" if line else ""
    if form.startswith("field "):
        return (f"the value has no field {form[6:]}: it was built with a constructor "
                "that has none")
    if form == "cond":
        return f"no condition of the cond{where} holds (and it has no else)"
    return f"no alternative of the case{where} matches the value"


ERROR_CLASSES: dict[str, type[ExathunkError]] = {
    cls.__name__: cls
    for cls in (ExathunkError, ParseError, TypeCheckError, UnknownFunctionError,
                EvaluationError, LimitExceeded, RemoteError, AuthenticationError,
                AuthenticationRequired, AuthenticationFailed, ConfigurationError,
                StoreError, Unverifiable, WorkerRefused, Expired)
}


def error_class(kind: str) -> type[ExathunkError]:
    """The class for a wire ``kind``; unknown kinds become plain ExathunkError."""
    return ERROR_CLASSES.get(kind, ExathunkError)


def _rebuild(kind, message, line, column, source, filename, state):
    cls = error_class(kind)
    err = cls.__new__(cls)
    ExathunkError.__init__(err, message, line, column, source, filename)
    err.__dict__.update(state)
    err.__dict__.setdefault("trace", [])
    return err
