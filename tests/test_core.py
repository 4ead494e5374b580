"""The engine: laziness, sharing, errors, limits, GC, host functions, threads."""

import subprocess
import sys
import threading
import time

import pytest

import exathunk
from exathunk import EvaluationError, LimitExceeded, parser, typecheck, compiler
from exathunk.library import Library, default_library


def prog_of(src, library=None, fuse=True):
    library = library or default_library()
    checked = typecheck.check_module(parser.parse(src), library)
    return compiler.compile_module(checked, library, fuse=fuse)


def run(src, library=None, **limits):
    return prog_of(src, library).run(library=library, **limits)


@pytest.mark.parametrize("src,expected", [
    ("(or true bottom)", True),
    ("(and false bottom)", False),
    ("(head (cons 1 bottom))", 1),
    ('(let ((x (error "no"))) 1)', 1),
    ("(take 5 (iterate (lambda (x) (* 2 x)) 1))", [1, 2, 4, 8, 16]),
    ("(if true 1 bottom)", 1),
    ("(length (list bottom bottom))", 2),
    ("(seq 1 2)", 2),
    ("(null? (tail (cons bottom nil)))", True),
    ("(let ((xs (cons 1 xs))) (take 3 xs))", [1, 1, 1]),
    ("((lambda (f) (f (f 1))) (lambda (x) (+ x 1)))", 3),
    ("(map (+ 1) (list 1 2))", [2, 3]),
    ("(let ((add (lambda (a b c) (+ a (+ b c))))) ((add 1) 2 3))", 6),
    ("(let ((k (lambda (a) (lambda (b) a)))) (k 1 2))", 1),
    ("(foldr (lambda (x acc) (cons (* x x) acc)) nil (range 0 4))", [0, 1, 4, 9]),
    ("(list (list 1 2) nil (list 3))", [[1, 2], [], [3]]),
    ('(show (list "a\\"b" "c"))', '(list "a\\"b" "c")'),
    ("(show (list (list 1) nil))", "(list (list 1) (list))"),
    ("(show (list 1.0 -0.5 1e22 (/ 1.0 0.0) (/ -1.0 0.0)))", "(list 1.0 -0.5 1e+22 inf -inf)"),
    ("(show (/ 0.0 0.0))", "nan"),
    ("(show -5)", "-5"),
    ('(show "tab\\there")', '"tab\\there"'),
    ("(= (list 1 2) (cons 1 (cons 3 bottom)))", False),
    ("(/= (list 1 2) (list 1 2))", False),
    ('(< "abc" "abd")', True),
    ('(< "ab" "abc")', True),
    ('(len "h\\u{e9}llo \\u{1F600}")', 7),
    ("(/ 7 -2)", -3),
    ("(/ -7 2)", -3),
    ("(mod -7 2)", -1),
    ("(mod 7 -2)", 1),
    ("(mod -9223372036854775808 -1)", 0),
    ("(truncate -2.7)", -2),
    ("(to-double 3)", 3.0),
    ("(abs -3)", 3),
    ("(negate 2.5)", -2.5),
    ("(= (/ 0.0 0.0) (/ 0.0 0.0))", False),
    # head/tail of a list known to be a cons are field reads: still lazy in the element
    ("(length (take 3 (list bottom bottom bottom bottom)))", 3),
    ("(head (map (lambda (x) 1) (list bottom)))", 1),
    ("(length (filter (lambda (x) true) (cons bottom (cons bottom nil))))", 2),
    ("(let ((n (+ 1 2))) (if (< n 5) (+ n n) n))", 6),
    ("(define (f xs) (if (null? xs) 0 (+ (head xs) (f (tail xs))))) (f (range 0 10))", 45),
    ("(define (g x y) (if (< x y) (- y x) (- x y))) (g (+ 1 1) (* 3 3))", 7),
    ('(define (g x y) (if (< x y) x y)) (g "b" "a")', "a"),
    ("(define (g x y) (if (>= x y) x y)) (g 2.5 1.5)", 2.5),
    # Ord on Bool (false < true) and on lists (lexicographic, nil first, lazy, NaN unordered)
    ("(list (< false true) (< true false) (<= true true) (>= false true))", [True, False, True, False]),
    ("(define (g x y) (if (< x y) 1 2)) (g false true)", 1),
    ("(list (< (list 1 2) (list 1 3)) (< nil (list 0)) (> (list 2) (list 1 9)))", [True, True, True]),
    ("(< (cons 1 bottom) (cons 2 bottom))", True),
    ("(list (< (list 1.0 (/ 0.0 0.0)) (list 1.0 2.0)) (>= (list (/ 0.0 0.0)) (list 1.0)))", [False, False]),
    # the string built-ins
    ('(join "|" (split "," "a,b,,c"))', "a|b||c"),
    ('(split "ab" "ab")', ["", ""]),
    ('(join "-" nil)', ""),
    ('(chars "h\\u{e9}")', ["h", "\u00e9"]),
    ('(list (%parse-int "-12") (%parse-int "007"))', [-12, 7]),
    ('(list (%int? "9223372036854775808") (%int? "-9223372036854775808") (%int? "+1"))',
     [False, True, False]),
    ('(list (substring "hello" -3 2) (substring "hello" 3 1))', ["he", ""]),
])
def test_values(src, expected):
    got = run(src)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("src,needle", [
    ("(head nil)", "head"),
    ("(tail nil)", "tail"),
    ("(/ 1 0)", "division by zero"),
    ("(mod 1 0)", "division by zero"),
    ("(+ 9223372036854775807 1)", "overflow"),
    ("(* 4611686018427387904 2)", "overflow"),
    ("(- -9223372036854775807 2)", "overflow"),
    ("(negate -9223372036854775808)", "overflow"),
    ("(/ -9223372036854775808 -1)", "overflow"),
    ("(truncate (/ 0.0 0.0))", "truncate"),
    ("(truncate (/ 1.0 0.0))", "truncate"),
    ("(truncate 1e19)", "truncate"),
    ('(error "boom")', "boom"),
    ("bottom", "bottom"),
    ("(let ((x (+ x 1))) x)", "depends on itself"),
    ("(let ((a (+ b 1)) (b (* a 2))) a)", "depends on itself"),
    ("(nth (list 1 2) 5)", "out of range"),
    ('(split "" "abc")', "split: the separator is empty"),
    ('(%parse-int "4x2")', 'not an Int: "4x2"'),
    ('(join "," (list "a" bottom))', "bottom"),
    ("(< (cons 1 bottom) (cons 1 bottom))", "bottom"),
])
def test_errors(src, needle):
    with pytest.raises(EvaluationError) as info:
        run(src)
    assert needle in info.value.message


def test_sharing_a_let_bound_value_is_computed_once():
    expensive = "(sum (range 0 1000))"
    once = prog_of(f"(let ((x {expensive})) x)").run_with_stats()
    twice = prog_of(f"(let ((x {expensive})) (+ x x))").run_with_stats()
    unshared = prog_of(f"(+ {expensive} {expensive})").run_with_stats()
    assert twice[0] == 2 * once[0] == unshared[0]
    extra = twice[1]["steps"] - once[1]["steps"]
    assert extra < 10                                     # not another thousand steps
    assert unshared[1]["steps"] > 2 * once[1]["steps"] - 10


def test_sharing_of_a_function_argument():
    src = "(define (twice x) (+ x x)) (twice (sum (range 0 1000)))"
    single = prog_of("(sum (range 0 1000))").run_with_stats()
    value, stats = prog_of(src).run_with_stats()
    assert value == 2 * single[0]
    assert stats["steps"] < single[1]["steps"] + 10


@pytest.mark.parametrize("src,limits,limit", [
    ("(define (loop n) (loop n)) (loop 1)", {"max_steps": 100_000}, "max_steps"),
    ("(iterate (lambda (x) (+ x 1)) 0)", {"max_heap": 1 << 20}, "max_heap"),
    ("(define (f n) (+ 1 (f n))) (f 1)", {"max_depth": 10_000}, "max_depth"),
    ("(let ((xs (cons 1 xs))) xs)", {"max_steps": 100_000}, "max_steps"),
    ("(let ((xs (cons 1 xs))) (= xs xs))", {"max_steps": 100_000}, "max_steps"),
    ("(let ((xs (cons 1 xs))) (show xs))", {"max_steps": 100_000}, "max_steps"),
])
def test_limits_raise_by_name_and_next_run_is_fine(src, limits, limit):
    prog = prog_of(src)
    with pytest.raises(LimitExceeded) as info:
        prog.run(**limits)
    assert info.value.limit == limit
    assert run("(+ 1 2)") == 3
    with pytest.raises(LimitExceeded):
        prog.run(**limits)                                  # same again, no residue


def test_infinite_list_to_normal_form_hits_a_limit_with_defaults_reduced():
    with pytest.raises(LimitExceeded):
        run("(range 0 100000000)", max_heap=16 << 20)


DEEP = "(define (f n) (if (= n 0) 0 (+ 1 (f (- n 1))))) (f 1000000)"


def test_deep_recursion_evaluates_or_raises():
    prog = prog_of(DEEP)
    assert prog.run() == 1_000_000
    with pytest.raises(LimitExceeded) as info:
        prog.run(max_depth=100_000)
    assert info.value.limit == "max_depth"
    assert prog.run() == 1_000_000


def test_deep_lazy_accumulator_and_deep_structures():
    # foldl builds a million nested thunks; forcing them is deep but iterative
    assert run("(foldl + 0 (range 0 1000000))") == 499999500000
    assert run("(= (range 0 1000000) (range 0 1000000))") is True
    assert run("(= (range 0 1000000) (range 0 999999))") is False
    shown = run("(show (range 0 100000))")
    assert shown.startswith("(list 0 1 2 ") and shown.endswith(" 99999)")
    assert len(run("(range 0 1000000)")) == 1000000


def test_long_stream_in_a_small_heap():
    # the stream comes from a define, so that the compiler's fusion (which would build
    # no list at all) leaves cells for the collector to reclaim
    src = "(define (ints x) (iterate (lambda (y) (+ y 1)) x))\n(sum (take 1000000 (ints 0)))"
    value, stats = prog_of(src).run_with_stats(max_heap=1 << 20)
    assert value == 499999500000
    assert stats["gc_runs"] > 10
    assert stats["peak_heap"] <= 1 << 20
    # collecting takes some time, and never more than the whole run
    assert 0 < stats["gc_time"] <= stats["time"]


def test_retained_list_survives_minor_and_major_collections():
    # the list is promoted to the old space cell by cell while sum walks it; each old
    # tail thunk is then updated to point at a cell still in the nursery (the write
    # barrier's case), and length walks the whole list again afterwards
    src = "(let ((xs (range 0 300000))) (+ (sum xs) (length xs)))"
    value, stats = prog_of(src).run_with_stats()
    assert value == 300000 * 299999 // 2 + 300000
    assert stats["gc_runs"] > stats["major_gc_runs"] >= 1


def test_recursive_lets_built_across_collections_keep_their_cycles():
    # cyclic values tied by SETFIELD, built and walked while collections run
    src = ("(let ((ones (cons 1 ones)) (xs (range 0 200000))) "
           "(+ (+ (sum (take 100000 ones)) (length xs)) (sum (take 3 ones))))")
    value, stats = prog_of(src).run_with_stats()
    assert value == 100000 + 200000 + 3
    assert stats["gc_runs"] >= 2


def test_a_run_that_never_collects_reports_no_gc_time():
    value, stats = prog_of("(+ 1 2)").run_with_stats()
    assert value == 3
    assert stats["gc_runs"] == 0 and stats["gc_time"] == 0


def test_the_instruction_profile_is_off_in_the_normal_build():
    # the counters exist only in an EXATHUNK_PROFILE=1 build (bench/profile_instructions.py)
    from exathunk import _core
    _core.profile_reset()
    assert _core.profile_counts() is None


def test_ten_million_stream_peak_rss_under_200mb():
    code = (
        "import resource, exathunk\n"
        "v = exathunk.compile('(sum (take 10000000 (iterate (lambda (x) (+ x 1)) 0)))').run()\n"
        "assert v == 49999995000000, v\n"
        # VmHWM (not ru_maxrss, which a child inherits from a big parent at fork)
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) < 200 * 1024          # VmHWM is in KiB


def test_host_functions_strict_lazy_and_failing():
    lib = Library()
    lib.register("total", "(-> (List Int) Int)", lambda xs: sum(xs))
    lib.register("pick", "(-> Bool Int Int Int)", lambda c, a, b: a() if c else b(),
                 strict=(True, False, False))
    lib.register("boom", "(-> Int Int)", lambda x: 1 // 0)
    lib.register("liar", "(-> Int String)", lambda x: 42)
    lib.register("names", "(-> Int (List String))", lambda n: ["a", "b"][:n])
    assert run("(total (map (lambda (x) (* x x)) (range 0 4)))", lib) == 14
    assert run("(pick true 1 bottom)", lib) == 1
    assert run("(pick false (error \"x\") 7)", lib) == 7
    assert run("(names 2)", lib) == ["a", "b"]
    assert run("(length (names 1))", lib) == 1
    with pytest.raises(EvaluationError) as info:
        run("(boom 1)", lib)
    assert "boom" in info.value.message and "ZeroDivisionError" in info.value.message
    with pytest.raises(EvaluationError) as info:
        run("(liar 1)", lib)
    assert "liar" in info.value.message
    with pytest.raises(EvaluationError) as info:
        run("(pick true (error \"inner\") 1)", lib)
    assert "inner" in info.value.message
    assert run("(+ 1 (total (list 1 2)))", lib) == 4         # healthy afterwards


def test_two_threads_evaluate_in_parallel():
    # Each run stamps the time from inside the engine (a host call) before and after
    # its pure work.  Had the engine kept the GIL, the second run could not even begin
    # while the first was inside; intersecting intervals show both running at once.
    stamps = {}
    lock = threading.Lock()

    def stamp(tag):
        with lock:
            stamps[tag] = time.perf_counter()
        return tag

    lib = Library()
    lib.register("stamp", "(-> Int Int)", stamp)
    src = ("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n"
           "(define (timed id) (seq (stamp id) (let ((v (fib 34))) (seq v (+ v (stamp (+ id 1)))))))\n")
    progs = {tag: prog_of(src + f"(timed {tag})", lib) for tag in (0, 10)}
    errors = []

    def work(tag):
        try:
            progs[tag].run(library=lib)
        except Exception as exc:       # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(tag,)) for tag in progs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    a = (stamps[0], stamps[1])
    b = (stamps[10], stamps[11])
    assert a[1] - a[0] > 0.1 and b[1] - b[0] > 0.1
    assert max(a[0], b[0]) < min(a[1], b[1])


def test_pure_python_threads_run_while_the_engine_works():
    prog = prog_of("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 34)")
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        start, before = time.perf_counter(), counter[0]
        time.sleep(0.1)
        idle_rate = (counter[0] - before) / (time.perf_counter() - start)
        start, before = time.perf_counter(), counter[0]
        prog.run()
        busy_rate = (counter[0] - before) / (time.perf_counter() - start)
    finally:
        stop.set()
        t.join(timeout=10)
    # with the GIL held for the whole run the counter would all but stop
    assert busy_rate > 0.3 * idle_rate


def test_golden_cases_run_on_the_engine():
    import glob
    import os
    import re
    from exathunk.values import show_value
    root = os.path.join(os.path.dirname(exathunk.__file__), "..", "grammar", "cases")
    checked = 0
    for path in sorted(glob.glob(os.path.join(root, "*.xt"))):
        src = open(path, encoding="utf-8").read()
        expect = re.findall(r"^; expect: (.*)$", src, re.M)
        if not expect or "bench_" in path:
            continue
        assert show_value(exathunk.compile(src).run()) == expect[0].strip(), path
        checked += 1
    assert checked > 50


def test_ctrl_c_interrupts_a_long_run_and_the_process_stays_usable():
    import signal
    code = (
        "import signal, sys, exathunk\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "prog = exathunk.compile('(define (loop n) (loop (+ n 1))) (loop 1)')\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    prog.run(max_steps=10**12)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "print(exathunk.evaluate('(+ 1 2)'), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert out.split() == ["interrupted", "3"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("src", [
    '(len (show (map (lambda (x) (concat "s" (show x))) (range 0 30000))))',
    "(define big (range 0 20000)) (+ (sum (map (lambda (x) (* x x)) big)) (length (reverse big)))",
    "(let ((fibs (cons 0 (cons 1 (zip-with (lambda (a b) (mod (+ a b) 1000)) fibs (tail fibs))))))"
    " (nth fibs 30000))",
    "(foldr (lambda (x acc) (+ x acc)) 0 (map (lambda (x) (* x x)) (range 0 50000)))",
    '(length (filter (lambda (s) (< "m" s)) (map show (range 0 50000))))',
    "(let ((xs (map (lambda (x) (* 2 x)) (range 0 30000))))"
    " (= xs (map (lambda (x) (+ x x)) (range 0 30000))))",
    "(sum (map (lambda (x) (truncate (* 1.5 (to-double x)))) (range 0 50000)))",
    '(length (split "," (join "," (map show (range 0 30000)))))',
    '(length (chars (join "" (map show (range 0 10000)))))',
    "(< (map (lambda (x) (* 2 x)) (range 0 30000)) (map (lambda (x) (+ x x)) (range 0 30001)))",
])
def test_results_survive_many_collections(src):
    # Unfused, so that every list is built and the small heap must be collected.
    prog = prog_of(src, fuse=False)
    expected = prog.run(max_heap=1 << 28)
    value, stats = prog.run_with_stats(max_heap=6 << 20)
    assert value == expected
    assert stats["gc_runs"] >= 1
