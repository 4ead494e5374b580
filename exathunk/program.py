"""Program: the compiled, content-hashed, serialisable bytecode graph, and its verifier.

A Program is plain data: functions (name, arity, frame size, int32 code and a parallel
line table), constant pools (ints, doubles, strings), host function references (name,
signature, strictness), the entry function and the result type.  ``to_bytes`` writes
it with a magic and a format version; ``from_bytes`` reads it back and verifies it
(bounds, operand ranges, arities, jump targets, stack heights, and that every frame
slot is written on every path before it is read) so that hostile bytes
raise ExathunkError and never reach the engine ill-formed.  ``digest`` hashes the
canonical encoding without names and line tables, so whitespace, comments and
positions do not change it (the names of data types, constructors and fields do: a
run shows them to users).  ``run`` hands the program to the Cython engine.

Position tables: each function has ``lines`` and ``columns`` parallel to its code
(0: unknown).  A line word with the ``PRELUDE_LINE`` bit set is a line of prelude.xt,
not of the user's source: a run's error names such code "prelude" and never shows its
line against the user's file.  Format version 3 adds the column table (a version 2
program reads back with no columns).

Format version 2 adds the data types (``datatypes``: name, parameters, and per
constructor its name, field types as text and field names) after ``functions_used``;
constructor operands (kind "con") index their flattened constructor list.

Run limits and their defaults (override per run):
  DEFAULT_MAX_STEPS  reductions (function calls, applications and thunk entries, plus
                     one per cell visited when forcing or comparing structures)
  DEFAULT_MAX_HEAP   bytes of live heap after a garbage collection (the copying
                     collector's space grows to at most 1.5 x this, and needs a second
                     space of the same size while it copies)
  DEFAULT_MAX_DEPTH  frames on the engine's own control stack
"""

from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import InitVar, dataclass, field

from .errors import ExathunkError, UnknownFunctionError
from .opcodes import BRANCHES, OPERANDS, STACK, TERMINATORS, Op

FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)
# Set in a line-table word for code compiled from the prelude (bit 30: the word stays
# a non-negative i32 on the wire); the low bits are the prelude.xt line.
PRELUDE_LINE = 1 << 30
MAGIC = b"XTHK"

DEFAULT_MAX_STEPS = 250_000_000
DEFAULT_MAX_HEAP = 256 * 1024 * 1024
DEFAULT_MAX_DEPTH = 2_000_000

# Format bounds (well above anything the compiler makes).
MAX_ARITY = 1024
MAX_FRAME = 65536
MAX_CODE = 1 << 24
MAX_FUNCTIONS = 1 << 20
MAX_STACK = 1 << 16
MAX_DATATYPES = 1 << 16
MAX_CONSTRUCTORS = 1 << 20
MAX_PARAMS = 256
MAX_NAME = 4096

_OPS = {int(op): op for op in Op}


@dataclass
class HostRef:
    name: str
    signature: str
    strictness: tuple


@dataclass
class Constructor:
    """One constructor of a DataType: its name, each field's type as text over the
    type's parameters ("a", "(List a)", "Tree"), and the record field names ("" for a
    positional field)."""
    name: str
    field_types: tuple
    field_names: tuple

    @property
    def arity(self) -> int:
        return len(self.field_types)


@dataclass
class DataType:
    """A data type a program builds, matches or receives from a host function.

    Constructor operands of the code index the flattened list of every DataType's
    constructors, in order (``Program.constructors()``); a constructor's position
    within its own type is its tag (derived Ord compares tags first)."""
    name: str
    params: tuple
    constructors: tuple


@dataclass
class Function:
    name: str
    arity: int
    frame_size: int
    code: list
    lines: list
    max_stack: int = 0
    columns: list | None = None     # parallel to code; None: unknown (version 2)

    def position(self, pc: int):
        """(line, column, in_prelude) of code word ``pc``; line and column are None
        where unknown, the line is prelude.xt's when in_prelude."""
        if not self.lines:
            return None, None, False
        pc = min(max(pc, 0), len(self.lines) - 1)
        word = self.lines[pc]
        prelude = bool(word & PRELUDE_LINE)
        line = (word & ~PRELUDE_LINE) or None
        column = None
        if self.columns and len(self.columns) == len(self.lines):
            column = self.columns[pc] or None
        return line, column, prelude


@dataclass
class Program:
    version: int
    functions: list
    ints: list
    doubles: list
    strings: list
    hosts: list
    entry: int
    type: str
    functions_used: list = field(default_factory=list)
    datatypes: list = field(default_factory=list)
    # Only the compiler passes True: its output is well-formed by construction (the
    # tests verify it for every golden and generated program), and it has set each
    # function's max_stack itself, so the verifier's pass is skipped.  Every Program
    # made from bytes or from the wire is built without it, and so verified.
    trusted: InitVar[bool] = False

    def __post_init__(self, trusted=False):
        self._image = None
        self._image_lock = threading.Lock()
        self._digest = None
        # The Library whose host functions a run binds when run() is given none: the
        # one it was compiled with or loaded for.  Not part of the program's identity.
        self.library = None
        if not trusted:
            verify(self)

    # ---- identity
    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = hashlib.sha256(_encode(self, canonical=True)).hexdigest()
        return self._digest

    @property
    def host_functions(self) -> list:
        return [h.name for h in self.hosts]

    def constructors(self) -> list:
        """(DataType, tag, Constructor) for every constructor, by constructor index."""
        return [(d, tag, c) for d in self.datatypes for tag, c in enumerate(d.constructors)]

    def __eq__(self, other):
        return isinstance(other, Program) and self.to_bytes() == other.to_bytes()

    def __hash__(self):
        return hash(self.digest)

    def __repr__(self):
        return f"<Program {self.type} {len(self.functions)} functions {self.digest[:12]}>"

    # ---- bytes
    def to_bytes(self) -> bytes:
        return _encode(self, canonical=False)

    @classmethod
    def from_bytes(cls, data, library=None) -> "Program":
        """Read and verify a Program; bad bytes raise ExathunkError."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ExathunkError("Program.from_bytes needs bytes")
        prog = _decode(bytes(data))
        if library is not None:
            _bind_hosts(prog, library)
            prog.library = library
        return prog

    def __reduce__(self):
        """A Program pickles as its ``to_bytes()`` blob and is read back (and verified)
        by ``from_bytes``.  Its ``library`` is not pickled (host functions are Python
        callables on a node): a loaded Program runs against the default library unless
        its run is given one (as the Dask worker plugin's tasks do)."""
        return (Program.from_bytes, (self.to_bytes(),))

    # ---- running
    def disassemble(self) -> str:
        from .disasm import disassemble
        return disassemble(self)

    def run(self, max_steps=None, max_heap=None, max_depth=None, library=None, *,
            cancel=None, timeout=None):
        """Evaluate the program to normal form and return its value.

        ``cancel``: an ``exathunk._core.CancelToken``; calling its ``cancel()`` from any
        thread stops the run within about a millisecond with ``LimitExceeded``
        (``limit="cancelled"``).  ``timeout``: a wall-clock limit in seconds (a positive
        int or float, measured on the monotonic clock from the start of the
        evaluation); past it the run stops with ``LimitExceeded`` (``limit="timeout"``).
        Both are checked between steps: a host function call in progress is never
        interrupted, the run stops after it returns."""
        return self.run_with_stats(max_steps, max_heap, max_depth, library,
                                   cancel=cancel, timeout=timeout)[0]

    def run_with_stats(self, max_steps=None, max_heap=None, max_depth=None, library=None, *,
                       cancel=None, timeout=None):
        """Like ``run``, but returns (value, stats): steps, peak_heap, gc_runs, gc_time
        (seconds collecting), time (seconds)."""
        from . import _core
        limits = _limits(max_steps, max_heap, max_depth)
        hosts = _bind_hosts(self, library or self.library)
        return _core.run(self._engine_image(), hosts, *limits, cancel=cancel, timeout=timeout)

    def _engine_image(self):
        if self._image is None:
            from . import _core
            with self._image_lock:
                if self._image is None:
                    self._image = _core.Image(self)
        return self._image


def _limit(value, default, name):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ExathunkError(f"{name} must be a positive integer, not {value!r}")
    return min(value, 1 << 62)


def _limits(max_steps, max_heap, max_depth):
    return (_limit(max_steps, DEFAULT_MAX_STEPS, "max_steps"),
            _limit(max_heap, DEFAULT_MAX_HEAP, "max_heap"),
            _limit(max_depth, DEFAULT_MAX_DEPTH, "max_depth"))


# ---- host functions ----------------------------------------------------------------

def _bind_hosts(prog: Program, library):
    """(fn, strictness, result checker) per host reference, from the library."""
    if not prog.hosts:
        return []
    if library is None:
        from .library import default_library
        library = default_library()
    table = _data_table(prog)
    bound = []
    for h in prog.hosts:
        spec = library.lookup(h.name)
        if spec is None or spec.kind != "host" or spec.fn is None:
            raise UnknownFunctionError(f"host function {h.name!r} is not provided here")
        if tuple(spec.strictness) != tuple(h.strictness) or spec.signature != h.signature:
            raise UnknownFunctionError(
                f"host function {h.name!r} has a different signature here "
                f"({spec.signature}, not {h.signature})")
        bound.append((spec.fn, tuple(bool(s) for s in h.strictness),
                      _result_checker(h.name, h.signature, table)))
    return bound


def _parse_sexpr(text):
    """A type's text as nested tuples of atoms ("(List Int)" -> ("List", "Int"))."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    if len(tokens) > 10000:
        raise ExathunkError(f"bad signature {text[:100]!r}")
    stack = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) < 2:
                raise ExathunkError(f"bad signature {text[:100]!r}")
            done = stack.pop()
            stack[-1].append(tuple(done))
        else:
            stack[-1].append(tok)
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ExathunkError(f"bad signature {text[:100]!r}")
    return stack[0][0]


def _type_text(t) -> str:
    if isinstance(t, tuple):
        return "(" + " ".join(_type_text(x) for x in t) + ")"
    return t


def _result_type(signature: str):
    text = signature.strip()
    if text.startswith("(=>"):                              # (=> pred ... type)
        t = _parse_sexpr(text)[-1]
    else:                                                   # "Num a => type"
        t = _parse_sexpr(text.split("=>", 1)[1].strip() if "=>" in text else text)
    if isinstance(t, tuple) and t and t[0] == "->":
        return t[-1]
    return t


class _DataTable:
    """A program's data types as the host-value checker needs them: per type its
    parameters and constructors (flat constructor index, name, parsed field types),
    and every constructor by name (for a result whose declared type is a variable)."""

    def __init__(self, datatypes):
        self.types = {}          # type name -> (params, {con name: (index, fields)})
        self.by_con = {}         # con name -> (type name, index, fields)
        self._subst = {}
        index = 0
        for d in datatypes:
            cons = {}
            for c in d.constructors:
                fields = tuple(_parse_sexpr(t) for t in c.field_types)
                cons[c.name] = (index, fields)
                self.by_con.setdefault(c.name, (d.name, index, fields))
                index += 1
            self.types.setdefault(d.name, (tuple(d.params), cons))

    def fields(self, index, fields, params, args):
        """The constructor's field types with the type's parameters replaced by args."""
        key = (index, args)
        got = self._subst.get(key)
        if got is None:
            env = dict(zip(params, args))

            def sub(t):
                if isinstance(t, tuple):
                    return tuple(sub(x) for x in t)
                return env.get(t, t)
            got = tuple(sub(t) for t in fields)
            if len(self._subst) < 4096:
                self._subst[key] = got
        return got


_NO_DATA = None


def _data_table(prog) -> _DataTable:
    table = getattr(prog, "_data_table", None)
    if table is None:
        table = _DataTable(prog.datatypes)
        prog._data_table = table
    return table


def _result_checker(name, signature, table=None):
    rtype = _result_type(signature)
    if table is None:
        global _NO_DATA
        if _NO_DATA is None:
            _NO_DATA = _DataTable(())
        table = _NO_DATA

    def check(value):
        return _conform(value, rtype, name, table)
    return check


_BASE = frozenset(("Int", "Double", "Bool", "String"))


def _conform(value, t, name, table):
    """The host result as the engine expects it for declared type t, or EvaluationError.

    Iterative.  Ints, Doubles, Bools and Strings come back as themselves, a list as a
    new list, a value of a data type as the tuple (constructor index, [fields]) (a
    tuple never is a host value, so the engine can tell it apart)."""
    from .errors import EvaluationError
    from .values import Data

    def bad(what):
        return EvaluationError(f"host function {name!r} returned {what}, "
                               f"not a value of its declared result type")
    root = [None]
    work = [(value, t, root, 0)]
    while work:
        v, ty, holder, i = work.pop()
        if ty.__class__ is str:
            if ty == "Int":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise bad(type(v).__name__)
                if not -(1 << 63) <= v < (1 << 63):
                    raise EvaluationError(f"host function {name!r} returned an Int out of range")
                holder[i] = int(v)
                continue
            if ty == "Double":
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise bad(type(v).__name__)
                holder[i] = float(v)
                continue
            if ty == "Bool":
                if not isinstance(v, bool):
                    raise bad(type(v).__name__)
                holder[i] = v
                continue
            if ty == "String":
                if not isinstance(v, str):
                    raise bad(type(v).__name__)
                holder[i] = str(v)
                continue
            if ty[:1].islower():
                # a type variable: take the value's own type
                if isinstance(v, bool):
                    holder[i] = v
                elif isinstance(v, int):
                    work.append((v, "Int", holder, i))
                elif isinstance(v, float):
                    holder[i] = v
                elif isinstance(v, str):
                    holder[i] = str(v)
                elif isinstance(v, list):
                    work.append((v, ("List", "a"), holder, i))
                elif isinstance(v, Data):
                    found = table.by_con.get(v.constructor)
                    if found is None:
                        raise bad(f"the constructor {v.constructor!r}, which the program "
                                  f"does not know,")
                    params = table.types[found[0]][0]
                    work.append((v, (found[0],) + params if params else found[0], holder, i))
                elif isinstance(v, tuple):
                    raise EvaluationError(f"host function {name!r} returned a tuple; "
                                          f"a list is a Python list")
                else:
                    raise bad(type(v).__name__)
                continue
            head, args = ty, ()
        elif ty and ty[0] == "List" and len(ty) == 2:
            if isinstance(v, list):
                out = [None] * len(v)
                holder[i] = out
                elem = ty[1]
                for j, item in enumerate(v):
                    work.append((item, elem, out, j))
                continue
            if isinstance(v, tuple):
                raise EvaluationError(f"host function {name!r} returned a tuple; "
                                      f"a {_type_text(ty)} is a Python list")
            raise bad(type(v).__name__)
        elif ty and ty[0].__class__ is str and ty[0][:1].isupper():
            head, args = ty[0], ty[1:]
        else:
            raise bad(type(v).__name__)
        # a data type
        info = table.types.get(head)
        if info is None or len(info[0]) != len(args) or head in _BASE:
            raise EvaluationError(f"host function {name!r} has a result type "
                                  f"{_type_text(ty)} that the program does not declare")
        if not isinstance(v, Data):
            if isinstance(v, tuple):
                raise EvaluationError(f"host function {name!r} returned a tuple; a value "
                                      f"of {_type_text(ty)} is an exathunk.Data")
            raise bad(type(v).__name__)
        con = info[1].get(v.constructor)
        if con is None:
            raise bad(f"the constructor {v.constructor!r}")
        index, fields = con
        if len(v.fields) != len(fields):
            raise EvaluationError(
                f"host function {name!r} returned {v.constructor} with {len(v.fields)} "
                f"field{'' if len(v.fields) == 1 else 's'}; {v.constructor} has {len(fields)}")
        if not fields:
            holder[i] = (index, ())
            continue
        out = [None] * len(fields)
        holder[i] = (index, out)
        if args:
            fields = table.fields(index, fields, info[0], args)
        for j, item in enumerate(v.fields):
            work.append((item, fields[j], out, j))
    return root[0]


# ---- encoding ----------------------------------------------------------------------

def _encode(prog: Program, canonical: bool, version: int = FORMAT_VERSION) -> bytes:
    """The program's bytes (``version`` 2: without the column table, for the tests of
    reading old blobs)."""
    out = bytearray()
    u32 = struct.Struct("<I").pack
    out += MAGIC
    out += struct.pack("<H", version)

    def s(text):
        b = text.encode("utf-8", "surrogatepass")
        out.extend(u32(len(b)))
        out.extend(b)

    out += u32(prog.entry)
    s(prog.type)
    out += u32(len(prog.ints))
    for v in prog.ints:
        out += struct.pack("<q", v)
    out += u32(len(prog.doubles))
    for v in prog.doubles:
        out += struct.pack("<d", v)
    out += u32(len(prog.strings))
    for v in prog.strings:
        s(v)
    out += u32(len(prog.hosts))
    for h in prog.hosts:
        s(h.name)
        s(h.signature)
        out += u32(len(h.strictness))
        out += bytes(1 if x else 0 for x in h.strictness)
    out += u32(len(prog.functions_used))
    for n in prog.functions_used:
        s(n)
    out += u32(len(prog.datatypes))
    for d in prog.datatypes:
        s(d.name)
        out += u32(len(d.params))
        for p in d.params:
            s(p)
        out += u32(len(d.constructors))
        for c in d.constructors:
            s(c.name)
            out += u32(len(c.field_types))
            for t, fname in zip(c.field_types, c.field_names):
                s(t)
                s(fname)
    out += u32(len(prog.functions))
    for f in prog.functions:
        s("" if canonical else f.name)
        out += u32(f.arity)
        out += u32(f.frame_size)
        out += u32(len(f.code))
        out += struct.pack(f"<{len(f.code)}i", *f.code)
        if not canonical:
            out += struct.pack(f"<{len(f.lines)}I", *f.lines)
            if version >= 3:
                cols = f.columns if f.columns and len(f.columns) == len(f.code) \
                    else [0] * len(f.code)
                out += struct.pack(f"<{len(cols)}I", *cols)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ExathunkError("program bytes are truncated")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def count(self, min_item_size: int, bound: int) -> int:
        n = self.u32()
        if n > bound or n * min_item_size > len(self.data) - self.pos:
            raise ExathunkError("program bytes are truncated or hold an impossible count")
        return n

    def str(self) -> str:
        n = self.count(1, 1 << 30)
        try:
            return self.take(n).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise ExathunkError("program bytes hold a malformed string") from None


def _decode(data: bytes) -> Program:
    r = _Reader(data)
    if r.take(4) != MAGIC:
        raise ExathunkError("not an exathunk program (bad magic)")
    version = struct.unpack("<H", r.take(2))[0]
    if version not in READABLE_VERSIONS:
        raise ExathunkError(f"unsupported program format version {version} "
                            f"(this exathunk reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))})")
    entry = r.u32()
    rtype = r.str()
    n = r.count(8, 1 << 24)
    ints = list(struct.unpack(f"<{n}q", r.take(8 * n)))
    n = r.count(8, 1 << 24)
    doubles = list(struct.unpack(f"<{n}d", r.take(8 * n)))
    n = r.count(4, 1 << 24)
    strings = [r.str() for _ in range(n)]
    n = r.count(12, 1 << 16)
    hosts = []
    for _ in range(n):
        name, sig = r.str(), r.str()
        k = r.count(1, MAX_ARITY)
        flags = r.take(k)
        if any(b > 1 for b in flags):
            raise ExathunkError("program bytes hold a bad strictness flag")
        hosts.append(HostRef(name, sig, tuple(bool(b) for b in flags)))
    n = r.count(4, 1 << 16)
    used = [r.str() for _ in range(n)]
    n = r.count(12, MAX_DATATYPES)
    datatypes = []
    total = 0
    for _ in range(n):
        dname = r.str()
        params = tuple(r.str() for _ in range(r.count(4, MAX_PARAMS)))
        ncons = r.count(8, MAX_CONSTRUCTORS)
        total += ncons
        if total > MAX_CONSTRUCTORS:
            raise ExathunkError("program bytes hold too many constructors")
        cons = []
        for _ in range(ncons):
            cname = r.str()
            nfields = r.count(8, MAX_ARITY)
            types, names = [], []
            for _ in range(nfields):
                types.append(r.str())
                names.append(r.str())
            cons.append(Constructor(cname, tuple(types), tuple(names)))
        datatypes.append(DataType(dname, params, tuple(cons)))
    n = r.count(16, MAX_FUNCTIONS)
    functions = []
    for _ in range(n):
        name = r.str()
        arity, frame, ncode = r.u32(), r.u32(), r.count(8, MAX_CODE)
        code = list(struct.unpack(f"<{ncode}i", r.take(4 * ncode)))
        lines = list(struct.unpack(f"<{ncode}I", r.take(4 * ncode)))
        columns = None
        if version >= 3:
            columns = list(struct.unpack(f"<{ncode}I", r.take(4 * ncode)))
        functions.append(Function(name, arity, frame, code, lines, columns=columns))
    if r.pos != len(data):
        raise ExathunkError("program bytes have trailing garbage")
    return Program(version, functions, ints, doubles, strings, hosts, entry, rtype, used,
                   datatypes)


# ---- verification ------------------------------------------------------------------

def _bad(fn, pc, why):
    return ExathunkError(f"malformed program: function {fn.name!r} at {pc}: {why}")


def verify(prog: Program) -> None:
    """Check everything the engine relies on; sets each function's max_stack."""
    fns = prog.functions
    if not isinstance(fns, list) or not fns or len(fns) > MAX_FUNCTIONS:
        raise ExathunkError("malformed program: no functions")
    if not (0 <= prog.entry < len(fns)) or fns[prog.entry].arity != 0:
        raise ExathunkError("malformed program: bad entry function")
    if not all(isinstance(x, list) for x in (prog.ints, prog.doubles, prog.strings, prog.hosts)):
        raise ExathunkError("malformed program: bad constant pools")
    for v in prog.ints:
        if not (type(v) is int and -(1 << 63) <= v < (1 << 63)):
            raise ExathunkError("malformed program: bad Int constant")
    for v in prog.doubles:
        if not isinstance(v, float):
            raise ExathunkError("malformed program: bad Double constant")
    for v in prog.strings:
        if not isinstance(v, str):
            raise ExathunkError("malformed program: bad String constant")
    for h in prog.hosts:
        if not (isinstance(h, HostRef) and isinstance(h.name, str)
                and isinstance(h.signature, str) and isinstance(h.strictness, tuple)
                and all(isinstance(x, bool) for x in h.strictness)) \
                or len(h.strictness) > MAX_ARITY:
            raise ExathunkError("malformed program: bad host reference")
    if not (isinstance(prog.functions_used, list)
            and all(isinstance(n, str) for n in prog.functions_used)):
        raise ExathunkError("malformed program: bad functions_used")
    if not isinstance(prog.entry, int) or not isinstance(prog.type, str):
        raise ExathunkError("malformed program: bad entry or type")
    con_arities = _verify_datatypes(prog.datatypes)
    arities = []
    for f in fns:
        if not (isinstance(f, Function) and type(f.arity) is int and type(f.frame_size) is int
                and isinstance(f.name, str) and isinstance(f.code, list)
                and isinstance(f.lines, list)
                and (f.columns is None or isinstance(f.columns, list))):
            raise ExathunkError("malformed program: bad function record")
        try:   # every code word an int32, every line a uint32 (checked in C)
            struct.pack(f"<{len(f.code)}i", *f.code)
            struct.pack(f"<{len(f.lines)}I", *f.lines)
            if f.columns is not None:
                struct.pack(f"<{len(f.columns)}I", *f.columns)
        except struct.error:
            raise ExathunkError(f"malformed program: function {f.name!r} has bad code words") from None
        if not (0 <= f.arity <= MAX_ARITY and f.arity <= f.frame_size <= MAX_FRAME):
            raise ExathunkError(f"malformed program: function {f.name!r} has a bad frame")
        if (len(f.code) != len(f.lines) or not f.code or len(f.code) > MAX_CODE
                or f.columns is not None and len(f.columns) != len(f.code)):
            raise ExathunkError(f"malformed program: function {f.name!r} has bad code")
        arities.append(f.arity)
    for f in fns:
        f.max_stack = _verify_code(prog, f, arities, con_arities)


def _name_ok(text, allow_empty=False) -> bool:
    """A name a program may carry: a str of printable characters, no parentheses."""
    if not isinstance(text, str) or len(text) > MAX_NAME or (not text and not allow_empty):
        return False
    for ch in text:
        if ch in "()" or ch.isspace() and ch != " " or not ch.isprintable() and ch != " ":
            return False
    return True


def _type_ok(text) -> bool:
    """A field type's text: a well-formed s-expression of names."""
    if not isinstance(text, str) or not text or len(text) > MAX_NAME:
        return False
    if any(not ch.isprintable() and ch != " " for ch in text):
        return False
    try:
        _parse_sexpr(text)
    except ExathunkError:
        return False
    return True


def _verify_datatypes(datatypes) -> list:
    """Check the data types; the arity of every constructor, by constructor index."""
    def bad(why):
        return ExathunkError(f"malformed program: {why}")
    if not isinstance(datatypes, list) or len(datatypes) > MAX_DATATYPES:
        raise bad("bad datatypes")
    arities = []
    type_names = set()
    con_names = set()
    for d in datatypes:
        if not (isinstance(d, DataType) and _name_ok(d.name)
                and isinstance(d.params, (tuple, list))
                and isinstance(d.constructors, (tuple, list))):
            raise bad("bad data type record")
        if d.name in type_names:
            raise bad(f"data type {d.name!r} declared twice")
        type_names.add(d.name)
        if len(d.params) > MAX_PARAMS or len(set(d.params)) != len(d.params) or not all(
                _name_ok(p) and " " not in p for p in d.params):
            raise bad(f"data type {d.name!r} has bad parameters")
        for c in d.constructors:
            if not (isinstance(c, Constructor) and _name_ok(c.name)
                    and isinstance(c.field_types, (tuple, list))
                    and isinstance(c.field_names, (tuple, list))):
                raise bad(f"data type {d.name!r} has a bad constructor record")
            if c.name in con_names:
                raise bad(f"constructor {c.name!r} declared twice")
            con_names.add(c.name)
            if len(c.field_types) > MAX_ARITY or len(c.field_names) != len(c.field_types):
                raise bad(f"constructor {c.name!r} has bad fields")
            if not all(_type_ok(t) for t in c.field_types) or not all(
                    _name_ok(n, allow_empty=True) for n in c.field_names):
                raise bad(f"constructor {c.name!r} has bad field types or names")
            arities.append(len(c.field_types))
            if len(arities) > MAX_CONSTRUCTORS:
                raise bad("too many constructors")
    return arities


# Per-opcode tables indexed by int, so that verification does no enum look-ups.
_KINDS = {int(op): OPERANDS[op] for op in Op}
_TERMINATOR = frozenset(int(op) for op in TERMINATORS)
_BRANCH = frozenset(int(op) for op in BRANCHES)
_EXACT = frozenset(int(op) for op in (Op.CALL, Op.TAILCALL, Op.MKTHUNK, Op.ALLOC_THUNK))
_PARTIAL = frozenset(int(op) for op in (Op.MKPAP, Op.ALLOC_PAP))
_APPLIES = frozenset(int(op) for op in (Op.APPLY, Op.TAILAPPLY))
_FUN, _CAF, _HOST, _MKCON = int(Op.FUN), int(Op.CAF), int(Op.HOST), int(Op.MKCON)
# The opcodes with frame-slot operands, by what they do with them: 0 STORE writes the
# slot of its first operand; 1 reads the slot of its first operand; 2 reads those of
# its first two (the compare-two-locals branches).  The others touch no slot.
def _slot_use(op):
    kinds = OPERANDS[op]
    if op == Op.STORE:
        return 0
    n = sum(1 for k in kinds if k == "slot")
    assert kinds[:n] == ("slot",) * n, op      # slot operands come first
    return n


_SLOTS = {int(op): _slot_use(op) for op in Op if "slot" in OPERANDS[op]}
# (pops, pushes, slot use or None) per opcode: one look-up per instruction.
_EFFECT_SLOTS = {int(op): (*STACK[op], _SLOTS.get(int(op))) for op in Op}


def _verify_code(prog, f, arities, con_arities=()) -> int:
    code = f.code
    ncode = len(code)
    nints, ndbls, nstrs, nhosts = len(prog.ints), len(prog.doubles), len(prog.strings), len(prog.hosts)
    nfn = len(arities)
    ncons = len(con_arities)
    frame = f.frame_size
    decoded = []
    starts = set()
    pc = 0
    while pc < ncode:
        op = code[pc]
        kinds = _KINDS.get(op)
        if kinds is None:
            raise _bad(f, pc, f"bad opcode {op}")
        k = len(kinds)
        if pc + k >= ncode:
            raise _bad(f, pc, "instruction runs past the end")
        starts.add(pc)
        decoded.append((pc, op, code[pc + 1:pc + 1 + k], kinds))
        pc += 1 + k
    for pc, op, ops, kinds in decoded:
        fn_arg = count = con_arg = None
        for kind, v in zip(kinds, ops):
            if kind == "slot":
                ok = 0 <= v < frame
            elif kind == "int":
                ok = 0 <= v < nints
            elif kind == "fn":
                ok = 0 <= v < nfn
                fn_arg = v
            elif kind == "count":
                ok = 0 <= v <= MAX_ARITY
                count = v
            elif kind == "target":
                ok = v > pc and v in starts     # forward only: loops go through calls
            elif kind == "dbl":
                ok = 0 <= v < ndbls
            elif kind == "str":
                ok = 0 <= v < nstrs
            elif kind == "imm":
                ok = v == 0 or v == 1
            elif kind == "host":
                ok = 0 <= v < nhosts
            elif kind == "con":
                ok = 0 <= v < ncons
                con_arg = v
            else:                   # field
                ok = 0 <= v < MAX_ARITY
            if not ok:
                raise _bad(f, pc, f"{Op(op).name} has a bad {kind} operand {v}")
        if op in _EXACT:
            if arities[fn_arg] != count:
                raise _bad(f, pc, f"{Op(op).name} with {count} arguments for arity {arities[fn_arg]}")
        elif op in _PARTIAL:
            if not (0 < count < arities[fn_arg]):
                raise _bad(f, pc, f"{Op(op).name} with {count} arguments for arity {arities[fn_arg]}")
        elif op == _FUN:
            if arities[fn_arg] < 1:
                raise _bad(f, pc, "FUN of an arity-0 function")
        elif op == _CAF:
            if arities[fn_arg] != 0:
                raise _bad(f, pc, "CAF of a function with parameters")
        elif op in _APPLIES:
            if count < 1:
                raise _bad(f, pc, "APPLY of no arguments")
        elif op == _HOST:
            if len(prog.hosts[ops[0]].strictness) != count:
                raise _bad(f, pc, "HOST call with the wrong number of arguments")
        elif op == _MKCON:
            if con_arities[con_arg] != count:
                raise _bad(f, pc, f"MKCON with {count} fields for a constructor of arity "
                                  f"{con_arities[con_arg]}")
    # Stack heights: every path agrees, never underflows, never falls off the end.
    # Definite assignment, in the same pass: ``assigned`` maps a pc to the bit set of
    # the frame slots written on every path to it (the parameters, which hold the
    # arguments or a thunk's captured variables, at entry; STORE adds its slot; where
    # paths meet, the intersection).  A slot read outside that set is refused: the
    # engine's fresh slots hold whatever an earlier frame left in the stack.  Every
    # jump goes forward (checked above), so the control-flow graph is acyclic and one
    # pass in pc order, which sees every predecessor of an instruction before it,
    # reaches the fixpoint.  Direct calls enter after the strict-parameter prologue
    # (LOCAL_EVAL i; STORE i pairs), which only rewrites slots it reads, so its end
    # has the entry state too.  A frame of only parameters (every in-range slot
    # written at entry) needs no tracking.
    heights = {0: 0}
    track = f.frame_size > f.arity
    assigned = {0: (1 << f.arity) - 1}
    max_h = 0
    last = len(decoded) - 1
    effects = _EFFECT_SLOTS
    for idx, (pc, op, ops, kinds) in enumerate(decoded):
        h = heights.get(pc)
        if h is None:
            continue          # unreachable
        pops, pushes, use = effects[op]
        if track:
            a = assigned[pc]
        else:
            a = use = None
        if use is not None:
            if use == 0:
                a |= 1 << ops[0]
            elif not (a >> ops[0]) & 1 or use == 2 and not (a >> ops[1]) & 1:
                slot = ops[0] if not (a >> ops[0]) & 1 else ops[1]
                raise _bad(f, pc, f"{Op(op).name} reads slot {slot} before it is "
                                  f"written on every path")
        if pops.__class__ is str:
            n = ops[-1]
            pops = n if pops == "n" else n + 1
        if h < pops:
            raise _bad(f, pc, f"{Op(op).name} underflows the stack")
        h2 = h - pops + pushes
        if h2 > max_h:
            max_h = h2
            if max_h > MAX_STACK:
                raise _bad(f, pc, "operand stack too deep")
        if op not in _TERMINATOR:
            if idx == last:
                raise _bad(f, pc, "code falls off the end")
            nxt = decoded[idx + 1][0]
            old = heights.get(nxt)
            if old is None:
                heights[nxt] = h2
                if track:
                    assigned[nxt] = a
            elif old != h2:
                raise _bad(f, pc, "stack heights disagree where paths meet")
            elif track:
                assigned[nxt] &= a
        if op in _BRANCH:
            t = ops[-1]
            old = heights.get(t)
            if old is None:
                heights[t] = h2
                if track:
                    assigned[t] = a
            elif old != h2:
                raise _bad(f, pc, "stack heights disagree where paths meet")
            elif track:
                assigned[t] &= a
    return max_h + 1


# Per-opcode (size, pops, pushes, falls through, branches) for stack_need: one look-up
# per instruction.  pops may be "n" (the count operand, the last) or "n+1", as in STACK.
def _shape(op):
    pops, pushes = STACK[op]
    return (1 + len(OPERANDS[op]), pops, pushes, op not in TERMINATORS, op in BRANCHES)


_SHAPE = {int(op): _shape(op) for op in Op}


def stack_need(code) -> int:
    """The max_stack that _verify_code computes, for code already known well-formed
    (the compiler's own): only the stack-height pass, no range checks."""
    heights = {0: 0}
    max_h = 0
    pc = 0
    ncode = len(code)
    while pc < ncode:
        size, pops, pushes, falls, branches = _SHAPE[code[pc]]
        nxt = pc + size
        h = heights.get(pc)
        if h is not None:          # else unreachable
            if pops.__class__ is str:
                n = code[nxt - 1]
                pops = n if pops == "n" else n + 1
            h = h - pops + pushes
            if h > max_h:
                max_h = h
            if falls:
                heights[nxt] = h
            if branches:
                heights[code[nxt - 1]] = h
        pc = nxt
    return max_h + 1


# ---- the place of a run's error ------------------------------------------------------

TRACE_FRAMES = 5       # frames a failed run's trace shows

# the prelude's internal helpers, by the user-visible function they implement
_SUFFIXES = ("-int", "-double", "-poly", "-from", "-onto")


def user_function_name(name: str) -> str:
    """The name a user knows for a compiled function's name: "%sum-poly" -> "sum",
    "%length-from" -> "length", "prelude:nth" -> "nth", "f/lambda3" -> "f"."""
    base = name.split("/")[0]
    for prefix in ("prelude:", "%builtin:", "%host:", "%con:"):
        if base.startswith(prefix):
            return base[len(prefix):]
    if base.startswith("%") and len(base) > 1:
        base = base[1:].split("@")[0]
        for suffix in _SUFFIXES:
            if base.endswith(suffix) and len(base) > len(suffix):
                return base[:-len(suffix)]
    return base


def trace_frame(fobj: Function, pc: int):
    """The TraceFrame of function ``fobj`` evaluating code word ``pc``."""
    from .errors import TraceFrame
    line, column, in_prelude = fobj.position(pc)
    name = fobj.name.split("/")[0]
    shown = user_function_name(name)
    if name.startswith("%builtin:"):
        return TraceFrame("built-in", shown)
    if name.startswith("%host:"):
        return TraceFrame("host", shown)
    if name.startswith("%con:"):
        return TraceFrame("constructor", shown)
    if in_prelude or name.startswith("prelude:"):
        return TraceFrame("prelude", shown)
    if name.startswith("%main"):
        return TraceFrame("main", "", line, column)
    if name.startswith("%fuse@"):
        return TraceFrame("fused", "", line, column)
    if name.startswith("%"):
        # a specialised copy of a prelude function (fusion's "%map@2"): its code is
        # the user's call and lambda, so its positions are the user's
        return TraceFrame("prelude", shown, line, column)
    return TraceFrame("user", shown, line, column)


def failing_pc(fobj: Function, pc: int, innermost: bool) -> int:
    """The code word whose position is that of the instruction that failed (innermost
    frame, ``pc`` where the engine stopped) or of the call a frame is waiting in (``pc``
    is its return address).  The engine stops past the failing instruction, except at
    ``error`` and ``bottom``, which fail where they stand."""
    if innermost and 0 <= pc < len(fobj.code) and fobj.code[pc] in _IN_PLACE:
        starts, at = set(), 0
        while at < len(fobj.code) and at <= pc:
            starts.add(at)
            at += 1 + len(OPERANDS.get(_OPS.get(fobj.code[at]), ()))
        if pc in starts:
            return pc
    return max(pc - 1, 0)


_IN_PLACE = frozenset((int(Op.ERROR), int(Op.BOTTOM)))


def error_place(prog: Program, frames):
    """(line, column, trace) of a failed run from its active code frames ``frames``
    ((function index, pc), innermost first; the first is where it stopped): the place
    is the innermost position in the user's source (never a prelude line), the trace
    the innermost few frames, consecutive repeats shown once."""
    line = column = None
    trace = []
    for depth, (fn, pc) in enumerate(frames):
        if not 0 <= fn < len(prog.functions):
            continue
        fobj = prog.functions[fn]
        frame = trace_frame(fobj, failing_pc(fobj, pc, depth == 0))
        if line is None and frame.line and frame.kind in ("user", "main", "fused", "prelude"):
            line, column = frame.line, frame.column
        if len(trace) < TRACE_FRAMES and (not trace or trace[-1] != frame):
            trace.append(frame)
        if line is not None and len(trace) >= TRACE_FRAMES:
            break
    return line, column, trace
