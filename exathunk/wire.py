"""The wire mapping: exathunk objects <-> the Thrift structs of grammar/exathunk.thrift.

Owns loading the IDL (once, as thriftpy2 module ``exathunk_thrift``), the flat encodings
of recursive things (values as ValueNode lists, types as TypeNode lists, programs as
ProgramGraph), errors <-> declared exceptions, FuncSpec -> FuncDef and back to a Library,
and the bounded frame validator that both ends run on every frame before thriftpy2
decodes it (thriftpy2 has no decode limits: DESIGN §8).  Every walk here is iterative.
"""

from __future__ import annotations

import struct
from importlib import resources

import thriftpy2
from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TCyMemoryBuffer

from .errors import ExathunkError, LimitExceeded, RemoteError, error_class
from .library import LAZY, STRICT, FuncSpec, Library


def _load_idl():
    # The IDL is package data of exathunk.grammar, so an installed exathunk finds it
    # outside the checkout; as_file copes with zipped installs too.
    with resources.as_file(resources.files("exathunk.grammar").joinpath("exathunk.thrift")) as p:
        return thriftpy2.load(str(p), module_name="exathunk_thrift")


thrift = _load_idl()
Service = thrift.RemoteExecutionService

ValueNode = thrift.ValueNode
VarCont = thrift.VarCont
RunStats = thrift.RunStats
_INT, _DOUBLE, _BOOL, _STRING, _LIST = (thrift.ValueKind.INT, thrift.ValueKind.DOUBLE,
                                       thrift.ValueKind.BOOL, thrift.ValueKind.STRING,
                                       thrift.ValueKind.LIST)

# ----------------------------------------------------------------------------------------
# Values


def value_to_nodes(value) -> tuple[list, int]:
    """A host value (int, float, bool, str, nested lists) as (ValueNode list, root index).

    Breadth-first, so every child index is greater than its parent's: a reader can
    rebuild the value in one backward pass and a cycle is impossible by construction.
    """
    nodes = []
    pending = [value]
    i = 0
    while i < len(pending):
        v = pending[i]
        t = type(v)
        if t is int:
            nodes.append(ValueNode(kind=_INT, intValue=v))
        elif t is bool:
            nodes.append(ValueNode(kind=_BOOL, boolValue=v))
        elif t is float:
            nodes.append(ValueNode(kind=_DOUBLE, doubleValue=v))
        elif t is str:
            nodes.append(ValueNode(kind=_STRING, stringValue=v))
        elif t is list or t is tuple:
            start = len(pending)
            pending.extend(v)
            nodes.append(ValueNode(kind=_LIST, children=list(range(start, len(pending)))))
        else:
            raise ExathunkError(f"cannot send a value of Python type {t.__name__}")
        i += 1
    return nodes, 0


def nodes_to_value(nodes, root: int):
    """Rebuild a host value from its ValueNodes; malformed trees raise RemoteError."""
    n = len(nodes)
    if not 0 <= root < n:
        raise RemoteError(f"value root {root} out of range (0..{n - 1})")
    if n == 1:
        return _scalar(nodes[0], 0)
    built = [None] * n
    # Children must come after their parent (as value_to_nodes writes them), which makes
    # one backward pass enough and rules out cycles without a visited set.
    for i in range(n - 1, -1, -1):
        node = nodes[i]
        if node.kind == _LIST:
            kids = node.children or ()
            out = []
            for c in kids:
                if not (i < c < n):
                    raise RemoteError(f"value node {i}: child index {c} out of order or range")
                out.append(built[c])
            built[i] = out
        else:
            built[i] = _scalar(node, i)
    return built[root]


def _scalar(node, i):
    kind = node.kind
    if kind == _INT:
        v = node.intValue
    elif kind == _DOUBLE:
        v = node.doubleValue
    elif kind == _BOOL:
        v = node.boolValue
    elif kind == _STRING:
        v = node.stringValue
    elif kind == _LIST:
        if node.children:
            raise RemoteError(f"value node {i}: list with children as a lone node")
        return []
    else:
        raise RemoteError(f"value node {i}: unknown kind {kind!r}")
    if v is None:
        raise RemoteError(f"value node {i}: kind {kind} without its field")
    return v


def varcont_to_value(vc):
    return nodes_to_value(vc.nodes or [], vc.root if vc.root is not None else 0)


# ----------------------------------------------------------------------------------------
# Errors

_UNKNOWN_POS = None


def error_to_thrift(err: BaseException):
    """Any exception as the declared ExathunkException (kind, message, position)."""
    if isinstance(err, ExathunkError):
        return thrift.ExathunkException(
            kind=err.kind, message=err.message,
            line=err.line if isinstance(err.line, int) else None,
            column=err.column if isinstance(err.column, int) else None,
            limit=getattr(err, "limit", None) if isinstance(err, LimitExceeded) else None)
    # A bug or an unexpected failure on the node: still a declared exception, so that the
    # client gets an answer instead of a dropped connection.
    return thrift.ExathunkException(kind="ExathunkError",
                                    message=f"internal error: {type(err).__name__}: {err}")


def thrift_to_error(exc, source: str | None = None) -> ExathunkError:
    """A declared exception from the wire as the exathunk error class it names."""
    kind = getattr(exc, "kind", None) or "RemoteError"
    message = getattr(exc, "message", None) or kind
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if isinstance(exc, thrift.ExathunkException):
        cls = error_class(kind)
        if cls is LimitExceeded:
            err = LimitExceeded(message, limit=exc.limit, line=line, column=column)
        else:
            err = cls(message, line, column)
    elif isinstance(exc, thrift.Overloaded):
        err = Overloaded(message, retry_after_ms=exc.retryAfterMs, kind_name=kind)
    elif isinstance(exc, thrift.UnknownThunk):
        err = RemoteError(message)
    elif isinstance(exc, thrift.NotABroker):
        err = NotABroker(message)
    else:
        err = RemoteError(f"{kind}: {message}")
    if source is not None:
        err.with_source(source)
    return err


class Overloaded(RemoteError):
    """The node refused new work: its queue is full, or it is shutting down."""

    def __init__(self, message, retry_after_ms=0, kind_name="Overloaded", **kw):
        super().__init__(message, **kw)
        self.retry_after_ms = retry_after_ms
        self.shutting_down = kind_name == "ShuttingDown"


class NotABroker(RemoteError):
    """registerWorker was sent to a plain worker."""


def overloaded(message: str, retry_after_ms: int = 50, shutting_down: bool = False):
    return thrift.Overloaded(kind="ShuttingDown" if shutting_down else "Overloaded",
                             message=message, retryAfterMs=retry_after_ms)


# ----------------------------------------------------------------------------------------
# Types and function definitions

_CLASSES = ("Num", "Eq", "Ord", "Show")


def split_signature(sig: str) -> tuple[list[tuple[str, str]], str]:
    """``"(Eq a, Show b) => T"`` -> ([("Eq","a"), ("Show","b")], "T")."""
    if "=>" not in sig:
        return [], sig.strip()
    head, body = sig.split("=>", 1)
    head = head.strip()
    if head.startswith("(") and head.endswith(")"):
        head = head[1:-1]
    constraints = []
    for part in head.split(","):
        words = part.split()
        if len(words) != 2:
            raise ExathunkError(f"bad constraint {part.strip()!r} in signature {sig!r}")
        constraints.append((words[0], words[1]))
    return constraints, body.strip()


def type_text_to_nodes(text: str) -> list:
    """A type written as text ("(-> a (List a) Int)") as a pre-order TypeNode list."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    nodes = []
    # Each open form is [node index, head seen?, children]; iterative, no recursion.
    stack: list[list] = []
    pos = 0

    def add(node) -> int:
        nodes.append(node)
        idx = len(nodes) - 1
        if stack:
            stack[-1][2].append(idx)
        return idx

    while pos < len(tokens):
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            if pos >= len(tokens):
                raise ExathunkError(f"bad type {text!r}")
            head = tokens[pos]
            pos += 1
            if head == "->":
                kind = thrift.TypeKind.FUNCTION
            elif head == "List":
                kind = thrift.TypeKind.LIST
            else:
                raise ExathunkError(f"bad type {text!r}: unknown constructor {head!r}")
            idx = add(thrift.TypeNode(kind=kind, children=[]))
            stack.append([idx, kind, nodes[idx].children])
        elif tok == ")":
            if not stack:
                raise ExathunkError(f"bad type {text!r}: unbalanced")
            stack.pop()
        else:
            kind = thrift.TypeKind.VAR if tok[0].islower() else thrift.TypeKind.CON
            add(thrift.TypeNode(kind=kind, name=tok))
        if not stack:
            break
    if stack or pos != len(tokens) or not nodes:
        raise ExathunkError(f"bad type {text!r}")
    return nodes


def type_nodes_to_text(nodes, root: int = 0) -> str:
    """The inverse of type_text_to_nodes (iterative; indices validated)."""
    n = len(nodes)
    out: list[str] = []
    # Work items: an int is a node to print, a str is literal text.
    work: list = [root]
    budget = 4 * n + 4  # each node is printed once in a tree; more means sharing or a cycle
    while work:
        budget -= 1
        if budget < 0:
            raise RemoteError("type tree with a cycle or shared nodes")
        item = work.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        if not 0 <= item < n:
            raise RemoteError(f"type node index {item} out of range")
        node = nodes[item]
        if node.kind in (thrift.TypeKind.CON, thrift.TypeKind.VAR):
            out.append(node.name or "?")
            continue
        head = "->" if node.kind == thrift.TypeKind.FUNCTION else "List"
        kids = list(node.children or [])
        seq: list = ["(" + head]
        for k in kids:
            seq.append(" ")
            seq.append(k)
        seq.append(")")
        work.extend(reversed(seq))
    return "".join(out)


def func_def(spec: FuncSpec, library: Library | None = None):
    """The FuncDef a node advertises for one of its functions."""
    sig = spec.signature
    constraints, body = split_signature(sig)
    strictness = spec.strictness
    arity = len(strictness)
    if spec.kind == "prelude" and not strictness:
        # Prelude functions are written in exathunk: the arity comes from the type and
        # each parameter is lazy unless the compiler proves otherwise.
        from .types import arity_of, parse_signature
        arity = arity_of(parse_signature(sig))
        strictness = (LAZY,) * arity
    return thrift.FuncDef(
        name=spec.name, typeText=sig, typeNodes=type_text_to_nodes(body), typeRoot=0,
        constraints=[thrift.TypeConstraint(className=c, typeVar=v) for c, v in constraints],
        strictness=[thrift.Strictness.STRICT if s == STRICT else thrift.Strictness.LAZY
                    for s in strictness],
        arity=arity, origin=spec.kind, doc=spec.doc or None)


def _unavailable_here(name):
    def stub(*args):
        raise ExathunkError(f"{name} is a remote host function and runs only on its node")
    return stub


def library_from_func_defs(defs, base: Library | None = None) -> Library:
    """A client-side Library in which the remote node's host functions are known by type.

    Built-ins and prelude functions are the client's own; a remote host function gets a
    stub that cannot run here (the client only typechecks and compiles against it).
    """
    lib = base or Library()
    for d in defs:
        if d.origin != "host" and d.name in lib:
            continue
        flags = [s != thrift.Strictness.LAZY for s in (d.strictness or [])]
        lib.register(d.name, d.typeText, _unavailable_here(d.name), strict=flags)
    return lib


# ----------------------------------------------------------------------------------------
# Requests

def make_request(source=None, program=None, *, mode: str = "source", max_steps=None,
                 max_heap=None, max_depth=None, timeout_ms=None, timeout=None,
                 request_id=None, no_cache=None):
    """An EvalRequest for ``source`` text or a compiled ``program``."""
    if timeout is not None and timeout_ms is None:
        timeout_ms = int(timeout * 1000)
    req = thrift.EvalRequest(maxSteps=max_steps, maxHeap=max_heap, maxDepth=max_depth,
                             timeoutMs=timeout_ms, requestId=request_id, noCache=no_cache)
    if program is not None:
        if mode == "graph-struct":
            req.graph = program_to_graph(program)
        else:
            req.programBytes = program.to_bytes()
    else:
        if not isinstance(source, str):
            raise ExathunkError("an evaluation request needs source text or a Program")
        req.source = source
    return req


# ----------------------------------------------------------------------------------------
# Programs as graphs: the Program's plain data (exathunk.program) field for field.  The
# reverse direction builds a Program, whose constructor verifies every index, opcode and
# count, so an ill-formed graph is an ExathunkError before anything runs.

def _strictness(flags) -> list:
    return [thrift.Strictness.STRICT if s else thrift.Strictness.LAZY for s in flags]


def program_to_graph(program):
    return thrift.ProgramGraph(
        formatVersion=program.version,
        functions=[thrift.GraphFunction(name=f.name, arity=f.arity, frameSize=f.frame_size,
                                        code=list(f.code), lines=list(f.lines))
                   for f in program.functions],
        intConstants=list(program.ints), doubleConstants=list(program.doubles),
        stringConstants=list(program.strings),
        hostFunctions=[thrift.HostFunctionRef(name=h.name, signature=h.signature,
                                              strictness=_strictness(h.strictness))
                       for h in program.hosts],
        entry=program.entry, resultType=program.type,
        functionsUsed=list(program.functions_used))


def graph_to_program(graph, library: Library | None = None):
    """A ProgramGraph from the wire as a verified Program (ill-formed: ExathunkError)."""
    from .program import FORMAT_VERSION, Function, HostRef, Program
    if graph.formatVersion != FORMAT_VERSION:
        raise ExathunkError(f"unsupported program format version {graph.formatVersion} "
                            f"(this node reads version {FORMAT_VERSION})")
    try:
        functions = [Function(f.name or "", int(f.arity), int(f.frameSize), list(f.code),
                              list(f.lines)) for f in (graph.functions or [])]
        hosts = [HostRef(h.name or "", h.signature or "",
                         tuple(s != thrift.Strictness.LAZY for s in (h.strictness or [])))
                 for h in (graph.hostFunctions or [])]
        return Program(graph.formatVersion, functions, list(graph.intConstants or []),
                       [float(d) for d in (graph.doubleConstants or [])],
                       list(graph.stringConstants or []), hosts, int(graph.entry),
                       graph.resultType or "", list(graph.functionsUsed or []))
    except ExathunkError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as err:
        # A field left unset (None) or of the wrong shape: the same answer as any
        # other ill-formed graph.
        raise ExathunkError(f"malformed program graph: {err}") from None


# ----------------------------------------------------------------------------------------
# Bounded frames.  thriftpy2's decoder trusts every length it reads (it mallocs a claimed
# 2 GB string, and decodes nested structs by C recursion), so each frame is walked here
# first, with explicit bounds and an explicit stack, touching no more than the frame.

class FrameError(ExathunkError):
    """A frame is malformed or passes a bound: the connection that sent it is closed."""


_T_STOP, _T_BOOL, _T_BYTE, _T_DOUBLE, _T_I16, _T_I32, _T_I64 = 0, 2, 3, 4, 6, 8, 10
_T_STRING, _T_STRUCT, _T_MAP, _T_SET, _T_LIST = 11, 12, 13, 14, 15
# Fixed width of a value of each type; None for variable-width ones.
_FIXED = {_T_BOOL: 1, _T_BYTE: 1, _T_DOUBLE: 8, _T_I16: 2, _T_I32: 4, _T_I64: 8}
# The fewest bytes a value of each type can take (so a container's claimed size can be
# checked against what is left of the frame before any element is read).
_MIN_WIDTH = {**_FIXED, _T_STRING: 4, _T_STRUCT: 1, _T_MAP: 6, _T_SET: 5, _T_LIST: 5}
_VALID = frozenset(_MIN_WIDTH)

_i32 = struct.Struct(">i").unpack_from


class Bounds:
    """Decode bounds; the defaults suit requests of a few MB of graph or source."""
    __slots__ = ("max_frame", "max_string", "max_container", "max_depth")

    def __init__(self, max_frame=16 << 20, max_string=8 << 20, max_container=4 << 20,
                 max_depth=64):
        self.max_frame = max_frame
        self.max_string = max_string
        self.max_container = max_container
        self.max_depth = max_depth


DEFAULT_BOUNDS = Bounds()


def check_frame(buf, bounds: Bounds = DEFAULT_BOUNDS) -> None:
    """Walk one binary-protocol message in ``buf``; raise FrameError on any violation.

    Checks: strict message header, every string length within the frame and the
    string bound, every container's element count within the container bound and
    payable by the bytes left (count x the element type's minimum width), valid type
    codes, nesting within the depth bound, and the message ending exactly at the frame's
    end.  Fixed-width containers are skipped in O(1); the cost is linear in the number of
    variable-width items.
    """
    try:
        _walk(buf, bounds)
    except (IndexError, struct.error):
        raise FrameError("truncated message") from None


def _walk(buf, bounds: Bounds) -> None:
    end = len(buf)
    if end < 12:
        raise FrameError("frame too short for a message header")
    version = _i32(buf, 0)[0]
    if version & 0xFFFF0000 != 0x80010000:  # the strict binary protocol's version word
        raise FrameError("not a strict binary-protocol message")
    nlen = _i32(buf, 4)[0]
    if nlen < 0 or nlen > 256 or 8 + nlen + 4 > end:
        raise FrameError("bad method name length")
    pos = 8 + nlen + 4
    max_string, max_container, max_depth = (bounds.max_string, bounds.max_container,
                                           bounds.max_depth)
    fixed_width = _FIXED
    # Open containers: None for a struct; [element type, elements left] for a list or
    # set; [key type, value type, items left] for a map (keys and values counted apart).
    # Reading past the end raises IndexError/struct.error, turned into FrameError above.
    stack: list = [None]
    while stack:
        top = stack[-1]
        if top is None:
            # In a struct: read fields until STOP or a nested container; nested structs
            # are entered and left without leaving this loop (the common shape).
            while True:
                vtype = buf[pos]
                if vtype == 0:
                    pos += 1
                    stack.pop()
                    if stack and stack[-1] is None:
                        continue              # back in the enclosing struct
                    break
                pos += 3                      # type byte and field id
                width = fixed_width.get(vtype)
                if width is not None:
                    pos += width
                    continue
                if vtype == _T_STRING:
                    n = _i32(buf, pos)[0]
                    pos += 4
                    if n < 0 or n > max_string or pos + n > end:
                        raise FrameError(f"string length {n} out of bounds")
                    pos += n
                    continue
                if vtype == _T_STRUCT:
                    if len(stack) >= max_depth:
                        raise FrameError(f"nesting deeper than {max_depth}")
                    stack.append(None)
                    continue
                pos = _open(buf, pos, end, vtype, stack, max_container, max_depth)
                break
            continue
        if len(top) == 2:
            if top[1] == 0:
                stack.pop()
                continue
            top[1] -= 1
            vtype = top[0]
            if vtype == _T_STRUCT:
                if len(stack) >= max_depth:
                    raise FrameError(f"nesting deeper than {max_depth}")
                stack.append(None)
                continue
        else:
            if top[2] == 0:
                stack.pop()
                continue
            top[2] -= 1
            vtype = top[0] if top[2] % 2 else top[1]
        if vtype == _T_STRING:
            n = _i32(buf, pos)[0]
            pos += 4
            if n < 0 or n > max_string or pos + n > end:
                raise FrameError(f"string length {n} out of bounds")
            pos += n
            continue
        width = fixed_width.get(vtype)
        if width is not None:
            pos += width
            continue
        pos = _open(buf, pos, end, vtype, stack, max_container, max_depth)
    if pos != end:
        raise FrameError("trailing bytes after the message" if pos < end else
                         "truncated message")


def _open(buf, pos, end, vtype, stack, max_container, max_depth) -> int:
    """Push the struct or container that starts at pos; returns the position after its
    header.  Fixed-width containers are skipped whole."""
    if len(stack) >= max_depth:
        raise FrameError(f"nesting deeper than {max_depth}")
    if vtype == _T_STRUCT:
        stack.append(None)
        return pos
    if vtype == _T_LIST or vtype == _T_SET:
        etype = buf[pos]
        n = _i32(buf, pos + 1)[0]
        pos += 5
        if etype not in _VALID:
            raise FrameError(f"bad element type {etype}")
        if n < 0 or n > max_container or n * _MIN_WIDTH[etype] > end - pos:
            raise FrameError(f"container size {n} out of bounds")
        fixed = _FIXED.get(etype)
        if fixed is not None:
            return pos + n * fixed
        stack.append([etype, n])
        return pos
    if vtype == _T_MAP:
        ktype, vt = buf[pos], buf[pos + 1]
        n = _i32(buf, pos + 2)[0]
        pos += 6
        if ktype not in _VALID or vt not in _VALID:
            raise FrameError("bad map element type")
        if n < 0 or n > max_container or n * (_MIN_WIDTH[ktype] + _MIN_WIDTH[vt]) > end - pos:
            raise FrameError(f"map size {n} out of bounds")
        stack.append([ktype, vt, 2 * n])
        return pos
    raise FrameError(f"bad type code {vtype}")


# ----------------------------------------------------------------------------------------
# Messages (shared by the server and the client, which both frame by hand)

def encode_message(name: str, mtype: int, seqid: int, payload) -> bytes:
    """One framed binary-protocol message: 4-byte length, then the message."""
    buf = TCyMemoryBuffer()
    proto = TCyBinaryProtocol(buf)
    proto.write_message_begin(name, mtype, seqid)
    proto.write_struct(payload)
    body = buf.getvalue()
    return len(body).to_bytes(4, "big") + body


def decoder(body: bytes):
    """A binary protocol reading from an already bounded and checked frame body."""
    return TCyBinaryProtocol(TCyMemoryBuffer(body), decode_response=True)


class Codec:
    """Reusable buffers and protocols for one connection (one message at a time): saves
    building a buffer and a protocol per message on the hot path."""

    __slots__ = ("_out", "_oprot", "_in", "_iprot")

    def __init__(self):
        self._out = TCyMemoryBuffer()
        self._oprot = TCyBinaryProtocol(self._out)
        self._in = TCyMemoryBuffer()
        self._iprot = TCyBinaryProtocol(self._in, decode_response=True)

    def encode(self, name: str, mtype: int, seqid: int, payload) -> bytes:
        out = self._out
        out.clean()
        self._oprot.write_message_begin(name, mtype, seqid)
        self._oprot.write_struct(payload)
        body = out.getvalue()
        return len(body).to_bytes(4, "big") + body

    def decoder(self, body: bytes):
        self._in.setvalue(body)
        return self._iprot


CALL, REPLY, EXCEPTION = TMessageType.CALL, TMessageType.REPLY, TMessageType.EXCEPTION

_TIMEVAL = struct.Struct("@ll")


def kernel_timeouts(sock, seconds: float) -> None:
    """Make ``sock`` blocking with receive and send timeouts kept by the kernel
    (SO_RCVTIMEO/SO_SNDTIMEO): a timed-out call raises BlockingIOError, and no poll()
    precedes each call as it does with Python's socket timeouts."""
    import socket
    sock.settimeout(None)
    tv = _TIMEVAL.pack(int(seconds), int((seconds - int(seconds)) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
