"""An example host library for ``exathunk serve --library``.

    PYTHONPATH=examples exathunk serve --port 9090 --library hostlib:lib
    exathunk eval --remote 127.0.0.1:9090 -e '(sha256 "abc")'

``--library MODULE:ATTR`` imports MODULE (it must be importable: on PYTHONPATH or
installed) and serves ATTR, an ``exathunk.Library`` or a function of no arguments that
returns one (``hostlib:build`` below does the same as ``hostlib:lib``).
"""

import hashlib

import exathunk


def build() -> exathunk.Library:
    lib = exathunk.Library()
    lib.register("sha256", "(-> String String)",
                 lambda s: hashlib.sha256(s.encode()).hexdigest(),
                 doc="the SHA-256 of the text's UTF-8 bytes, in hex")
    lib.declare_data("(data Point (Pt (px Double) (py Double)))")
    lib.declare_class("(class (Hashable a) (hash (-> a Int)))")
    lib.register_instance("Hashable", "String", hash=lambda s: len(s))
    return lib


lib = build()
