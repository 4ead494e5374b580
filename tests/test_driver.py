"""The public API of DESIGN §4 through the driver: compile, evaluate, the cache, and a
Program that remembers the Library it was compiled with."""

from __future__ import annotations

import pytest

import exathunk
from exathunk import driver


def test_compile_run_type_digest_bytes():
    prog = exathunk.compile("(+ 1 (/ 4 2))")
    assert prog.type == "Int"
    assert prog.run() == 3
    again = exathunk.Program.from_bytes(prog.to_bytes())
    assert again.digest == prog.digest and again.run() == 3


def test_repeated_source_is_served_from_the_cache():
    src = "(* 6 7) ; cached"
    assert exathunk.compile(src) is exathunk.compile(src)


def test_cache_is_per_library_and_per_registration():
    lib = exathunk.Library()
    plain = exathunk.compile("(+ 1 1)")
    with_lib = exathunk.compile("(+ 1 1)", library=lib)
    assert plain is not with_lib
    lib.register("twice", "(-> Int Int)", lambda n: 2 * n)
    assert exathunk.compile("(+ 1 1)", library=lib) is not with_lib


def test_host_function_program_runs_with_its_own_library():
    lib = exathunk.Library()
    lib.register("shout", "(-> String String)", lambda s: s.upper() + "!")
    prog = exathunk.compile('(shout "hi")', library=lib)
    assert prog.run() == "HI!"
    loaded = exathunk.Program.from_bytes(prog.to_bytes(), library=lib)
    assert loaded.run() == "HI!"
    with pytest.raises(exathunk.UnknownFunctionError):
        exathunk.Program.from_bytes(prog.to_bytes()).run()


def test_evaluate_passes_limits():
    assert exathunk.evaluate("(sum (range 0 10))", max_steps=100_000) == 45
    with pytest.raises(exathunk.LimitExceeded) as err:
        exathunk.evaluate("(length (iterate (lambda (x) x) 0))", max_steps=10_000)
    assert err.value.limit == "max_steps"


@pytest.mark.parametrize("source, cls, line, column", [
    ("(+ 1", exathunk.ParseError, 1, None),
    ("(* 4 true)", exathunk.TypeCheckError, 1, 6),
    ("\n(blah 4 true)", exathunk.UnknownFunctionError, 2, 2),
])
def test_errors_carry_place_and_source(source, cls, line, column):
    with pytest.raises(cls) as err:
        exathunk.compile(source)
    assert err.value.line == line
    if column is not None:
        assert err.value.column == column
    rendered = str(err.value)
    assert "^" in rendered and source.strip().splitlines()[-1] in rendered


def test_check_returns_the_type_without_compiling():
    assert driver.check("(map (lambda (x) (+ x 1.5)) nil)").result_type_text == "(List Double)"
    with pytest.raises(exathunk.TypeCheckError):
        driver.check("(lambda (x) (+ x 1.5))")   # a function cannot be handed back


def test_every_declared_error_class_is_public():
    from exathunk import errors
    for name in ("Expired", "Unverifiable", "WorkerRefused", "StoreError",
                 "ConfigurationError", "AuthenticationFailed", "AuthenticationRequired"):
        assert getattr(exathunk, name) is getattr(errors, name)
        assert name in exathunk.__all__
