"""Build exathunk and its engine, the Cython extension ``exathunk._core``.

The compiled engine is not optional: a failed Cython or C build fails the install,
never falls back silently to a slow path.  ``grammar/`` (the language grammar, the
Thrift IDL and the golden programs) is installed as the package ``exathunk.grammar``
so that an installed exathunk finds it outside the checkout.

Knobs (environment): EXATHUNK_DEBUG=1 builds the engine with bounds checks and
assertions on, for hunting engine bugs; EXATHUNK_ANNOTATE=1 writes Cython's HTML
annotation next to the .pyx; EXATHUNK_PROFILE=1 builds the engine counting its
dispatched instructions for bench/profile_instructions.py (the normal build does not).
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("EXATHUNK_DEBUG") == "1"
PROFILE = os.environ.get("EXATHUNK_PROFILE") == "1"

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(
        "exathunk._core",
        ["exathunk/_core.pyx"],
        define_macros=[("EXATHUNK_PROFILE", "1")] if PROFILE else [],
        # The engine's dispatch loop runs up to 15% slower or faster depending only on
        # where its branch targets fall; aligning them makes the speed reproducible.
        extra_compile_args=(["-O2", "-falign-functions=64", "-falign-loops=32",
                             "-falign-jumps=32"] if not DEBUG else ["-O0", "-g"]),
    )
]

setup(
    packages=["exathunk", "exathunk.grammar"],
    package_dir={"exathunk": "exathunk", "exathunk.grammar": "grammar"},
    package_data={
        "exathunk": ["*.xt", "*.pyx", "*.pxd", "*.pxi", "py.typed"],
        "exathunk.grammar": ["*.thrift", "*.ebnf", "*.md", "cases/*.xt"],
    },
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=os.environ.get("EXATHUNK_ANNOTATE") == "1",
    ),
    zip_safe=False,
)
