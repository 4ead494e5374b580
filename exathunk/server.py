"""The worker node: RemoteExecutionService over framed binary Thrift, built for throughput.

Owns the execution handler (compile cache, result cache by program digest, per-request limits and
a wall-clock timeout, a bounded queue that answers Overloaded, a bounded thunk table with
expiry), graceful shutdown, and the public entry points ``serve`` and ``start``.  The network server it listens
with (a thread per connection, framing by hand so that every frame is bounded and
checked by ``wire.check_frame`` before thriftpy2 decodes it) is exathunk.transport; who
is admitted is exathunk.admission.

Execution model: threads.  The engine releases the GIL while a program runs, so
evaluation threads use both cores without a process hop.  Measured on this 2-core machine
(python bench/bench_service.py; other sessions were loading it, load average ~4): a
5,000,000-iteration loop run twice on two threads took 0.676 s against 0.665 s for one
run alone (full overlap); the per-job hop to a worker process costs ~170 us for a tiny
program against ~29 us to a thread; and for long jobs 2 processes gave no more
throughput than 2 threads (13.6 vs 13.2 jobs/s, both bound by the cores left free).  A
process pool would add a pickle round trip of the program and the value to every
request, which is most of a small request's cost, for nothing.

Inline first: a request (``evaluate``, each of ``evaluateBatch``, ``submitEvalRequest``)
first runs on its connection's thread, no hand-off, within a small budget
(``inline_steps`` 50,000 steps, ``inline_heap`` 32 MiB, well under a millisecond; at
most ``inline_runs`` at once) and the request's own limits when smaller.  Only a run
that the budget (not the request's own limit) stopped runs again with its full limits in
one of ``workers`` evaluation slots (evaluate: on its connection's thread; thunks: on a
pool of ``workers`` threads), so a long program never holds up small ones and small ones
never queue behind long ones.  Inline runs count toward admission like the others.
Counters ``inline_runs``, ``escalated`` and ``pool_runs`` say which path runs took.

Policies:
- A request runs with the limits it asks for, capped by the node's caps; with no limit
  given, the node's defaults apply.  The wall-clock timeout (default 10 s, capped at 60 s)
  is enforced by deriving a step budget from it (the engine's steps/s on a tight loop,
  measured at start-up; the engine has no clock of its own), so a program that never
  stops is stopped by the engine itself and frees its worker: a loop within about its
  limit, an allocation-heavy program within about 8x its limit.  A thunk whose deadline
  passes while it still waits or runs is answered as LimitExceeded ("timeout") at once.
- Results (values only, never errors, which can depend on limits) are cached by
  (program digest, library) in a bounded LRU, and by source text in front of it, so a
  repeated source is answered without compiling; compilation is cached by source text
  (driver.compile) and loaded program bytes by their content.
- Decode bounds (before anything is allocated): frames over ``max_frame`` (16 MiB), and
  strings, containers and nesting over their bounds, close the connection; a frame's
  bytes are buffered as they arrive (a lying length prefix allocates nothing), within a
  budget for all connections.  Sockets have idle (300 s) and per-frame (30 s) timeouts,
  kept by the kernel.
- Admission: at most ``workers + queue_bound`` evaluations queued or running; beyond
  that, Overloaded (a declared exception) instead of a growing queue.
- Thunks: a finished result is kept ``thunk_ttl`` seconds (default 300) after it
  finished, fetched or not (so a client may fetch again after a lost reply), then
  expires (the declared Expired error, distinct from UnknownThunk).  Admission control
  (exathunk.admission): a client (its connection) may hold ``max_thunks_per_client``
  (10,000) unfetched thunks, then its own submits are Overloaded; with ``max_thunks``
  in the table, only clients below their share may add more.  Under pressure only
  results already fetched are dropped early, never one nobody has fetched.
- Connections: at most ``max_connections``; a new one beyond that closes the least
  recently active connection not in the middle of a request (exathunk.admission), and
  is refused only when every connection is running a request.
- Authentication (``token``/``token_file``, exathunk.auth, docs/security.md): a node
  with a token answers every method (a broker: registerWorker, unless
  ``require_client_token``) with AuthenticationError until the connection has called
  ``authenticate`` with the right token, checked once per connection; a wrong token is
  answered, then the connection closed.  TLS (``tls_cert``, ``tls_key``): the handshake
  runs on the connection's thread within ``io_timeout``; a plaintext client is told the
  node serves TLS only.
- Shutdown (SIGTERM/SIGINT, or ``ServerHandle.stop``): new work gets Overloaded
  (kind ShuttingDown), in-flight work finishes, results stay fetchable for a short
  linger, then connections close.
- Operations (``exathunk.metrics``): with ``metrics_port`` a node serves Prometheus
  metrics on its own HTTP thread; with ``log_format="json"`` it writes one JSON line per
  request.  Both hang on one hook around every RPC in ``transport.ThriftServer._dispatch``
  (method, outcome, seconds, client, arguments), which is None and costs nothing when
  both are off.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

from . import __version__, admission, auth, wire
from .subthunks import using as using_runner
from .errors import (AuthenticationError, ExathunkError, LimitExceeded, UnknownFunctionError,
                     limit_message)
from .library import Library, default_library
from .transport import ThriftServer

log = logging.getLogger("exathunk.server")
log.addHandler(logging.NullHandler())

T = wire.thrift
_perf = time.perf_counter
_mono = time.monotonic

# The cap on one blocking wait, below thriftpy2's default client socket timeout of 3 s
# (DESIGN §8): a client that wants to wait longer loops.
MAX_WAIT_MS = 2000


@dataclass
class Options:
    """Every knob of a node; ``serve``/``start`` take them as keyword arguments."""
    # Per-request limit defaults (None: the engine's own default) and caps (None: none).
    max_steps: int | None = None
    max_heap: int | None = None
    max_depth: int | None = None
    max_steps_cap: int | None = None
    max_heap_cap: int | None = None
    max_depth_cap: int | None = None
    timeout_ms: int = 10_000          # default wall-clock limit per request
    max_timeout_ms: int = 60_000      # cap on what a request may ask for
    steps_per_second: float | None = None  # None: measured at start-up
    workers: int = 2                  # evaluation threads (this machine has 2 cores)
    # A request first runs inline on its connection's thread within these bounds (well
    # under a millisecond); one that needs more runs again in an evaluation slot with its
    # full limits.  inline_steps 0: every run takes a slot.
    inline_steps: int = 50_000
    inline_heap: int = 32 << 20
    inline_runs: int = 8              # inline runs at once (bounds their memory)
    queue_bound: int = 256            # evaluations waiting beyond the running ones
    cache_size: int = 10_000          # results kept by digest
    program_cache_size: int = 4096    # loaded programs kept by their bytes
    max_thunks: int = 100_000
    thunk_ttl: float = 300.0          # an unfetched (or fetched) result is kept this long
    # Submitted, unfetched thunks one client (one connection) may hold (exathunk.admission).
    max_thunks_per_client: int = 10_000
    max_batch: int = 10_000           # requests in one batch call
    max_connections: int = 256
    idle_timeout: float = 300.0       # a connection silent this long is closed
    io_timeout: float = 30.0          # a started frame must arrive within this
    max_frame: int = 16 << 20
    max_string: int = 8 << 20
    max_container: int = 4 << 20
    max_nesting: int = 64
    max_inflight_bytes: int = 256 << 20  # frame bytes being received, all connections
    linger: float = 2.0               # on shutdown, how long unfetched results wait
    join: object = None               # "host:port" of a broker to register with
    # Authentication and TLS (exathunk.auth, docs/security.md): the shared token (or the
    # file holding it), whether a broker requires it of every client (a worker always
    # does), the TLS certificate and key to serve with, and the CA file that outgoing
    # connections verify against (outgoing TLS when set).  ``security`` is these,
    # resolved (an auth.NodeSecurity); start() builds it from the others when None.
    token: str | None = None
    token_file: str | None = None
    require_client_token: bool | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    security: object = None
    # Operations (exathunk.metrics): Prometheus metrics on http://metrics_host:metrics_port
    # /metrics (None: off; 0: a free port), and log_format "json": one JSON line per
    # request on the exathunk.requests logger (stderr).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str | None = None

    @classmethod
    def build(cls, **options) -> "Options":
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown server options: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in options.items() if v is not None or k == "join"})


class _LRU:
    """A bounded, thread-safe LRU map."""

    def __init__(self, capacity: int):
        self.capacity = max(0, capacity)
        self._data: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        # dict.get is atomic under the GIL; recency is refreshed without blocking readers
        # for long (move_to_end can race with a pop, hence the lock and the KeyError).
        value = self._data.get(key)
        if value is not None:
            with self._lock:
                try:
                    self._data.move_to_end(key)
                except KeyError:
                    pass
        return value

    def put(self, key, value) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self):
        return len(self._data)


class _Thunk:
    __slots__ = ("id", "request_id", "digest", "state", "outcome", "error", "done",
                 "watchers", "finished_at", "deadline", "fetched", "cancel", "owner")

    def __init__(self, tid, request_id, digest, deadline):
        self.id = tid
        self.request_id = request_id
        self.digest = digest
        self.state = T.ThunkState.QUEUED
        self.outcome = None           # VarCont when DONE
        self.error = None             # ExathunkException when FAILED
        self.done = threading.Event()
        self.watchers: list = []
        self.finished_at = None
        self.deadline = deadline
        self.fetched = False
        self.cancel = None            # the CancelToken of its run, once it runs
        self.owner = None             # the client that submitted it (admission quota)


class _Job:
    """A compiled request ready to run."""
    __slots__ = ("program", "digest", "limits", "deadline", "timeout_ms", "derived_steps",
                 "request_id", "no_cache", "compile_ms", "cache_key", "source", "request",
                 "plan", "image", "library", "runner", "cancel")


class _Slot:
    """An evaluation slot held by a run that waits on sub-thunks: it gives the slot back
    while it waits (other runs, its own sub-thunks among them, may compute meanwhile)
    and takes one again, within its deadline, to go on."""
    __slots__ = ("slots", "token", "deadline", "held")

    def __init__(self, slots, token, deadline):
        self.slots, self.token, self.deadline, self.held = slots, token, deadline, True

    @contextlib.contextmanager
    def paused(self):
        self.give_back()
        try:
            yield
        finally:
            remaining = self.deadline - _mono() if self.deadline else 30.0
            try:
                self.token = self.slots.get(timeout=max(0.001, remaining))
            except queue.Empty:
                raise LimitExceeded("wall-clock limit passed waiting for an evaluation "
                                    "slot after a sub-thunk", limit="timeout") from None
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.slots.put(self.token)


class _Plan:
    """The limits of one combination of asked limits and timeout, worked out once."""
    __slots__ = ("timeout_ms", "limits", "derived_steps", "engine_limits", "inline_limits")


_NO_HOSTS: list = []

def _peer_host() -> str | None:
    """The host of the call this thread is serving (exathunk.transport sets its peer): a
    sub-thunk plan's callback goes to the host the request came from, never to one the
    request names."""
    peer = getattr(admission.current, "peer", None)
    if not peer:
        return None
    host = peer.rpartition(":")[0]
    return host.strip("[]") or None

_UNSET = object()
_INT, _DOUBLE = T.ValueKind.INT, T.ValueKind.DOUBLE


# The stats of every answer served from the result cache: the engine did no work, and
# the measurements are left out (they are optional) to keep the hot reply small.
_CACHED_STATS = T.RunStats(cached=True)


def _compile_source(source, library):
    global _compile_source
    from .driver import compile as compile_source
    _compile_source = compile_source
    return compile_source(source, library=library)


class ExecutionHandler:
    """The RemoteExecutionService methods of a worker node (thriftpy2 handler object)."""

    role = "worker"

    def __init__(self, library: Library | None = None, options: Options | None = None):
        self.library = library or default_library()
        self.options = options or Options()
        self.node_id = os.urandom(16).hex()   # ServiceStats.nodeId: new at every start
        o = self.options
        self._results = _LRU(o.cache_size)
        self._by_source = _LRU(o.cache_size)
        self._programs = _LRU(o.program_cache_size)
        self._prepared = _LRU(o.program_cache_size)   # source -> compiled, digest, image
        self._plans: dict = {}
        self._func_defs: dict | None = None
        self._func_defs_key = None
        self._class_defs = None
        self._class_defs_key = None
        self._delegations: dict = {}       # plan -> Library with delegated stubs
        self._callbacks: dict = {}         # (host, port) -> Client taking sub-thunks
        # Evaluation slots as tokens in a C-implemented queue: cheaper to take and give
        # back than a threading.Semaphore, and get() takes a timeout.
        self._slots: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(max(1, o.workers)):
            self._slots.put(i + 1)
        # Runs started and finished: next() on a count is atomic, no lock on the hot path.
        self._started_runs = itertools.count()
        self._finished_runs = itertools.count()
        self._inline_tokens: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(max(1, o.inline_runs)):
            self._inline_tokens.put(i + 1)
        # A subclass that replaces _run (a test double) gets every run through it.
        self._inline_ok = type(self)._run is ExecutionHandler._run
        try:
            from . import _core
            self._core_run = _core.run
        except ImportError:
            self._core_run = None
        # Runs in evaluation slots stop at their real deadline and on thunkCancel.
        self._cancel_token = getattr(_core, "CancelToken", None) if self._core_run else None
        self._running: dict = {}           # request id -> CancelTokens of its runs
        self._pool = ThreadPoolExecutor(max_workers=max(1, o.workers),
                                        thread_name_prefix="exathunk-eval")
        self._lock = threading.Lock()
        self._load = 0                 # evaluations queued or running
        self._thunks: collections.OrderedDict[str, _Thunk] = collections.OrderedDict()
        self._quota = admission.ThunkQuota(o.max_thunks_per_client, o.max_thunks)
        self._expired = admission.ExpiredIds(min(o.max_thunks, 100_000))
        self._last_sweep = _mono()
        self._ids = itertools.count(1)
        self.draining = False
        self.started = _mono()
        self.counters = collections.Counter()
        self._mean_run_ms = 0.0
        self._idle = threading.Condition(self._lock)
        self.steps_per_second = o.steps_per_second
        if self.steps_per_second is None:
            self.steps_per_second = self._calibrate()
        # The network layer fills these in for getStats.
        self.connections = lambda: 0
        self.rejected_frames = lambda: 0
        # What this node presents when it calls others (start() sets it from --token-file
        # and --tls-ca): the callers that take its sub-thunks.
        self.client_security = auth.NO_CLIENT_SECURITY

    # ---------------------------------------------------------------- set-up
    def _calibrate(self) -> float:
        """Engine steps per second on this machine, to turn a timeout into a step budget.

        Measured on a tight loop, the fastest kind of step: a budget from it never stops
        a program before its wall-clock limit.  Allocation-heavy programs take longer per
        step (about 8x on this machine), so they may run past their limit by that factor
        before the budget stops them; a submitted thunk is still answered as timed out
        at its deadline.
        """
        fallback = 40e6
        try:
            from .driver import compile as compile_source
            prog = compile_source(
                "(define (loop n acc) (if (= n 0) acc (loop (- n 1) (+ acc 1))))\n"
                "(loop 300000 0)", library=self.library)
            best = 0.0
            for _ in range(3):
                t0 = _perf()
                _, stats = prog.run_with_stats()
                dt = _perf() - t0
                steps = stats.get("steps") if isinstance(stats, dict) else None
                if steps and dt > 0:
                    best = max(best, steps / dt)
            return best if best > 0 else fallback
        except Exception as err:       # the engine is missing or broken: keep a guess
            log.warning("could not measure engine speed (%s); assuming %.0f steps/s",
                        err, fallback)
            return fallback

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            callbacks, self._callbacks = list(self._callbacks.values()), {}
        for c in callbacks:
            c.close()
        c = self.counters
        log.info("runs: %d inline, %d over the inline budget, %d in evaluation slots",
                 c["inline_runs"], c["escalated"], c["pool_runs"])

    # ---------------------------------------------------------------- preparation
    def _prepare(self, req) -> _Job:
        """Compile (cached) a request and work out its limits; raises ExathunkError."""
        if req is None:
            raise ExathunkError("missing evalRequest")
        if req.subThunks is not None:
            return self._prepare_with_subthunks(req)
        job = _Job()
        job.library = self.library
        job.runner = None
        job.cancel = None
        t0 = _perf()
        source = req.source
        if source is not None and req.graph is None and req.programBytes is None:
            # Source seen before: program, digest, cache key and engine image in one
            # lookup (library changes invalidate by version).
            entry = self._prepared.get(source)
            if entry is None or entry[0] != self.library.version:
                program = _compile_source(source, library=self.library)
                entry = (self.library.version, program, program.digest,
                         (program.digest, self.library.id, self.library.version),
                         self._image_of(program))
                self._prepared.put(source, entry)
            _, job.program, job.digest, job.cache_key, job.image = entry
        else:
            given = ((source is not None) + (req.graph is not None)
                     + (req.programBytes is not None))
            if given != 1:
                raise ExathunkError("an EvalRequest needs exactly one of source, graph "
                                    "and programBytes")
            if req.programBytes is not None:
                blob = req.programBytes
                program = self._programs.get(blob)
                if program is None:
                    from .program import Program
                    program = Program.from_bytes(blob, library=self.library)
                    self._programs.put(blob, program)
            else:
                program = wire.graph_to_program(req.graph, library=self.library)
            job.program = program
            job.digest = program.digest
            job.cache_key = (job.digest, self.library.id, self.library.version)
            job.image = _UNSET                # built only if it runs (not on a cache hit)
        job.source = source
        job.compile_ms = (_perf() - t0) * 1e3
        job.request_id = req.requestId
        job.no_cache = bool(req.noCache)
        job.request = req
        job.deadline = None
        return job

    def _prepare_with_subthunks(self, req) -> _Job:
        """A request whose sub-thunks go back to its caller: compiled against this
        node's Library plus a stub for every function and instance delegated to others,
        and run (never inline: it waits on other nodes) with a CallbackRunner."""
        from .subthunks import CallbackRunner
        plan = req.subThunks
        host = _peer_host()
        port = plan.callbackPort
        if host is None or not isinstance(port, int) or not 0 < port < 65536:
            raise ExathunkError("a sub-thunk plan needs a caller's port (1-65535)")
        t0 = _perf()
        lib = self._delegation_library(plan)
        given = ((req.source is not None) + (req.graph is not None)
                 + (req.programBytes is not None))
        if given != 1:
            raise ExathunkError("an EvalRequest needs exactly one of source, graph and "
                                "programBytes")
        if req.source is not None:
            program = _compile_source(req.source, library=lib)
        elif req.programBytes is not None:
            from .program import Program
            program = Program.from_bytes(req.programBytes, library=lib)
        else:
            program = wire.graph_to_program(req.graph, library=lib)
        job = _Job()
        job.program = program
        job.digest = program.digest
        job.cache_key = (job.digest, lib.id, lib.version)
        job.image = None
        job.library = lib
        job.cancel = None
        job.runner = CallbackRunner(self._callback_client(host, port), parent=plan.parent,
                                    timeout_ms=req.timeoutMs)
        job.source = req.source
        job.compile_ms = (_perf() - t0) * 1e3
        job.request_id = req.requestId
        job.no_cache = bool(req.noCache)
        job.request = req
        job.deadline = None
        self.counters["subthunk_plans"] += 1
        return job

    def _delegation_library(self, plan) -> Library:
        """This node's Library with stubs for what the plan delegates (cached)."""
        from .subthunks import delegated_stub
        funcs = list(plan.delegatedFunctions or [])
        insts = list(plan.delegatedInstances or [])
        lib = self.library
        key = (lib.id, lib.version,
               tuple((d.name, d.typeText, tuple(d.strictness or ())) for d in funcs),
               tuple((i.className, i.typeText, tuple(i.methods or ())) for i in insts))
        with self._lock:
            hit = self._delegations.get(key)
        if hit is not None:
            return hit
        if len(funcs) + len(insts) > 256:
            raise ExathunkError("a sub-thunk plan delegates more than 256 functions")
        new = lib.copy()
        for d in funcs:
            have = new.lookup(d.name)
            if have is not None and have.signature == d.typeText:
                continue                   # offered here after all
            if any(s == T.Strictness.LAZY for s in (d.strictness or [])):
                raise ExathunkError(f"{d.name} has a lazy parameter: it cannot be "
                                    "delegated (a sub-thunk's arguments travel as values)")
            new.register(d.name, d.typeText, delegated_stub(d.name, d.typeText, d.name),
                         strict=True)
        for inst in insts:
            defs = {m.name.partition("@")[0]: m for m in inst.methodDefs or []}
            methods = {}
            for m in inst.methods or []:
                d = defs.get(m)
                if d is None:
                    raise ExathunkError(f"the delegated instance {inst.className} "
                                        f"{inst.typeText} does not describe its method {m!r}")
                methods[m] = delegated_stub(d.name, d.typeText,
                                            f"(the {d.typeText} {m})")
            new.register_instance(inst.className, inst.typeText, strict=True, **methods)
        with self._lock:
            if len(self._delegations) >= 64:
                self._delegations.clear()
            self._delegations[key] = new
        return new

    def _callback_client(self, host: str, port: int):
        """A pooled client to a caller that takes sub-thunks."""
        from .client import Client
        key = (host, port)
        with self._lock:
            c = self._callbacks.get(key)
        if c is None:
            c = Client(host, port, timeout=30.0, security=self.client_security)
            with self._lock:
                old = self._callbacks.setdefault(key, c)
            if old is not c:
                c.close()
                c = old
        return c

    def _image_of(self, program):
        """The engine image to run ``program`` directly (skipping Program.run_with_stats'
        per-call argument checks and host binding), or None for the general path: a
        program calling host functions, or no compiled engine."""
        if self._core_run is None or program.hosts:
            return None
        image_of = getattr(program, "_engine_image", None)
        return image_of() if image_of is not None else None

    def _plan(self, job: _Job) -> None:
        """Work out the limits and the deadline of a job that will run (cache missed)."""
        req = job.request
        key = (req.timeoutMs, req.maxSteps, req.maxHeap, req.maxDepth)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._make_plan(*key)
            if len(self._plans) >= 256:       # clients asking ever new limits
                self._plans.clear()
            self._plans[key] = plan
        job.plan = plan
        job.timeout_ms = plan.timeout_ms
        job.limits = plan.limits
        job.derived_steps = plan.derived_steps
        job.deadline = _mono() + plan.timeout_ms / 1e3

    def _make_plan(self, timeout_ms, max_steps, max_heap, max_depth) -> "_Plan":
        o = self.options
        plan = _Plan()
        timeout_ms = timeout_ms if timeout_ms and timeout_ms > 0 else o.timeout_ms
        plan.timeout_ms = timeout_ms = min(timeout_ms, o.max_timeout_ms)
        limits = {}
        for name, asked, default, cap in (
                ("max_steps", max_steps, o.max_steps, o.max_steps_cap),
                ("max_heap", max_heap, o.max_heap, o.max_heap_cap),
                ("max_depth", max_depth, o.max_depth, o.max_depth_cap)):
            value = asked if asked is not None and asked > 0 else default
            if cap is not None:
                value = cap if value is None else min(value, cap)
            if value is not None:
                limits[name] = int(value)
        plan.derived_steps = False
        if self._cancel_token is None:
            # An engine without a clock: the wall-clock limit as a step budget.
            budget = max(1000, int(self.steps_per_second * timeout_ms / 1e3))
            if limits.get("max_steps") is None or budget < limits["max_steps"]:
                limits["max_steps"] = budget
                plan.derived_steps = True
        elif limits.get("max_steps") is None:
            from .program import DEFAULT_MAX_STEPS
            limits["max_steps"] = DEFAULT_MAX_STEPS
        plan.limits = limits
        from .program import DEFAULT_MAX_DEPTH, DEFAULT_MAX_HEAP
        steps = min(max(1, limits["max_steps"]), 1 << 62)
        heap = min(max(1, limits.get("max_heap", DEFAULT_MAX_HEAP)), 1 << 62)
        depth = min(max(1, limits.get("max_depth", DEFAULT_MAX_DEPTH)), 1 << 62)
        plan.engine_limits = (steps, heap, depth)
        if o.inline_steps and o.inline_steps > 0:
            plan.inline_limits = (min(steps, o.inline_steps),
                                  min(heap, max(4096, o.inline_heap)), depth)
        else:
            plan.inline_limits = None
        return plan

    def _cached(self, job: _Job):
        """The cached VarCont of a job's program, or None."""
        if job.no_cache:
            return None
        hit = self._results.get(job.cache_key)
        if hit is None:
            self.counters["cache_misses"] += 1
            return None
        self.counters["cache_hits"] += 1
        if job.request_id is None:
            return hit                        # shared, never mutated: encoding only reads
        return T.VarCont(nodes=hit.nodes, root=hit.root, typeText=hit.typeText,
                         digest=hit.digest, stats=hit.stats, requestId=job.request_id)

    def _varcont(self, payload, job: _Job, *, cached: bool, queue_ms=0.0, run_ms=0.0,
                 stats=None):
        nodes, root, type_text = payload
        stats = stats or {}
        return T.VarCont(
            nodes=nodes, root=root, typeText=type_text, digest=job.digest,
            requestId=job.request_id,
            stats=T.RunStats(steps=int(stats.get("steps", 0) or 0),
                             peakHeap=int(stats.get("peak_heap", stats.get("heap_peak", 0)) or 0),
                             gcRuns=int(stats.get("gc_runs", stats.get("gcs", 0)) or 0),
                             compileMs=job.compile_ms, queueMs=queue_ms, runMs=run_ms,
                             cached=cached))

    # ---------------------------------------------------------------- execution
    def _admit(self, n: int = 1) -> None:
        o = self.options
        with self._lock:
            if self.draining:
                self.counters["overloaded"] += 1
                raise wire.overloaded("server is shutting down", 1000, shutting_down=True)
            if self._load + n > o.workers + o.queue_bound:
                self.counters["overloaded"] += 1
                raise wire.overloaded(
                    f"queue full ({self._load} queued or running, bound "
                    f"{o.workers + o.queue_bound})", retry_after_ms=max(10, int(self._mean_run_ms * self._load / max(1, o.workers))))
            self._load += n

    def _release(self) -> None:
        with self._lock:
            self._load -= 1
            if self._load == 0 and self.draining:
                self._idle.notify_all()

    def _execute(self, job: _Job, arrived: float, inline: bool = True):
        """Run a prepared job; returns a VarCont or raises.

        First inline (``inline``), within the small inline budget; a job over that budget
        then runs in an evaluation slot with its full budget.  The caller has admitted
        the job; this releases it.
        """
        try:
            if inline and self._inline_ok and job.plan.inline_limits is not None \
                    and job.runner is None:
                outcome = self._run_inline(job)
                if outcome is not None:
                    return outcome
            remaining = job.deadline - _mono()
            try:
                token = self._slots.get(timeout=remaining) if remaining > 0 else None
            except queue.Empty:
                token = None
            if token is None:
                raise self._timeout_error(job)
            slot = None
            if job.runner is not None:
                slot = _Slot(self._slots, token, job.deadline)
                job.runner.pause = slot.paused
            try:
                started = _mono()
                next(self._started_runs)
                self.counters["pool_runs"] += 1
                try:
                    return self._run(job, queue_ms=(started - arrived) * 1e3)
                finally:
                    next(self._finished_runs)
            finally:
                if slot is None:
                    self._slots.put(token)
                else:
                    slot.give_back()
        finally:
            self._release()

    def _run_inline(self, job: _Job):
        """Run a job on the calling thread within the inline budget: its VarCont, or
        None when the budget (not the request's own limits) stopped it."""
        plan = job.plan
        image = job.image
        if image is _UNSET:
            image = job.image = self._image_of(job.program)
        tokens = self._inline_tokens
        try:
            token = tokens.get_nowait()
        except queue.Empty:
            # Every inline run is short, so a token comes back soon.
            remaining = job.deadline - _mono()
            try:
                token = tokens.get(timeout=remaining) if remaining > 0 else None
            except queue.Empty:
                token = None
            if token is None:
                raise self._timeout_error(job) from None
        steps, heap, depth = plan.inline_limits
        next(self._started_runs)
        t0 = _perf()
        try:
            if image is not None:
                value, stats = self._core_run(image, _NO_HOSTS, steps, heap, depth)
            else:
                value, stats = job.program.run_with_stats(
                    max_steps=steps, max_heap=heap, max_depth=depth, library=self.library)
        except LimitExceeded as err:
            limit = err.limit
            if ((limit == "max_steps" and steps < plan.engine_limits[0])
                    or (limit == "max_heap" and heap < plan.engine_limits[1])):
                self.counters["escalated"] += 1
                return None                   # over the inline budget: to a slot
            self._ran(t0)
            if plan.derived_steps and limit == "max_steps":
                raise self._timeout_error(job) from None
            raise
        except BaseException:
            self._ran(t0)
            raise
        finally:
            next(self._finished_runs)
            tokens.put(token)
        run_ms = (_perf() - t0) * 1e3
        counters = self.counters
        counters["evaluations"] += 1
        counters["inline_runs"] += 1
        self._mean_run_ms += (run_ms - self._mean_run_ms) * 0.05
        return self._reply(value, stats, job, run_ms)

    def _ran(self, t0: float) -> float:
        run_ms = (_perf() - t0) * 1e3
        self.counters["evaluations"] += 1
        self._mean_run_ms += (run_ms - self._mean_run_ms) * 0.05
        return run_ms

    def _reply(self, value, stats, job: _Job, run_ms: float):
        """The VarCont of a value the engine produced (and its cache entry)."""
        t = type(value)
        if t is int:
            nodes, root = [wire.ValueNode(kind=_INT, intValue=value)], 0
        elif t is float:
            nodes, root = [wire.ValueNode(kind=_DOUBLE, doubleValue=value)], 0
        else:
            nodes, root = wire.value_to_nodes(value)
        type_text = job.program.type
        if not job.no_cache:
            self._results.put(job.cache_key, T.VarCont(
                nodes=nodes, root=root, typeText=type_text, digest=job.digest,
                stats=_CACHED_STATS))
        return T.VarCont(
            nodes=nodes, root=root, typeText=type_text, digest=job.digest,
            requestId=job.request_id,
            stats=T.RunStats(steps=stats["steps"], peakHeap=stats["peak_heap"],
                             gcRuns=stats["gc_runs"], compileMs=job.compile_ms,
                             queueMs=0.0, runMs=run_ms, cached=False))

    def _timeout_error(self, job: _Job) -> LimitExceeded:
        self.counters["timeouts"] += 1
        seconds = job.timeout_ms / 1e3
        return LimitExceeded(limit_message("timeout", seconds), limit="timeout",
                             value=seconds)

    def _run(self, job: _Job, queue_ms: float):
        t0 = _perf()
        extra = {}
        rid = job.request_id
        if self._cancel_token is not None:
            token = job.cancel
            if token is None:
                token = job.cancel = self._cancel_token()
            extra["cancel"] = token
            extra["timeout"] = max(0.001, job.deadline - _mono()) if job.deadline else None
            if rid is not None:
                with self._lock:
                    self._running.setdefault(rid, []).append(token)
        try:
            if job.runner is None:
                value, stats = job.program.run_with_stats(library=self.library,
                                                          **job.limits, **extra)
            else:
                try:
                    with using_runner(job.runner):
                        value, stats = job.program.run_with_stats(library=job.library,
                                                                  **job.limits, **extra)
                finally:
                    self.counters["subthunks"] += job.runner.submitted
        except LimitExceeded as err:
            if err.limit == "timeout" or (job.derived_steps and err.limit == "max_steps"):
                raise self._timeout_error(job) from None
            if err.limit == "cancelled":
                self.counters["cancelled_runs"] += 1
            raise
        finally:
            if rid is not None and "cancel" in extra:
                with self._lock:
                    tokens = self._running.get(rid)
                    if tokens is not None:
                        tokens.remove(extra["cancel"])
                        if not tokens:
                            del self._running[rid]
            run_ms = (_perf() - t0) * 1e3
            self.counters["evaluations"] += 1
            self._mean_run_ms += (run_ms - self._mean_run_ms) * 0.05
        payload = (*wire.value_to_nodes(value), job.program.type)
        if not job.no_cache:
            shared = T.VarCont(nodes=payload[0], root=payload[1], typeText=payload[2],
                               digest=job.digest, stats=_CACHED_STATS)
            self._results.put(job.cache_key, shared)
        return self._varcont(payload, job, cached=False, queue_ms=queue_ms, run_ms=run_ms,
                             stats=stats if isinstance(stats, dict) else None)

    def _evaluate_one(self, req):
        # The hottest path: the same source text again, answered from the cache by its
        # text without compiling or hashing (library changes invalidate by version).
        if req is None:
            raise ExathunkError("missing evalRequest")
        source = req.source
        if (source is not None and req.graph is None and req.programBytes is None
                and not req.noCache and req.requestId is None):
            hit = self._by_source.get(source)
            if hit is not None and hit[0] == self.library.version:
                self.counters["cache_hits"] += 1
                return hit[1]
        arrived = _mono()
        job = self._prepare(req)
        if job.no_cache:
            self._plan(job)
            self._admit()
            return self._execute(job, arrived)
        reply = self._cached(job)
        if reply is None:
            self._plan(job)
            self._admit()
            reply = self._execute(job, arrived)     # this run's own stats, cached=False
        if source is not None and job.request_id is None and req.graph is None \
                and req.programBytes is None:
            # The by-source cache keeps the shared entry (cached=True, no run stats),
            # never this reply: a later hit must not claim this run's steps.
            shared = self._results.get(job.cache_key)
            if shared is not None:
                self._by_source.put(source, (self.library.version, shared))
        return reply

    # ---------------------------------------------------------------- thunks
    def _new_thunk(self, job: _Job | None, request_id) -> _Thunk:
        tid = f"{next(self._ids):x}-{os.urandom(6).hex()}"
        deadline = job.deadline if job is not None else None
        thunk = _Thunk(tid, request_id, job.digest if job else None,
                       deadline if deadline is not None
                       else _mono() + self.options.timeout_ms / 1e3)
        client = admission.current_client()
        thunk.owner = client
        with self._lock:
            if len(self._thunks) >= self.options.max_thunks or _mono() - self._last_sweep > 1.0:
                self._sweep_locked()
            why = self._quota.refusal(client, len(self._thunks))
            if why is not None:
                self.counters["overloaded"] += 1
                self.counters["quota_refused"] += 1
                raise wire.overloaded(why, retry_after_ms=1000)
            self._thunks[tid] = thunk
            self._quota.take(client)
        return thunk

    def _drop_locked(self, thunk: _Thunk) -> None:
        del self._thunks[thunk.id]
        self._expired.add(thunk.id)
        if not thunk.fetched:
            self._quota.release(thunk.owner)

    def _sweep_locked(self) -> None:
        """Drop expired results (finished more than thunk_ttl ago); under pressure, also
        the oldest results already fetched.  Never a result nobody has fetched yet before
        it expires: one client's flood does not cost another its pending result (the
        flood is refused instead, exathunk.admission)."""
        now = _mono()
        self._last_sweep = now
        ttl = self.options.thunk_ttl
        expired = [t for t in self._thunks.values()
                   if t.finished_at is not None and now - t.finished_at > ttl]
        for t in expired:
            self._drop_locked(t)
        excess = len(self._thunks) - int(self.options.max_thunks * 0.9)
        if excess > 0:
            # Oldest fetched results go first (the table is in creation order).
            victims = []
            for t in self._thunks.values():
                if len(victims) >= excess:
                    break
                if t.finished_at is not None and t.fetched:
                    victims.append(t)
            for t in victims:
                self._drop_locked(t)

    def _mark_fetched(self, thunk: _Thunk) -> None:
        if not thunk.fetched:
            with self._lock:
                if not thunk.fetched:
                    thunk.fetched = True
                    if thunk.id in self._thunks:
                        self._quota.release(thunk.owner)

    def _finish(self, thunk: _Thunk, outcome=None, error=None, cancelled=False) -> bool:
        with self._lock:
            if thunk.finished_at is not None:
                return False
            if cancelled:
                thunk.state = T.ThunkState.CANCELLED
            elif error is not None:
                thunk.state = T.ThunkState.FAILED
                thunk.error = error
            else:
                thunk.state = T.ThunkState.DONE
                thunk.outcome = outcome
            thunk.finished_at = _mono()
            watchers, thunk.watchers = thunk.watchers, []
        thunk.done.set()
        for w in watchers:
            w.set()
        return True

    def _run_thunk(self, thunk: _Thunk, job: _Job, arrived: float) -> None:
        if thunk.finished_at is not None:       # cancelled (or timed out) while queued
            self._release()
            return
        thunk.state = T.ThunkState.RUNNING
        if self._cancel_token is not None:
            job.cancel = thunk.cancel = self._cancel_token()
        try:
            outcome = self._execute(job, arrived, inline=False)
        except ExathunkError as err:
            self.counters["errors"] += 1
            self._finish(thunk, error=wire.error_to_thrift(err))
        except Exception as err:                # an engine bug must not lose the thunk
            self.counters["errors"] += 1
            log.warning("thunk %s: internal error %r", thunk.id, err)
            self._finish(thunk, error=wire.error_to_thrift(err))
        else:
            self._finish(thunk, outcome=outcome)

    def _start(self, req, failed_thunk_on_error: bool, inline: bool = False):
        arrived = _mono()
        try:
            job = self._prepare(req)
        except ExathunkError as err:
            if not failed_thunk_on_error:
                raise
            thunk = self._new_thunk(None, getattr(req, "requestId", None))
            self._finish(thunk, error=wire.error_to_thrift(err))
            return thunk
        hit = self._cached(job)
        if hit is not None:
            thunk = self._new_thunk(job, job.request_id)
            self._finish(thunk, outcome=hit)
            return thunk
        self._plan(job)
        self._admit()
        try:
            thunk = self._new_thunk(job, job.request_id)
        except BaseException:
            self._release()
            raise
        if inline and self._inline_ok and job.plan.inline_limits is not None \
                and job.runner is None:
            # A small program is done before the reply: no hop to the pool.
            try:
                outcome = self._run_inline(job)
            except BaseException as err:
                self._release()
                if not isinstance(err, Exception):
                    raise
                if not isinstance(err, ExathunkError):
                    log.warning("thunk %s: internal error %r", thunk.id, err)
                self.counters["errors"] += 1
                self._finish(thunk, error=wire.error_to_thrift(err))
                return thunk
            if outcome is not None:
                self._release()
                self._finish(thunk, outcome=outcome)
                return thunk
        self._pool.submit(self._run_thunk, thunk, job, arrived)
        return thunk

    def _handle(self, thunk) -> T.RemoteThunk:
        return T.RemoteThunk(id=thunk.id, requestId=thunk.request_id, digest=thunk.digest)

    def _find(self, tid) -> _Thunk | None:
        """The thunk of an id, None when unknown or expired (then dropped now)."""
        thunk = self._thunks.get(tid) if tid is not None else None
        if thunk is not None and thunk.finished_at is not None \
                and _mono() - thunk.finished_at > self.options.thunk_ttl:
            with self._lock:
                if self._thunks.get(tid) is thunk:
                    self._drop_locked(thunk)
            return None
        return thunk

    def _missing(self, tid) -> T.ExathunkException | T.UnknownThunk:
        """The declared error for an id not in the table: Expired or UnknownThunk."""
        if tid is not None and tid in self._expired:
            return T.ExathunkException(kind=admission.EXPIRED_KIND,
                                       message=admission.expired_message(
                                           tid, self.options.thunk_ttl))
        return T.UnknownThunk(kind="UnknownThunk", message=f"no thunk {tid!r} (never issued)")

    def _lookup(self, remote) -> _Thunk:
        tid = getattr(remote, "id", None)
        thunk = self._find(tid)
        if thunk is None:
            raise self._missing(tid)
        return thunk

    def _check_deadline(self, thunk: _Thunk) -> None:
        if thunk.finished_at is None and _mono() > thunk.deadline:
            err = LimitExceeded("wall-clock limit passed", limit="timeout")
            if self._finish(thunk, error=wire.error_to_thrift(err)):
                self.counters["timeouts"] += 1

    def _outcome(self, thunk: _Thunk):
        """The VarCont of a finished thunk, or raise its error / NotDone."""
        self._check_deadline(thunk)
        state = thunk.state
        if thunk.finished_at is None:
            raise T.NotDone(kind="NotDone", message=f"thunk {thunk.id} is not finished",
                            state=state)
        self._mark_fetched(thunk)
        if state == T.ThunkState.DONE:
            return thunk.outcome
        if state == T.ThunkState.CANCELLED:
            raise T.ExathunkException(kind="RemoteError", message=f"thunk {thunk.id} was cancelled")
        raise thunk.error

    # ---------------------------------------------------------------- the service
    def getFuncDefs(self, funcIds):
        lib = self.library
        key = (lib.id, lib.version)
        if self._func_defs_key != key:
            self._func_defs = {s.name: wire.func_def(s, lib) for s in lib.specs()
                               if not s.name.startswith("%")}
            self._func_defs_key = key
        defs = self._func_defs
        if not funcIds:
            return list(defs.values())
        out = []
        for fid in funcIds:
            name = getattr(fid, "name", None)
            d = defs.get(name)
            if d is None:
                raise UnknownFunctionError(f"unknown function {name!r}")
            out.append(d)
        return out

    def getClassDefs(self):
        lib = self.library
        key = (lib.id, lib.version)
        if self._class_defs_key != key:
            self._class_defs = wire.class_defs(lib)
            self._class_defs_key = key
        return self._class_defs

    def submitEvalRequest(self, evalRequest):
        return self._handle(self._start(evalRequest, failed_thunk_on_error=False,
                                        inline=True))

    def thunkGet(self, thunk):
        return self._outcome(self._lookup(thunk))

    def thunkWait(self, thunk, timeoutMs):
        t = self._lookup(thunk)
        wait = min(max(0, timeoutMs or 0), MAX_WAIT_MS) / 1e3
        wait = min(wait, max(0.0, t.deadline - _mono()) + 0.001)
        t.done.wait(wait)
        return self._outcome(t)

    def thunkWaitAny(self, thunks, timeoutMs):
        thunks = thunks or []
        if len(thunks) > self.options.max_batch:
            raise ExathunkError(f"more than {self.options.max_batch} thunks in one wait")
        found, unknown = [], []
        for r in thunks:
            t = self._find(getattr(r, "id", None))
            (found if t is not None else unknown).append(t if t is not None else r)
        for t in found:
            self._check_deadline(t)
        ready = [t for t in found if t.finished_at is not None]
        if not ready and not unknown and found:
            event = threading.Event()
            with self._lock:
                pending = [t for t in found if t.finished_at is None]
                for t in pending:
                    t.watchers.append(event)
            if len(pending) == len(found):
                wait = min(max(0, timeoutMs or 0), MAX_WAIT_MS) / 1e3
                wait = min(wait, max(0.0, min(t.deadline for t in found) - _mono()) + 0.001)
                event.wait(wait)
            with self._lock:
                for t in pending:
                    try:
                        t.watchers.remove(event)
                    except ValueError:
                        pass
            for t in found:
                self._check_deadline(t)
            ready = [t for t in found if t.finished_at is not None]
        out = []
        for t in ready:
            o = T.ThunkOutcome(thunkId=t.id, cancelled=False)
            self._mark_fetched(t)
            if t.state == T.ThunkState.DONE:
                o.value = t.outcome
            elif t.state == T.ThunkState.CANCELLED:
                o.cancelled = True
            else:
                o.error = t.error
            out.append(o)
        for r in unknown:
            missing = self._missing(getattr(r, "id", None))
            out.append(T.ThunkOutcome(
                thunkId=str(getattr(r, "id", "")), cancelled=False,
                error=T.ExathunkException(kind=missing.kind, message=missing.message)))
        return out

    def thunkCancel(self, thunk):
        """Cancel a thunk: its run stops within milliseconds.  A RemoteThunk with no id
        but a requestId cancels every run of that request here (how a broker cancels
        what it dispatched with evaluate)."""
        if thunk is not None and not thunk.id and thunk.requestId:
            with self._lock:
                tokens = list(self._running.get(thunk.requestId, ()))
            for token in tokens:
                token.cancel()
            return bool(tokens)
        t = self._lookup(thunk)
        if t.cancel is not None:
            t.cancel.cancel()
        return self._finish(t, cancelled=True)

    def evaluate(self, evalRequest):
        return self._evaluate_one(evalRequest)

    def submitBatch(self, evalRequests):
        reqs = evalRequests or []
        if len(reqs) > self.options.max_batch:
            raise ExathunkError(f"batch of {len(reqs)} requests is over the bound "
                                f"{self.options.max_batch}")
        return [self._handle(self._start(r, failed_thunk_on_error=True)) for r in reqs]

    def evaluateBatch(self, evalRequests):
        reqs = evalRequests or []
        if len(reqs) > self.options.max_batch:
            raise ExathunkError(f"batch of {len(reqs)} requests is over the bound "
                                f"{self.options.max_batch}")
        out = []
        for r in reqs:
            try:
                out.append(T.EvalOutcome(value=self._evaluate_one(r)))
            except ExathunkError as err:
                self.counters["errors"] += 1
                out.append(T.EvalOutcome(error=wire.error_to_thrift(err)))
            except T.ExathunkException as err:
                out.append(T.EvalOutcome(error=err))
            except T.Overloaded:
                if not out:
                    raise
                # Part of the batch is done: report the rest as overloaded per item.
                out.append(T.EvalOutcome(error=T.ExathunkException(
                    kind="RemoteError", message="overloaded: queue full")))
        return out

    def getStats(self):
        c = self.counters
        o = self.options
        with self._lock:
            load, thunks = self._load, len(self._thunks)
        running = _peek(self._started_runs) - _peek(self._finished_runs)
        return T.ServiceStats(
            role=self.role, version=__version__, uptimeS=_mono() - self.started,
            requests=c["requests"], evaluations=c["evaluations"], errors=c["errors"],
            cacheHits=c["cache_hits"], cacheMisses=c["cache_misses"],
            cacheSize=len(self._results), running=running, queued=max(0, load - running),
            queueBound=o.queue_bound, workerThreads=o.workers, thunks=thunks,
            overloaded=c["overloaded"], timeouts=c["timeouts"], meanRunMs=self._mean_run_ms,
            draining=self.draining, executionModel="threads",
            connections=self.connections(), rejectedFrames=self.rejected_frames(),
            workers=[], subThunks=c["subthunks"],
            authRefused=c["auth_refused"] + c["auth_failed"], nodeId=self.node_id)

    def requestBid(self, evalRequest):
        try:
            job = self._prepare(evalRequest)
        except UnknownFunctionError as err:
            return T.Bid(canServe=False, price=0.0, latencyEstimateMs=0.0, queueDepth=self._load,
                         cached=False, missingFunctions=[_missing_name(err)])
        if self.draining:
            return T.Bid(canServe=False, price=0.0, latencyEstimateMs=0.0,
                         queueDepth=self._load, cached=False, missingFunctions=[])
        cached = self._results.get(job.cache_key) is not None
        price = 0.0 if cached else max(0.01, self._mean_run_ms)
        waiting = max(0, self._load - self.options.workers + 1)
        latency = price + waiting * self._mean_run_ms / max(1, self.options.workers)
        return T.Bid(canServe=True, price=price, latencyEstimateMs=latency,
                     queueDepth=self._load, cached=cached, missingFunctions=[])

    def registerWorker(self, host, port):
        raise T.NotABroker(kind="NotABroker",
                           message="this node is a worker; only a broker takes workers")

    # ---------------------------------------------------------------- shutdown
    def drain(self, timeout: float) -> bool:
        """Refuse new work and wait until in-flight work has finished; True if it did."""
        with self._lock:
            self.draining = True
            return self._idle.wait_for(lambda: self._load == 0, timeout)

    def unfetched(self) -> int:
        with self._lock:
            return sum(1 for t in self._thunks.values()
                       if t.finished_at is not None and not t.fetched)


def _peek(counter) -> int:
    """The next value of an itertools.count without consuming it."""
    return int(repr(counter)[6:-1])


def _missing_name(err) -> str:
    msg = getattr(err, "message", "")
    start, end = msg.find("'"), msg.find("'", msg.find("'") + 1)
    return msg[start + 1:end] if 0 <= start < end else msg


class ServerHandle:
    """A node running in background threads: ``.host``, ``.port``, ``.stop(timeout)``."""

    def __init__(self, server: ThriftServer, handler):
        self.server = server
        self.handler = handler
        self.host, self.port = server.host, server.port
        self.metrics = None                # exathunk.metrics.NodeMetrics, when served
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> bool:
        """Graceful stop: refuse new work, finish in-flight work (up to ``timeout``),
        let unfetched results be fetched for a short linger, close.  True if drained."""
        with self._stop_lock:
            if self._stopped:
                return True
            self._stopped = True
        self.server.stop_accepting()
        drained = True
        if hasattr(self.handler, "drain"):
            drained = self.handler.drain(timeout)
            linger_end = _mono() + self.server.options.linger
            unfetched = getattr(self.handler, "unfetched", lambda: 0)
            while _mono() < linger_end and (unfetched() or self.server.busy()):
                time.sleep(0.02)
        self.server.close(timeout=2.0)
        if hasattr(self.handler, "close"):
            self.handler.close()
        if self.metrics is not None:
            self.metrics.stop()
        if self.server.options.log_format == "json":
            from . import metrics
            metrics.flush()
        return drained

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(host: str = "127.0.0.1", port: int = 0, library: Library | None = None,
          handler=None, **options) -> ServerHandle:
    """Start a node in background threads and return its handle (port 0: a free port).

    ``handler`` replaces the worker's ExecutionHandler (a broker passes its own).
    Security options (``token``/``token_file``, ``require_client_token``, ``tls_cert``,
    ``tls_key``, ``tls_ca``, or a resolved ``security``): see exathunk.auth; a setting
    that cannot be used is ConfigurationError, before anything listens.
    """
    opts = Options.build(**options)
    opts.security = security_of(opts)
    if opts.log_format not in (None, "json"):
        raise ValueError(f"log_format must be None or 'json', not {opts.log_format!r}")
    node_metrics = None
    if opts.metrics_port is not None:
        # First, so that a missing prometheus-client or a taken metrics port leaves
        # nothing running (metrics.CannotListen is an OSError, like a taken port).
        from . import metrics
        node_metrics = metrics.NodeMetrics()
        node_metrics.listen(opts.metrics_host, opts.metrics_port)
    try:
        if handler is None:
            handler = ExecutionHandler(library, opts)
        handler.client_security = opts.security.client
        server = ThriftServer(handler, host, port, opts)
    except BaseException:
        if node_metrics is not None:
            node_metrics.stop()
        raise
    if node_metrics is not None or opts.log_format == "json":
        from . import metrics
        if node_metrics is not None:
            node_metrics.watch(handler.getStats)
        server.observer = metrics.observer(node_metrics, opts.log_format == "json")
    server.start()
    handle = ServerHandle(server, handler)
    handle.metrics = node_metrics
    listening = getattr(handler, "listening", None)
    if listening is not None:             # a broker: where its workers call it back
        listening(handle.host, handle.port)
    if opts.join:
        _join_broker(opts.join, handle, opts.security.client)
    log.info("exathunk %s listening on %s:%d (%d workers, queue bound %d)",
             getattr(handler, "role", "node"), handle.host, handle.port, opts.workers,
             opts.queue_bound)
    return handle


def security_of(opts: Options) -> "auth.NodeSecurity":
    """The node's resolved security settings (the token file read once)."""
    if opts.security is not None:
        return opts.security
    return auth.NodeSecurity.build(
        token=opts.token, token_file=opts.token_file,
        require_client_token=opts.require_client_token, tls_cert=opts.tls_cert,
        tls_key=opts.tls_key, tls_ca=opts.tls_ca)


def _join_broker(join, handle: ServerHandle, security=None) -> None:
    """Offer this worker to a broker, retrying in the background for a while."""
    if isinstance(join, str):
        bhost, _, bport = join.rpartition(":")
        join = (bhost or "127.0.0.1", int(bport))
    bhost, bport = join

    def attempt():
        from .client import connect
        for _ in range(60):
            if handle._stopped:
                return
            try:
                client = connect(bhost, bport, timeout=5, security=security)
                try:
                    if client.register_worker(handle.host, handle.port):
                        log.info("joined broker %s:%s", bhost, bport)
                        return
                finally:
                    client.close()
            except AuthenticationError as err:
                # A wrong or missing token does not get better by retrying.
                log.error("could not join broker %s:%s: %s", bhost, bport, err.message)
                return
            except ExathunkError as err:
                log.warning("could not join broker %s:%s: %s", bhost, bport, err.message)
            time.sleep(2.0)

    threading.Thread(target=attempt, daemon=True, name="exathunk-join").start()


def serve(host: str = "127.0.0.1", port: int = 9090, library: Library | None = None,
          handler=None, drain_timeout: float = 30.0, **options) -> None:
    """Run a node until SIGTERM or SIGINT, then stop gracefully (blocking)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handle = start(host, port, library, handler=handler, **options)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    print(f"exathunk serving on {handle.host}:{handle.port}", flush=True)
    if handle.metrics is not None:
        print(f"exathunk metrics on {handle.metrics.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
        log.info("shutting down: finishing in-flight work")
        drained = handle.stop(drain_timeout)
        log.info("stopped%s", "" if drained else " (in-flight work abandoned at the timeout)")
    finally:
        for sig, handler_fn in previous.items():
            signal.signal(sig, handler_fn)
