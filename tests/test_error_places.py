"""Runtime errors point at the user's own source (issue 11, item 2).

A failed run's EvaluationError carries the line and column of the innermost place in
the user's program whose evaluation failed (never a line of prelude.xt), is rendered
with that source line and a caret, and lists a short evaluation trace in which prelude
functions and built-ins are named as such.  LimitExceeded says the limit, what was used
and the flag or argument that raises it.  The same reaches a remote client and the CLI.
"""

import os
import re
import subprocess
import sys

import pytest

import exathunk
from exathunk import reference, server
from exathunk.client import connect
from exathunk.driver import check, compile as compile_source
from exathunk.errors import EvaluationError, LimitExceeded, TraceFrame
from exathunk.opcodes import Op
from exathunk.program import PRELUDE_LINE, Program, user_function_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NTH = """\
; an index out of range, through the prelude's nth
(define (pick xs i)
  (+ 0 (nth xs i)))
(pick (list 1 2 3) 10)
"""

HEAD = """\
(define (first xs)
  (* 2 (head xs)))
(first (filter (lambda (x) (> x 10)) (list 1 2 3)))
"""

ERROR = """\
(define (check x)
  (if (> x 3) (error "x is too big") x))
(+ (check 1) (check 7))
"""

DEEP = """\
(define (down n)
  (if (= n 0)
      (/ 1 n)
      (+ 1 (down (- n 1)))))
(down 100)
"""

# tot is polymorphic (Num a): its sum is the prelude's %sum-poly, which takes the head
SUM_POLY = """\
(define (tot xs) (sum xs))
(tot (the (List Int) nil))
"""

# head as a value (the %builtin:head wrapper), applied by the prelude's map
HEAD_VALUE = """\
(define (firsts xss) (map head xss))
(sum (firsts (list (list 1) nil)))
"""

# (name, source, message, line, column, the trace's leading frames)
CASES = [
    ("nth", NTH, "nth: index out of range", 3, 8,
     [TraceFrame("prelude", "nth"), TraceFrame("user", "pick", 3, 8)]),
    ("head", HEAD, "head of an empty list", 2, 8,
     [TraceFrame("user", "first", 2, 8)]),
    ("error", ERROR, "x is too big", 2, 15,
     [TraceFrame("user", "check", 2, 15), TraceFrame("main", "", 3, 14)]),
    ("division", DEEP, "division by zero", 3, 7,
     [TraceFrame("user", "down", 3, 7), TraceFrame("user", "down", 4, 12)]),
    # tot's call of sum is a tail call (its frame is gone), the main expression's is not
    ("sum-poly", SUM_POLY, "head of an empty list", 2, 1,
     [TraceFrame("prelude", "sum"), TraceFrame("main", "", 2, 1)]),
    # a tail call of a prelude function that never calls user code keeps the caller
    ("nth-tail", "(define (f x) (nth (list 1 2) x))\n(f 5)\n", "nth: index out of range",
     1, 15, [TraceFrame("prelude", "nth"), TraceFrame("user", "f", 1, 15),
             TraceFrame("main", "", 2, 1)]),
    ("top-level", "(nth (list 1 2) -1)", "nth: negative index", 1, 1,
     [TraceFrame("prelude", "nth"), TraceFrame("main", "", 1, 1)]),
]


def _run(source):
    with pytest.raises(EvaluationError) as info:
        compile_source(source, filename="prog.xt").run()
    return info.value.with_source(source, "prog.xt")


def _no_prelude_line(err, source):
    """No line of the user's file is named that is not one of its lines, and no prelude
    or built-in frame has a position."""
    text = err.render()
    nlines = len(source.split("\n"))
    for m in re.finditer(r"prog\.xt:(\d+)", text):
        assert 1 <= int(m.group(1)) <= nlines
    for m in re.finditer(r"at line (\d+)", text):
        assert 1 <= int(m.group(1)) <= nlines
    for f in err.trace:
        if f.kind in ("built-in", "host") or (f.kind == "prelude" and f.name not in
                                                ("map", "filter", "zip-with")):
            assert f.line is None and f.column is None, f
    assert "(in " not in err.message and "%" not in text


@pytest.mark.parametrize("name, source, message, line, column, trace",
                         CASES, ids=[c[0] for c in CASES])
def test_the_error_points_at_the_users_call(name, source, message, line, column, trace):
    err = _run(source)
    assert err.message == message
    assert (err.line, err.column) == (line, column)
    assert err.trace[:len(trace)] == trace
    assert len(err.trace) <= 5
    text = err.render()
    src_line = source.split("\n")[line - 1]
    head, shown, caret = text.split("\n")[:3]
    assert head == f"prog.xt:{line}:{column}: EvaluationError: {message}"
    assert shown == "    " + src_line
    assert caret == "    " + " " * (column - 1) + "^"
    assert "evaluation trace" in text and trace[0].describe() in text
    _no_prelude_line(err, source)


def test_trace_names_prelude_and_built_in_frames_in_user_terms():
    err = _run(NTH)
    assert "in prelude 'nth'" in err.render()
    assert "in 'pick' at line 3, column 8" in err.render()
    err = _run(HEAD_VALUE)
    # %builtin:head and the prelude's %sum-from, in user terms
    assert err.trace[:2] == [TraceFrame("built-in", "head"), TraceFrame("prelude", "sum")]
    assert "in built-in 'head'" in err.render() and "in prelude 'sum'" in err.render()
    _no_prelude_line(err, HEAD_VALUE)


@pytest.mark.parametrize("compiled, shown", [
    ("%sum-poly", "sum"), ("%sum-int", "sum"), ("%product-double", "product"),
    ("%length-from", "length"), ("%reverse-onto", "reverse"), ("prelude:nth", "nth"),
    ("%builtin:head", "head"), ("%host:hash", "hash"), ("pick/lambda3", "pick"),
    ("%map@2", "map"), ("nth", "nth"),
])
def test_internal_names_are_shown_in_user_terms(compiled, shown):
    assert user_function_name(compiled) == shown


def test_prelude_code_is_marked_in_the_line_table():
    prog = compile_source(NTH)
    nth = next(f for f in prog.functions if f.name == "nth")
    pick = next(f for f in prog.functions if f.name == "pick")
    assert all(word & PRELUDE_LINE for word in nth.lines)
    assert not any(word & PRELUDE_LINE for word in pick.lines)
    assert pick.position(len(pick.code) - 1)[2] is False
    # the column table survives the bytes and the wire's graph form
    back = Program.from_bytes(prog.to_bytes())
    assert [f.columns for f in back.functions] == [f.columns for f in prog.functions]
    from exathunk import wire
    graph = wire.graph_to_program(wire.program_to_graph(prog))
    assert [f.columns for f in graph.functions] == [f.columns for f in prog.functions]
    with pytest.raises(EvaluationError) as info:
        graph.run()
    assert (info.value.line, info.value.column) == (3, 8)


@pytest.mark.parametrize("name, source, message, line, column, trace",
                         CASES, ids=[c[0] for c in CASES])
def test_the_reference_interpreter_gives_the_same_place(name, source, message, line,
                                                         column, trace):
    if name in ("nth", "sum-poly", "nth-tail", "top-level"):
        # it fails at the prelude's own code, whose position it does not show
        expected = (None, None)
    else:
        expected = (line, column)
    with pytest.raises(EvaluationError) as info:
        reference.evaluate(check(source))
    assert (info.value.line, info.value.column) == expected


# ---- limits -------------------------------------------------------------------------

FOREVER = "(length (iterate (lambda (x) x) 0))"
BIG = "(let ((xs (range 0 100000))) (+ (length xs) (sum xs)))"
DEEPER = DEEP.replace("(down 100)", "(down 100000)")

LIMITS = [
    ("max_steps", FOREVER, {"max_steps": 1000}, 1000,
     "step limit of 1,000 reached (used 1,001 steps); raise it with --max-steps or max_steps="),
    ("max_heap", BIG, {"max_heap": 100_000}, 100_000,
     "heap limit of 100,000 bytes reached"),
    ("max_depth", DEEPER, {"max_depth": 50}, 50,
     "stack depth limit of 50 frames reached"),
]


@pytest.mark.parametrize("limit, source, kw, value, text", LIMITS, ids=[c[0] for c in LIMITS])
def test_limit_exceeded_says_value_used_and_flag(limit, source, kw, value, text):
    with pytest.raises(LimitExceeded) as info:
        compile_source(source).run(**kw)
    err = info.value
    assert err.limit == limit and err.value == value
    assert err.used is not None and err.used >= value
    flag = "--" + limit.replace("_", "-")
    assert err.message.startswith(text)
    assert err.message.endswith(f"raise it with {flag} or {limit}=")


def test_timeout_names_its_flag_and_argument():
    with pytest.raises(LimitExceeded) as info:
        compile_source(FOREVER).run(max_steps=10 ** 15, timeout=0.02)
    err = info.value
    assert err.limit == "timeout" and err.value == 0.02
    assert err.message.startswith("time limit of 20 ms reached (ran ")
    assert err.message.endswith("raise it with --timeout-ms or timeout=")


def test_reference_limits_say_the_same():
    with pytest.raises(LimitExceeded) as info:
        reference.evaluate(check(FOREVER), max_steps=1000)
    assert info.value.message.startswith("step limit of 1,000 reached")
    assert info.value.message.endswith("raise it with --max-steps or max_steps=")


# ---- the wire -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def node():
    handle = server.start(workers=1, timeout_ms=20_000)
    yield handle
    handle.stop(5)


def test_a_remote_client_gets_the_same_place_and_trace(node):
    c = connect(node.host, node.port, timeout=30)
    try:
        for name, source, message, line, column, trace in CASES:
            with pytest.raises(EvaluationError) as info:
                c.evaluate(source)
            err = info.value
            assert (err.message, err.line, err.column) == (message, line, column), name
            assert err.trace[:len(trace)] == trace
            assert err.render().split("\n")[2] == "    " + " " * (column - 1) + "^"
        with pytest.raises(LimitExceeded) as info:
            c.evaluate(FOREVER, max_steps=1000)
        assert info.value.value == 1000 and info.value.used == 1001
        assert "--max-steps" in info.value.message
    finally:
        c.close()


# ---- the command line ---------------------------------------------------------------

def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "exathunk", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_eval_shows_the_caret_in_the_users_line(tmp_path):
    path = tmp_path / "16_nth.xt"
    path.write_text(NTH)
    out = _cli("eval", str(path))
    assert out.returncode != 0 and out.stdout == ""
    lines = out.stderr.rstrip("\n").split("\n")
    assert lines[0] == f"{path}:3:8: EvaluationError: nth: index out of range"
    assert lines[1] == "      (+ 0 (nth xs i)))"
    assert lines[2] == "           ^"
    assert "    in prelude 'nth'" in lines
    assert "Traceback" not in out.stderr


def test_cli_limit_message_names_the_flag(tmp_path):
    out = _cli("eval", "--max-steps", "1000", "-e", FOREVER)
    assert out.returncode != 0
    assert "raise it with --max-steps or max_steps=" in out.stderr


def test_cli_refuses_a_negative_limit():
    out = _cli("eval", "--max-steps", "-5", "-e", "1")
    assert out.returncode == 2
    assert "positive integer" in out.stderr and "Traceback" not in out.stderr


def test_a_version_2_blob_still_runs_with_lines_but_no_columns():
    from exathunk.program import _encode
    prog = compile_source(NTH)
    old = Program.from_bytes(_encode(prog, False, version=2))
    assert old.version == 2 and all(f.columns is None for f in old.functions)
    assert old.digest == prog.digest
    with pytest.raises(EvaluationError) as info:
        old.run()
    assert (info.value.line, info.value.column) == (3, None)
    assert info.value.trace[0] == TraceFrame("prelude", "nth")


def test_the_repl_shows_the_place_in_the_entry():
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "exathunk", "repl"], input=NTH,
                         capture_output=True, text=True, env=env, timeout=120)
    text = out.stdout + out.stderr
    assert "<repl>:2:8: EvaluationError: nth: index out of range" in text
    assert "\n           ^\n" in text
    assert "in 'pick' at line 2, column 8" in text


def test_only_calls_that_cannot_loop_keep_their_frame():
    # f's tail call of nth keeps f's frame (CALL, RET): nth never calls user code
    prog = compile_source("(define (f x) (nth (list 1 2) x))\n(f 1)")
    f = next(fn for fn in prog.functions if fn.name == "f")
    nth = next(i for i, fn in enumerate(prog.functions) if fn.name == "nth")
    assert f.code[-4:] == [int(Op.CALL), nth, 2, int(Op.RET)]
    text = prog.disassemble()
    assert re.search(r"^0000  p\d+ LOCAL_EVAL", text, re.M)      # nth's lines: the prelude's
    # a loop through a higher-order prelude function stays a loop in constant space
    loop = "(define (go n) (if (= n 0) 0 (maybe 0 go (Just (- n 1)))))\n(go 100000)"
    assert compile_source(loop).run(max_depth=1000) == 0
    assert re.search(r"TAILCALL +\d+ +maybe", compile_source(loop).disassemble())


def test_the_place_and_trace_cross_a_broker(cluster):
    worker, start_broker, connect_to = cluster
    broker_handle = start_broker([worker()])
    c = connect_to(broker_handle)
    with pytest.raises(EvaluationError) as info:
        c.evaluate(NTH)
    err = info.value
    assert (err.line, err.column) == (3, 8)
    assert err.trace[:2] == [TraceFrame("prelude", "nth"), TraceFrame("user", "pick", 3, 8)]
