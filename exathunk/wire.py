"""The wire mapping: exathunk objects <-> the Thrift structs of grammar/exathunk.thrift.

Owns loading the IDL (once, as thriftpy2 module ``exathunk_thrift``), the flat encodings
of recursive things (values as ValueNode lists, data values included; types as TypeNode
lists; programs as ProgramGraph, data types included), errors <-> declared exceptions,
FuncSpec -> FuncDef, a Library's data types, classes and instances -> ClassDefs, and both
back to a client-side Library (``library_from_defs``), and the bounded frame validator
that both ends run on every frame before thriftpy2 decodes it (thriftpy2 has no decode
limits: DESIGN §8).  Every walk here is iterative.

Values: int, float, bool, str, list and ``exathunk.Data`` travel; a Python tuple is
never taken for a list (an ExathunkError says so: a pair is ``Data("Pair", (a, b))``).
"""

from __future__ import annotations

import struct
from importlib import resources

import thriftpy2
from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TCyMemoryBuffer

from .errors import (AuthenticationFailed, AuthenticationRequired, ExathunkError,
                     LimitExceeded, RemoteError, TraceFrame, error_class)
from .library import LAZY, STRICT, FuncSpec, Library
from .values import Data


def _idl_file():
    """The Thrift IDL: package data of exathunk.grammar, so an installed exathunk finds
    it outside the checkout.  A checkout's source tree, imported as it is (built in
    place), reads its own ../grammar/ instead: the tree has no exathunk.grammar (setup.py
    installs grammar/ under that name), and an exathunk.grammar found elsewhere (another
    checkout's editable install) may be another version of the IDL."""
    import pathlib
    beside = pathlib.Path(__file__).resolve().parent.parent / "grammar" / "exathunk.thrift"
    if beside.is_file():
        return beside
    return resources.files("exathunk.grammar").joinpath("exathunk.thrift")


IDL_SOURCE = str(_idl_file())


def _load_idl():
    # as_file copes with zipped installs too.
    with resources.as_file(_idl_file()) as p:
        return thriftpy2.load(str(p), module_name="exathunk_thrift")


thrift = _load_idl()
Service = thrift.RemoteExecutionService

ValueNode = thrift.ValueNode
VarCont = thrift.VarCont
RunStats = thrift.RunStats
_INT, _DOUBLE, _BOOL, _STRING, _LIST, _DATA = (
    thrift.ValueKind.INT, thrift.ValueKind.DOUBLE, thrift.ValueKind.BOOL,
    thrift.ValueKind.STRING, thrift.ValueKind.LIST, thrift.ValueKind.DATA)
_TK = thrift.TypeKind
_BASE_TYPES = frozenset(("Int", "Double", "Bool", "String"))

# ----------------------------------------------------------------------------------------
# Values


def value_to_nodes(value) -> tuple[list, int]:
    """A host value (int, float, bool, str, lists and exathunk.Data, nested) as
    (ValueNode list, root index).

    Breadth-first, so every child index is greater than its parent's: a reader can
    rebuild the value in one backward pass and a cycle is impossible by construction.
    A tuple (or any other Python type) is an ExathunkError.
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
        elif t is list:
            start = len(pending)
            pending.extend(v)
            nodes.append(ValueNode(kind=_LIST, children=list(range(start, len(pending)))))
        elif t is Data or isinstance(v, Data):
            start = len(pending)
            pending.extend(v.fields)
            nodes.append(ValueNode(kind=_DATA, constructor=v.constructor,
                                   children=list(range(start, len(pending)))))
        elif t is tuple:
            raise ExathunkError("cannot send a Python tuple: a list is a Python list, a "
                                "value of a data type an exathunk.Data (a pair is "
                                "Data('Pair', (a, b)))")
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
        kind = node.kind
        if kind == _LIST or kind == _DATA:
            kids = node.children or ()
            out = []
            for c in kids:
                if not (i < c < n):
                    raise RemoteError(f"value node {i}: child index {c} out of order or range")
                out.append(built[c])
            built[i] = out if kind == _LIST else Data(_constructor(node, i), out)
        else:
            built[i] = _scalar(node, i)
    return built[root]


def _constructor(node, i) -> str:
    name = node.constructor
    if not isinstance(name, str) or not name:
        raise RemoteError(f"value node {i}: a data value without its constructor")
    return name


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
    elif kind == _DATA:
        if node.children:
            raise RemoteError(f"value node {i}: data with fields as a lone node")
        return Data(_constructor(node, i))
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
        limited = isinstance(err, LimitExceeded)
        trace = [thrift.TraceFrame(kind=f.kind, name=f.name,
                                   line=f.line if isinstance(f.line, int) else None,
                                   column=f.column if isinstance(f.column, int) else None)
                 for f in (getattr(err, "trace", None) or [])] or None
        return thrift.ExathunkException(
            kind=err.kind, message=err.message,
            line=err.line if isinstance(err.line, int) else None,
            column=err.column if isinstance(err.column, int) else None,
            limit=getattr(err, "limit", None) if limited else None,
            trace=trace,
            limitValue=_limit_amount(err, "value") if limited else None,
            limitUsed=_limit_amount(err, "used") if limited else None)
    # A bug or an unexpected failure on the node: still a declared exception, so that the
    # client gets an answer instead of a dropped connection.
    return thrift.ExathunkException(kind="ExathunkError",
                                    message=f"internal error: {type(err).__name__}: {err}")


def _limit_amount(err, attr):
    """A LimitExceeded's value or used as the wire's i64 (a timeout in ms)."""
    v = getattr(err, attr, None)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if getattr(err, "limit", None) == "timeout":
        v = v * 1000.0
    v = int(v)
    return v if -(1 << 63) <= v < (1 << 63) else None


def thrift_to_error(exc, source: str | None = None) -> ExathunkError:
    """A declared exception from the wire as the exathunk error class it names."""
    kind = getattr(exc, "kind", None) or "RemoteError"
    message = getattr(exc, "message", None) or kind
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if isinstance(exc, thrift.ExathunkException):
        cls = error_class(kind)
        if cls is LimitExceeded:
            value, used = exc.limitValue, exc.limitUsed
            if exc.limit == "timeout":
                value = value / 1000.0 if value is not None else None
                used = used / 1000.0 if used is not None else None
            err = LimitExceeded(message, limit=exc.limit, value=value, used=used,
                                line=line, column=column)
        else:
            err = cls(message, line, column)
        err.trace = [TraceFrame(f.kind or "user", f.name or "", f.line, f.column)
                     for f in (exc.trace or [])]
    elif isinstance(exc, thrift.Overloaded):
        err = Overloaded(message, retry_after_ms=exc.retryAfterMs, kind_name=kind)
    elif isinstance(exc, thrift.UnknownThunk):
        err = RemoteError(message)
    elif isinstance(exc, thrift.NotABroker):
        err = NotABroker(message)
    elif isinstance(exc, thrift.AuthenticationError):
        err = (AuthenticationFailed if kind == "AuthenticationFailed"
               else AuthenticationRequired)(message)
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
    """A type written as text ("(-> a (List a) Int)", "(Maybe (Pair a Tree))") as a
    pre-order TypeNode list: base types are CON, other upper-case names DATA (a data
    type with its arguments as children), lower-case names VAR."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    nodes = []
    # Each open form is [node index, kind, children]; iterative, no recursion.
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
                node = thrift.TypeNode(kind=_TK.FUNCTION, children=[])
            elif head == "List":
                node = thrift.TypeNode(kind=_TK.LIST, children=[])
            elif head[:1].isupper() and head not in _BASE_TYPES:
                node = thrift.TypeNode(kind=_TK.DATA, name=head, children=[])
            else:
                raise ExathunkError(f"bad type {text!r}: unknown constructor {head!r}")
            idx = add(node)
            stack.append([idx, node.kind, node.children])
        elif tok == ")":
            if not stack:
                raise ExathunkError(f"bad type {text!r}: unbalanced")
            stack.pop()
        else:
            if tok[:1].islower() or tok[:1] == "_":
                add(thrift.TypeNode(kind=_TK.VAR, name=tok))
            elif tok in _BASE_TYPES:
                add(thrift.TypeNode(kind=_TK.CON, name=tok))
            elif tok[:1].isupper() and tok != "List":
                add(thrift.TypeNode(kind=_TK.DATA, name=tok, children=[]))
            else:
                raise ExathunkError(f"bad type {text!r}: unexpected {tok!r}")
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
        kind = node.kind
        if kind in (_TK.CON, _TK.VAR):
            if not node.name:
                raise RemoteError(f"type node {item}: a name is missing")
            out.append(node.name)
            continue
        kids = list(node.children or [])
        if kind == _TK.DATA:
            if not node.name or not node.name[:1].isupper():
                raise RemoteError(f"type node {item}: a data type without a proper name")
            if not kids:
                out.append(node.name)
                continue
            head = node.name
        elif kind == _TK.FUNCTION:
            if len(kids) < 2:
                raise RemoteError(f"type node {item}: a function type needs at least two "
                                  "parts")
            head = "->"
        elif kind == _TK.LIST:
            if len(kids) != 1:
                raise RemoteError(f"type node {item}: a list type has one element type")
            head = "List"
        else:
            raise RemoteError(f"type node {item}: unknown kind {kind!r}")
        seq: list = ["(" + head]
        for k in kids:
            seq.append(" ")
            seq.append(k)
        seq.append(")")
        work.extend(reversed(seq))
    return "".join(out)


def type_tree(text: str):
    """A type's text as the IDL's TypeTree (nodes root first, root 0)."""
    return thrift.TypeTree(nodes=type_text_to_nodes(text), root=0)


def type_tree_text(tree) -> str:
    """The text of a TypeTree from the wire (malformed: RemoteError)."""
    if tree is None:
        raise RemoteError("a type tree is missing")
    return type_nodes_to_text(tree.nodes or [], tree.root or 0)


def _scope(library):
    if library is None:
        return None
    from .typecheck import library_world
    return library_world(library).scope


def func_def(spec: FuncSpec, library: Library | None = None):
    """The FuncDef a node advertises for one of its functions (or instance methods)."""
    sig = spec.signature
    constraints, body = split_signature(sig)
    strictness = spec.strictness
    arity = len(strictness)
    if spec.kind == "prelude" and not strictness:
        # Prelude functions are written in exathunk: the arity comes from the type and
        # each parameter is lazy unless the compiler proves otherwise.  Their types may
        # name the prelude's data types (Pair, Maybe), hence the scope.
        from .types import arity_of, parse_signature
        scope = _scope(library or _default_library())
        arity = arity_of(parse_signature(sig, scope))
        strictness = (LAZY,) * arity
    return thrift.FuncDef(
        name=spec.name, typeText=sig, typeNodes=type_text_to_nodes(body), typeRoot=0,
        constraints=[thrift.TypeConstraint(className=c, typeVar=v) for c, v in constraints],
        strictness=[thrift.Strictness.STRICT if s == STRICT else thrift.Strictness.LAZY
                    for s in strictness],
        arity=arity, origin=spec.kind, doc=spec.doc or None)


def _default_library():
    from .library import default_library
    return default_library()


# ----------------------------------------------------------------------------------------
# Data types, classes and instances (getClassDefs)

def data_decl_text(info) -> str:
    """A DataInfo's declaration as the language writes it (parses back to the same type):
    "(data (Maybe a) (Nothing) (Just a))", "(data Point (Pt (px Double) (py Double)))"."""
    return _format_data(info.name, info.params,
                        [(con.name, con.field_names, info.field_type_texts(con))
                         for con in info.constructors])


def _format_data(name, params, constructors) -> str:
    """(data ...) text from its parts; ``constructors``: (name, field names or None,
    field type texts) each."""
    head = f"({name} {' '.join(params)})" if params else name
    parts = [f"(data {head}"]
    for con, names, texts in constructors:
        texts = list(texts)
        if names and texts and all(names):
            fields = " ".join(f"({n} {t})" for n, t in zip(names, texts))
            parts.append(f" ({con} {fields})")
        elif texts:
            parts.append(f" ({con} {' '.join(texts)})")
        else:
            parts.append(f" ({con})")
    parts.append(")")
    return "".join(parts)


def data_type_def(info):
    """A DataInfo as the DataTypeDef of ClassDefs (origin, text and trees included)."""
    from .types import class_names
    cons = []
    for con in info.constructors:
        texts = list(info.field_type_texts(con))
        names = list(con.field_names) if con.field_names is not None else [""] * len(texts)
        cons.append(thrift.ConstructorDef(name=con.name, fieldTypes=texts, fieldNames=names,
                                          fieldTypeTrees=[type_tree(t) for t in texts]))
    return thrift.DataTypeDef(name=info.name, params=list(info.params), constructors=cons,
                              origin=info.origin, declText=data_decl_text(info),
                              derives=class_names(info.derives))


def class_decl_text(info) -> str:
    from .pretty import to_source
    return to_source(info.decl) if info.decl is not None else (info.decl_text or "")


def class_def(info):
    """A ClassInfo as the IDL's ClassDef."""
    from .types import show_type
    methods = []
    for m in info.method_order:
        text = show_type(info.methods[m])
        constraints, body = split_signature(text)
        methods.append(thrift.MethodDef(
            name=m, typeText=text, type=type_tree(body),
            constraints=[thrift.TypeConstraint(className=c, typeVar=v)
                         for c, v in constraints],
            hasDefault=m in info.defaults))
    return thrift.ClassDef(name=info.name, param=info.param,
                           superclasses=list(info.supers), methods=methods,
                           origin=info.origin, declText=class_decl_text(info))


def instance_def(spec, cinfo, library: Library | None = None):
    """A Library's InstanceSpec as the IDL's InstanceDef (``cinfo``: its ClassInfo)."""
    order = [m for m in cinfo.method_order if m in spec.methods] if cinfo is not None         else sorted(spec.methods)
    return thrift.InstanceDef(
        className=spec.class_name, typeText=spec.type_text, type=type_tree(spec.type_text),
        head=spec.head, origin="host", methods=order,
        methodDefs=[func_def(spec.methods[m], library) for m in order],
        declText=f"(instance ({spec.class_name} {spec.type_text}))")


def class_defs(library: Library):
    """The ClassDefs a node advertises: the prelude's and the library's data types, the
    library's classes and the instances it implements in Python."""
    from .typecheck import library_world
    world = library_world(library)
    datas = [data_type_def(info) for info in world.data.values()
             if info.origin in ("prelude", "library")]
    classes = [class_def(info) for info in world.classes.values()
               if info.origin == "library"]
    _, _, instances = library.declarations()
    insts = [instance_def(spec, world.classes.get(spec.class_name), library)
             for spec in instances]
    return thrift.ClassDefs(dataTypes=datas, classes=classes, instances=insts)


def _unavailable_here(name):
    def stub(*args):
        raise ExathunkError(f"{name} is a remote host function and runs only on its node")
    return stub


def _flags_of(strictness) -> list:
    return [s != thrift.Strictness.LAZY for s in (strictness or [])]


def library_from_func_defs(defs, base: Library | None = None,
                           conflicts: list | None = None) -> Library:
    """A client-side Library in which the remote node's host functions are known by type.

    Built-ins and prelude functions are the client's own; a remote host function gets a
    stub that cannot run here (the client only typechecks and compiles against it).
    Signatures naming the node's data types or classes need them declared first
    (``library_from_defs`` does both).  ``conflicts``: a list that takes the name of
    every function ``base`` already has with another type (or cannot take), which is then
    skipped; without it such a function is an ExathunkError.
    """
    lib = base or Library()
    for d in defs:
        if d.origin != "host" and d.name in lib:
            continue
        if d.origin == "host" and "@" in (d.name or ""):
            continue                  # an instance method: comes with its instance
        old = lib.lookup(d.name)
        if old is not None and old.kind == "host" and old.signature == d.typeText \
                and tuple(old.strictness) == tuple(_flags_of(d.strictness)):
            continue
        if conflicts is not None and old is not None:
            conflicts.append(d.name)
            continue
        try:
            lib.register(d.name, d.typeText, _unavailable_here(d.name),
                         strict=_flags_of(d.strictness))
        except ExathunkError:
            if conflicts is None:
                raise
            conflicts.append(d.name)
    return lib


def library_from_defs(func_defs=(), defs=None, base: Library | None = None,
                      conflicts: list | None = None) -> Library:
    """A client-side Library that knows a node's data types, classes, instances and host
    functions, from its FuncDefs and ClassDefs, so that programs typecheck and compile
    here exactly as on the node.

    Data types and classes are declared with their declaration texts (the prelude's are
    the client's own); a name ``base`` already declares the same way is skipped, a
    different declaration of it is an ExathunkError.  Host functions and instance
    methods get stubs that raise "runs only on its node": the client never runs them.
    ``conflicts`` (a broker merging many nodes): a list that takes the name of every
    data type, class, function or instance ``base`` has differently or cannot take, which
    is then skipped instead of raising.
    """
    from .typecheck import library_world
    lib = base or Library()
    if defs is not None:
        for d in defs.dataTypes or []:
            if d.origin == "prelude":
                continue
            world = library_world(lib)
            have = world.data.get(d.name)
            try:
                if have is not None:
                    if data_decl_text(have) != _data_text_of(d):
                        raise ExathunkError(f"the node's data type {d.name} is declared "
                                            f"differently here ({data_decl_text(have)})")
                    continue
                lib.declare_data(d.declText)
            except ExathunkError:
                if conflicts is None:
                    raise
                conflicts.append(d.name)
        for c in defs.classes or []:
            world = library_world(lib)
            have = world.classes.get(c.name)
            try:
                if have is not None:
                    if _same_class(have, c):
                        continue
                    raise ExathunkError(f"the node's class {c.name} is declared "
                                        f"differently here ({class_decl_text(have)})")
                lib.declare_class(c.declText)
            except ExathunkError:
                if conflicts is None:
                    raise
                conflicts.append(c.name)
    library_from_func_defs(func_defs, lib, conflicts)
    if defs is not None:
        for inst in defs.instances or []:
            world = library_world(lib)
            if (inst.className, inst.head) in world.instances:
                continue
            methods = {m: _unavailable_here(f"{m}@{inst.className} {inst.head}")
                       for m in (inst.methods or [])}
            try:
                lib.register_instance(inst.className, inst.typeText,
                                      strict=_instance_strictness(inst), **methods)
            except ExathunkError:
                if conflicts is None:
                    raise
                conflicts.append(f"{inst.className} {inst.head}")
    return lib


def _instance_strictness(inst):
    """The ``strict`` a node passed to register_instance, recovered from the methods'
    FuncDefs (one flag for every parameter, or one flag per parameter of every method)."""
    flags = [tuple(_flags_of(m.strictness)) for m in (inst.methodDefs or [])]
    nonempty = [f for f in flags if f]
    if not nonempty:
        return True
    if all(f == nonempty[0] for f in flags):
        return list(nonempty[0])
    if all(len(set(f)) == 1 for f in nonempty) and len({f[0] for f in nonempty}) == 1:
        return nonempty[0][0]
    raise ExathunkError(f"the instance {inst.className} {inst.typeText}: its methods "
                        "differ in strictness, which register_instance cannot express")


def _data_text_of(d) -> str:
    """The canonical declaration text of a DataTypeDef (as data_decl_text writes it)."""
    return _format_data(d.name, d.params or (),
                        [(c.name, c.fieldNames or None, c.fieldTypes or ())
                         for c in d.constructors or []])


def _same_class(info, c) -> bool:
    from .types import show_type
    if info.param != c.param or list(info.supers) != list(c.superclasses or []):
        return False
    mine = [(m, show_type(info.methods[m]), m in info.defaults) for m in info.method_order]
    theirs = [(m.name, m.typeText, bool(m.hasDefault)) for m in (c.methods or [])]
    return mine == theirs


# ----------------------------------------------------------------------------------------
# Requests

def make_request(source=None, program=None, *, mode: str = "source", max_steps=None,
                 max_heap=None, max_depth=None, timeout_ms=None, timeout=None,
                 request_id=None, no_cache=None, sub_thunks=None, allow_unchecked=None):
    """An EvalRequest for ``source`` text or a compiled ``program`` (``sub_thunks``: a
    SubThunkPlan, set by a broker; ``allow_unchecked``: a broker may answer with a value
    nobody could check, marked verifiedBy "none", instead of Unverifiable)."""
    if timeout is not None and timeout_ms is None:
        timeout_ms = int(timeout * 1000)
    req = thrift.EvalRequest(maxSteps=max_steps, maxHeap=max_heap, maxDepth=max_depth,
                             timeoutMs=timeout_ms, requestId=request_id, noCache=no_cache,
                             subThunks=sub_thunks,
                             allowUnchecked=True if allow_unchecked else None)
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
                                        code=list(f.code), lines=list(f.lines),
                                        columns=list(f.columns) if f.columns else None)
                   for f in program.functions],
        intConstants=list(program.ints), doubleConstants=list(program.doubles),
        stringConstants=list(program.strings),
        hostFunctions=[thrift.HostFunctionRef(name=h.name, signature=h.signature,
                                              strictness=_strictness(h.strictness))
                       for h in program.hosts],
        entry=program.entry, resultType=program.type,
        functionsUsed=list(program.functions_used),
        dataTypes=[thrift.DataTypeDef(
            name=d.name, params=list(d.params),
            constructors=[thrift.ConstructorDef(name=c.name, fieldTypes=list(c.field_types),
                                                fieldNames=list(c.field_names))
                          for c in d.constructors])
            for d in getattr(program, "datatypes", None) or []])


def graph_to_program(graph, library: Library | None = None):
    """A ProgramGraph from the wire as a verified Program (ill-formed: ExathunkError)."""
    from .program import (READABLE_VERSIONS, Constructor, DataType, Function, HostRef,
                          Program)
    if graph.formatVersion not in READABLE_VERSIONS:
        raise ExathunkError(f"unsupported program format version {graph.formatVersion} "
                            f"(this node reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        functions = [Function(f.name or "", int(f.arity), int(f.frameSize), list(f.code),
                              list(f.lines),
                              columns=list(f.columns) if f.columns is not None else None)
                     for f in (graph.functions or [])]
        hosts = [HostRef(h.name or "", h.signature or "",
                         tuple(s != thrift.Strictness.LAZY for s in (h.strictness or [])))
                 for h in (graph.hostFunctions or [])]
        datatypes = [DataType(d.name or "", tuple(d.params or ()),
                              tuple(Constructor(c.name or "", tuple(c.fieldTypes or ()),
                                                tuple(c.fieldNames or ()))
                                    for c in (d.constructors or ())))
                     for d in (graph.dataTypes or [])]
        return Program(graph.formatVersion, functions, list(graph.intConstants or []),
                       [float(d) for d in (graph.doubleConstants or [])],
                       list(graph.stringConstants or []), hosts, int(graph.entry),
                       graph.resultType or "", list(graph.functionsUsed or []),
                       datatypes)
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
# Text fields.  thriftpy2 decodes a string field that is not UTF-8 as bytes instead of
# failing, so a hostile frame can put bytes wherever the code expects a str.  The server
# looks over each call's decoded arguments first and answers a declared error naming
# the field.  Two fields are left to their own checks: ``source`` (the compile path
# reads bytes as UTF-8 and reports the byte offset as a ParseError) and ``graph``
# (graph_to_program refuses any ill-typed field of a program).

_TEXT_EXEMPT = frozenset(("source", "graph"))


_TEXTUAL = {}      # struct class -> ((field name, kind, element spec), ...) worth a look


def _text_fields(cls):
    """A struct's fields that are or may hold strings: (name, kind, element spec);
    kind 11 a string, 12 a struct (spec its class), 15 a list or set (spec its
    element's), 13 a map (spec its (key, value) specs)."""
    got = _TEXTUAL.get(cls)
    if got is None:
        out = []
        for _, fspec in sorted(cls.thrift_spec.items()):
            ttype, name = fspec[0], fspec[1]
            if name in _TEXT_EXEMPT:
                continue
            if ttype == 11:
                out.append((name, 11, None))
            elif ttype == 12:
                out.append((name, 12, fspec[2]))
            elif ttype in (14, 15):
                elem = fspec[2]
                if (elem[0] if elem.__class__ is tuple else elem) in (11, 12, 13, 14, 15):
                    out.append((name, 15, elem))
            elif ttype == 13:
                out.append((name, 13, fspec[2]))
        got = _TEXTUAL[cls] = tuple(out)
    return got


def _first_bytes(value, path):
    """(path, bytes) of the first undecoded string in the struct ``value``."""
    work = [(value, 12, None, path)]
    while work:
        v, kind, spec, where = work.pop()
        if kind == 11:
            if v.__class__ is not str:
                return where, v
            continue
        if kind == 12:
            for name, k, sub in _text_fields(v.__class__):
                fv = getattr(v, name, None)
                if fv is not None:
                    work.append((fv, k, sub, f"{where}.{name}" if where else name))
            continue
        items = v.items() if kind == 13 else None
        if kind == 15:
            et = spec[0] if spec.__class__ is tuple else spec
            ek = 15 if et == 14 else et            # a set's elements as a list's
            sub = spec[1] if spec.__class__ is tuple else None
            for i, x in enumerate(v):
                if x is not None:
                    work.append((x, ek, sub, f"{where}[{i}]"))
        elif items is not None:
            (kt, vt) = spec
            for key, x in items:
                for part, pspec in ((key, kt), (x, vt)):
                    pt = pspec[0] if pspec.__class__ is tuple else pspec
                    if part is not None and pt in (11, 12, 13, 14, 15):
                        work.append((part, 15 if pt == 14 else pt,
                                     pspec[1] if pspec.__class__ is tuple else None,
                                     f"{where}[{key!r}]"))
    return None


def _any_bytes(value) -> bool:
    """Whether the struct ``value`` holds an undecoded string (the fast check)."""
    work = [value]
    pop, push = work.pop, work.append
    while work:
        v = pop()
        for name, kind, spec in _text_fields(v.__class__):
            fv = getattr(v, name, None)
            if fv is None:
                continue
            if kind == 11:
                if fv.__class__ is not str:
                    return True
            elif kind == 12:
                push(fv)
            else:
                return _first_bytes(value, "") is not None     # containers: the full walk
    return False


def undecoded_text(args, body=None):
    """A declared error for the first string field of a call's decoded arguments that
    arrived as bytes (not UTF-8), or None when every one is text.  ``body``: the frame
    it was decoded from; one that is ASCII after the version word (0x8001...) holds no
    bytes that are not UTF-8, and is not looked over."""
    if body is not None and body[4:].isascii():
        return None
    if not _any_bytes(args):
        return None
    found = _first_bytes(args, "")
    if found is None:
        return None
    path, data = found
    try:
        bytes(data).decode("utf-8")
        at = None
    except UnicodeDecodeError as err:
        at = err.start
    except TypeError:
        at = None
    where = f" (byte offset {at})" if at is not None else ""
    return ExathunkError(f"field {path} is not valid UTF-8{where}")


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
