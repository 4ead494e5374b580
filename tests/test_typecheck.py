"""Tests for exathunk.typecheck: inference, classes, generalisation, errors, inst_type."""

import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings

from exathunk import ast, parser, typecheck
from exathunk.errors import TypeCheckError, UnknownFunctionError
from exathunk.library import BUILTINS, PRELUDE_SIGNATURES, Library
from exathunk.types import parse_signature, show_type
from progen import programs


def check(source, library=None):
    return typecheck.check_module(parser.parse(source), library, source=source)


def type_of(source, library=None):
    return check(source, library).result_type_text


def all_vars(node):
    """Every ast.Var under ``node`` (iteratively)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Var):
            out.append(n)
        elif isinstance(n, ast.Module):
            stack.extend(d.body for d in n.defines)
            stack.append(n.body)
        elif isinstance(n, ast.App):
            stack.append(n.fn)
            stack.extend(n.args)
        elif isinstance(n, ast.If):
            stack.extend((n.cond, n.then, n.orelse))
        elif isinstance(n, ast.Let):
            stack.extend(b.expr for b in n.bindings)
            stack.append(n.body)
        elif isinstance(n, (ast.Lambda,)):
            stack.append(n.body)
        elif isinstance(n, ast.The):
            stack.append(n.expr)
        elif isinstance(n, ast.ListLit):
            stack.extend(n.items)
    return out


# ---- well-typed programs: source -> result type --------------------------------------

WELL_TYPED = [
    # literals, typed literals
    ("42", "Int"), ("-7", "Int"), ("3.5", "Double"), ("1e3", "Double"), ('"hi"', "String"),
    ("true", "Bool"), ("I64:42", "Int"), ("DOUBLE:2.5", "Double"), ("BOOL:true", "Bool"),
    ("STRING:foo", "String"), ("I64:-5", "Int"),
    # arithmetic and classes
    ("(+ 1 (/ 4 2))", "Int"), ("(- 2.5 1.0)", "Double"), ("(* 3 4)", "Int"),
    ("(/ 1.0 0.0)", "Double"), ("(mod 7 2)", "Int"), ("(% -7 2)", "Int"),
    ("(negate 3)", "Int"), ("(abs -2.5)", "Double"),
    ("(eq 1 2)", "Bool"), ("(= \"a\" \"b\")", "Bool"), ("(neq true false)", "Bool"),
    ("(/= 1.0 2.0)", "Bool"), ("(= (list 1 2) (list 1 2))", "Bool"),
    ("(= (list (list true)) nil)", "Bool"),
    ("(< 1 2)", "Bool"), ("(<= 1.0 2.0)", "Bool"), ("(> \"b\" \"a\")", "Bool"), ("(>= 3 3)", "Bool"),
    ("(and true false)", "Bool"), ("(or true bottom)", "Bool"), ("(not true)", "Bool"),
    ("(xor true false)", "Bool"),
    ('(len "abc")', "Int"), ('(concat "a" "b")', "String"), ('(++ "a" "b")', "String"),
    ("(show 1)", "String"), ("(show (list 1.5))", "String"), ("(show nil)", "String"),
    ("(show (list))", "String"), ("(show (list (list true)))", "String"),
    ("(to-double 3)", "Double"), ("(truncate 2.5)", "Int"),
    ('(error "no")', "a"), ("bottom", "a"), ("(+ 1 (error \"x\"))", "Int"),
    ("nil", "(List a)"), ("(list)", "(List a)"), ("(cons 1 nil)", "(List Int)"),
    ("(head (list 1 2))", "Int"), ("(tail (list true))", "(List Bool)"),
    ("(null? nil)", "Bool"), ("(seq 1 \"x\")", "String"),
    ("(< true false)", "Bool"), ("(< (list 1) (list 2))", "Bool"),
    ("(>= (list (list \"a\")) nil)", "Bool"),
    ('(substring "hello" 1 3)', "String"), ('(split "," "a,b")', "(List String)"),
    ('(join "-" (list "a" "b"))', "String"), ('(chars "ab")', "(List String)"),
    ('(%int? "12")', "Bool"), ('(%parse-int "12")', "Int"),
    ("(pair 1 true)", "(Pair Int Bool)"), ("(fst (pair 1 true))", "Int"),
    ("(snd (pair 1 true))", "Bool"), ("(maybe 0 negate (Just 1))", "Int"),
    ("(from-maybe 0 Nothing)", "Int"), ("Nothing", "(Maybe a)"),
    ("(either len (lambda (b) (if b 1 0)) (Left \"a\"))", "Int"), ("(Right 1)", "(Either a Int)"),
    ("(zip (list 1) (list \"a\"))", "(List (Pair Int String))"),
    ("(lookup 1 (list (pair 1 true)))", "(Maybe Bool)"), ("(min 1 2)", "Int"),
    ("(max \"a\" \"b\")", "String"), ("(string-of (list \"a\"))", "String"),
    ('(string->int "1")', "(Maybe Int)"), ("(int->string 1)", "String"),
    # data types, case, cond, classes
    ("(data (Opt a) (No) (Yes a))\n(Yes 1)", "(Opt Int)"),
    ("(data (Opt a) (No) (Yes a))\nNo", "(Opt a)"),
    ("(data Tree (Leaf) (Node Tree Int Tree))\n(Node Leaf 1 Leaf)", "Tree"),
    ("(data P (Pt (px Double) (py Double)))\n(px (Pt 1.0 2.0))", "Double"),
    ("(data (Opt a) (No) (Yes a))\n(case (Yes 1) ((Yes x) x) (No 0))", "Int"),
    ("(case (list 1) (nil 0) ((cons h t) h))", "Int"),
    ("(case (list 1) ((list a b) b) (_ 0))", "Int"),
    ('(case "a" ("a" 1) (_ 2))', "Int"), ("(case true (true 1) (false 0))", "Int"),
    ("(cond (true 1) (else 2))", "Int"), ("(cond ((< 1 2) \"a\"))", "String"),
    ("(case 1)", "a"),
    ("(data (Opt a) (No) (Yes a))\n(= (Yes 1) No)", "Bool"),
    ("(data (Opt a) (No) (Yes a))\n(< (Yes (list 1)) No)", "Bool"),
    ("(data (Opt a) (No) (Yes a))\n(show (Yes 2.5))", "String"),
    ("(class (Size a) (size (-> a Int)))\n(instance (Size String) (define (size s) (len s)))\n"
     "(size \"ab\")", "Int"),
    ("(class (D a) (d a))\n(instance (D Int) (define d 0))\nd", "Int"),
    ("(class (Size a) (size (-> a Int)))\n(define (f x) (size x))\n(the Int 1)", "Int"),
    # the prelude
    ("(map (lambda (x) (* x 2)) (list 1 2))", "(List Int)"),
    ("(map show (list 1 2))", "(List String)"), ("(map not (list true))", "(List Bool)"),
    ("(filter (lambda (x) (> x 1)) (list 1 2 3))", "(List Int)"),
    ("(foldl + 0 (list 1 2))", "Int"), ("(foldr cons nil (list 1.0))", "(List Double)"),
    ("(foldl-strict * 1 (list 1 2))", "Int"),
    ("(foldl (lambda (acc x) (++ acc (show x))) \"\" (list 1 2))", "String"),
    ("(take 5 (iterate (lambda (x) (* 2 x)) 1))", "(List Int)"),
    ("(drop 1 (list \"a\"))", "(List String)"), ("(range 0 10)", "(List Int)"),
    ("(length (list true))", "Int"), ("(sum (list 1 2))", "Int"),
    ("(sum (list 1.0 2.0))", "Double"), ("(product (range 1 5))", "Int"),
    ("(sum nil)", "Int"), ("(zip-with + (list 1) (list 2))", "(List Int)"),
    ("(zip-with (lambda (a b) (if b a 0)) (list 1) (list true))", "(List Int)"),
    ("(append (list 1) (list 2))", "(List Int)"), ("(reverse nil)", "(List a)"),
    ("(nth (list 1.5) 0)", "Double"),
    ("(foldl and true (list true))", "Bool"), ("(foldr or false nil)", "Bool"),
    # special forms
    ("(if true 1 2)", "Int"), ("(if (< 1 2) nil (list 1))", "(List Int)"),
    ("(let ((x 1) (y 2)) (+ x y))", "Int"), ("(let x 5 (* x x))", "Int"),
    ("((lambda (x y) (+ x y)) 1 2)", "Int"), ("(((lambda (x y) (+ x y)) 1) 2)", "Int"),
    ("(the Int 5)", "Int"), ("(the (List a) nil)", "(List a)"),
    ("(the (List Int) nil)", "(List Int)"), ("((the (-> a a) (lambda (x) x)) true)", "Bool"),
    ("((the (-> Int Int) (lambda (x) x)) 1)", "Int"),
    ("(length (the (List (-> a a)) nil))", "Int"),
    ("(list 1 2 3)", "(List Int)"), ("(list (list 1) nil)", "(List (List Int))"),
    ("(list \"a\" (show 1))", "(List String)"),
    # nullary calls
    ("(nil)", "(List a)"), ("(let ((x 1)) (x))", "Int"), ("(define n 3)\n(n)", "Int"),
    # let-polymorphism, recursive let, SCCs within a let
    ("(let ((id (lambda (x) x))) (if (id true) (id 1) 2))", "Int"),
    ("(let ((id (lambda (x) x)) (a (id 1)) (b (id true))) (if b a 0))", "Int"),
    ("(let ((b (id true)) (id (lambda (x) x)) (a (id 1))) (if b a 0))", "Int"),
    ("(let ((fact (lambda (n) (if (= n 0) 1 (* n (fact (- n 1))))))) (fact 5))", "Int"),
    ("(let ((ev (lambda (n) (if (= n 0) true (od (- n 1)))))"
     " (od (lambda (n) (if (= n 0) false (ev (- n 1)))))) (ev 4))", "Bool"),
    ("(let ((xs (cons 1 xs))) (take 3 xs))", "(List Int)"),
    ("(let ((x (+ x 1))) x)", "Int"),
    ("(let ((x 1)) (let ((x true)) x))", "Bool"),
    ("(let ((pair (lambda (a b f) (f a b)))) (pair 1 true (lambda (x y) (if y x 0))))", "Int"),
    ("(let ((twice (lambda (f x) (f (f x))))) (twice (lambda (s) (++ s s)) \"a\"))", "String"),
    ("(let ((k (lambda (x) (lambda (y) x)))) ((k 1) true))", "Int"),
    ("(let ((sh (lambda (x) (show x)))) (++ (sh 1) (sh (list true))))", "String"),
    ("(let ((f (lambda (x) (show nil)))) (f 1))", "String"),
    # top-level defines
    ("(define (sq x) (* x x))\n(sq 3)", "Int"),
    ("(define (add x y) (+ x y))\n(add 1.5 2.0)", "Double"),
    ("(define (id x) x)\n(if (id true) (id 1) 2)", "Int"),
    ("(define (even? n) (if (= n 0) true (odd? (- n 1))))\n"
     "(define (odd? n) (if (= n 0) false (even? (- n 1))))\n(even? 10)", "Bool"),
    ("(define (main) (helper 1))\n(define (helper x) (+ x 1))\n(main)", "Int"),
    ("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n(fib 20)", "Int"),
    ("(define (map x) x)\n(map 1)", "Int"),                       # shadows the prelude
    ("(define (f x) (let ((x (not x))) x))\n(f true)", "Bool"),
    ("(define (loop n) (loop (+ n 1)))\n(loop 0)", "a"),
    ("(define (my-sum xs) (sum xs))\n(my-sum (list 1.5))", "Double"),
    ("(define (g) 5)\n(g)", "Int"),
    ("(define xs (cons 1 xs))\n(take 2 xs)", "(List Int)"),
]


@pytest.mark.parametrize("source,expected", WELL_TYPED)
def test_well_typed(source, expected):
    assert type_of(source) == expected


def test_the_table_uses_every_builtin_prelude_function_and_construct():
    used_names, used_forms = set(), set()
    for source, _ in WELL_TYPED:
        module = parser.parse(source)
        used_names |= {v.name for v in all_vars(module)}
        stack = [d.body for d in module.defines] + [module.body]
        used_forms |= {"Define"} if module.defines else set()
        while stack:
            node = stack.pop()
            used_forms.add(type(node).__name__)
            for child in getattr(node, "args", ()) + getattr(node, "items", ()):
                stack.append(child)
            for attr in ("fn", "cond", "then", "orelse", "body", "expr"):
                if hasattr(node, attr):
                    stack.append(getattr(node, attr))
            stack.extend(b.expr for b in getattr(node, "bindings", ()))
    assert {b.name for b in BUILTINS} | set(PRELUDE_SIGNATURES) <= used_names
    assert used_forms >= {"Lit", "Var", "App", "If", "Let", "Lambda", "The", "ListLit",
                          "Define"}


# ---- ill-typed programs: source -> error class, line, column, message part --------------

ILL_TYPED = [
    # the first exathunk's negative cases
    ("(* 4 true)", TypeCheckError, 1, 6, "expected Int, found Bool"),
    ("(if true I64:4 STRING:five)", TypeCheckError, 1, 16, "expected Int, found String"),
    ("(blah 4 true)", UnknownFunctionError, 1, 2, "unknown function 'blah'"),
    # classes
    ("(+ true false)", TypeCheckError, 1, 4, "no instance Num Bool"),
    ('(negate "a")', TypeCheckError, 1, 9, "no instance Num String"),
    ("(< not not)", TypeCheckError, 1, 4, "no instance Ord (-> Bool Bool)"),
    ("(< (list not) nil)", TypeCheckError, 1, 4, "no instance Ord (-> Bool Bool)"),
    ("(= not not)", TypeCheckError, 1, 4, "no instance Eq (-> Bool Bool)"),
    ("(show show)", TypeCheckError, 1, 7, "no instance Show (-> a String)"),
    ("(sum (list true))", TypeCheckError, 1, 6, "no instance Num Bool"),
    ("(define (f x) (+ x \"s\"))\n1", TypeCheckError, 1, 20, "no instance Num String"),
    # built-ins used at the wrong types
    ("(mod 1.0 2)", TypeCheckError, 1, 6, "expected Int, found Double"),
    ("(and 1 true)", TypeCheckError, 1, 6, "expected Bool, found Int"),
    ("(len 5)", TypeCheckError, 1, 6, "expected String, found Int"),
    ('(concat "a" 1)', TypeCheckError, 1, 13, "expected String, found Int"),
    ("(to-double 1.0)", TypeCheckError, 1, 12, "expected Int, found Double"),
    ("(truncate 1)", TypeCheckError, 1, 11, "expected Double, found Int"),
    ("(error 5)", TypeCheckError, 1, 8, "expected String, found Int"),
    ("(cons 1 (list true))", TypeCheckError, 1, 9, "expected (List Int), found (List Bool)"),
    ("(head 5)", TypeCheckError, 1, 7, "expected (List a), found Int"),
    ("(null? 1)", TypeCheckError, 1, 8, "expected (List a), found Int"),
    ("(xor true 1)", TypeCheckError, 1, 11, "expected Bool, found Int"),
    ("(+ 1 2.0)", TypeCheckError, 1, 6, "expected Int, found Double"),
    ("(list 1 true)", TypeCheckError, 1, 9, "expected Int, found Bool"),
    ("(map 1 nil)", TypeCheckError, 1, 6, "expected (-> a b), found Int"),
    ("(take true nil)", TypeCheckError, 1, 7, "expected Int, found Bool"),
    ("(nth nil true)", TypeCheckError, 1, 10, "expected Int, found Bool"),
    ("(range 1.0 2)", TypeCheckError, 1, 8, "expected Int, found Double"),
    ("(if 1 2 3)", TypeCheckError, 1, 5, "expected Bool, found Int"),
    ("(1 2)", TypeCheckError, 1, 2, "not a function"),
    ("(+ 1 2 3)", TypeCheckError, 1, 8, "too many arguments"),
    ("(foldl + true (list true))", TypeCheckError, 1, 10, "no instance Num Bool"),
    ("(foldl + 0 (list true))", TypeCheckError, 1, 12, "expected (List Int), found (List Bool)"),
    # occurs check
    ("(define (f x) (x x))\n1", TypeCheckError, 1, 18, "infinite type"),
    ("(let ((xs (cons xs nil))) 1)", TypeCheckError, 1, 11, "infinite type"),
    # a let-bound lambda parameter is not polymorphic
    ("((lambda (f) (if (f true) (f 1) 2)) (lambda (x) x))", TypeCheckError, 1, 30,
     "expected Bool, found Int"),
    # unused ill-typed defines are still errors
    ("(define (unused) (+ 1 true))\n42", TypeCheckError, 1, 23, "expected Int, found Bool"),
    ("(define (a) 1)\n(define (b) (if 1 2 3))\n(a)", TypeCheckError, 2, 17, "expected Bool"),
    # mutual recursion at inconsistent types
    ("(define (f x) (g (+ x 1)))\n(define (g y) (f (not y)))\n1", TypeCheckError, 2, 18,
     "expected Int, found Bool"),
    # annotations
    ("(the (-> a a) (lambda (x) (+ x 1)))", TypeCheckError, 1, 15,
     "expected (-> a a), found (-> Int Int)"),
    ("(the (-> a b) (lambda (x) x))", TypeCheckError, 1, 15, "expected (-> a b), found (-> a a)"),
    ("(the Int true)", TypeCheckError, 1, 10, "expected Int, found Bool"),
    ("(the (-> a String) (lambda (x) (show x)))", TypeCheckError, 1, 20, "no instance Show a"),
    ("(define (f y) (the a y))\n1", TypeCheckError, 1, 22, "more general"),
    ("(the (List a) (list 1))", TypeCheckError, 1, 15, "expected (List a), found (List Int)"),
    # a function cannot be handed back to the host
    ("(lambda (x) x)", TypeCheckError, 1, 1,
     "a function cannot be handed back to the host: the result has type (-> a a)"),
    ("+", TypeCheckError, 1, 1, "(-> Int Int Int)"),
    ("(+ 1)", TypeCheckError, 1, 1, "the result has type (-> Int Int)"),
    ("(list not)", TypeCheckError, 1, 1, "(List (-> Bool Bool))"),
    ("(define (f x y) x)\n(f 1)", TypeCheckError, 2, 1, "(-> a Int)"),
    # unknown names, called or as values
    ("(map blah nil)", UnknownFunctionError, 1, 6, "unknown name 'blah'"),
    ("(mapp not nil)", UnknownFunctionError, 1, 2, "did you mean 'map'?"),
    ("(let ((counter 1)) (+ countr 1))", UnknownFunctionError, 1, 23,
     "did you mean 'counter'?"),
    ("(define (fooble x) x)\n(foobel 1)", UnknownFunctionError, 2, 2, "did you mean 'fooble'?"),
    ("(define (f x) (undefined-thing x))\n1", UnknownFunctionError, 1, 16, "undefined-thing"),
    ("(let ((x y)) 1)", UnknownFunctionError, 1, 10, "unknown name 'y'"),
    ("(%sum-int (list 1))", UnknownFunctionError, 1, 2, "unknown function '%sum-int'"),
    ("((lambda (x) x) x)", UnknownFunctionError, 1, 17, "unknown name 'x'"),
    # data types, case, classes
    ("(data (Opt a) (No) (Yes a))\n(Yess 1)", UnknownFunctionError, 2, 2,
     "did you mean 'Yes'?"),
    ("(data (Opt a) (No) (Yes a))\n(case 1 ((Yes x) x))", TypeCheckError, 2, 10,
     "expected Int, found (Opt a)"),
    ("(case 1 ((Nope x) x))", UnknownFunctionError, 1, 10, "unknown constructor 'Nope'"),
    ("(data (Opt a) (No) (Yes a))\n(case No ((Yes x y) x))", TypeCheckError, 2, 11,
     "has 1 field, the pattern gives 2"),
    ("(case 1 (0 \"a\") (_ 2))", TypeCheckError, 1, 20, "every alternative"),
    ("(data (Opt a) (No) (Yes b))\n1", TypeCheckError, 1, 25, "'b' is not a parameter"),
    ("(data T (A Int))\n(data U (A Bool))\n1", TypeCheckError, 2, 9,
     "the constructor 'A' is already defined"),
    ("(data (Opt a) (No) (Yes a))\n(the (Opt Int Int) No)", TypeCheckError, 2, 6,
     "Opt takes 1 type argument, found 2"),
    ("(data F (F (-> Int Int)))\n(= (F negate) (F negate))", TypeCheckError, 2, 4, "no instance Eq F"),
    ("(data F (F (-> Int Int)))\n(F negate)", TypeCheckError, 2, 1,
     "a function cannot be handed back"),
    ("(class (Size a) (size (-> a Int)))\n(size true)", TypeCheckError, 2, 7,
     "no instance Size Bool"),
    ("(class (Size a) (size (-> a Int)))\n(instance (=> (Size a) (Size (List a)))"
     " (define (size xs) 0))\n(size (list 1.5))", TypeCheckError, 3, 7,
     "no instance Size Double"),
    ("(class (Size a) (size (-> a Int)))\n(instance (Size Int) (define (size x) x))\n"
     "(instance (Size Int) (define (size x) 0))\n1", TypeCheckError, 3, 1,
     "overlapping instances: Size Int is already declared by this program at line 2"),
    ("(instance (Eq Int))\n1", TypeCheckError, 1, 1, "built-in class Eq"),
    ("(class (Size a) (size (-> a Int)))\n(instance (Size Int))\n1", TypeCheckError, 2, 1,
     "does not define the method 'size'"),
    ("(class (Size a) (size (-> a Int)))\n(instance (Size Int) (define (size x) true))\n1",
     TypeCheckError, 2, 22, "the method 'size' of the instance Size Int"),
    ("(class (Size a) (size (-> a Int)))\n(instance (Size (List a)) (define (size xs) "
     "(size (head xs))))\n1", TypeCheckError, 2, 51, "not given Size"),
    ("(class (=> (Eq a) (K a)) (k (-> a Int)))\n(data F (F (-> Int Int)))\n"
     "(instance (K F) (define (k f) 0))\n1", TypeCheckError, 3, 1, "needs an instance Eq F"),
    ("(class (D a) (d a))\n(instance (D String) (define d \"\"))\n(show d)",
     TypeCheckError, 3, 2, "ambiguous type variable"),
    ("(class (C a) (m (-> a Int)))\n(define (m x) 1)\n1", TypeCheckError, 1, 14,
     "has the name of a definition"),
    ("(class (C a) (m (-> Int Int)))\n1", TypeCheckError, 1, 14,
     "does not mention the class variable"),
    ("(class (=> (C a) (C a)) (m (-> a Int)))\n1", TypeCheckError, 1, 1,
     "its own superclass"),
]


@pytest.mark.parametrize("source,cls,line,column,text", ILL_TYPED)
def test_ill_typed(source, cls, line, column, text):
    with pytest.raises(cls) as info:
        check(source)
    err = info.value
    assert type(err) is cls
    assert text in err.message
    assert (err.line, err.column) == (line, column)
    # the rendered error shows the line and a caret under the column
    rendered = str(err).split("\n")
    assert rendered[-2] == "    " + source.split("\n")[line - 1]
    assert rendered[-1] == "    " + " " * (column - 1) + "^"


def test_error_messages_are_deterministic_and_name_variables_from_a():
    sources = ["(cons (lambda (x) (+ x 1)) (list (lambda (a b) a)))",
               "(if true (lambda (x y) (x y)) (lambda (x y) (+ y x)))"]
    for src in sources:
        with pytest.raises(TypeCheckError) as first:
            check(src)
        with pytest.raises(TypeCheckError) as second:
            check(src)
        assert first.value.message == second.value.message
    assert first.value.message.startswith("no instance Num (-> a b) (the else branch")


def test_source_attached_by_caller():
    module = parser.parse("(* 4 true)")
    with pytest.raises(TypeCheckError) as info:
        typecheck.check_module(module, Library())
    assert info.value.source is None
    info.value.with_source("(* 4 true)")
    assert str(info.value).endswith("(* 4 true)\n         ^")


# ---- define types, generalisation ------------------------------------------------------

def test_define_types_are_generalised_per_group():
    checked = check("(define (id x) x)\n"
                    "(define (const x y) x)\n"
                    "(define (len xs) (if (null? xs) 0 (+ 1 (len (tail xs)))))\n"
                    "(define (ev n) (if (= n 0) true (od (- n 1))))\n"
                    "(define (od n) (if (= n 0) false (ev (- n 1))))\n"
                    "(define (use) (if (id true) (id 1) (len (list \"a\"))))\n"
                    "(define (twice f x) (f (f x)))\n"
                    "(define (showall xs) (map show xs))\n"
                    "(define (total xs) (+ (sum xs) (head xs)))\n"
                    "(define k 10)\n"
                    "(use)")
    shown = {name: show_type(s) for name, s in checked.define_types.items()}
    assert shown == {
        "id": "(-> a a)", "const": "(-> a b a)", "len": "(-> (List a) Int)",
        "ev": "(-> Int Bool)", "od": "(-> Int Bool)", "use": "Int",
        "twice": "(-> (-> a a) a a)", "showall": "Show a => (-> (List a) (List String))",
        "total": "Num a => (-> (List a) a)", "k": "Int",
    }
    assert checked.result_type_text == "Int"


def test_mutually_recursive_group_is_monomorphic_within_itself():
    # f and g form one group, so f is not polymorphic inside it (as in Haskell).
    with pytest.raises(TypeCheckError):
        check("(define (f x) (if (g 1) x x))\n(define (g y) (if (f true) (f y) false))\n1")
    # the group's type is fixed by its uses inside the group, then generalised
    checked = check("(define (f x) (if (g 1) x x))\n"
                    "(define (g y) (or (= y 0) (null? (f nil))))\n"
                    "(length (f (list true)))")
    assert show_type(checked.define_types["f"]) == "(-> (List a) (List a))"
    assert show_type(checked.define_types["g"]) == "(-> Int Bool)"


# ---- inst_type on every Var --------------------------------------------------------------

def test_every_var_gets_a_resolved_inst_type():
    source = ("(define (avg xs) (/ (sum xs) (to-double (length xs))))\n"
              "(define (poly xs) (sum xs))\n"
              "(let ((f (lambda (x) (show x)))) (++ (f (avg (list 1.0 2.0))) (f (poly (list 1)))))")
    checked = check(source)
    variables = all_vars(checked.module)
    assert len(variables) == 15
    for v in variables:
        assert v.inst_type is not None, v
    sums = sorted(show_type(v.inst_type) for v in variables if v.name == "sum")
    assert sums == ["(-> (List Double) Double)", "Num a => (-> (List a) a)"]
    shows = sorted(show_type(v.inst_type) for v in variables if v.name == "f")
    assert shows == ["(-> Double String)", "(-> Int String)"]


def test_inst_type_is_defaulted():
    checked = check("(show nil)")
    shown = {v.name: show_type(v.inst_type) for v in all_vars(checked.module)}
    assert shown == {"show": "(-> (List Int) String)", "nil": "(List Int)"}
    checked = check("(sum nil)")
    (v_sum,) = [v for v in all_vars(checked.module) if v.name == "sum"]
    assert show_type(v_sum.inst_type) == "(-> (List Int) Int)"
    checked = check("(length nil)")
    (v_nil,) = [v for v in all_vars(checked.module) if v.name == "nil"]
    assert show_type(v_nil.inst_type) == "(List a)"          # unconstrained: left alone


def test_inst_type_in_a_list_literal_of_sums():
    checked = check("(list (sum (list 1 2)) (product nil))")
    kinds = sorted(show_type(v.inst_type) for v in all_vars(checked.module))
    assert kinds == ["(-> (List Int) Int)", "(-> (List Int) Int)", "(List Int)"]


# ---- the prelude --------------------------------------------------------------------------

def test_prelude_types_match_the_library_signatures():
    checked = typecheck.checked_prelude()
    inferred = {n: show_type(s) for n, s in checked.define_types.items()}
    scope = typecheck.library_world(Library()).scope
    for name, sig in PRELUDE_SIGNATURES.items():
        declared = show_type(parse_signature(sig, scope))
        if name in ("sum", "product"):
            prefix = "%" + name
            assert inferred[prefix + "-int"] == "(-> (List Int) Int)"
            assert inferred[prefix + "-double"] == "(-> (List Double) Double)"
            assert inferred[prefix + "-poly"] == declared
        else:
            assert inferred[name] == declared, name
    assert checked.result_type_text == "Int"
    assert all(v.inst_type is not None for v in all_vars(checked.module))


def test_checked_prelude_is_cached_and_thread_safe():
    results = []
    threads = [threading.Thread(target=lambda: results.append(typecheck.checked_prelude()))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert typecheck.checked_prelude() is results[0]


# ---- the library and host functions -----------------------------------------------------

def test_library_scheme():
    lib = Library()
    assert show_type(typecheck.library_scheme(lib, "+")) == "Num a => (-> a a a)"
    assert show_type(typecheck.library_scheme(lib, "map")) == "(-> (-> a b) (List a) (List b))"
    assert show_type(typecheck.library_scheme(lib, "sum")) == "Num a => (-> (List a) a)"
    assert typecheck.library_scheme(lib, "nope") is None
    lib.register("sha256", "(-> String String)", lambda s: s)
    assert show_type(typecheck.library_scheme(lib, "sha256")) == "(-> String String)"


def test_host_functions_in_programs():
    lib = Library()
    lib.register("sha256", "(-> String String)", lambda s: s)
    lib.register("describe", "(Eq a, Show b) => (-> a b String)", lambda a, b: "")
    lib.register("pick", "(-> (List a) a)", lambda xs: xs[0])
    assert type_of('(len (sha256 "abc"))', lib) == "Int"
    assert type_of("(describe (list 1) 2.5)", lib) == "String"
    assert type_of("(pick (map sha256 (list \"a\")))", lib) == "String"
    with pytest.raises(TypeCheckError) as info:
        check("(sha256 5)", lib)
    assert (info.value.line, info.value.column) == (1, 9)
    with pytest.raises(TypeCheckError) as info:
        check("(describe not 1)", lib)
    assert "no instance Eq (-> Bool Bool)" in info.value.message
    # another library does not know the host function
    with pytest.raises(UnknownFunctionError):
        check('(sha256 "abc")', Library())
    # registering later is seen (the environment is per library version)
    lib.register("later", "Int", lambda: 1)
    assert type_of("(+ later 1)", lib) == "Int"
    # a user define shadows a host function
    assert type_of("(define (sha256 x) (+ x 1))\n(sha256 1)", lib) == "Int"


# ---- annotations --------------------------------------------------------------------------

def test_annotation_result_is_a_fresh_instance():
    assert type_of("(let ((i (the (-> a a) (lambda (x) x)))) (if (i true) (i 1) 2))") == "Int"
    assert type_of("(let ((e (the (List a) nil))) (cons 1 e))") == "(List Int)"
    assert type_of("(define (f x) (the Int x))\n(f 3)") == "Int"


# ---- deep nesting ---------------------------------------------------------------------------

def _nested(depth, open_, leaf, close):
    return open_ * depth + leaf + close * depth


DEEP = [
    ("(+ 1 ", "1", ")", "Int"),
    ("(list ", "1", ")", None),
    ("(let ((x 1)) ", "x", ")", "Int"),
    ("((lambda (x) ", "x", ") 1)", "Int"),
    ("(if true ", "1", " 2)", "Int"),
    ("(the Int ", "1", ")", "Int"),
    ("(head (list ", "1", "))", "Int"),
]


@pytest.mark.parametrize("open_,leaf,close,expected", DEEP)
def test_deep_nesting_type_checks(open_, leaf, close, expected):
    depth = parser.MAX_NESTING // open_.count("(")
    source = _nested(depth, open_, leaf, close)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)          # what the driver does around compilation
    try:
        module = parser.parse(source)
        checked = typecheck.check_module(module, None)
    finally:
        sys.setrecursionlimit(old)
    if expected is None:
        assert checked.result_type_text == "(List " * depth + "Int" + ")" * depth
    else:
        assert checked.result_type_text == expected
    # the checker alone also fits in CPython's default limit
    assert typecheck.check_module(module, None).result_type_text == checked.result_type_text


def test_deep_function_type_and_big_defines():
    params = " ".join(f"x{i}" for i in range(240))
    source = f"(define (f {params}) x239)\n(f {' '.join(['1'] * 239)} true)"
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        assert type_of(source) == "Bool"
    finally:
        sys.setrecursionlimit(old)
    chain = "\n".join(f"(define (f{i} x) (f{i + 1} x))" for i in range(2000))
    assert type_of(chain + "\n(define (f2000 x) (+ x 1))\n(f0 1)") == "Int"


def test_exponential_type_stays_checkable():
    # Each level doubles the type's size but not its depth much: printing and
    # resolution must stay iterative and finish.
    src = ("(let ((p (lambda (x) (lambda (f) (f x x))))) "
           "(let ((a (lambda (y) (p (p (p y)))))) (length (list (a 1)))))")
    with pytest.raises(TypeCheckError):
        check(src.replace("(length (list (a 1)))", "(a 1)"))
    assert type_of(src) == "Int"


@pytest.mark.parametrize("n", [12, 40, 200])
def test_exponentially_large_types_are_refused_quickly(n):
    # let-polymorphism doubling a type at each application
    doubling = ("(let ((p (lambda (x) (lambda (f) (f x x))))) (let ((a (lambda (y) "
                + "(p " * n + "y" + ")" * n + "))) (length (list (a 1)))))")
    # plain unification doubling a type at each parameter: x(i) = (-> x(i-1) x(i-1))
    params = " ".join(f"x{i}" for i in range(n + 1))
    body = "1"
    for i in range(n, 0, -1):
        body = f"(seq (if true x{i} (lambda (z) (if true z x{i - 1}))) {body})"
    sharing = f"(define (f {params}) {body})\n1"
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        for source in (doubling, sharing):
            with pytest.raises(TypeCheckError) as info:
                check(source)
            assert "type too large" in info.value.message
    finally:
        sys.setrecursionlimit(old)


def test_strongly_connected_components_order():
    # 0 -> 1 -> 2 -> 1, 3 alone, 4 -> 0
    comps = typecheck.strongly_connected(5, [[1], [2], [1], [], [0]])
    assert comps == [[1, 2], [0], [3], [4]]
    big = typecheck.strongly_connected(10000, [[i + 1] for i in range(9999)] + [[0]])
    assert big == [list(range(10000))]


# ---- generated programs ----------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_check_at_their_type(program):
    source, expected = program
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        checked = check(source)
    finally:
        sys.setrecursionlimit(old)
    assert checked.result_type_text == expected
    for v in all_vars(checked.module):
        # (names with @ are the elaborator's: dictionaries, their fields, methods' code)
        assert v.inst_type is not None or "@" in v.name, v
