"""The transport: the framed Thrift server a node and a broker listen with.

It owns the sockets: accepting connections (and, at the cap, closing the least recently
active idle one, exathunk.admission's choice), reading frames within their limits and
deadlines, TLS, the per-connection token check, decoding a call, calling the handler's
method and encoding its reply or declared error.  It knows nothing of programs: the
handler (exathunk.server.ExecutionHandler, or a broker's) does the work.
"""

from __future__ import annotations

import errno
import itertools
import logging
import socket
import threading
import time

from . import admission, auth, wire
from .errors import ExathunkError

log = logging.getLogger("exathunk.server")     # one logger for a node, as before the split
log.addHandler(logging.NullHandler())

T = wire.thrift
_perf = time.perf_counter
_mono = time.monotonic



_DECLARED = (T.ExathunkException, T.NotDone, T.Overloaded, T.UnknownThunk, T.NotABroker,
             T.AuthenticationError)


_client_ids = itertools.count(1)


class _Conn:
    """The state of one connection: authenticated yet (a node with a token), whether to
    close it after the reply being sent (a wrong token), and the client id its thunks
    count against (exathunk.admission: a client is its connection)."""
    __slots__ = ("authenticated", "close_after", "client")

    def __init__(self):
        self.authenticated = False
        self.close_after = False
        self.client = next(_client_ids)


class ThriftServer:
    """Framed binary Thrift over TCP, a thread per connection, every frame bounded.

    ``handler`` is any object with the RemoteExecutionService methods (a worker's
    ExecutionHandler, or a broker's); failures it raises are mapped to the method's
    declared exceptions, so a client always gets an answer.
    """

    def __init__(self, handler, host: str, port: int, options):
        # options: an exathunk.server.Options (the transport reads its limits)
        self.handler = handler
        self.options = o = options
        self.bounds = wire.Bounds(max_frame=o.max_frame, max_string=o.max_string,
                                  max_container=o.max_container, max_depth=o.max_nesting)
        self._listener = socket.create_server((host, port), backlog=128, reuse_port=False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._listener.settimeout(0.2)
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._busy: set = set()            # connections in the middle of a request
        # Last activity (accepted, a request begun or answered) of every connection: the
        # connection cap closes the least recently active idle one (exathunk.admission).
        self._activity: dict = {}
        self.evicted = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._accepting = True
        self._inflight_bytes = 0
        self.rejected = 0
        self._accept_thread: threading.Thread | None = None
        self._calls = {name: self._make_call(name) for name in wire.Service.thrift_services}
        self._counters = getattr(handler, "counters", None)
        # Authentication (checked once per connection, by authenticate) and TLS.
        security = o.security if o.security is not None else auth.NodeSecurity()
        self._token = security.token
        self._ssl = security.server_ssl
        self._guarded = None               # the methods that need an authenticated connection
        if self._token is not None:
            if getattr(handler, "role", None) == "broker" and not security.require_client_token:
                self._guarded = frozenset({"registerWorker"})
            else:
                self._guarded = frozenset(n for n in self._calls if n != "authenticate")
        # The per-request hook (exathunk.metrics.observer): None costs nothing.
        self.observer = None
        if hasattr(handler, "connections"):
            handler.connections = lambda: len(self._conns)
            handler.rejected_frames = lambda: self.rejected

    def _make_call(self, name):
        args_cls = getattr(wire.Service, name + "_args")
        result_cls = getattr(wire.Service, name + "_result")
        arg_names = [spec[1] for _, spec in sorted(args_cls.thrift_spec.items())]
        method = getattr(self.handler, name, None)   # authenticate: the server's own
        return args_cls, result_cls, arg_names, method

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"exathunk-accept-{self.port}")
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        while self._accepting:
            try:
                sock, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if not self._accepting:
                    break
                time.sleep(0.05)           # EMFILE and friends: back off, stay alive
                continue
            with self._lock:
                if not self._accepting:
                    sock.close()
                    continue
                if len(self._conns) >= self.options.max_connections:
                    victim = admission.pick_victim(self._activity, self._busy)
                    if victim is None:
                        sock.close()
                        log.warning("refused connection from %s: %d connections open, "
                                    "all in the middle of a request", addr, len(self._conns))
                        continue
                    # The least recently active idle connection makes room: its thread
                    # sees the shutdown and ends; a request it reads meanwhile is dropped
                    # unanswered (see _connection), so none is cut off halfway.
                    self._conns.pop(victim, None)
                    self._activity.pop(victim, None)
                    self.evicted += 1
                    try:
                        victim.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    log.info("closed the least recently active connection to admit %s",
                             addr)
                thread = threading.Thread(target=self._connection, args=(sock, addr),
                                          daemon=True, name="exathunk-conn")
                self._conns[sock] = thread
                self._activity[sock] = _mono()
            thread.start()

    def stop_accepting(self) -> None:
        self._accepting = False
        try:
            self._listener.close()
        except OSError:
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection and wait (bounded) for their threads."""
        self.stop_accepting()
        self._closing.set()
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = _mono() + timeout
        for _, thread in conns:
            if thread.ident is None:
                continue      # accepted but not started yet: it will see _closing and end
            thread.join(max(0.0, deadline - _mono()))
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - _mono()))

    def busy(self) -> int:
        return len(self._busy)

    # ---------------------------------------------------------------- connections
    def _connection(self, sock: socket.socket, addr) -> None:
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        pending = bytearray()
        conn = _Conn()
        # Who this thread serves, for the handler (its calls run on this thread): set
        # once, since a connection has a thread of its own.
        admission.current.peer = peer
        admission.current.client = conn.client
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tick = min(1.0, self.options.io_timeout)
            if self._ssl is not None:
                tls = self._handshake(sock, peer)
                if tls is None:
                    return
                sock = tls
                # A TLS socket keeps Python's own timeouts: over kernel timeouts a
                # blocking SSL read retries inside OpenSSL and never times out.
                sock.settimeout(tick)
            else:
                # Kernel timeouts on a blocking socket: a recv or send costs one system
                # call, where Python's own socket timeouts add a poll() before each.  The
                # tick is how often an idle connection looks at the idle limit and at
                # shutdown.
                wire.kernel_timeouts(sock, tick)
            busy = self._busy
            activity = self._activity
            conns = self._conns
            lock = self._lock
            codec = wire.Codec()
            max_frame = self.options.max_frame
            while not self._closing.is_set():
                body = None
                if not pending:
                    # The usual case: one recv brings exactly one whole request.
                    try:
                        chunk = sock.recv(65536)
                    except (BlockingIOError, TimeoutError, InterruptedError):
                        chunk = None
                    if chunk is not None:
                        if not chunk:
                            return
                        size = int.from_bytes(chunk[:4], "big") if len(chunk) >= 4 else -1
                        if 0 < size <= max_frame and size == len(chunk) - 4:
                            body = chunk[4:]
                        else:
                            pending += chunk
                if body is None:
                    body = self._read_frame(sock, pending, peer)
                    if body is None:
                        return
                with lock:
                    if sock not in conns:
                        return             # closed to admit another: not answered
                    busy.add(sock)
                try:
                    reply = self._dispatch(body, peer, codec, conn)
                    if reply is None:
                        return
                    sock.sendall(reply)
                    if conn.close_after:
                        return
                finally:
                    activity[sock] = _mono()
                    busy.discard(sock)
        except (OSError, ConnectionError) as err:
            if not self._closing.is_set() and getattr(err, "errno", None) not in (
                    errno.ECONNRESET, errno.EPIPE, None):
                log.debug("connection %s: %s", peer, err)
        except Exception as err:            # never let one connection kill the server
            log.warning("connection %s: unexpected %r", peer, err)
        finally:
            with self._lock:
                self._conns.pop(sock, None)
                self._activity.pop(sock, None)
            try:
                sock.close()
            except OSError:
                pass

    def _handshake(self, raw: socket.socket, peer: str):
        """The TLS server handshake on a new connection, within the per-frame timeout;
        the TLS socket (which replaces ``raw`` among the connections), or None."""
        import ssl
        raw.settimeout(self.options.io_timeout)
        try:
            head = raw.recv(1, socket.MSG_PEEK)
        except OSError:
            return None
        if not head:
            return None                     # connected and left (a probe)
        if head != b"\x16":
            # Not a TLS handshake record (a frame that large would be refused anyway):
            # a plaintext client.  It gets an answer that says so, not a reset.
            self._refuse_plaintext(raw, peer)
            return None
        try:
            tls = self._ssl.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as err:
            # A plaintext client, a client that does not trust the certificate, a scan.
            self._reject(peer, f"TLS handshake failed: {getattr(err, 'reason', None) or err}")
            return None
        with self._lock:
            thread = self._conns.pop(raw, None)
            if thread is not None:
                self._conns[tls] = thread
                self._activity[tls] = self._activity.pop(raw, _mono())
        return tls

    def _refuse_plaintext(self, raw: socket.socket, peer: str) -> None:
        from thriftpy2.thrift import TApplicationException
        self._reject(peer, "plaintext client of a TLS node")
        try:
            raw.settimeout(0.5)
            raw.recv(65536)                 # what it sent, so the close sends no reset
            exc = TApplicationException(
                TApplicationException.PROTOCOL_ERROR,
                "this node serves TLS only: connect with TLS (tls_ca= / --tls-ca)")
            raw.sendall(wire.encode_message("", wire.EXCEPTION, 0, exc))
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _recv(self, sock, n: int, idle_since: float, deadline: float | None, peer: str):
        """One recv; b"" on EOF; None when the connection should close (idle too long,
        frame too slow, shutting down).  Waits in ticks of the kernel timeout."""
        o = self.options
        while True:
            try:
                return sock.recv(n)
            except (BlockingIOError, TimeoutError, InterruptedError):
                if self._closing.is_set():
                    return None
                now = _mono()
                if deadline is None:
                    if now - idle_since > o.idle_timeout:
                        log.debug("closing idle connection %s", peer)
                        return None
                elif now > deadline:
                    self._reject(peer, "frame not received in time")
                    return None

    def _read_frame(self, sock, pending: bytearray, peer: str):
        """The next frame body, None on a close (clean, forced, or for a bad frame)."""
        o = self.options
        idle_since = _mono()
        deadline = idle_since + o.io_timeout if pending else None
        while len(pending) < 4:
            chunk = self._recv(sock, 65536, idle_since, deadline, peer)
            if not chunk:
                if chunk is not None and pending:
                    self._reject(peer, "connection closed mid-frame")
                return None
            pending += chunk
            if deadline is None:
                deadline = _mono() + o.io_timeout
        size = int.from_bytes(pending[:4], "big", signed=True)
        if size <= 0 or size > o.max_frame:
            self._reject(peer, f"frame length {size} outside 1..{o.max_frame}")
            return None
        need = 4 + size
        if len(pending) >= need:
            body = bytes(pending[4:need])
            del pending[:need]
            return body
        # A large frame: received in chunks as the bytes come, so memory follows what
        # actually arrived rather than what the prefix claims, within a global budget.
        reserved = size if size > 65536 else 0
        if reserved:
            with self._lock:
                if self._inflight_bytes + size > o.max_inflight_bytes:
                    reserved = 0
                    self._reject(peer, "too many large frames in flight")
                    return None
                self._inflight_bytes += size
        try:
            while len(pending) < need:
                chunk = self._recv(sock, min(1 << 20, need - len(pending)), idle_since,
                                   deadline, peer)
                if not chunk:
                    if chunk is not None:
                        self._reject(peer, "connection closed mid-frame")
                    return None
                pending += chunk
                if _mono() > deadline:
                    self._reject(peer, "frame not received in time")
                    return None
            body = bytes(pending[4:need])
            del pending[:need]
            return body
        finally:
            if reserved:
                with self._lock:
                    self._inflight_bytes -= reserved

    def _reject(self, peer: str, why: str) -> None:
        self.rejected += 1
        log.warning("closing connection %s: %s", peer, why)

    def _dispatch(self, body: bytes, peer: str, codec=None, conn: _Conn | None = None):
        """Decode, call, encode; None closes the connection (malformed frame).  ``conn``
        is the connection's state (None: an unauthenticated one)."""
        codec = codec or wire.Codec()
        try:
            wire.check_frame(body, self.bounds)
            iprot = codec.decoder(body)
            api, mtype, seqid = iprot.read_message_begin()
        except Exception as err:
            self._reject(peer, f"malformed frame: {getattr(err, 'message', err)}")
            return None
        call = self._calls.get(api)
        if mtype != wire.CALL or call is None:
            from thriftpy2.thrift import TApplicationException
            if mtype != wire.CALL:
                self._reject(peer, f"message type {mtype} is not a call")
                return None
            exc = TApplicationException(TApplicationException.UNKNOWN_METHOD,
                                        f"unknown method {api!r}")
            return wire.encode_message(api, wire.EXCEPTION, seqid, exc)
        args_cls, result_cls, arg_names, method = call
        guarded = self._guarded
        if guarded is not None and api in guarded and (conn is None or not conn.authenticated):
            # Refused before its arguments are even decoded.
            if self._counters is not None:
                self._counters["auth_refused"] += 1
            log.warning("%s from %s refused: the connection has not authenticated", api, peer)
            result = result_cls()
            result.authError = T.AuthenticationError(
                kind="AuthenticationRequired",
                message=f"{api}: this node requires the deployment's token: authenticate "
                        "the connection first (token= / --token-file)")
            return codec.encode(api, wire.REPLY, seqid, result)
        try:
            args = args_cls()
            iprot.read_struct(args)
        except Exception as err:
            self._reject(peer, f"undecodable {api} arguments: {err}")
            return None
        if method is None:
            return codec.encode(api, wire.REPLY, seqid,
                                self._authenticate(args.token, result_cls(), peer, conn))
        result = result_cls()
        debug = log.isEnabledFor(logging.DEBUG)
        observer = self.observer
        t0 = _perf() if debug or observer is not None else 0.0
        counters = self._counters
        if counters is not None:
            counters["requests"] += 1
        try:
            bad = wire.undecoded_text(args, body)     # a string field that is not UTF-8
            if bad is not None:
                raise bad
            if len(arg_names) == 1:
                result.success = method(getattr(args, arg_names[0]))
            else:
                result.success = method(*[getattr(args, n) for n in arg_names])
            outcome = "ok"
        except _DECLARED as exc:
            # A declared ExathunkException carries the error's class in its kind.
            outcome = (exc.kind or "ExathunkException") if type(exc) is T.ExathunkException \
                else type(exc).__name__
            self._set_declared(result, exc)
        except ExathunkError as err:
            outcome = err.kind
            result.err = wire.error_to_thrift(err)
            if counters is not None:
                counters["errors"] += 1
            log.warning("%s %s from %s: %s: %s", api, _line_col(err), peer, err.kind,
                        err.message)
        except Exception as err:
            outcome = type(err).__name__
            result.err = wire.error_to_thrift(err)
            if counters is not None:
                counters["errors"] += 1
            log.warning("%s from %s: internal error", api, peer, exc_info=True)
        if debug:
            log.debug("%s %s %s %.3f ms", peer, api, outcome, (_perf() - t0) * 1e3)
        try:
            reply = codec.encode(api, wire.REPLY, seqid, result)
        except Exception as err:
            # A value that cannot be encoded (e.g. an Int beyond i64 from a host
            # function): still an answer, never a dropped connection.
            log.warning("%s from %s: cannot encode the reply: %r", api, peer, err)
            outcome = "ExathunkError"
            fallback = result_cls()
            fallback.err = T.ExathunkException(kind="ExathunkError",
                                               message=f"cannot encode the result: {err}")
            reply = wire.encode_message(api, wire.REPLY, seqid, fallback)
        if observer is not None:
            try:
                observer(api, outcome, _perf() - t0, peer, args)
            except Exception:              # observing never costs a client its answer
                log.warning("%s from %s: the request hook failed", api, peer, exc_info=True)
        return reply

    def _authenticate(self, token, result, peer: str, conn: _Conn | None):
        """The authenticate call: the connection is authenticated from now on if the
        token matches; a wrong one is AuthenticationFailed and closes the connection."""
        if self._token is None:
            result.success = False          # this node checks no tokens
        elif auth.token_matches(self._token, token):
            if conn is not None:
                conn.authenticated = True
            result.success = True
        else:
            if self._counters is not None:
                self._counters["auth_failed"] += 1
            log.warning("authentication failed from %s: wrong token", peer)
            if conn is not None:
                conn.close_after = True
            result.authError = T.AuthenticationError(
                kind="AuthenticationFailed",
                message="authenticate: wrong token (the node closes this connection)")
        return result

    @staticmethod
    def _set_declared(result, exc) -> None:
        for _, spec in sorted(result.thrift_spec.items()):
            name = spec[1]
            if name != "success" and len(spec) > 2 and isinstance(exc, spec[2]):
                setattr(result, name, exc)
                return
        # Declared somewhere but not by this method: say so through its ``err``.
        result.err = T.ExathunkException(kind=getattr(exc, "kind", None) or "RemoteError",
                                         message=getattr(exc, "message", None) or str(exc))


def _line_col(err) -> str:
    if err.line is None:
        return ""
    return f"at {err.line}:{err.column}" if err.column is not None else f"at line {err.line}"


# ---------------------------------------------------------------------------------------
# Entry points
