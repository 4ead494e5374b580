"""The compiler: well-formed output, linking, strictness, specialisation, shadowing."""

import pytest

from exathunk import ast, compiler, parser, typecheck
from exathunk.library import Library, default_library
from exathunk.opcodes import OPERANDS, Op, pxi_text
from exathunk.program import verify


def compile_src(src, library=None):
    library = library or default_library()
    checked = typecheck.check_module(parser.parse(src), library)
    return compiler.compile_module(checked, library)


def fn_named(prog, name):
    return next(f for f in prog.functions if f.name == name)


def ops_of(f):
    pc, out = 0, []
    while pc < len(f.code):
        op = Op(f.code[pc])
        out.append((op, f.code[pc + 1:pc + 1 + len(OPERANDS[op])]))
        pc += 1 + len(OPERANDS[op])
    return out


def test_opcode_mirror_agrees():
    from pathlib import Path
    from exathunk import _core
    text = (Path(compiler.__file__).parent / "_opcodes.pxi").read_text()
    assert text == pxi_text()
    assert _core.opcode_values() == {op.name: int(op) for op in Op}


@pytest.mark.parametrize("src", [
    "(+ 1 (/ 4 2))",
    "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 10)",
    "(let ((xs (cons 1 xs))) (take 3 xs))",
    "(map (lambda (x) (* x 2)) (list 1 2 3))",
    "(foldl + 0 (range 0 10))",
    "(let ((f (lambda (n) (if (= n 0) 1 (* n (f (- n 1))))))) (f 5))",
    '(show (list "a" "b"))',
    "(zip-with (lambda (a b) (+ a b)) (list 1 2) (list 3 4))",
])
def test_output_is_well_formed(src):
    prog = compile_src(src)
    verify(prog)                      # raises if anything is out of range
    assert prog.functions[prog.entry].arity == 0
    for f in prog.functions:
        assert len(f.code) == len(f.lines)
        assert f.frame_size >= f.arity


def test_links_only_what_is_reached():
    prog = compile_src("(length (list 1 2 3))")
    names = {f.name for f in prog.functions}
    assert "length" in names and "%length-from" in names
    assert "map" not in names and "foldr" not in names
    assert prog.functions_used == ["length"]


def test_constants_are_pooled_once():
    prog = compile_src('(+ (+ 7 7) (len (concat "ab" "ab")))')
    assert prog.ints.count(7) == 1
    assert prog.strings == ["ab"]


def test_user_define_shadows_library_but_prelude_keeps_its_own():
    # a user `take` that ignores its arguments; the prelude's functions still use
    # the real take (length uses nothing of it, but `iterate` users do via our call)
    src = "(define (take n xs) nil) (length (take 3 (list 1 2 3)))"
    prog = compile_src(src)
    assert prog.run() == 0
    src2 = "(define (null? x) true) (length (list 1 2 3))"
    prog2 = compile_src(src2)
    assert prog2.run() == 3


def test_sum_specialised_by_element_type():
    p_int = compile_src("(sum (list 1 2 3))")
    p_dbl = compile_src("(sum (list 1.5 2.5))")
    p_empty = compile_src("(sum (the (List Double) nil))")
    assert any(f.name == "%sum-int" for f in p_int.functions)
    assert any(f.name == "%sum-double" for f in p_dbl.functions)
    assert p_empty.run() == 0.0 and isinstance(p_empty.run(), float)
    assert compile_src("(product (list 2 3 4))").run() == 24


def test_strict_parameters_are_evaluated_by_the_caller():
    prog = compile_src("(define (f n) (if (< n 2) n (+ (f (- n 1)) (f (- n 2))))) (f 10)")
    body = ops_of(fn_named(prog, "f"))
    # no thunk is built for (- n 1): the argument is computed before the CALL
    assert all(op != Op.MKTHUNK for op, _ in body)
    assert any(op == Op.CALL for op, _ in body)


def test_lazy_argument_becomes_a_thunk():
    prog = compile_src("(define (k a b) a) (k 1 (error \"unused\"))")
    main = ops_of(prog.functions[prog.entry])
    assert any(op == Op.MKTHUNK for op, _ in main)
    assert prog.run() == 1


def test_builtins_as_values_get_wrappers():
    prog = compile_src("(foldl + 0 (list 1 2 3))")
    assert any(f.name == "%builtin:+" for f in prog.functions)
    assert prog.run() == 6


def test_hand_built_ast_with_stub_checked_module():
    class Stub:
        module = ast.Module((ast.Define("double", ("x",), ast.App(
            ast.Var("+"), (ast.Var("x"), ast.Var("x")))),),
            ast.App(ast.Var("double"), (ast.Lit(21, "Int"),)))
        result_type_text = "Int"
    prog = compiler.compile_module(Stub(), default_library())
    assert prog.type == "Int"
    assert prog.run() == 42


def test_host_function_reference_recorded():
    lib = Library()
    lib.register("twice", "(-> Int Int)", lambda x: 2 * x)
    prog = compile_src("(+ 1 (twice 20))", lib)
    assert prog.host_functions == ["twice"]
    assert "twice" in prog.functions_used
    assert prog.run(library=lib) == 41


def test_disassembly_shows_names_constants_and_lines():
    prog = compile_src("(define (f x)\n  (+ x 40))\n(f 2)")
    text = prog.disassemble()
    assert "== " in text and "f" in text
    assert "ADD_LI" in text or "ADD" in text
    assert "40" in text
    assert "result type Int" in text
    # the line of the body of f (line 2) appears in its listing
    listing = text.split("f  arity 1")[1]
    assert "   2 " in listing.split("\n\n")[0]


def test_strictness_through_a_long_chain_in_reverse_order():
    lines = ["(define (f0 x y) (if (< x 0) y 1))"]
    lines += [f"(define (f{i} x y) (f{i - 1} x y))" for i in range(1, 300)]
    lines.reverse()
    prog = compile_src("\n".join(lines) + '\n(f299 3 (error "y is lazy"))')
    assert prog.run() == 1
    # x is strict all the way up: f299 forces it on entry
    first = ops_of(fn_named(prog, "f299"))[0]
    assert first == (Op.LOCAL_EVAL, [0])
