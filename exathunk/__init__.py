"""exathunk: a pure, lazy, statically typed s-expression language whose whole
programs travel over Thrift RPC to remote nodes.

    prog = exathunk.compile("(+ 1 (/ 4 2))")
    prog.type, prog.run(), prog.digest, prog.to_bytes()
    exathunk.evaluate(source, max_steps=...)
    client = exathunk.connect("127.0.0.1", 9090); client.evaluate("(+ 1 2)")
    exathunk.serve(host="127.0.0.1", port=9090, library=lib)

The network half (connect, serve) is imported on first use, so that compiling and
running locally never loads thriftpy2.
"""

from .errors import (AuthenticationError, AuthenticationFailed, AuthenticationRequired,
                     ConfigurationError, EvaluationError, ExathunkError, Expired,
                     LimitExceeded, ParseError, RemoteError, StoreError, TypeCheckError,
                     UnknownFunctionError, Unverifiable, WorkerRefused)
from .library import Library
from .values import Data

__version__ = "0.1.0"

__all__ = [
    "compile", "evaluate", "Program", "Library", "Data", "connect", "serve",
    "ExathunkError", "ParseError", "TypeCheckError", "UnknownFunctionError",
    "EvaluationError", "LimitExceeded", "RemoteError", "AuthenticationError",
    "AuthenticationRequired", "AuthenticationFailed", "Expired", "Unverifiable",
    "WorkerRefused", "StoreError", "ConfigurationError",
]

_LAZY = {
    "compile": ("driver", "compile"),
    "evaluate": ("driver", "evaluate"),
    "Program": ("program", "Program"),
    "connect": ("client", "connect"),
    "serve": ("server", "serve"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'exathunk' has no attribute {name!r}")
