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


# ---- data types and case ----------------------------------------------------------

from exathunk import driver, reference, types as T
from exathunk.errors import EvaluationError, no_match_message
from exathunk.program import Constructor, DataType

OPT = "(data (O a) (N) (Y a))\n"


def outcome_engine(src, library=None):
    library = library or default_library()
    try:
        return "value", compile_src(src, library).run(library=library)
    except EvaluationError as err:
        # the engine names the function a run failed in: "... (in f)"
        return "error", err.message.split(" (in ")[0]


def outcome_reference(src, library=None):
    library = library or default_library()
    try:
        return "value", reference.evaluate(driver.check(src, library), library)
    except EvaluationError as err:
        return "error", err.message


def agree(src, library=None):
    """The engine's outcome, asserted equal to the reference interpreter's."""
    got = outcome_engine(src, library)
    assert got == outcome_reference(src, library), src
    return got


def all_ops(prog):
    return [op for f in prog.functions for op, _ in ops_of(f)]


def names(prog):
    return [f.name for f in prog.functions]


def test_saturated_constructor_is_built_with_lazy_fields():
    prog = compile_src("(data (P a b) (P a b)) (case (P 1 (+ 2 3)) ((P x y) y))")
    main = ops_of(prog.functions[prog.entry])
    assert main[:3] == [(Op.INT, [0]), (Op.MKTHUNK, main[1][1]), (Op.MKCON, [0, 2])]
    assert not any(n.startswith("%con:") for n in names(prog))
    assert prog.datatypes == [DataType("P", ("a", "b"), (Constructor("P", ("a", "b"), ("", "")),))]
    assert agree("(data (P a b) (P a b)) (case (P 1 (+ 2 3)) ((P x y) y))") == ("value", 5)


def test_nullary_constructor_is_an_immediate_value():
    src = "(data C Red Green) (case Green (Red 1) (Green 2))"
    prog = compile_src(src)
    main = ops_of(prog.functions[prog.entry])
    assert main[0] == (Op.MKCON, [1, 0])
    assert not any(n.startswith("%con:") for n in names(prog))
    assert agree(src) == ("value", 2)


def test_constructor_as_a_value_uses_one_shared_wrapper():
    src = OPT + "(let ((f Y)) (+ (length (map f (list 1 2))) (length (map Y (list 3)))))"
    prog = compile_src(src)
    wrappers = [f for f in prog.functions if f.name == "%con:Y"]
    assert len(wrappers) == 1 and wrappers[0].arity == 1
    assert ops_of(wrappers[0]) == [(Op.LOCAL, [0]), (Op.MKCON, [1, 1]), (Op.RET, [])]
    assert agree(src) == ("value", 3)
    assert agree(OPT + "((Y) 3)")[0] == "value"
    # partially applied: a partial application of the wrapper
    src2 = "(data (P a b) (P a b)) (map (P 1) (list 2 3))"
    prog2 = compile_src(src2)
    assert (Op.MKPAP, [names(prog2).index("%con:P"), 1]) in ops_of(prog2.functions[prog2.entry])
    assert agree(src2)[0] == "value"


@pytest.mark.parametrize("src, value", [
    ('(case (error "boom") (x 1))', 1),
    ("(case bottom (_ 5))", 5),
    ('(define (f x) (case x (y 1))) (f (error "no"))', 1),
    ("(define (f x) (case x (y (+ y y)))) (f (+ 1 2))", 6),
    ('(case (error "a") (_ 1) ((cons h t) h))', 1),
])
def test_variable_and_wildcard_alternatives_force_nothing(src, value):
    prog = compile_src(src)
    assert agree(src) == ("value", value)
    # no test of the scrutinee anywhere
    assert not {Op.BR_NCON, Op.NULLP, Op.JUMPF} & set(all_ops(prog))


def test_case_with_no_match_fails_with_the_contract_message():
    src = OPT + "(define (g o)\n  (case o ((Y x) x)))\n(g N)"
    prog = compile_src(src)
    message = no_match_message("case", 3, 3)
    assert message in prog.strings
    g = ops_of(fn_named(prog, "g"))
    assert g[-3:] == [(Op.STR, [prog.strings.index(message)]), (Op.ERROR, []), (Op.RET, [])]
    with pytest.raises(EvaluationError) as info:
        prog.run()
    assert info.value.line == 3 and message in info.value.message
    assert agree(src) == ("error", message)
    assert agree("(cond ((< 1 0) 1))") == ("error", no_match_message("cond", 1, 1))
    assert agree(OPT + "(+ 1 (case N ((Y x) x)))")[0] == "error"


def test_tests_that_cannot_fail_are_left_out():
    # Pair has one constructor: no test; Leaf then Node: one test; nil then cons: one
    prog = compile_src("(fst (pair 1 2))")
    assert Op.BR_NCON not in [op for op, _ in ops_of(fn_named(prog, "fst"))]
    tree = compile_src("(data Tree (Leaf) (Node Tree Int Tree))"
                       "(define (total t) (case t (Leaf 0) ((Node l v r) (+ (total l) (+ v (total r))))))"
                       "(total (Node Leaf 1 Leaf))")
    assert [op for op, _ in ops_of(fn_named(tree, "total"))].count(Op.BR_NCON) == 1
    lists = compile_src("(define (len xs) (case xs (nil 0) ((cons _ t) (+ 1 (len t))))) (len (list 1 2))")
    assert [op for op, _ in ops_of(fn_named(lists, "len"))].count(Op.NULLP) == 1
    bools = compile_src("(define (b x) (case x (false 0) (true 1))) (b true)")
    assert [op for op, _ in ops_of(fn_named(bools, "b"))].count(Op.JUMPF) == 1
    assert tree.run() == 1 and lists.run() == 2 and bools.run() == 1
    # an alternative an earlier one catches entirely is not compiled
    dead = compile_src(OPT + "(define (f o) (case o (N 0) ((Y x) x) (N 5))) (f N)")
    assert [op for op, _ in ops_of(fn_named(dead, "f"))].count(Op.BR_NCON) == 1


def test_literal_patterns():
    prog = compile_src('(define (f n) (case n (0 "zero") (-3 "m") (_ "o"))) (f -3)')
    assert [op for op, _ in ops_of(fn_named(prog, "f"))].count(Op.BR_EQ_LI) == 2
    prog2 = compile_src('(define (f s) (case s ("y" 1) (_ 0))) (f "y")')
    assert Op.EQ in [op for op, _ in ops_of(fn_named(prog2, "f"))]
    for src, value in [('(define (f n) (case n (0 "zero") (-3 "m") (_ "o"))) (f -3)', "m"),
                       ("(case nan (nan 1) (_ 2))", 2), ("(case 2.5 (2.5 1) (_ 2))", 1),
                       ('(case "b" ("a" 1) ("b" 2) (_ 3))', 2), ("(case false (true 1) (false 2))", 2)]:
        assert agree(src) == ("value", value), src


@pytest.mark.parametrize("src", [
    OPT + "(+ 1 (case (Y 2) ((Y x) x) (N 0)))",
    OPT + "(let ((k 10)) (map (lambda (o) (case o ((Y x) (+ x k)) (N k))) (list (Y 1) N)))",
    OPT + "(let ((x 100)) (map (lambda (o) (case o ((Y x) x) (N x))) (list (Y 1) N)))",
    "(define (f xs) (case xs ((cons x xs) (length xs)) (nil 0))) (f (list 1 2 3))",
    "(case (list 1 2 3) ((list a b) 0) ((cons 1 (cons b _)) b) (_ 9))",
    "(case (list 1 2 3) ((cons 1 (cons 3 _)) 0) ((cons a (cons b _)) (+ a b)) (_ 9))",
    "(case (Pair 1 (Just 2)) ((Pair 0 _) 0) ((Pair _ Nothing) 1) ((Pair a (Just b)) (+ a b)))",
    '(case (Pair (error "a") 2) ((Pair _ 2) 1) (_ 0))',
    "(case (Pair 1 bottom) ((Pair 2 _) 1) ((Pair 1 x) 7))",
    "(define (f o) (case o (Nothing 0) ((Just x) (case x (Nothing 1) ((Just y) y)))))"
    " (list (f Nothing) (f (Just Nothing)) (f (Just (Just 5))))",
    "(let ((x (Just 3))) (if (case x ((Just v) (< v 5)) (Nothing false)) (from-maybe 0 x) 9))",
    "(define (g x n) (if (case x ((Just v) (< n v)) (Nothing (< n 0))) n 0)) (g (Just 5) 2)",
    "(define (f x) (+ (case x (0 1) (_ 2)) (case x (1 10) (_ 20)))) (f 0)",
    "(show (map (lambda (p) (case p ((Pair a b) (Pair b a)))) (zip (list 1 2) (list 3 4))))",
    "(let ((xs (cons (Just 1) xs))) (case (take 2 xs) ((list (Just a) (Just b)) (+ a b)) (_ 0)))",
])
def test_case_programs_agree_with_the_reference(src):
    verify(compile_src(src))
    assert agree(src)[0] == "value"


def test_strictness_through_case():
    # exhaustive: every alternative forces y, so g is strict in it
    g = compile_src(OPT + "(define (g o y) (case o ((Y z) y) (N y))) (g N 4)")
    assert ops_of(fn_named(g, "g"))[:4] == [(Op.LOCAL_EVAL, [0]), (Op.STORE, [0]),
                                            (Op.LOCAL_EVAL, [1]), (Op.STORE, [1])]
    # not exhaustive: y is lazy (the no-match error is the one raised)
    src = OPT + '(define (f o y) (case o ((Y z) y))) (f N (error "y"))'
    f = compile_src(src)
    assert (Op.LOCAL_EVAL, [1]) not in ops_of(fn_named(f, "f"))
    assert agree(src)[1].startswith("no alternative")
    # a variable pattern does not force the scrutinee, nor make the function strict
    h = compile_src('(define (h x) (case x (v 1))) (h (error "lazy"))')
    assert ops_of(fn_named(h, "h"))[0] != (Op.LOCAL_EVAL, [0])


def test_two_local_compare_and_branch_only_on_scalars():
    def fused(prog, name):
        return [op for op, _ in ops_of(fn_named(prog, name)) if op in (Op.BR_LT_LL, Op.LT)]
    ints = compile_src("(define (lt a b) (if (< (the Int a) b) 1 2)) (lt 1 2)")
    assert fused(ints, "lt") == [Op.BR_LT_LL]
    strs = compile_src('(define (lt a b) (if (< (the String a) b) 1 2)) (lt "a" "b")')
    assert fused(strs, "lt") == [Op.BR_LT_LL]
    for src in ["(define (lt a b) (if (< a b) 1 2)) (list (lt 1 2) (lt (list 1) (list 0)))",
                "(define (lt a b) (if (< a (the (List Int) b)) 1 2)) (lt (list 3) (list 2))",
                "(data C R G) (define (lt a b) (if (< a (the C b)) 1 2)) (list (lt R G) (lt G R))"]:
        prog = compile_src(src)
        assert fused(prog, "lt") == [Op.LT], src
        assert agree(src)[0] == "value"


@pytest.mark.parametrize("name, op, src, value", [
    ("substring", Op.SUBSTRING, '(substring "hello" 1 3)', "el"),
    ("split", Op.SPLIT, '(split "," "a,b")', ["a", "b"]),
    ("join", Op.JOIN, '(join "-" (list "a" "b"))', "a-b"),
    ("chars", Op.CHARS, '(chars "ab")', ["a", "b"]),
    ("%int?", Op.INTP, '(%int? "-12")', True),
    ("%parse-int", Op.PARSEINT, '(%parse-int "42")', 42),
])
def test_string_builtins_as_primitives_and_as_values(name, op, src, value):
    prog = compile_src(src)
    main = [o for o, _ in ops_of(prog.functions[prog.entry])]
    assert op in main and Op.MKTHUNK not in main          # arguments evaluated first
    assert agree(src) == ("value", value)
    # as a value: a wrapper applying the primitive to its (lazy) arguments
    head, _, rest = src[1:].partition(" ")
    as_value = f"(let ((f {head})) (f {rest})"
    wrapped = compile_src(as_value)
    assert f"%builtin:{name}" in names(wrapped)
    assert op in [o for o, _ in ops_of(fn_named(wrapped, f"%builtin:{name}"))]
    assert agree(as_value) == ("value", value)


def test_program_datatypes():
    # built or matched, and closed under the types in their fields
    prog = compile_src("(data (Box a) (Box a)) (data T (T (Box Int))) (case (T bottom) ((T _) 1))")
    assert [d.name for d in prog.datatypes] == ["T", "Box"]
    assert prog.datatypes[0].constructors == (Constructor("T", ("(Box Int)",), ("",)),)
    # the result type alone
    assert [d.name for d in compile_src("(the (Maybe Int) (error \"x\"))").datatypes] == ["Maybe"]
    # records keep their field names
    rec = compile_src("(data Point (Pt (px Double) (py Double))) (px (Pt 1.0 2.0))")
    assert rec.datatypes == [DataType("Point", (), (Constructor("Pt", ("Double", "Double"),
                                                                ("px", "py")),))]
    assert rec.run() == 1.0
    # a program without data types has none
    assert compile_src("(+ 1 2)").datatypes == []


def test_host_function_data_types_are_in_the_table():
    from exathunk import Data
    lib = Library()
    lib.declare_data("(data Point (Pt (px Double) (py Double)))")
    lib.register("mk", "(-> Double Point)", lambda x: Data("Pt", (x, 2 * x)))
    lib.register("norm", "(-> Point Double)", lambda p: p.fields[0] + p.fields[1])
    prog = compile_src("(norm (mk 2.0))", lib)
    assert [d.name for d in prog.datatypes] == ["Point"]
    assert prog.run(library=lib) == 6.0


def test_prelude_constructors_are_relocated():
    # the user's type takes the first constructor indices; the prelude's code that
    # builds Maybe values (string->int) is copied with its operands moved after them
    src = "(data C R G) (case G (R 0) (G (from-maybe 0 (string->int \"7\"))))"
    prog = compile_src(src)
    cons = [(d.name, c.name) for d, _, c in prog.constructors()]
    assert cons == [("C", "R"), ("C", "G"), ("Maybe", "Nothing"), ("Maybe", "Just")]
    made = {cons[ops[0]] for op, ops in ops_of(fn_named(prog, "string->int")) if op == Op.MKCON}
    assert made == {("Maybe", "Nothing"), ("Maybe", "Just")}
    verify(prog)
    assert agree(src) == ("value", 7)


def test_hand_built_case_module():
    """Without the typechecker: constructors and patterns resolved by hand."""
    info = T.DataInfo("Opt", ("a",))
    no = info.add_constructor("No")
    yes = info.add_constructor("Yes", (info.param_vars[0],))

    def var(name, con=None):
        v = ast.Var(name)
        object.__setattr__(v, "con", con)
        return v

    def pcon(name, args, con):
        p = ast.PCon(name, tuple(args))
        object.__setattr__(p, "con", con)
        return p

    body = ast.Case(ast.App(var("Yes", yes), (ast.Lit(5, "Int"),)), (
        ast.Alt(pcon("No", (), no), ast.Lit(0, "Int")),
        ast.Alt(pcon("Yes", (ast.PVar("x"),), yes),
                ast.App(var("+"), (var("x"), ast.Lit(1, "Int"))))))
    module = ast.Module((), body)

    class Stub:
        pass
    stub = Stub()
    stub.module, stub.result_type, stub.result_type_text = module, T.INT, "Int"
    prog = compiler.compile_module(stub, default_library())
    verify(prog)
    ops = [op for op, _ in ops_of(prog.functions[prog.entry])]
    assert ops[:4] == [Op.INT, Op.MKCON, Op.STORE, Op.BR_NCON] and Op.FIELD in ops
    assert [d.name for d in prog.datatypes] == ["Opt"]
    assert prog.run() == reference.evaluate_module(module) == 6
