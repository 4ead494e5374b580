"""The fusion stage (exathunk/fusion.py): which programs it rewrites, and that the
rewritten ones mean what the unfused ones mean (values, laziness, sharing, errors),
on the engine against the reference interpreter, which never fuses."""

from __future__ import annotations

import pathlib

import pytest

import exathunk
from exathunk import driver, fusion, reference
from exathunk.errors import EvaluationError, ExathunkError, LimitExceeded
from exathunk.library import default_library

CASES = pathlib.Path(__file__).resolve().parent.parent / "grammar" / "cases"


def names(source):
    return [f.name for f in exathunk.compile(source).functions]


def run(source, **limits):
    return exathunk.compile(source).run(max_steps=limits.pop("max_steps", 2_000_000),
                                        **limits)


def ref(source):
    return reference.evaluate(driver.check(source), default_library(), max_steps=2_000_000)


def bench(name):
    return (CASES / f"bench_{name}.xt").read_text()


def test_pipeline_becomes_one_loop():
    fns = names(bench("pipeline"))
    assert [n for n in fns if n.startswith("%fuse@")] and len(fns) == 2
    assert not {"map", "filter", "range", "%sum-int"} & set(fns)


def test_stream_becomes_one_loop():
    fns = names(bench("stream"))
    assert fns[1].startswith("%fuse@")
    # no thunk either: the loop tests the count before the next step, so the next
    # element (certainly summed) is computed at once
    assert len(fns) == 2 and not {"take", "iterate", "%sum-int"} & set(fns)


def test_sharing_keeps_the_list_and_specialises_zip_with():
    fns = names(bench("sharing"))
    assert any(n.startswith("%zip-with@") for n in fns)     # the lambda inlined
    assert any(n.startswith("%fuse@") for n in fns)         # sum . take walks the list
    assert "zip-with" not in fns and "take" not in fns


@pytest.mark.parametrize("source", [
    "(length (list 1 2 3))",            # a fold over a plain list is a loop already
    "(sum xs)".replace("xs", "(list 1 2)"),
    "(+ 1 2)",
])
def test_nothing_to_fuse_leaves_the_module_alone(source):
    checked = driver.check(source)
    assert fusion.fuse(checked, default_library()) is checked


def test_user_redefinition_is_not_fused():
    src = "(define (map f xs) (length xs))\n(sum (list (map (lambda (x) (error \"no\")) (range 0 3))))"
    assert "map" in names(src)
    assert run(src) == 3


def test_local_binding_of_a_prelude_name_is_not_fused():
    src = "(let ((take (lambda (n xs) xs))) (sum (take 1 (range 0 4))))"
    assert not any(n.startswith("%fuse@") for n in names(src))
    assert run(src) == 6 == ref(src)


def test_a_polymorphic_sum_is_not_fused():
    src = "(define (total xs) (sum (map (lambda (x) x) xs)))\n(total (list 1 2 3))"
    assert not any(n.startswith("%fuse@") for n in names(src))
    assert run(src) == 6


def test_names_that_look_like_generated_code_are_kept_apart():
    # a lambda parameter named like a built-in the loop uses is renamed: fused
    src = "(sum (map (lambda (head) (+ head 1)) (filter (lambda (tail) (> tail 10)) (range 0 15))))"
    assert any(n.startswith("%fuse@") for n in names(src))
    assert run(src) == ref(src) == sum(x + 1 for x in range(11, 15))
    # a captured local so named would be shadowed in the loop: left unfused
    src = ("(let ((head 10) (tail (lambda (x) (* x 2))))\n"
           "  (sum (map (lambda (head) (+ head 1)) (map tail (filter (lambda (x) (> x head))"
           " (range 0 15))))))")
    assert not any(n.startswith("%fuse@") for n in names(src))
    assert run(src) == ref(src) == sum(2 * x + 1 for x in range(11, 15))


def test_take_never_forces_one_element_too_many():
    src = "(sum (take 3 (iterate (lambda (x) (if (= x 2) (error \"far\") (+ x 1))) 0)))"
    assert run(src) == 3
    with pytest.raises(EvaluationError):
        run(src.replace("take 3", "take 4"))


def test_length_never_calls_the_mapped_function():
    assert run("(length (map (lambda (x) (error \"no\")) (range 0 7)))") == 7
    with pytest.raises(EvaluationError):
        run("(sum (map (lambda (x) (error \"no\")) (range 0 7)))")


def test_filtered_out_bottoms_are_never_forced():
    src = ("(sum (map (lambda (p) (fst p)) (filter (lambda (p) (snd p))"
           " (list (Pair 1 true) (Pair bottom false) (Pair 2 true)))))")
    assert run(src) == 3 == ref(src)


def test_a_list_consumed_twice_is_shared_not_fused():
    # the mapped function raises the second time it meets 3: sharing calls it once
    src = ("(let ((xs (map (lambda (x) (* x 10)) (range 0 10))))\n"
           "  (+ (sum xs) (length xs)))")
    assert "%sum-int" in names(src)        # the named list is summed as a list
    assert run(src) == 460 == ref(src)


def test_an_infinite_chain_without_take_runs_out_of_steps():
    with pytest.raises(LimitExceeded):
        run("(sum (map (lambda (x) (* x 2)) (iterate (lambda (x) (+ x 1)) 0)))",
            max_steps=100_000)


def test_nested_chains_inside_lambdas():
    src = "(sum (map (lambda (x) (sum (map (lambda (y) (* x y)) (range 0 x)))) (range 0 20)))"
    assert len([n for n in names(src) if n.startswith("%fuse@")]) == 2
    assert run(src) == ref(src)


@pytest.mark.parametrize("source", [
    "(sum (map (lambda (x) (* x 0.5)) (range 0 10)))",
    "(product (take 5 (iterate (lambda (x) (* x 3)) 1)))",
    "(foldl-strict (lambda (a x) (- a x)) 100 (filter (lambda (x) (= (mod x 2) 1)) (range 0 10)))",
    "(foldl (lambda (a x) (+ (* a 10) x)) 0 (take 4 (map (lambda (x) (+ x 1)) (range 0 9))))",
    "(let ((g (lambda (x) (* x x)))) (sum (map g (take 5 (iterate negate 3)))))",
    "(sum (zip-with (lambda (a b) (* a b)) (range 0 10) (map (lambda (x) (+ x 1)) (range 0 5))))",
    "(length (zip-with + (range 0 10) (list 1 bottom 3)))",
    "(show (filter (lambda (x) (> x 3)) (map (lambda (x) (* x 2)) (range 0 5))))",
])
def test_results_agree_with_the_reference(source):
    def outcome(f):
        try:
            return ("value", f(source))
        except ExathunkError as err:
            return ("error", type(err).__name__)
    assert outcome(run) == outcome(ref)


def test_a_fused_stream_allocates_nothing_per_element():
    prog = exathunk.compile("(sum (take 1000000 (iterate (lambda (x) (+ x 1)) 0)))")
    value, stats = prog.run_with_stats(max_heap=1 << 16)
    assert value == 499999500000
    assert stats["gc_runs"] == 0
