"""Hostile input on the socket: garbage, truncated frames, lying length prefixes, huge
container headers in tiny frames, deep nesting, ill-formed programs.  Each gets an
error reply or a closed connection, while an honest client keeps being served and the
server's memory stays flat."""

import random
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from exathunk import server, wire
from exathunk.client import connect

T = wire.thrift


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def node():
    handle = server.start(workers=2, io_timeout=2.0)
    yield handle
    handle.stop(5)


def send_raw(node, data: bytes, shut_write: bool = True, wait: float = 5.0) -> bytes:
    """Send bytes, then read until the server closes or answers; returns what came back."""
    with socket.create_connection((node.host, node.port), timeout=wait) as s:
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""                      # the server already closed on us: fine
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


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def header(name: bytes = b"evaluate", seqid: int = 1) -> bytes:
    return struct.pack(">I", 0x80010001) + struct.pack(">i", len(name)) + name + \
        struct.pack(">i", seqid)


def decode_reply(data: bytes, name: str):
    assert len(data) >= 4
    body = data[4:]
    iprot = wire.decoder(body)
    api, mtype, _ = iprot.read_message_begin()
    assert api == name and mtype == wire.REPLY
    result = getattr(wire.Service, name + "_result")()
    iprot.read_struct(result)
    return result


# Each: a complete byte string that a server must refuse (closing the connection).
HOSTILE = {
    "garbage": bytes(random.Random(7).randrange(256) for _ in range(3000)),
    "frame_length_2GB": struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 64,
    "negative_frame_length": struct.pack(">i", -5) + b"\x00" * 16,
    "truncated_frame": struct.pack(">i", 1000) + header() + b"\x0c\x00\x01",
    # evaluate(EvalRequest{source: <a string claiming 2 GB>}) in a 30-byte frame
    "string_length_2GB": frame(header() + b"\x0c\x00\x01" + b"\x0b\x00\x01"
                               + struct.pack(">i", 0x7FFFFFF0) + b"(+ 1 2)"),
    # evaluateBatch with a list header claiming 1,000,000 structs in a tiny frame
    "list_header_1M": frame(header(b"evaluateBatch") + b"\x0f\x00\x01\x0c"
                            + struct.pack(">i", 1_000_000) + b"\x00\x00"),
    "list_header_negative": frame(header(b"evaluateBatch") + b"\x0f\x00\x01\x0c"
                                  + struct.pack(">i", -1) + b"\x00"),
    # a map header claiming 2**31-1 entries
    "map_header_huge": frame(header() + b"\x0d\x00\x07\x0b\x0b"
                             + struct.pack(">i", 0x7FFFFFFF) + b"\x00"),
    # 100,000 nested structs
    "nesting_100k": frame(header() + b"\x0c\x00\x01" * 100_000 + b"\x00" * 100_000),
    # 100,000 nested lists of lists
    "list_nesting_100k": frame(header(b"evaluateBatch") + (b"\x0f\x00\x01\x0f"
                               + struct.pack(">i", 1)) * 1 + (b"\x0f" + struct.pack(">i", 1)) * 100_000),
    "bad_type_code": frame(header() + b"\x63\x00\x01\x00\x00"),
    "not_strict_binary": frame(b"\x00\x00\x00\x08evaluate\x01\x00\x00\x00\x01\x00"),
    "trailing_garbage": frame(header(b"getStats") + b"\x00" + b"junk"),
    "reply_instead_of_call": frame(struct.pack(">I", 0x80010002) + struct.pack(">i", 8)
                                   + b"getStats" + struct.pack(">i", 1) + b"\x00"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_frame_closes_the_connection(node, name):
    got = send_raw(node, HOSTILE[name])
    assert got == b""                  # closed without a reply (nothing to answer)
    with connect(node.host, node.port) as c:
        assert c.evaluate("(+ 1 2)") == 3


def test_unknown_method_gets_an_application_exception(node):
    got = send_raw(node, frame(header(b"noSuchMethod") + b"\x00"))
    iprot = wire.decoder(got[4:])
    api, mtype, _ = iprot.read_message_begin()
    assert api == "noSuchMethod" and mtype == wire.EXCEPTION


def _call(node, name, **args) -> object:
    args_obj = getattr(wire.Service, name + "_args")(**args)
    return decode_reply(send_raw(node, wire.encode_message(name, wire.CALL, 1, args_obj)),
                        name)


def test_ill_formed_requests_get_declared_errors(node):
    # No program at all, two programs, bytes that are not a program.
    for req in (T.EvalRequest(), T.EvalRequest(source="1", programBytes=b"x"),
                T.EvalRequest(programBytes=b"XTHK\x01\x00garbage")):
        result = _call(node, "evaluate", evalRequest=req)
        assert result.success is None and result.err.kind == "ExathunkError"
    # A missing argument struct altogether.
    result = _call(node, "evaluate")
    assert result.err is not None


def _graph(**changes):
    import exathunk
    g = wire.program_to_graph(exathunk.compile("(map (lambda (x) (* x 2)) (range 0 5))"))
    for k, v in changes.items():
        setattr(g, k, v)
    return g


@pytest.mark.parametrize("mutate", [
    lambda g: setattr(g, "entry", 99),
    lambda g: setattr(g, "entry", -1),
    lambda g: setattr(g, "entry", None),
    lambda g: setattr(g, "functions", []),
    lambda g: setattr(g.functions[0], "code", [12345] + g.functions[0].code[1:]),
    lambda g: setattr(g.functions[0], "code", [2 ** 31 - 1] * len(g.functions[0].code)),
    lambda g: setattr(g.functions[0], "lines", []),
    lambda g: setattr(g.functions[0], "frameSize", -3),
    lambda g: setattr(g.functions[0], "arity", 100000),
    lambda g: setattr(g, "intConstants", []),
    lambda g: setattr(g, "stringConstants", None),
    lambda g: setattr(g, "formatVersion", 77),
    lambda g: [setattr(f, "code", [c if i % 3 else (c + 1) for i, c in enumerate(f.code)])
               for f in g.functions],
], ids=lambda f: "")
def test_ill_formed_graph_is_an_error_reply(node, mutate):
    g = _graph()
    mutate(g)
    result = _call(node, "evaluate", evalRequest=T.EvalRequest(graph=g))
    if result.success is not None:
        # A mutation that happens to leave a well-formed program may run: it must be
        # a proper value then, never a crash.
        assert result.success.nodes
    else:
        assert result.err.kind in ("ExathunkError", "EvaluationError", "LimitExceeded",
                                   "UnknownFunctionError")
    with connect(node.host, node.port) as c:
        assert c.evaluate("(+ 2 2)") == 4


def test_well_formed_graph_runs(node):
    result = _call(node, "evaluate", evalRequest=T.EvalRequest(graph=_graph()))
    assert wire.varcont_to_value(result.success) == [0, 2, 4, 6, 8]


def test_fuzzed_frames_never_take_the_server_down(node):
    good = wire.encode_message("evaluate", wire.CALL, 1,
                               wire.Service.evaluate_args(evalRequest=wire.make_request(
                                   "(+ 1 2)", max_steps=1000, request_id="abc")))
    rng = random.Random(1234)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(4, len(data))
            data[i] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(4, len(data))]
            data[:4] = struct.pack(">i", len(data) - 4)
        send_raw(node, bytes(data), wait=2.0)
    with connect(node.host, node.port) as c:
        assert c.evaluate("(+ 1 2)") == 3


def test_honest_client_is_served_throughout_and_memory_stays_flat(node):
    stop = threading.Event()
    served, wrong = [0], []

    def honest():
        with connect(node.host, node.port) as c:
            i = 0
            while not stop.is_set() and i < 100_000:
                i += 1
                got = c.evaluate(f"(+ {i} 1)")
                if got != i + 1:
                    wrong.append((i, got))
                served[0] += 1

    # Warm up first, so that allocator pools and caches do not count as growth.
    for data in HOSTILE.values():
        send_raw(node, data)
    before = rss_mb()
    t = threading.Thread(target=honest)
    t.start()
    try:
        for _ in range(5):
            for data in HOSTILE.values():
                send_raw(node, data)
            # A slow trickle of a huge claimed frame: memory must follow what arrives.
            with socket.create_connection((node.host, node.port), timeout=5) as s:
                s.sendall(struct.pack(">i", 16 << 20) + b"\x80\x01")
                time.sleep(0.05)
    finally:
        stop.set()
        t.join(30)
    after = rss_mb()
    assert not t.is_alive() and wrong == [] and served[0] > 0
    assert after - before < 40, f"RSS grew from {before:.0f} MB to {after:.0f} MB"
    with connect(node.host, node.port) as c:
        assert c.stats()["rejectedFrames"] >= 5 * len(HOSTILE)


def test_oversized_frame_for_this_server_is_refused():
    handle = server.start(max_frame=1024)
    try:
        with connect(handle.host, handle.port) as c:
            assert c.evaluate("(+ 1 1)") == 2
            from exathunk import RemoteError
            with pytest.raises(RemoteError):
                c.evaluate("(+ 1 1) ; " + "x" * 5000)
            assert c.evaluate("(+ 1 2)") == 3      # reconnected
    finally:
        handle.stop(5)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(min_size=0, max_size=200))
def test_check_frame_accepts_or_raises_frame_error(data):
    body = header() + data
    try:
        wire.check_frame(body)
    except wire.FrameError:
        return
    # Accepted frames are within bounds, so thriftpy2 may decode them without harm.
    iprot = wire.decoder(body)
    iprot.read_message_begin()
    args = wire.Service.evaluate_args()
    try:
        iprot.read_struct(args)
    except Exception:
        pass
