"""Hostile bytecode graphs and hostile bytes that the verifier and the node must refuse.

A graph that reads a frame slot before anything writes it once passed verify() and
returned a pointer into the node's heap as an Int.  The verifier now proves definite
assignment (every slot written on every path before it is read) and the engine starts
fresh slots as the Int 0.  Here: hand-built graphs refused locally and by a real
``exathunk serve`` node, mutated graphs of compiled programs that either fail
verification with a typed error or run without crashing, every golden program still
verifying, source bytes that are not UTF-8 (a ParseError with the byte offset) and
mutated frames that never reach an internal error on the node.
"""

from __future__ import annotations

import dataclasses
import pathlib
import random
import socket
import struct
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import exathunk
from exathunk import wire
from exathunk.client import connect
from exathunk.errors import ExathunkError, ParseError
from exathunk.opcodes import Op
from exathunk.program import Function, Program, stack_need

T = wire.thrift
CASES_DIR = pathlib.Path(__file__).resolve().parent.parent / "grammar" / "cases"
GOLDEN = sorted(CASES_DIR.glob("*.xt"))


def fn(name, arity, frame, code) -> Function:
    code = [int(w) for w in code]
    return Function(name, arity, frame, code, [1] * len(code), stack_need(code))


def program(functions, strings=(), ints=(), rtype="Int", trusted=False) -> Program:
    return Program(2, list(functions), list(ints), [], list(strings), [], 0, rtype,
                   trusted=trusted)


# main leaves a String pointer on the value stack, pops it and calls g, whose frame
# starts where the pointer was; g returns its slot 0, which nothing has written.
LEAK = [fn("main", 0, 0, [Op.STR, 0, Op.POP, Op.CALL, 1, 0, Op.RET]),
        fn("g", 0, 1, [Op.RET_LOCAL, 0])]


def leak_program() -> Program:
    """The hostile graph, built without the verifier (as a hostile peer would send it)."""
    return program(LEAK, strings=["hello"], trusted=True)


# ---- refused locally ----------------------------------------------------------------

def test_reading_an_unwritten_slot_is_refused_by_verify():
    with pytest.raises(ExathunkError, match=r"function 'g' at 0: RET_LOCAL reads slot 0 "
                                            r"before it is written") as info:
        program(LEAK, strings=["hello"])
    assert type(info.value) is ExathunkError and info.value.kind == "ExathunkError"


def test_reading_an_unwritten_slot_is_refused_by_from_bytes():
    blob = leak_program().to_bytes()
    with pytest.raises(ExathunkError, match="reads slot 0 before it is written"):
        Program.from_bytes(blob)


def test_graph_struct_reading_an_unwritten_slot_is_refused():
    graph = wire.program_to_graph(leak_program())
    with pytest.raises(ExathunkError, match="reads slot 0 before it is written"):
        wire.graph_to_program(graph)


def test_engine_starts_fresh_slots_as_zero():
    # The second line of defence: even a graph that skipped the verifier (trusted, as
    # only the compiler's own output is) reads an unwritten slot as 0, not as an address.
    assert leak_program().run() == 0


def test_every_slot_operand_is_checked():
    # LOCAL, LOCAL_EVAL, a fused operand, a compare of two locals, SETFIELD's object and
    # a constructor test each read their slot; a parameter slot is written at entry.
    bodies = {
        "LOCAL": [Op.LOCAL, 1, Op.RET],
        "LOCAL_EVAL": [Op.LOCAL_EVAL, 1, Op.RET],
        "ADD_LI": [Op.ADD_LI, 1, 0, Op.RET],
        "BR_LT_LL": [Op.BR_LT_LL, 0, 1, 7, Op.INT, 0, Op.RET, Op.INT, 0, Op.RET],
        "SETFIELD": [Op.INT, 0, Op.SETFIELD, 1, 0, Op.INT, 0, Op.RET],
    }
    for name, body in bodies.items():
        f = fn("f", 1, 2, body)
        main = fn("main", 0, 0, [Op.INT, 0, Op.TAILCALL, 1, 1])
        with pytest.raises(ExathunkError, match=f"function 'f' at .*{name} reads slot 1"):
            program([main, f], ints=[1])
    # the same functions reading their parameter (slot 0) verify
    main = fn("main", 0, 0, [Op.INT, 0, Op.TAILCALL, 1, 1])
    assert program([main, fn("f", 1, 2, [Op.ADD_LI, 0, 0, Op.RET])], ints=[1]).run() == 2


def _branchy(store_on_else: bool) -> Program:
    # f(x): if x < 1 then slot 1 := 10 else (slot 1 := 20 | nothing); return slot 1
    then = [Op.INT, 0, Op.STORE, 1]
    els = [Op.INT, 1, Op.STORE, 1] if store_on_else else [Op.INT, 1, Op.POP]
    # BR_LT_LI x 1 -> else when not (x < 1)
    head_len = 4
    jump_len = 2
    else_at = head_len + len(then) + jump_len
    join = else_at + len(els)
    body = ([Op.BR_LT_LI, 0, 2, else_at] + then + [Op.JUMP, join] + els
            + [Op.RET_LOCAL, 1])
    f = fn("f", 1, 2, body)
    main = fn("main", 0, 0, [Op.INT, 3, Op.TAILCALL, 1, 1])
    return program([main, f], ints=[10, 20, 1, 0])


def test_a_slot_written_on_one_branch_only_is_refused_where_paths_meet():
    with pytest.raises(ExathunkError, match=r"function 'f' at 13: RET_LOCAL reads slot 1"):
        _branchy(store_on_else=False)
    assert _branchy(store_on_else=True).run() == 10


def test_a_slot_written_in_one_case_alternative_only_is_refused():
    # case over a constructor (BR_NCON): only the first alternative writes slot 1
    from exathunk.program import Constructor, DataType
    dt = DataType("C", (), (Constructor("A", (), ()), Constructor("B", (), ())))
    body = [Op.LOCAL_EVAL, 0, Op.POP,
            Op.BR_NCON, 0, 0, 11, Op.INT, 0, Op.STORE, 1,   # A -> slot 1 := 10
            Op.RET_LOCAL, 1]                                # B falls to here unwritten
    f = fn("f", 1, 2, body)
    main = fn("main", 0, 0, [Op.MKCON, 1, 0, Op.TAILCALL, 1, 1])
    with pytest.raises(ExathunkError, match="RET_LOCAL reads slot 1 before it is written"):
        Program(2, [main, f], [10], [], [], [], 0, "Int", datatypes=[dt])


# ---- refused by a real node -----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve():
    """An `exathunk serve` subprocess on a free loopback port; stopped at the end."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exathunk", "serve", "--host",
                             "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError("exathunk serve exited early")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("exathunk serve did not start listening")
                time.sleep(0.05)
        yield "127.0.0.1", port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["graph", "graph-struct"])
def test_node_refuses_a_graph_reading_an_unwritten_slot(serve, mode):
    host, port, proc = serve
    with connect(host, port, mode=mode) as c:
        with pytest.raises(ExathunkError, match="reads slot 0 before it is written") as info:
            c.evaluate(leak_program())
        assert info.value.kind == "ExathunkError"
        assert c.evaluate("(+ 1 2)") == 3
    assert proc.poll() is None


def send_raw(host, port, data: bytes, wait: float = 5.0) -> bytes:
    """Send one frame's bytes, then read until the node closes or has answered."""
    with socket.create_connection((host, port), timeout=wait) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
            if len(out) >= 4 and len(out) >= 4 + int.from_bytes(out[:4], "big"):
                break
        return out


def reply(data: bytes, name: str):
    iprot = wire.decoder(data[4:])
    api, mtype, _ = iprot.read_message_begin()
    assert api == name and mtype == wire.REPLY
    result = getattr(wire.Service, name + "_result")()
    iprot.read_struct(result)
    return result


def test_node_refuses_raw_program_bytes_reading_an_unwritten_slot(serve):
    host, port, _ = serve
    req = T.EvalRequest(programBytes=leak_program().to_bytes())
    msg = wire.encode_message("evaluate", wire.CALL, 1, wire.Service.evaluate_args(evalRequest=req))
    result = reply(send_raw(host, port, msg), "evaluate")
    assert result.success is None
    assert result.err.kind == "ExathunkError"
    assert "function 'g' at 0" in result.err.message and "slot 0" in result.err.message


# ---- mutated graphs of compiled programs ----------------------------------------------

SOURCES = [
    "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 12)",
    "(map (lambda (x) (* x 2)) (range 0 5))",
    "(let ((xs (list 1 2 3)) (k 4)) (foldr (lambda (x acc) (+ (* x k) acc)) 0 xs))",
    "(data (O a) (N) (Y a)) (map (lambda (o) (case o ((Y x) (+ x 1)) (N 0))) (list (Y 1) N))",
    "(join \"-\" (map show (filter (lambda (x) (> x 2)) (list 1 2 3 4 5))))",
    "(let ((xs (cons 1 xs))) (take 3 xs))",
]


@pytest.fixture(scope="module")
def compiled():
    return [exathunk.compile(s) for s in SOURCES]


MUTATE = st.tuples(st.integers(0, len(SOURCES) - 1), st.integers(0, 10**6),
                   st.integers(0, 10**6),
                   st.sampled_from(["operand", "slot", "opcode", "delta"]),
                   st.integers(-3, 80))


def mutate(prog: Program, fi: int, pos: int, how: str, value: int) -> list:
    """A copy of the program's functions with one code word changed."""
    functions = [dataclasses.replace(f, code=list(f.code), max_stack=0) for f in prog.functions]
    f = functions[fi % len(functions)]
    code = f.code
    if how == "opcode":
        # an instruction start changed into another opcode
        starts, pc = [], 0
        from exathunk.opcodes import OPERANDS
        while pc < len(code):
            starts.append(pc)
            pc += 1 + len(OPERANDS[Op(code[pc])])
        code[starts[pos % len(starts)]] = value % len(Op)
    elif how == "slot":
        # a slot operand moved to another slot of the frame (or just past it)
        slots, pc = [], 0
        from exathunk.opcodes import OPERANDS
        while pc < len(code):
            kinds = OPERANDS[Op(code[pc])]
            slots += [pc + 1 + i for i, k in enumerate(kinds) if k == "slot"]
            pc += 1 + len(kinds)
        if slots:
            code[slots[pos % len(slots)]] = value % (f.frame_size + 1)
        else:
            code[pos % len(code)] = value
    elif how == "delta":
        code[pos % len(code)] += 1 if value % 2 else -1
    else:
        code[pos % len(code)] = value
    return functions


def ints_in(value):
    """Every Int inside a result (lists, tuples and data fields walked)."""
    from exathunk.values import Data
    work = [value]
    while work:
        v = work.pop()
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            yield v
        elif isinstance(v, (list, tuple)):
            work.extend(v)
        elif isinstance(v, Data):
            work.extend(v.fields)


# Every Int these programs (and small mutations of them) compute is far below 2**40; a
# heap address read as an Int is above it (user-space addresses start near 2**46).
NOT_AN_ADDRESS = 1 << 40


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(MUTATE)
# Mutations that once returned heap addresses (a slot operand moved to a slot nothing
# wrote; a code word nudged so that STORE's slot changes), found by this test.
@example((3, 478363, 368014, "slot", 5))
@example((1, 574445, 305113, "slot", 63))
@example((1, 234449, 155680, "delta", 20))
@example((1, 354941, 185970, "opcode", 13))
def test_mutated_graphs_fail_verification_or_run_without_crashing(compiled, case):
    which, fi, pos, how, value = case
    prog = compiled[which]
    functions = mutate(prog, fi, pos, how, value)
    try:
        mutated = Program(prog.version, functions, prog.ints, prog.doubles, prog.strings,
                          prog.hosts, prog.entry, prog.type, prog.functions_used,
                          datatypes=prog.datatypes)
    except ExathunkError as err:
        assert err.message.startswith("malformed program")
        return
    # From bytes as a node reads it: the same verdict.
    mutated = Program.from_bytes(mutated.to_bytes())
    try:
        value = mutated.run(max_steps=200_000, max_heap=8 << 20, max_depth=20_000, timeout=10)
    except ExathunkError:
        return                                 # a typed error: fine
    assert all(abs(i) < NOT_AN_ADDRESS for i in ints_in(value)), value


def test_every_golden_program_still_verifies():
    # No false positive: every program of grammar/cases that compiles, read back from
    # its bytes (which verifies it, definite assignment included).
    from exathunk import compiler, parser, typecheck
    from exathunk.library import default_library
    lib = default_library()
    checked = 0
    for path in GOLDEN:
        try:
            module = typecheck.check_module(parser.parse(path.read_text(encoding="utf-8")), lib)
        except ExathunkError:
            continue
        for fuse in (True, False):
            prog = compiler.compile_module(module, lib, fuse=fuse)
            Program.from_bytes(prog.to_bytes())
        checked += 1
    assert checked > 100


# ---- source bytes that are not UTF-8 ------------------------------------------------

def test_source_bytes_not_utf8_are_a_parse_error_with_the_byte_offset():
    src = b'(+ 1\n  "\xc3\xa9" \xff 2)'
    with pytest.raises(ParseError, match=r"not valid UTF-8: byte 0xff at byte offset 12") as info:
        exathunk.compile(src)
    err = info.value
    assert err.offset == 12 and (err.line, err.column) == (2, 7)   # é is one column
    assert "^" in str(err)
    from exathunk import driver, parser
    for call in (driver.check, exathunk.evaluate, parser.parse):
        with pytest.raises(ParseError, match="byte offset 12"):
            call(src)
    # a truncated sequence at the very end
    with pytest.raises(ParseError, match="byte offset 4"):
        exathunk.compile(b"(+ 1\xe2\x82")
    # UTF-8 bytes are the same program as the text
    assert exathunk.evaluate('(len "\xc3\xa9")'.encode("latin-1")) == 1
    with pytest.raises(ParseError, match="not int"):
        exathunk.compile(5)


def test_node_answers_source_not_utf8_with_a_parse_error(serve):
    host, port, _ = serve
    msg = wire.encode_message("evaluate", wire.CALL, 1, wire.Service.evaluate_args(
        evalRequest=wire.make_request("(+ 1 2)")))
    bad = msg.replace(b"(+ 1 2)", b"(+ 1 \xff)")
    result = reply(send_raw(host, port, bad), "evaluate")
    assert result.err.kind == "ParseError"
    assert "byte offset 5" in result.err.message
    assert (result.err.line, result.err.column) == (1, 6)
    # the same through evaluateBatch and requestBid
    msg = wire.encode_message("evaluateBatch", wire.CALL, 1, wire.Service.evaluateBatch_args(
        evalRequests=[wire.make_request("(+ 1 2)"), wire.make_request("(+ 3 4)")]))
    result = reply(send_raw(host, port, msg.replace(b"(+ 1 2)", b"(+ 1 \xc3)")), "evaluateBatch")
    assert result.success[0].error.kind == "ParseError"
    assert "byte offset 5" in result.success[0].error.message
    assert wire.varcont_to_value(result.success[1].value) == 7
    msg = wire.encode_message("requestBid", wire.CALL, 1, wire.Service.requestBid_args(
        evalRequest=wire.make_request("(+ 1 2)")))
    result = reply(send_raw(host, port, msg.replace(b"(+ 1 2)", b"(+ 1 \xff)")), "requestBid")
    assert result.err.kind == "ParseError"


# ---- mutated frames -------------------------------------------------------------------

def test_missing_eval_request_is_a_declared_error(serve):
    host, port, _ = serve
    for name in ("evaluate", "submitEvalRequest", "requestBid"):
        msg = wire.encode_message(name, wire.CALL, 1, getattr(wire.Service, name + "_args")())
        result = reply(send_raw(host, port, msg), name)
        assert result.err.kind == "ExathunkError"
        assert result.err.message == "missing evalRequest"


def _messages() -> list:
    S = wire.Service
    prog = exathunk.compile("(map (lambda (x) (* x 2)) (range 0 5))")
    rt = T.RemoteThunk(id="abcdef", requestId="r1", digest="d")

    def m(name, **kw):
        return wire.encode_message(name, wire.CALL, 1, getattr(S, name + "_args")(**kw))
    return [
        m("evaluate", evalRequest=wire.make_request("(+ 1 2)", max_steps=1000,
                                                    request_id="abc")),
        m("evaluate", evalRequest=wire.make_request("(+ 1 2)", no_cache=True)),
        m("evaluate", evalRequest=T.EvalRequest(graph=wire.program_to_graph(prog))),
        m("evaluate", evalRequest=T.EvalRequest(programBytes=prog.to_bytes())),
        m("evaluate"),
        m("evaluateBatch", evalRequests=[wire.make_request("(+ 1 2)"),
                                         wire.make_request("(+ 1 3)")]),
        m("submitEvalRequest", evalRequest=wire.make_request("(+ 1 2)")),
        m("submitBatch", evalRequests=[wire.make_request("(+ 1 2)")]),
        m("requestBid", evalRequest=wire.make_request("(+ 1 2)")),
        m("getFuncDefs", funcIds=[T.FuncId(name="map"), T.FuncId(name="foldr")]),
        m("thunkGet", thunk=rt), m("thunkWait", thunk=rt, timeoutMs=1),
        m("thunkWaitAny", thunks=[rt, rt], timeoutMs=1), m("thunkCancel", thunk=rt),
        m("getStats"), m("getClassDefs"),
    ]


def _assert_no_internal_errors(host, port, seed, frames):
    """Send ``frames`` well-formed frames with 1-3 bytes changed past the header (the
    frame length kept): none may get an "internal error" reply."""
    messages = _messages()
    rng = random.Random(seed)
    internal = []
    for _ in range(frames):
        data = bytearray(rng.choice(messages))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(16, len(data))] = rng.randrange(256)
        got = send_raw(host, port, bytes(data), wait=3.0)
        if b"internal error" in got:
            internal.append((bytes(data), got))
    assert internal == [], f"{len(internal)} internal errors, e.g. {internal[0][1]!r}"


def test_mutated_frames_never_reach_an_internal_error(serve):
    # Bytes changed inside well-formed frames (the frame length kept): each gets a
    # declared reply or a closed connection, never an "internal error" reply.
    host, port, proc = serve
    _assert_no_internal_errors(host, port, seed=13, frames=600)
    assert proc.poll() is None
    with connect(host, port) as c:
        assert c.evaluate("(+ 2 2)") == 4


def test_string_field_not_utf8_is_a_declared_error(serve):
    # thriftpy2 hands a string that is not UTF-8 over as bytes; the node names the field
    host, port, _ = serve
    msg = wire.encode_message("evaluate", wire.CALL, 1, wire.Service.evaluate_args(
        evalRequest=wire.make_request("(+ 1 2)", request_id="rid-A")))
    result = reply(send_raw(host, port, msg.replace(b"rid-A", b"rid-\xff")), "evaluate")
    assert result.err.kind == "ExathunkError"
    assert result.err.message == "field evalRequest.requestId is not valid UTF-8 (byte offset 4)"
    rt = T.RemoteThunk(id="thunk-A")
    msg = wire.encode_message("thunkWaitAny", wire.CALL, 1, wire.Service.thunkWaitAny_args(
        thunks=[T.RemoteThunk(id="ok"), rt], timeoutMs=1))
    result = reply(send_raw(host, port, msg.replace(b"thunk-A", b"thunk\xc3(")), "thunkWaitAny")
    assert result.err.message == "field thunks[1].id is not valid UTF-8 (byte offset 5)"


@pytest.fixture(scope="module")
def broker_node():
    """A broker in front of one worker (both in this process, on loopback)."""
    from exathunk import broker, server
    worker = server.start(workers=1, io_timeout=2.0)
    try:
        b = broker.start(workers=[(worker.host, worker.port)], db_path=None, io_timeout=2.0)
        try:
            yield b.host, b.port
        finally:
            b.stop(5)
    finally:
        worker.stop(5)


def test_broker_batch_with_a_request_that_fails_to_compile(broker_node):
    host, port = broker_node
    msg = wire.encode_message("submitBatch", wire.CALL, 1, wire.Service.submitBatch_args(
        evalRequests=[wire.make_request("(+ 1"), wire.make_request("(+ 1 2)")]))
    result = reply(send_raw(host, port, msg), "submitBatch")
    assert result.err is None and len(result.success) == 2
    with connect(host, port) as c:
        assert c.evaluate("(+ 1 2)") == 3


def test_broker_mutated_frames_never_reach_an_internal_error(broker_node):
    host, port = broker_node
    _assert_no_internal_errors(host, port, seed=31, frames=300)
    with connect(host, port) as c:
        assert c.evaluate("(+ 2 2)") == 4
