"""The client of a RemoteExecutionService node (a worker or a broker: same interface).

Owns ``connect`` and ``Client``: blocking ``evaluate``, ``submit`` returning a
``concurrent.futures.Future`` (its ``cancel`` cancels the remote computation), batch
calls, ``func_defs``, ``stats`` and ``format_stats`` (the table of ``exathunk status``).
Frames are written and read by hand over a small pool of sockets, and every reply frame
is bounded and checked (wire.check_frame) before it is decoded: a broker talks to
workers it does not trust.  Server errors come back as the same exathunk classes with
their positions; a lost connection is RemoteError and the next call reconnects.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from concurrent.futures import Future

from . import auth, wire
from .errors import ExathunkError, RemoteError, UnknownFunctionError
from .library import Library

log = logging.getLogger("exathunk.client")
log.addHandler(logging.NullHandler())

T = wire.thrift
_mono = time.monotonic

# Replies can carry big values (a 1,000,000-element list is ~15 MB of ValueNodes).
REPLY_BOUNDS = wire.Bounds(max_frame=256 << 20, max_string=64 << 20,
                           max_container=64 << 20, max_depth=64)
# One blocking wait on the server; kept under the server's own cap (2 s) and well under
# any socket timeout.
WAIT_MS = 1000
MAX_POOLED = 8
# A pooled connection idle longer than this is checked (one non-blocking peek) before a
# call: the node may have closed it (idle timeout, or its connection cap making room).
PEEK_AFTER = 0.2
BATCH_CHUNK = 5000       # requests per batch call (a node takes up to 10,000 by default)
WAITER_IDLE = 10.0


class _NotDone(Exception):
    pass


def _method_table() -> dict:
    """Per method: (args class, result class, names of its declared exception fields)."""
    table = {}
    for name in wire.Service.thrift_services:
        result_cls = getattr(wire.Service, name + "_result")
        exc_fields = tuple(spec[1] for _, spec in sorted(result_cls.thrift_spec.items())
                           if spec[1] != "success")
        table[name] = (getattr(wire.Service, name + "_args"), result_cls, exc_fields)
    return table


_METHODS = _method_table()


class _Channel:
    """One TCP (or TLS) connection carrying one call at a time; with a token, it
    authenticates once, as it opens."""

    def __init__(self, host: str, port: int, timeout: float, check_replies: bool = True,
                 security: auth.ClientSecurity = auth.NO_CLIENT_SECURITY):
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as err:
            raise RemoteError(f"cannot connect to {host}:{port}: {err}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = security.ssl_context is not None
        if self.tls:
            self._tls_handshake(host, port, security.ssl_context)
        self.timeout = None
        self._set_timeout(timeout)
        self._seq = itertools.count(1)
        self._buf = bytearray()
        self.broken = False
        self.idle_since = _mono()
        self.check_replies = check_replies
        self._codec = wire.Codec()
        if security.token is not None:
            self._authenticate(security.token)

    def _tls_handshake(self, host: str, port: int, context) -> None:
        import ssl
        try:
            self.sock = auth.wrap_client(self.sock, context, host)
        except ssl.SSLCertVerificationError as err:
            self.sock.close()
            raise RemoteError(f"TLS to {host}:{port}: the server's certificate does not "
                              f"verify: {err.verify_message or err.reason}") from None
        except (ssl.SSLError, OSError) as err:
            self.sock.close()
            why = getattr(err, "reason", None) or err.strerror or str(err) or "closed"
            raise RemoteError(f"TLS to {host}:{port}: handshake failed ({why}): is the "
                              "node serving TLS (--tls-cert)?") from None

    def _authenticate(self, token: str) -> None:
        result = self.call("authenticate", _METHODS["authenticate"][0](token=token),
                           self.timeout)
        failure = result.authError or result.err
        if failure is not None:
            self.close()
            raise wire.thrift_to_error(failure)

    def _set_timeout(self, timeout: float) -> None:
        # Kernel timeouts (see wire.kernel_timeouts), set again only when they change;
        # a TLS socket keeps Python's (over kernel timeouts a blocking SSL read retries
        # inside OpenSSL and never times out).
        if timeout != self.timeout:
            if self.tls:
                self.sock.settimeout(timeout)
            else:
                wire.kernel_timeouts(self.sock, timeout)
            self.timeout = timeout

    def call(self, name: str, args, timeout: float):
        seqid = next(self._seq) & 0x7FFFFFFF
        frame = self._codec.encode(name, wire.CALL, seqid, args)
        try:
            self._set_timeout(timeout)
            self.sock.sendall(frame)
            body = self._read_frame()
        except (BlockingIOError, TimeoutError, socket.timeout):
            self.close()
            raise RemoteError(f"{name}: no reply within {timeout:.1f} s") from None
        except OSError as err:
            self.close()
            raise RemoteError(f"{name}: connection lost: {err}") from None
        try:
            if self.check_replies:
                wire.check_frame(body, REPLY_BOUNDS)
            iprot = self._codec.decoder(body)
            api, mtype, rseq = iprot.read_message_begin()
            if mtype == wire.EXCEPTION:
                from thriftpy2.thrift import TApplicationException
                exc = TApplicationException()
                iprot.read_struct(exc)
                raise RemoteError(f"{name}: the server answered {exc.message or exc}")
            if rseq != seqid or api != name:
                raise RemoteError(f"{name}: reply out of sequence ({api} #{rseq})")
            result = _METHODS[name][1]()
            iprot.read_struct(result)
            return result
        except RemoteError:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise RemoteError(f"{name}: malformed reply: {err}") from None

    def _read_frame(self) -> bytes:
        buf = self._buf
        recv = self.sock.recv
        if not buf:
            # The usual case: one recv brings exactly one whole reply.
            chunk = recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            if len(chunk) >= 4 and int.from_bytes(chunk[:4], "big") == len(chunk) - 4 > 0:
                return chunk[4:]
            if not self.tls and chunk[:1] in (b"\x15", b"\x16") and chunk[1:2] == b"\x03":
                # A TLS record (an alert, a handshake) where a frame should be.
                raise ConnectionError("the server speaks TLS: connect with TLS "
                                      "(tls=True or tls_ca=, --tls-ca)")
            buf += chunk
        while len(buf) < 4:
            chunk = recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            buf += chunk
        size = int.from_bytes(buf[:4], "big", signed=True)
        if size <= 0 or size > REPLY_BOUNDS.max_frame:
            raise ConnectionError(f"reply frame length {size} out of bounds")
        need = 4 + size
        while len(buf) < need:
            chunk = recv(min(1 << 20, need - len(buf)))
            if not chunk:
                raise ConnectionError("closed by the server mid-reply")
            buf += chunk
        body = bytes(buf[4:need])
        del buf[:need]
        return body

    def close(self) -> None:
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass

    def closed_by_peer(self) -> bool:
        """Whether the node closed this idle connection (an idle timeout, or its
        connection cap closing the least recently active one: exathunk.admission).  A
        node sends nothing unasked, so anything readable on an idle socket means it is
        closing.  One non-blocking peek; a TLS socket is not peeked (it cannot be)."""
        if self.tls:
            return False
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return True                  # EOF, or bytes nobody asked for
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True


class RemoteFuture(Future):
    """A Future for a remote computation; ``cancel()`` also cancels it on the node."""

    def __init__(self, client: "Client", thunk=None):
        super().__init__()
        self._client = client
        self.thunk = thunk

    def cancel(self) -> bool:
        if self.done():
            return False
        thunk = self.thunk
        if thunk is not None:
            try:
                self._client._invoke("thunkCancel", thunk=thunk)
            except ExathunkError:
                pass                 # the node may be gone; cancelling locally still holds
        cancelled = super().cancel()
        self._client._forget(self)
        return cancelled

    @property
    def thunk_id(self):
        return self.thunk.id if self.thunk is not None else None


class Client:
    """A connection to one node.  Thread-safe: calls from several threads use several
    sockets (up to 8 pooled)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, mode: str = "source",
                 library: Library | None = None, check_replies: bool = True,
                 security: auth.ClientSecurity | None = None):
        if mode not in ("source", "graph", "graph-struct"):
            raise ValueError("mode is 'source', 'graph' (compiled here, shipped as "
                             "Program bytes) or 'graph-struct' (as a ProgramGraph)")
        self.host, self.port = host, int(port)
        self.timeout = timeout
        self.check_replies = check_replies
        self.security = security or auth.NO_CLIENT_SECURITY
        self.mode = mode
        self._library = library
        self._remote_library: Library | None = None
        self._pool: list[_Channel] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        # Futures waiting for their results, by thunk id; one waiter thread serves them.
        self._pending: dict[str, RemoteFuture] = {}
        self._pending_lock = threading.Condition()
        self._waiter: threading.Thread | None = None
        self._waiter_channel: _Channel | None = None
        self._release(self._acquire())     # connect now: a bad address fails here

    # ---------------------------------------------------------------- plumbing
    def _acquire(self) -> _Channel:
        if self._closed:
            raise RemoteError("client is closed")
        with self._pool_lock:
            while self._pool:
                ch = self._pool.pop()
                if not ch.broken:
                    # Only a connection pooled a while is peeked: the hot path (a call
                    # right after the last) costs a clock read, not a system call.
                    if _mono() - ch.idle_since > PEEK_AFTER and ch.closed_by_peer():
                        ch.close()     # closed by the node while pooled: take another
                        continue
                    return ch
        return _Channel(self.host, self.port, self.timeout, self.check_replies, self.security)

    def _release(self, ch: _Channel) -> None:
        if ch.broken:
            return
        with self._pool_lock:
            if len(self._pool) < MAX_POOLED and not self._closed:
                ch.idle_since = _mono()
                self._pool.append(ch)
                return
        ch.close()

    def _invoke(self, name: str, source: str | None = None, timeout: float | None = None,
                channel: _Channel | None = None, **args):
        """Call a method; declared exceptions become exathunk errors (NotDone: _NotDone)."""
        args_cls, _, exc_fields = _METHODS[name]
        ch = channel or self._acquire()
        try:
            result = ch.call(name, args_cls(**args), timeout or self.timeout)
        finally:
            if channel is None:
                self._release(ch)
        success = result.success
        if success is not None:
            return success
        for field in exc_fields:
            exc = getattr(result, field)
            if exc is not None:
                if isinstance(exc, T.NotDone):
                    raise _NotDone(exc.message)
                raise wire.thrift_to_error(exc, source)
        raise RemoteError(f"{name}: empty reply")

    def _call_timeout(self, limits: dict) -> float:
        ms = limits.get("timeout_ms")
        if ms is None and limits.get("timeout") is not None:
            ms = limits["timeout"] * 1000
        return max(self.timeout, (ms or 0) / 1000 + 5.0)

    def _request(self, item, limits: dict):
        """An EvalRequest for source text or a Program, in this client's mode."""
        if isinstance(item, str):
            if self.mode == "source":
                return wire.make_request(item, **limits), item
            return wire.make_request(program=self._compile_here(item), mode=self.mode,
                                     **limits), item
        if hasattr(item, "to_bytes"):
            return wire.make_request(program=item, mode=self.mode if self.mode != "source"
                                     else "graph", **limits), None
        raise TypeError("evaluate takes source text or a compiled Program")

    def _compile_here(self, source: str):
        """The seed's flow: compile on this side against the node's function definitions,
        fetching (getFuncDefs) each name the local library does not know."""
        from .driver import compile as compile_source
        if self._remote_library is None:
            lib = self._library or Library()
            # The node's data types, classes and instances first: its functions' types
            # and a program's instances name them.
            defs = self.class_defs()
            if defs is not None:
                wire.library_from_defs((), defs, lib)
            self._remote_library = lib
        lib = self._remote_library
        fetched = set()
        for _ in range(256):                # each round learns at least one new name
            try:
                return compile_source(source, library=lib)
            except UnknownFunctionError as err:
                name = _quoted_name(err.message)
                if name is None or name in fetched:
                    raise
                fetched.add(name)
                try:
                    defs = self.func_defs([name])
                except UnknownFunctionError:
                    raise err from None
                wire.library_from_func_defs(defs, lib)
        raise ExathunkError("too many unknown names")

    # ---------------------------------------------------------------- the API
    def func_defs(self, names=()) -> list:
        """FuncDefs (name, typeText, typeNodes, strictness, arity, origin, doc) of the named
        functions, or of every function the node offers when ``names`` is empty."""
        return self._invoke("getFuncDefs", funcIds=[T.FuncId(name=n) for n in names])

    def cancel_request(self, request_id: str) -> bool:
        """Stop every run of the request ``request_id`` on the node (those started by
        ``evaluate``, which have no thunk); True if one was running."""
        return bool(self._invoke("thunkCancel", thunk=T.RemoteThunk(id="",
                                                                    requestId=request_id)))

    def class_defs(self):
        """The node's ClassDefs (data types, classes, instances), or None from a node
        that predates getClassDefs."""
        try:
            return self._invoke("getClassDefs")
        except RemoteError as err:
            if "unknown method" in (err.message or ""):
                return None
            raise

    def evaluate(self, program, **limits):
        """Evaluate source text (or a Program) on the node and return its value.

        Limits: max_steps, max_heap, max_depth, timeout_ms (or timeout in seconds),
        no_cache.  Errors are the exathunk classes, with positions and the source.
        ``allow_unchecked=True`` (for a broker, here and in every evaluate/submit call):
        take a value nobody could check instead of the ``Unverifiable`` error; which
        check a broker's value had is ``verifiedBy`` in evaluate_with_stats' stats.
        """
        if not limits and type(program) is str and self.mode == "source":
            # The common call, without the general request builder.
            vc = self._invoke("evaluate", source=program, timeout=self.timeout,
                              evalRequest=T.EvalRequest(source=program))
        elif (type(program) is str and self.mode == "source" and len(limits) == 1
              and "no_cache" in limits):
            # As common (the engine runs each time), and the builder cost ~10% of the
            # round trip (bench/bench_service.py).
            vc = self._invoke("evaluate", source=program, timeout=max(self.timeout, 5.0),
                              evalRequest=T.EvalRequest(
                                  source=program, noCache=bool(limits["no_cache"]) or None))
        else:
            req, source = self._request(program, limits)
            vc = self._invoke("evaluate", source=source, timeout=self._call_timeout(limits),
                              evalRequest=req)
        nodes = vc.nodes or ()
        if len(nodes) == 1 and vc.root == 0 and nodes[0].kind != wire.thrift.ValueKind.LIST:
            return wire._scalar(nodes[0], 0)
        return wire.varcont_to_value(vc)

    def evaluate_with_stats(self, program, **limits):
        """As evaluate, returning (value, stats dict) with the node's RunStats."""
        req, source = self._request(program, limits)
        vc = self._invoke("evaluate", source=source, timeout=self._call_timeout(limits),
                          evalRequest=req)
        return wire.varcont_to_value(vc), _struct_dict(vc.stats)

    def evaluate_batch(self, programs, return_exceptions: bool = False, **limits) -> list:
        """Evaluate many programs in one round trip; values in order.  With
        ``return_exceptions`` a failed one is its exception in the list, else the first
        failure is raised."""
        pairs = [self._request(p, limits) for p in programs]
        outcomes = []
        for start in range(0, len(pairs), BATCH_CHUNK):   # under the node's batch bound
            outcomes += self._invoke("evaluateBatch", timeout=self._call_timeout(limits) * 2,
                                     evalRequests=[r for r, _ in pairs[start:start + BATCH_CHUNK]])
        out = []
        for (_, source), o in zip(pairs, outcomes):
            if o.error is not None:
                err = wire.thrift_to_error(o.error, source)
                if not return_exceptions:
                    raise err
                out.append(err)
            else:
                out.append(wire.varcont_to_value(o.value))
        return out

    def submit(self, program, **limits) -> RemoteFuture:
        """Start evaluating on the node; a Future of the value (errors in the Future)."""
        fut = RemoteFuture(self)
        try:
            req, source = self._request(program, limits)
            fut._source = source
            thunk = self._invoke("submitEvalRequest", source=source, evalRequest=req)
        except ExathunkError as err:
            fut.set_running_or_notify_cancel()
            fut.set_exception(err)
            return fut
        fut.thunk = thunk
        self._watch(fut)
        return fut

    def submit_batch(self, programs, **limits) -> list[RemoteFuture]:
        """submit for many programs in one round trip."""
        futures, reqs = [], []
        for p in programs:
            fut = RemoteFuture(self)
            futures.append(fut)
            try:
                req, fut._source = self._request(p, limits)
                reqs.append((fut, req))
            except ExathunkError as err:
                fut.set_running_or_notify_cancel()
                fut.set_exception(err)
        for start in range(0, len(reqs), BATCH_CHUNK):     # under the node's batch bound
            chunk = reqs[start:start + BATCH_CHUNK]
            try:
                thunks = self._invoke("submitBatch", evalRequests=[r for _, r in chunk])
            except ExathunkError as err:
                for fut, _ in chunk:
                    fut.set_running_or_notify_cancel()
                    fut.set_exception(err)
                continue
            for (fut, _), thunk in zip(chunk, thunks):
                fut.thunk = thunk
                self._watch(fut)
        return futures

    def stats(self) -> dict:
        """The node's ServiceStats as a dict (workers: a list of dicts, for a broker)."""
        s = self._invoke("getStats")
        out = _struct_dict(s)
        out["workers"] = [_struct_dict(w) for w in (s.workers or [])]
        for w in out["workers"]:
            w["state"] = _enum_name(T.WorkerState, w.get("state"))
        return out

    def request_bid(self, program, **limits) -> dict:
        req, source = self._request(program, limits)
        return _struct_dict(self._invoke("requestBid", source=source, evalRequest=req))

    def register_worker(self, host: str, port: int) -> bool:
        return self._invoke("registerWorker", host=host, port=int(port))

    def close(self) -> None:
        """Close every socket; futures still waiting fail with RemoteError."""
        self._closed = True
        with self._pending_lock:
            pending = list(self._pending.values())
            self._pending.clear()
            self._pending_lock.notify_all()
        for fut in pending:
            _fail(fut, RemoteError("client closed before the result arrived"))
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for ch in pool:
            ch.close()
        waiter_channel = self._waiter_channel
        if waiter_channel is not None:
            # Shutting the socket down wakes the waiter at once from a blocked wait.
            try:
                waiter_channel.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        waiter = self._waiter
        if waiter is not None and waiter is not threading.current_thread():
            waiter.join(timeout=WAIT_MS / 1000 + 5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- the waiter
    def _watch(self, fut: RemoteFuture) -> None:
        with self._pending_lock:
            if self._closed:
                _fail(fut, RemoteError("client is closed"))
                return
            self._pending[fut.thunk.id] = fut
            waiter = self._waiter
            if waiter is None or not waiter.is_alive():
                self._waiter = threading.Thread(target=self._wait_loop, daemon=True,
                                                name="exathunk-waiter")
                self._waiter.start()
            self._pending_lock.notify()

    def _forget(self, fut: RemoteFuture) -> None:
        if fut.thunk is not None:
            with self._pending_lock:
                self._pending.pop(fut.thunk.id, None)

    def _wait_loop(self) -> None:
        """One thread, one socket: thunkWaitAny over every pending future.  The thread
        ends when the client closes or after WAITER_IDLE seconds with nothing to wait
        for (_watch starts another when needed)."""
        channel: _Channel | None = None
        failures = 0
        idle_since = _mono()
        while not self._closed:
            with self._pending_lock:
                if not self._pending:
                    if _mono() - idle_since > WAITER_IDLE:
                        self._waiter = None
                        break
                    self._pending_lock.wait(0.5)
                    continue
                idle_since = _mono()
                batch = list(self._pending.values())[:1000]
            try:
                if channel is None or channel.broken:
                    channel = _Channel(self.host, self.port, self.timeout,
                                       self.check_replies, self.security)
                    self._waiter_channel = channel
                outcomes = self._invoke("thunkWaitAny", channel=channel,
                                        timeout=WAIT_MS / 1000 + self.timeout,
                                        thunks=[f.thunk for f in batch], timeoutMs=WAIT_MS)
                failures = 0
            except ExathunkError as err:
                failures += 1
                if failures < 2 and not self._closed:
                    continue           # one reconnect: the node may just have dropped us
                with self._pending_lock:
                    lost = [f for f in batch if self._pending.pop(f.thunk.id, None)]
                for fut in lost:
                    _fail(fut, err if isinstance(err, RemoteError) else
                          RemoteError(f"lost the node while waiting: {err.message}"))
                failures = 0
                continue
            for o in outcomes:
                with self._pending_lock:
                    fut = self._pending.pop(o.thunkId, None)
                if fut is None:
                    continue
                if o.cancelled:
                    fut.cancel()
                elif o.error is not None:
                    _fail(fut, wire.thrift_to_error(o.error, getattr(fut, "_source", None)))
                else:
                    try:
                        value = wire.varcont_to_value(o.value)
                    except ExathunkError as err:
                        _fail(fut, err)
                        continue
                    if fut.set_running_or_notify_cancel():
                        fut.set_result(value)
        if channel is not None:
            channel.close()


def _fail(fut: Future, err: BaseException) -> None:
    if fut.set_running_or_notify_cancel():
        fut.set_exception(err)


def _quoted_name(message: str) -> str | None:
    for q in ("'", '"', "`"):
        i = message.find(q)
        if i >= 0:
            j = message.find(q, i + 1)
            if j > i:
                return message[i + 1:j]
    return None


def _struct_dict(obj) -> dict:
    return {spec[1]: getattr(obj, spec[1]) for _, spec in sorted(obj.thrift_spec.items())}


def _enum_name(enum, value):
    for name in dir(enum):
        if not name.startswith("_") and getattr(enum, name) == value:
            return name
    return value


def connect(host: str = "127.0.0.1", port: int = 9090, timeout: float = 30.0,
            mode: str = "source", library: Library | None = None,
            check_replies: bool = True, *, token: str | None = None,
            token_file=None, tls=None, tls_ca=None,
            security: auth.ClientSecurity | None = None) -> Client:
    """A Client for the node at host:port (connects now; RemoteError if it cannot).

    ``mode``: "source" sends source text (compiled on the node); "graph" compiles here
    against the node's function definitions (getFuncDefs) and ships the compiled
    program; "graph-struct" ships it as the IDL's ProgramGraph struct.
    ``check_replies`` bounds and checks every reply frame before decoding it (keep it on
    toward nodes you do not trust: thriftpy2 itself has no decode limits).

    Security (docs/security.md): ``token`` (or ``token_file``, read once and stripped)
    is the deployment's shared token, presented once per connection (a node that
    requires one answers AuthenticationRequired without it, AuthenticationFailed for a
    wrong one, both raised here at once since connect opens a connection); ``tls=True``
    speaks TLS and verifies the node against the system's CAs, ``tls_ca=PATH`` against
    that CA file, ``tls=`` an ``ssl.SSLContext`` uses that context.  ``security`` passes
    all of these resolved (an auth.ClientSecurity).  A setting that cannot be used is
    ConfigurationError.
    """
    if security is None:
        security = auth.ClientSecurity.build(token=token, token_file=token_file, tls=tls,
                                             tls_ca=tls_ca)
    return Client(host, port, timeout=timeout, mode=mode, library=library,
                  check_replies=check_replies, security=security)


_STAT_LABELS = [
    ("role", "role"), ("version", "version"), ("nodeId", "node id"), ("uptimeS", "uptime (s)"),
    ("executionModel", "execution"), ("workerThreads", "worker threads"),
    ("connections", "connections"), ("requests", "requests"),
    ("evaluations", "evaluations"), ("errors", "errors"), ("cacheHits", "cache hits"),
    ("cacheMisses", "cache misses"), ("cacheSize", "cached results"),
    ("running", "running"), ("queued", "queued"), ("queueBound", "queue bound"),
    ("thunks", "thunks held"), ("overloaded", "refused (overloaded)"),
    ("timeouts", "timeouts"), ("meanRunMs", "mean run (ms)"),
    ("rejectedFrames", "rejected frames"), ("authRefused", "refused (no or wrong token)"),
    ("draining", "draining"),
]


def format_stats(stats: dict) -> str:
    """The stats dict as the table ``exathunk status`` prints."""
    rows = []
    for key, label in _STAT_LABELS:
        if key not in stats:
            continue
        v = stats[key]
        if isinstance(v, float):
            v = f"{v:.2f}"
        rows.append((label, str(v)))
    hits, misses = stats.get("cacheHits") or 0, stats.get("cacheMisses") or 0
    if hits + misses:
        rows.append(("cache hit rate", f"{100.0 * hits / (hits + misses):.1f}%"))
    width = max(len(label) for label, _ in rows) if rows else 0
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    workers = stats.get("workers") or []
    if workers:
        head = ("worker", "state", "reputation", "latency ms", "share", "requests",
                "failures", "verified", "disagreed")
        table = [head]
        for w in workers:
            table.append((str(w.get("address")), str(w.get("state")),
                          f"{w.get('reputation') or 0:.3f}",
                          f"{w.get('latencyEstimateMs') or 0:.2f}",
                          f"{100 * (w.get('shareOfWork') or 0):.1f}%",
                          str(w.get("requests") or 0), str(w.get("failures") or 0),
                          str(w.get("verified") or 0), str(w.get("disagreed") or 0)))
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        lines.append("")
        for row in table:
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)
