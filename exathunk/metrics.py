"""Operations: a node's Prometheus metrics and its JSON request log.

Owns, for one node (worker or broker):

- ``NodeMetrics``: the node's own ``CollectorRegistry`` (never prometheus-client's
  global one, so two nodes in one process do not clash), the per-request series
  ``exathunk_requests_total{kind,outcome}`` (kind: the RPC method; outcome: ``ok`` or
  the error's class name) and ``exathunk_request_seconds{kind}`` (a histogram), and the
  series read from the node's ``getStats`` at scrape time (queue depth, running
  evaluations, cache hits and misses, thunks, connections...; on a broker also
  ``exathunk_worker_reputation{worker}`` and ``exathunk_worker_share{worker}``).
- its HTTP server: ``/metrics`` in the Prometheus text format on its own daemon thread,
  bound to 127.0.0.1 unless told otherwise, stopped with the node.
- the request log: with ``log_format="json"``, one JSON object per line per request on
  the ``exathunk.requests`` logger, written to stderr (``ts``, ``kind``, ``outcome``,
  ``seconds``, ``client``, ``request_id``; a request without a requestId of its own is
  given a fresh one, so every line has one).

Cost: the request path pays one lock and a bisect per request (``observe``); the
prometheus-client objects are built only when scraped.  A JSON line is formatted and
written on the log's own thread (lines that queue up meanwhile go out in one write);
a request only queues a tuple, and a node's stop (or the process's exit) flushes.  ``bench/bench_metrics.py``
measures it.  prometheus-client is an optional extra (``pip install 'exathunk[metrics]'``);
the JSON log works without it.
"""

from __future__ import annotations

import atexit
import bisect
import itertools
import json
import json.encoder
import logging
import os
import queue
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTALL_HINT = "metrics need prometheus-client: pip install 'exathunk[metrics]'"

try:  # the optional extra
    import prometheus_client as _prom
    from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                        HistogramMetricFamily)
except ImportError:  # pragma: no cover - exercised only without the extra
    _prom = None

log = logging.getLogger("exathunk.metrics")
log.addHandler(logging.NullHandler())
_bisect = bisect.bisect_left
request_log = logging.getLogger("exathunk.requests")

# Upper bounds of the latency histogram, in seconds: a cached evaluate answers in tens
# of microseconds, a long program in seconds.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
           0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def available() -> bool:
    """Whether prometheus-client is installed."""
    return _prom is not None


def _require():
    if _prom is None:
        raise ImportError(INSTALL_HINT)
    return _prom


class CannotListen(OSError):
    """The metrics address is taken or not ours; ``host``/``port`` say which."""

    def __init__(self, err: OSError, host: str, port: int):
        super().__init__(err.errno, err.strerror or str(err))
        self.host, self.port = host, port


# ---------------------------------------------------------------------------------------
# Metrics

class _Kind:
    """The latency histogram of one kind of request: plain numbers until scraped."""
    __slots__ = ("buckets", "total")

    def __init__(self):
        self.buckets = [0] * (len(BUCKETS) + 1)   # the last one is +Inf
        self.total = 0.0


class NodeMetrics:
    """The metrics of one node: ``observe`` on the request path, ``listen`` to serve
    them, ``watch`` to read a ``getStats`` at every scrape, ``stop``."""

    def __init__(self, stats=None):
        _require()
        self._lock = threading.Lock()
        self._entries: dict = {}           # (kind, outcome) -> [requests, its _Kind]
        self._kinds: dict = {}             # kind -> _Kind
        self._stats = stats
        self.registry = _prom.CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.host: str | None = None
        self.port: int | None = None

    # ---------------------------------------------------------------- request path
    def observe(self, kind: str, outcome: str, seconds: float, peer=None, args=None) -> None:
        """Count one request of ``kind`` that ended in ``outcome`` after ``seconds``."""
        entry = self._entries.get((kind, outcome))
        if entry is None:
            entry = self._entry(kind, outcome)
        i = _bisect(BUCKETS, seconds)
        with self._lock:
            entry[0] += 1
            h = entry[1]
            h.buckets[i] += 1
            h.total += seconds

    def _entry(self, kind: str, outcome: str) -> list:
        with self._lock:
            entry = self._entries.get((kind, outcome))
            if entry is None:
                h = self._kinds.get(kind)
                if h is None:
                    h = self._kinds[kind] = _Kind()
                entry = self._entries[(kind, outcome)] = [0, h]
            return entry

    def watch(self, stats) -> None:
        """Read ``stats()`` (a ServiceStats) at every scrape."""
        self._stats = stats

    # ---------------------------------------------------------------- scrape
    def collect(self):
        """The prometheus-client collector protocol: every series, built now."""
        with self._lock:
            counts = {key: entry[0] for key, entry in self._entries.items()}
            kinds = {k: (list(h.buckets), h.total) for k, h in self._kinds.items()}
        requests = CounterMetricFamily(
            "exathunk_requests", "RPC requests answered, by method and outcome (ok or "
            "the error's class name)", labels=["kind", "outcome"])
        for (kind, outcome), n in sorted(counts.items()):
            requests.add_metric([kind, outcome], n)
        yield requests
        seconds = HistogramMetricFamily(
            "exathunk_request_seconds", "Time to answer an RPC request (decode excluded), "
            "by method", labels=["kind"])
        for kind, (buckets, total) in sorted(kinds.items()):
            cumulative, running = [], 0
            for bound, n in zip(BUCKETS + (float("inf"),), buckets):
                running += n
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound),
                                   running))
            seconds.add_metric([kind], cumulative, sum_value=total)
        yield seconds
        if self._stats is not None:
            try:
                stats = self._stats()
            except Exception as err:          # a scrape never fails for it
                log.warning("metrics: cannot read the node's statistics: %r", err)
            else:
                yield from _stats_families(stats)

    # ---------------------------------------------------------------- exposition
    def text(self) -> bytes:
        """The metrics in the Prometheus text format (what ``/metrics`` serves)."""
        return _prom.generate_latest(self.registry)

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve ``/metrics`` on host:port (0: a free port) on a daemon thread."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics is here")
                    return
                try:
                    body = metrics.text()
                except Exception as err:      # pragma: no cover - defensive
                    self.send_error(500, f"cannot build the metrics: {err!r}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", _prom.CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass                          # scrapes are not request log lines

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def server_bind(self):
                # HTTPServer's own also looks its name up (socket.getfqdn: a reverse
                # DNS query, slow where DNS is): not needed to serve /metrics.
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = self.server_address[:2]

        try:
            self._server = Server((host, port), Handler)
        except OSError as err:
            raise CannotListen(err, host, port) from None
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.25}, daemon=True,
                                        name=f"exathunk-metrics-{self.port}")
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


_GAUGES = (
    # (name, ServiceStats field, help, scale)
    ("exathunk_queue_depth", "queued", "Evaluations waiting for an evaluation slot now", 1),
    ("exathunk_queue_bound", "queueBound",
     "Waiting evaluations beyond which requests get Overloaded", 1),
    ("exathunk_running", "running", "Evaluations running now (a broker: its requests "
     "in flight)", 1),
    ("exathunk_worker_threads", "workerThreads", "Evaluation threads (a broker: "
     "dispatch threads)", 1),
    ("exathunk_thunks", "thunks", "Thunks held in the thunk table now", 1),
    ("exathunk_connections", "connections", "Client connections open now", 1),
    ("exathunk_cache_size", "cacheSize", "Results in the result cache now", 1),
    ("exathunk_mean_run_seconds", "meanRunMs", "Mean engine time of recent evaluations",
     1e-3),
    ("exathunk_uptime_seconds", "uptimeS", "Seconds since the node started", 1),
)

_COUNTERS = (
    ("exathunk_cache_hits", "cacheHits", "Answers served from the result cache"),
    ("exathunk_cache_misses", "cacheMisses", "Lookups that missed the result cache"),
    ("exathunk_evaluations", "evaluations", "Programs evaluated (cache hits excluded)"),
    ("exathunk_errors", "errors", "Requests that ended in an error"),
    ("exathunk_overloaded", "overloaded", "Requests refused with Overloaded"),
    ("exathunk_timeouts", "timeouts", "Runs stopped by the wall-clock limit"),
    ("exathunk_rejected_frames", "rejectedFrames",
     "Frames rejected as malformed or over a bound"),
    ("exathunk_sub_thunks", "subThunks", "Sub-thunks sent (worker) or taken (broker)"),
)


def _stats_families(stats):
    """Series from one ServiceStats, read at scrape time."""
    info = GaugeMetricFamily("exathunk_node_info", "The node's role and version (always 1)",
                             labels=["role", "version"])
    info.add_metric([stats.role or "", stats.version or ""], 1)
    yield info
    for name, field, doc, scale in _GAUGES:
        value = getattr(stats, field, None)
        if value is not None:
            yield GaugeMetricFamily(name, doc, value=float(value) * scale)
    yield GaugeMetricFamily("exathunk_draining", "1 while the node drains before stopping",
                            value=1.0 if stats.draining else 0.0)
    for name, field, doc in _COUNTERS:
        value = getattr(stats, field, None)
        if value is not None:
            yield CounterMetricFamily(name, doc, value=float(value))
    workers = stats.workers or ()
    if stats.role == "broker" or workers:
        families = {
            "reputation": GaugeMetricFamily(
                "exathunk_worker_reputation", "The broker's trust in a worker, 0 to 1",
                labels=["worker"]),
            "share": GaugeMetricFamily(
                "exathunk_worker_share", "Share of the broker's requests routed to a "
                "worker, 0 to 1", labels=["worker"]),
            "latency": GaugeMetricFamily(
                "exathunk_worker_latency_seconds", "The broker's moving estimate of a "
                "worker's latency", labels=["worker"]),
            "requests": CounterMetricFamily(
                "exathunk_worker_requests", "Requests the broker sent to a worker",
                labels=["worker"]),
            "failures": CounterMetricFamily(
                "exathunk_worker_failures", "Requests a worker failed (timeouts, dropped "
                "connections, its own errors)", labels=["worker"]),
        }
        for w in workers:
            label = [w.address]
            families["reputation"].add_metric(label, float(w.reputation))
            families["share"].add_metric(label, float(w.shareOfWork))
            families["latency"].add_metric(label, float(w.latencyEstimateMs) * 1e-3)
            families["requests"].add_metric(label, float(w.requests))
            families["failures"].add_metric(label, float(w.failures))
        yield from families.values()


# ---------------------------------------------------------------------------------------
# The JSON request log

class _StderrLines(logging.Handler):
    """Writes each record's message as it is, one line, to the current sys.stderr."""

    def emit(self, record):
        try:
            _write(record.getMessage())
        except Exception:                     # pragma: no cover - as logging does
            self.handleError(record)


_write_lock = threading.Lock()


def _write(line: str) -> None:
    with _write_lock:
        stream = sys.stderr
        stream.write(line + "\n")
        stream.flush()


_STDERR_LINES = _StderrLines()


def enable_json_log() -> logging.Logger:
    """Send ``exathunk.requests`` lines, raw, to stderr (once per process); they do not
    propagate, so a root handler's format does not wrap the JSON."""
    if _STDERR_LINES not in request_log.handlers:
        request_log.addHandler(_STDERR_LINES)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False
    return request_log


def request_id_of(args) -> str | None:
    """The requestId a call's arguments carry (an EvalRequest's or a RemoteThunk's)."""
    for name in ("evalRequest", "thunk"):
        value = getattr(args, name, None)
        if value is not None:
            rid = getattr(value, "requestId", None)
            if rid:
                return rid
    return None


# Generated request ids: a random per-process prefix and a counter, 32 hex digits, unique
# across processes (a uuid4 costs several times more, on every request).
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(1)
_quote = json.encoder.encode_basestring   # C: a JSON string literal
_second = [-1, ""]                        # the last whole second and its ISO text


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFFFFFFFFFF:016x}"


def _iso(t: float) -> str:
    whole = int(t)
    cached = _second
    if cached[0] != whole:
        cached[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        cached[0] = whole
    return f"{cached[1]}.{int((t - whole) * 1000):03d}Z"


def format_line(t: float, kind: str, outcome: str, seconds: float, peer, rid) -> str:
    """One request's JSON line (built by hand: json.dumps of a dict costs more than the
    rest of a cached request).  kind and outcome are method and class names; the
    client's requestId and the peer are quoted."""
    if rid is None:
        rid_text, given = f'"{new_request_id()}"', "false"
    else:
        rid_text, given = _quote(rid), "true"
    return (f'{{"ts":"{_iso(t)}","kind":"{kind}","outcome":"{outcome}",'
            f'"seconds":{seconds:.6f},"client":{_quote(peer) if peer else "null"},'
            f'"request_id":{rid_text},"request_id_given":{given}}}')


def _emit(lines: list) -> None:
    logger = request_log
    if not logger.isEnabledFor(logging.INFO):
        return
    handlers = logger.handlers
    if len(handlers) == 1 and handlers[0] is _STDERR_LINES and not logger.filters \
            and not logger.propagate:
        # The usual case, only our own handler: the lines straight to stderr, in one
        # write (a LogRecord per line costs more than the line).
        _write("\n".join(lines))
    else:
        # Handlers of someone else's too: a record for them (makeRecord + handle, as
        # logger.info would also walk the stack for the caller).
        for line in lines:
            logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, line, None,
                                            None))


class _Writer:
    """Formats and writes the request log on a thread of its own: a request only puts
    a tuple on a queue, and lines that queued up while one was written go out together
    in one write."""

    # Lines waiting beyond this (a stderr nobody reads) are dropped, and counted, rather
    # than kept in memory without bound.
    max_pending = 100_000

    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def put(self, item: tuple) -> None:
        if self._thread is None:
            self._start()
        q = self._queue
        if q.qsize() >= self.max_pending:
            self.dropped += 1
            return
        q.put(item)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._loop, daemon=True,
                                          name="exathunk-request-log")
                thread.start()
                self._thread = thread

    def _loop(self) -> None:
        q = self._queue
        while True:
            items = [q.get()]
            try:
                while len(items) < 4096:
                    items.append(q.get_nowait())
            except queue.Empty:
                pass
            lines, done = [], []
            for item in items:
                if isinstance(item, threading.Event):
                    done.append(item)
                else:
                    lines.append(format_line(*item))
            if lines:
                try:
                    _emit(lines)
                except Exception:             # a closed stderr: drop, never die
                    pass
            if self.dropped:
                dropped, self.dropped = self.dropped, 0
                log.warning("request log: %d lines dropped (stderr is not keeping up)",
                            dropped)
            for event in done:
                event.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every line put so far is written; False on the timeout."""
        if self._thread is None:
            return True
        event = threading.Event()
        self._queue.put(event)
        return event.wait(timeout)


_writer = _Writer()
atexit.register(_writer.flush, 2.0)


def log_request(kind: str, outcome: str, seconds: float, peer=None, args=None) -> None:
    """Log one request (its line is written on the log's own thread: ``flush``)."""
    _writer.put((time.time(), kind, outcome, seconds, peer,
                 request_id_of(args) if args is not None else None))


def flush(timeout: float = 5.0) -> bool:
    """Write every request line logged so far (a node's stop does)."""
    return _writer.flush(timeout)


def observer(metrics: NodeMetrics | None, json_log: bool):
    """The server's per-request hook ``(kind, outcome, seconds, peer, args)``, or None
    when there is nothing to observe."""
    if json_log:
        enable_json_log()
        if metrics is None:
            return log_request
        record = metrics.observe

        def both(kind, outcome, seconds, peer, args):
            record(kind, outcome, seconds)
            log_request(kind, outcome, seconds, peer, args)
        return both
    return metrics.observe if metrics is not None else None
