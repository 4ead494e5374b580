"""The compile driver: source text to a Program, stage by stage, with a cache.

``compile`` runs parse -> typecheck -> compile and caches the Program by source text
(and library), so that a repeated source costs a dictionary look-up.  ``check`` stops
after the typechecker; ``evaluate`` compiles and runs.  Every error leaves here with the
source attached, so that ``str(err)`` shows the offending line and a caret.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

from . import compiler, parser, subthunks, typecheck
from .errors import ExathunkError
from .lexer import source_text
from .library import Library, default_library

# The parser bounds nesting at parser.MAX_NESTING (256) parentheses; the later stages
# recurse on tree depth a few frames per level, which needs more than CPython's default
# limit of 1000.  Python-to-Python calls do not grow the C stack in CPython 3.11.
_RECURSION_LIMIT = 5000

CACHE_SIZE = 4096

_cache: "OrderedDict[tuple, object]" = OrderedDict()
_cache_lock = threading.Lock()


def _ensure_recursion_limit() -> None:
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)


def check(source: str, library: Library | None = None, filename: str | None = None,
          allow_function: bool = False):
    """Parse and typecheck ``source``; returns the typechecker's CheckedModule.

    ``allow_function`` accepts a function-typed result (to show its type); compile
    never does.
    """
    library = library or default_library()
    source = source_text(source)       # bytes not UTF-8: a ParseError with the offset
    _ensure_recursion_limit()
    try:
        module, notes = subthunks.desugar(parser.parse(source, filename), source)
        checked = typecheck.check_module(module, library, allow_function=allow_function)
        if notes:
            checked.warnings = list(checked.warnings or ()) + notes
        return checked
    except ExathunkError as err:
        raise err.with_source(source, filename)


def compile(source: str, library: Library | None = None, filename: str | None = None):
    """Compile ``source`` into a Program (cached by source text and library).

    ``source`` is a str, or UTF-8 bytes (bytes that are not UTF-8 are a ParseError
    naming the offset of the first bad byte)."""
    library = library or default_library()
    if source.__class__ is not str:
        source = source_text(source)
    key = (source, library.id, library.version, filename)
    program = _cache.get(key)
    if program is not None:
        return program
    # the stages of check() inline: this is the uncached compile's hot path
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    try:
        module, notes = subthunks.desugar(parser.parse(source, filename), source)
        checked = typecheck.check_module(module, library)
        if notes:
            checked.warnings = list(checked.warnings or ()) + notes
        program = compiler.compile_module(checked, library)
    except ExathunkError as err:
        raise err.with_source(source, filename)
    program.library = library
    program.warnings = warnings(checked, source, filename)
    with _cache_lock:
        _cache[key] = program
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return program


def warnings(checked, source: str | None = None, filename: str | None = None) -> list:
    """The checked module's warnings as CompileWarnings (render() shows the caret)."""
    from .errors import CompileWarning
    return [CompileWarning(msg, line, col, source, filename)
            for msg, line, col in (checked.warnings or ())]


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def evaluate(source: str, library: Library | None = None, **limits):
    """Compile and run ``source``; keyword limits: max_steps, max_heap, max_depth."""
    source = source_text(source)
    program = compile(source, library)
    try:
        return program.run(library=library, **limits)
    except ExathunkError as err:
        raise err.with_source(source)
