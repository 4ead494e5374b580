"""The market broker: a RemoteExecutionService that owns no engine and spreads requests
over worker nodes, checking their answers and tracking their reputation.

Owns the network glue around ``exathunk.market`` (the pure scheduling and reputation
core, shared with ``bench/market_sim.py``) and ``exathunk.reputation`` (its SQLite
store): learning what each worker offers (functions, data types, classes and
instances), dispatching, retries, the result cache, the
thunk table, bids, ``start``/``serve``/``join``.

How a request goes:
- The broker checks the request itself: source text is parsed and typechecked against
  a Library assembled from the workers' FuncDefs and ClassDefs (each worker's host
  functions and instance methods are stubs there, which cannot run); a compiled program
  is loaded and validated against the same Library.  A request is routed only to the
  workers that offer every host function and instance it uses, at the type it uses.  So parse, type and name errors come back at submit time, and a function no
  live worker offers is an ``UnknownFunctionError`` at once.  Source then travels on as
  source (a worker compiles it as for any client: compiling on the broker too would
  cost more than the check), compiled programs as compiled bytes; with
  ``forward="compiled"`` the broker compiles source and ships the bytes.
- Results are cached by program digest (by a hash of the text for source requests,
  which the broker does not compile; values only, as on a worker).
- The market picks the worker (and, by its adaptive sampling, a second independent one
  to check it, a third when two disagree); each dispatch is one blocking ``evaluate``
  call on a pool thread (the caller's own thread for the first dispatch of an
  ``evaluate``, which saves a thread hop on the fast path).  A transport failure, a
  timeout of the socket, an Overloaded answer or an internal error of the worker is a
  failure, retried on another worker; values and program errors (EvaluationError,
  ParseError, TypeCheckError) are outcomes that vote.  A LimitExceeded is neither: it
  is not an answer, so it never disagrees with one.  If another worker completes the
  run, its value decides, and a worker that passed the limit only takes the market's
  mild, decaying availability penalty (as for a timeout, a crash, a connection error or
  an Overloaded); if every worker passes a limit (a timeout is given one fresh worker
  more), the client gets the program's LimitExceeded and nobody is penalised.
- A dispatch still unanswered after ``hedge_factor`` times the typical latency of its
  kind of work (and at least ``hedge_min`` seconds) is sent to another worker as well;
  whichever answers first serves, and the slow worker's late answer still teaches the
  market its latency.  A dead or silent worker also fails by its socket timeout.
- Bids: every ``bid_interval`` seconds a background pass asks each live worker for its
  bid on a recent request of each kind of work; the market uses the bid's latency as its
  prior for a worker it has not yet observed on that kind, and its price in the score.
  (Asking every worker before every request would double the broker's latency.)
- Reputation and statistics are flushed to the SQLite file every ``flush_interval``
  seconds, and at once when a worker is shut out.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

from . import __version__, admission, wire
from .errors import (AuthenticationError, EvaluationError, ExathunkError, LimitExceeded,
                     ParseError, RemoteError, TypeCheckError, UnknownFunctionError,
                     Unverifiable, WorkerRefused)
from .library import Library
from .market import ACTIVE, DOWN, PROBATION, SHUT_OUT, Market, Policy, kind_of
from .reputation import ReputationStore

log = logging.getLogger("exathunk.broker")
log.addHandler(logging.NullHandler())

T = wire.thrift
_perf = time.perf_counter
_mono = time.monotonic

# Program errors every honest worker reports alike: they vote, like values.  (An
# Unverifiable from a worker is this broker refusing one of its sub-thunks: the
# worker's run cannot be answered, which is no fault of the worker's.)
_OUTCOME_ERRORS = (EvaluationError, LimitExceeded, ParseError, TypeCheckError,
                   Unverifiable)

# How much a verifiedBy says, weakest first: a value computed with sub-thunks is only
# as checked as the least checked of them.
_CHECK_STRENGTH = {"none": 0, "unconfirmed-nodes": 1, "spot-checked": 2,
                   "trusted-worker": 3, "independent-node": 4, "broker-engine": 4}

_STATE_ENUM = {ACTIVE: T.WorkerState.ACTIVE, PROBATION: T.WorkerState.PROBATION,
               SHUT_OUT: T.WorkerState.SHUT_OUT, DOWN: T.WorkerState.SHUT_OUT}


@dataclass
class BrokerOptions:
    """The broker's own knobs (``start``/``serve`` also take the server's and the
    market Policy's, by name)."""
    dispatch_threads: int = 64        # concurrent dispatches to workers
    dispatch_timeout: float = 5.0     # socket timeout to workers (at least the request's
                                      # own wall-clock limit plus 5 s)
    timeout_ms: int = 10_000          # default wall-clock limit of a request
    cache_size: int = 10_000          # results kept by program digest
    max_thunks: int = 100_000
    thunk_ttl: float = 300.0
    max_thunks_per_client: int = 10_000   # unfetched thunks of one client (connection)
    flush_interval: float = 1.0       # seconds between writes of the reputation store
    bid_interval: float = 10.0        # seconds between bid rounds
    oracles: tuple = ()               # addresses of trusted oracle workers
    trusted: tuple = ()               # workers the operator trusts (broker --trust): as
                                      # oracles, their word alone is "trusted-worker"
    engine_check: bool = True         # run a pure program here when nobody can check it
    seed: int | None = None           # the market's random seed (tests)
    hedge: bool = True                # ask another worker when a dispatch is overdue
    hedge_min: float = 0.25           # ... overdue: this many seconds at least,
    hedge_tick: float = 0.02          # how often overdue dispatches are looked for
    hedge_factor: float = 8.0         # ... and this many times its expected latency
    forward: str = "source"           # what workers get for a source request: the
                                      # "source" (checked here), or the "compiled" bytes
    strict_store: bool = False        # a corrupt reputation store is a StoreError
                                      # (default: moved aside, a fresh one started)


def _split_options(options: dict):
    broker_names = {f.name for f in fields(BrokerOptions)}
    policy_names = {f.name for f in fields(Policy)}
    b = {k: v for k, v in options.items() if k in broker_names}
    p = {k: v for k, v in options.items() if k in policy_names}
    s = {k: v for k, v in options.items() if k not in broker_names | policy_names}
    return BrokerOptions(**b), Policy(**p), s


def _address(host: str, port: int) -> str:
    return f"{host}:{int(port)}"


def _is_local_host(host: str) -> bool:
    """Whether ``host`` names this machine: a loopback or wildcard address, or one of its
    own addresses (one a socket can bind).  A name that does not resolve is not."""
    import ipaddress
    import socket
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    for family, _, _, _, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_unspecified:
            return True
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((sockaddr[0], 0))
            return True
        except OSError:
            continue
    return False


def _parse_address(worker) -> tuple[str, int]:
    if isinstance(worker, str):
        host, _, port = worker.rpartition(":")
        return host or "127.0.0.1", int(port)
    host, port = worker
    return host, int(port)


class _WorkerLink:
    """The broker's connection to one worker, and the functions it offers."""

    def __init__(self, host: str, port: int, timeout: float, security=None):
        self.host, self.port = host, port
        self.address = _address(host, port)
        self.timeout = timeout
        self.security = security           # the token and TLS it presents to the worker
        self._client = None
        self._lock = threading.Lock()
        self.func_defs: list = []          # its FuncDefs, as getFuncDefs gave them
        self.class_defs = None             # its ClassDefs (None: a node without them)
        self.library: Library | None = None  # checks programs as this worker would

    def client(self):
        c = self._client
        if c is None:
            with self._lock:
                if self._client is None:
                    from .client import connect
                    self._client = connect(self.host, self.port, timeout=self.timeout,
                                           security=self.security)
                c = self._client
        return c

    def reset(self) -> None:
        with self._lock:
            c, self._client = self._client, None
        if c is not None:
            try:
                c.close()
            except Exception:
                pass


def _key(spec) -> str:
    """The routing key of a host function or instance method: its name and its type."""
    return f"{spec.name} :: {spec.signature}"


def _describe(keys) -> str:
    """Routing keys as a reader wants them: instance methods as their instance."""
    out = []
    for key in sorted(keys):
        name, _, sig = key.partition(" :: ")
        if name.startswith(("data ", "class ")):
            out.append(name.replace("data ", "data type ", 1))
        elif "@" in name:
            out.append(f"instance {name.partition('@')[2]}")
        else:
            out.append(f"{name!r} at {sig}")
    return ", ".join(dict.fromkeys(out))


_declaration_key_cache: dict = {}


def _declaration_keys(library: Library) -> dict:
    """Every name a node's own data types and classes define (type, constructor, field,
    class and method names) -> the routing key of its declaration ("data Point :: (data
    Point (Pt ...))"): a worker can run a program that names one only if it declares it
    the same way."""
    cache_key = (library.id, library.version)
    keys = _declaration_key_cache.get(cache_key)
    if keys is not None:
        return keys
    from .typecheck import library_world
    world = library_world(library)
    keys = {}
    for info in world.data.values():
        if info.origin == "library":
            key = f"data {info.name} :: {wire.data_decl_text(info)}"
            for name in [info.name] + [c.name for c in info.constructors] + \
                    [f for c in info.constructors for f in (c.field_names or ())]:
                keys[name] = key
    for info in world.classes.values():
        if info.origin == "library":
            key = f"class {info.name} :: {wire.class_decl_text(info)}"
            for name in [info.name] + list(info.method_order):
                keys[name] = key
    if len(_declaration_key_cache) > 64:
        _declaration_key_cache.clear()
    _declaration_key_cache[cache_key] = keys
    return keys


def _sparks(program) -> bool:
    used = program.functions_used
    return "%par-map" in used or "%par" in used


def _used(program) -> list:
    """The library names a compiled program uses: its functions and its data types."""
    return list(program.functions_used) + [d.name for d in
                                           getattr(program, "datatypes", None) or ()]


def _declaration_texts(class_defs) -> tuple:
    if class_defs is None:
        return ()
    return (tuple(d.declText or "" for d in class_defs.dataTypes or []),
            tuple(d.declText or "" for d in class_defs.classes or []))


# Every token of a source that could name a function (routing needs only host names).
_WORDS = re.compile(r'[^\s()";]+')


@dataclass
class _Checked:
    """A request as the broker sees it after checking it."""
    payload: object          # what workers get: the source text, or a Program
    digest: str              # the cache key: program digest, or a hash of the source
    type_text: str
    needs: frozenset
    size: int
    subthunks: bool = False  # it has par-map / par sub-thunks to send back here


class _Request:
    """One client request at the broker: its program, its market job, its answer."""
    __slots__ = ("id", "request_id", "payload", "sent", "limits", "digest", "type_text", "kind",
                 "needs", "job", "results", "done", "value", "payload_nodes", "error",
                 "node", "finished_at", "compile_ms", "run_ms", "cached",
                 "no_cache", "source", "deadline", "fetched", "market_needs",
                 "subthunks", "followers", "cancelled", "allow_unchecked",
                 "verified_by", "engine_checked", "owner")

    def __init__(self, rid: str):
        self.id = rid
        self.source = None           # set by _submit; a request refused there has none
        self.results: dict = {}
        self.sent: dict = {}                  # address -> when it was dispatched there
        self.done = threading.Event()
        self.value = None
        self.payload_nodes = None
        self.error: ExathunkError | None = None
        self.node = None
        self.finished_at = None
        self.job = None
        self.cached = False
        self.run_ms = 0.0
        self.fetched = False
        self.subthunks = False
        self.followers: list = []
        self.cancelled = False
        self.allow_unchecked = False
        self.verified_by = None
        self.engine_checked = False
        self.owner = None            # the client that submitted it (admission quota)


class BrokerHandler:
    """The RemoteExecutionService methods of a broker (a thriftpy2 handler object)."""

    role = "broker"

    def __init__(self, workers=(), db_path: str | None = None,
                 options: BrokerOptions | None = None, policy: Policy | None = None,
                 client_security=None):
        import random
        from .auth import NO_CLIENT_SECURITY
        self.options = o = options or BrokerOptions()
        # The token and TLS the broker presents to its workers (one shared token per
        # deployment: the one it requires of registerWorker).
        self.client_security = client_security or NO_CLIENT_SECURITY
        self.store = ReputationStore(db_path, strict=o.strict_store) if db_path else None
        # Drawn at every start; getStats reports it, and a candidate worker that reports
        # it is this broker (WorkerRefused).
        self.node_id = os.urandom(16).hex()
        rng = random.Random(o.seed) if o.seed is not None else random.Random()
        self.market = Market(policy or Policy(), rng=rng, store=self.store)
        self.library = Library()
        self._lock = threading.RLock()  # the market, the links, the thunk table
        self._links: dict[str, _WorkerLink] = {}
        self._pending_workers: dict[str, tuple[str, int]] = {}
        self._profiles: dict = {}          # what a worker offers -> its Library
        self._conflicts: set = set()       # names workers offer differently
        self._delegable: dict = {}         # routing key -> ("func", FuncDef) or
                                           # ("inst", InstanceDef), to delegate it
        self._leaders: dict = {}           # digest -> the request running it now
        self._unchecked: dict = {}         # ids of requests allowing unchecked values
        self._sub_checks: dict = {}        # running request id -> its sub-thunks' weakest check
        self.port: int | None = None       # where workers send sub-thunks back
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._thunks: collections.OrderedDict[str, _Request] = collections.OrderedDict()
        self._quota = admission.ThunkQuota(o.max_thunks_per_client, o.max_thunks)
        self._expired = admission.ExpiredIds(min(o.max_thunks, 100_000))
        self._last_sweep = _mono()
        self._finished = threading.Condition(threading.Lock())
        self._pool = ThreadPoolExecutor(max_workers=max(1, o.dispatch_threads),
                                        thread_name_prefix="exathunk-dispatch")
        self._ids = itertools.count(1)
        self._kinds_seen: dict[str, _Request] = {}
        self._in_flight: set = set()          # requests whose job has no verdict yet
        self._idle = threading.Condition(self._lock)
        self.draining = False
        self.started = _mono()
        self.counters = collections.Counter()
        self._mean_run_ms = 0.0
        self.connections = lambda: 0
        self.rejected_frames = lambda: 0
        self._closing = threading.Event()
        for w in workers:
            host, port = _parse_address(w)
            try:
                self.add_worker(host, port)
            except ExathunkError as err:
                log.warning("worker %s:%s unreachable for now (%s); will retry", host, port,
                            err.message)
                self._pending_workers[_address(host, port)] = (host, port)
        self._monitor = threading.Thread(target=self._monitor_loop, daemon=True,
                                         name="exathunk-broker-monitor")
        self._monitor.start()
        self._hedger = None
        if o.hedge:
            self._hedger = threading.Thread(target=self._overdue_loop, daemon=True,
                                            name="exathunk-broker-hedger")
            self._hedger.start()

    # ---------------------------------------------------------------- workers
    def add_worker(self, host: str, port: int) -> str:
        """Connect to a worker, learn what it offers (getFuncDefs, getClassDefs) and
        enter it in the market; a known address keeps its reputation.  Raises
        RemoteError.

        What a worker offers is a set of routing keys, one per host function and per
        instance method, each with its type ("hash@Hashable String :: (-> String Int)"):
        the same name at another type is another function.  Its declarations also go
        into the broker's own Library (the first declaration of a name wins there) and
        into a Library of its own, shared by the workers that offer exactly the same, in
        which requests the broker's Library cannot check are tried again.
        """
        self._refuse_self_by_address(host, port)
        link = _WorkerLink(host, port, self.options.dispatch_timeout, self.client_security)
        c = link.client()
        link.func_defs = list(c.func_defs())
        self._refuse_self_by_id(link, c)
        link.class_defs = c.class_defs()
        own: list = []
        lib = wire.library_from_defs(link.func_defs, link.class_defs, conflicts=own)
        for name in own:
            log.warning("worker %s: cannot use %r (its definitions contradict each other)",
                        link.address, name)
        offered = frozenset([_key(spec) for spec in lib.host_functions()
                             + lib.instance_methods()]
                            + list(_declaration_keys(lib).values()))
        profile = (offered, _declaration_texts(link.class_defs))
        delegable = {}
        for d in link.func_defs:
            if d.origin == "host":
                delegable[f"{d.name} :: {d.typeText}"] = ("func", d)
        for inst in (link.class_defs.instances or []) if link.class_defs else []:
            for m in inst.methodDefs or []:
                delegable[f"{m.name} :: {m.typeText}"] = ("inst", inst)
        with self._lock:
            for key, value in delegable.items():
                self._delegable.setdefault(key, value)
            link.library = self._profiles.setdefault(profile, lib)
            conflicts: list = []
            wire.library_from_defs(link.func_defs, link.class_defs, base=self.library,
                                   conflicts=conflicts)
            if conflicts:
                log.info("worker %s offers %s differently from another worker: requests "
                         "needing its version are checked against its own definitions",
                         link.address, ", ".join(sorted(set(conflicts))))
                self._conflicts.update(conflicts)
            old = self._links.get(link.address)
            self._links[link.address] = link
            self._pending_workers.pop(link.address, None)
            self.market.add_worker(link.address, functions=offered,
                                   trusted=link.address in self._oracle_addresses())
        if old is not None:
            old.reset()
        log.info("worker %s joined: %d functions and instance methods", link.address,
                 len(offered))
        return link.address

    def _refuse_self_by_address(self, host: str, port: int) -> None:
        """WorkerRefused for the broker's own port on a loopback, wildcard or local
        address (127.0.0.1, localhost, 0.0.0.0, ::1, this machine's own addresses)."""
        if self.port is None or int(port) != int(self.port):
            return
        if _is_local_host(host):
            raise WorkerRefused(f"{_address(host, port)} is this broker itself (port "
                                f"{port} on a local address): a broker cannot be its own "
                                "worker")

    def _refuse_self_by_id(self, link, c) -> None:
        """WorkerRefused for a node that reports the broker's own node id (an alias
        address, a forwarded port: whatever reaches this broker)."""
        try:
            node_id = c.stats().get("nodeId")
        except ExathunkError as err:       # a node without getStats: the address check stands
            log.debug("worker %s: getStats failed (%s); not checked by node id",
                      link.address, err.message)
            return
        if node_id and node_id == self.node_id:
            link.reset()
            raise WorkerRefused(f"{link.address} is this broker itself (it reports the "
                                "broker's own node id): a broker cannot be its own worker")

    def listening(self, host: str, port: int) -> None:
        """Called by the server once it listens: workers send sub-thunks to ``port``."""
        self.port = port

    def _oracle_addresses(self) -> set:
        return {_address(*_parse_address(a))
                for a in tuple(self.options.oracles) + tuple(self.options.trusted)}

    def remove_worker(self, address: str) -> None:
        with self._lock:
            link = self._links.pop(address, None)
            self.market.remove_worker(address)
        if link is not None:
            link.reset()

    def _needs(self, used, library: Library, instances=()) -> frozenset:
        """The routing keys of a program: of the names it uses, the host functions and
        instance methods (every worker has the built-ins and the prelude), each with the
        type ``library`` gave it; ``instances``: the node instances ("Hashable String")
        a source request uses (its method names are not in its text)."""
        needs = set()
        declared = _declaration_keys(library)
        for name in used:
            spec = library.lookup(name)
            if spec is not None and spec.kind == "host" and name[:1] != "%":
                needs.add(_key(spec))
            key = declared.get(name)
            if key is not None:
                needs.add(key)
        if instances:
            wanted = set(instances)
            for spec in library.instance_methods():
                if spec.name.partition("@")[2] in wanted:
                    needs.add(_key(spec))
        return frozenset(needs)

    def _libraries(self) -> list:
        """The Libraries a request is checked against, in order: the broker's own, then
        (when workers offer a name differently) each distinct worker profile."""
        if not self._conflicts:
            return [self.library]
        with self._lock:
            return [self.library] + list(self._profiles.values())

    # ---------------------------------------------------------------- requests
    def _compile(self, req):
        """Check a request here; returns a _Checked.  Raises ExathunkError.

        Source is parsed and typechecked against the workers' functions (so every
        compile-time error comes back now, with its place), and, unless ``forward`` is
        "compiled", travels on as source: a worker compiles it exactly as it would for a
        client calling it directly, and the broker skips the compile.  A compiled
        program is loaded and validated here, and forwarded as compiled bytes.  A
        request that does not check against the broker's Library is tried against each
        worker profile's (two workers offering ``hash`` at different types are both
        usable); the first error is the one reported when none accepts it.
        """
        if req is None:
            raise ExathunkError("missing evalRequest")
        given = sum(x is not None for x in (req.source, req.graph, req.programBytes))
        if given != 1:
            raise ExathunkError("an EvalRequest needs exactly one of source, graph and "
                                "programBytes")
        first = None
        for library in self._libraries():
            try:
                return self._check_against(req, library)
            except ParseError:
                raise
            except ExathunkError as err:
                if first is None:
                    first = err
        raise first

    def _check_against(self, req, library: Library):
        source = req.source
        if source is not None:
            from . import driver
            if self.options.forward == "compiled":
                program = driver.compile(source, library=library)
                return _Checked(program, program.digest, program.type,
                                self._needs(_used(program), library), len(source),
                                subthunks=_sparks(program))
            checked = driver.check(source, library=library)
            digest = "source:" + hashlib.blake2b(source.encode("utf-8", "surrogatepass"),
                                                 digest_size=16).hexdigest()
            words = _WORDS.findall(source)
            return _Checked(source, digest, checked.result_type_text,
                            self._needs(words, library, checked.instances_used),
                            len(source), subthunks="par-map" in words or "par" in words)
        from .program import Program
        if req.programBytes is not None:
            program = Program.from_bytes(req.programBytes, library=library)
            size = len(req.programBytes)
        else:
            program = wire.graph_to_program(req.graph, library=library)
            size = len(program.to_bytes())
        return _Checked(program, program.digest, program.type,
                        self._needs(_used(program), library), size,
                        subthunks=_sparks(program))

    def _submit(self, evalRequest, inline: bool = False, thunk: bool = True) -> _Request:
        """Check a request and start it; ``thunk``: keep it in the thunk table (for
        submitEvalRequest; a one-round-trip evaluate is answered and forgotten)."""
        if self.draining:
            raise wire.overloaded("broker is shutting down", 1000, shutting_down=True)
        t0 = _perf()
        checked = self._compile(evalRequest)
        r = _Request(f"b{next(self._ids):x}-{os.urandom(4).hex()}")
        r.request_id = evalRequest.requestId
        r.payload = checked.payload
        r.source = evalRequest.source
        r.digest = checked.digest
        r.type_text = checked.type_text
        r.kind = kind_of(checked.size)
        r.needs = checked.needs
        r.subthunks = checked.subthunks
        if r.request_id and "/sub" in r.request_id:
            self.counters["subthunks"] += 1
        r.no_cache = bool(evalRequest.noCache)
        r.allow_unchecked = bool(getattr(evalRequest, "allowUnchecked", None))
        if r.request_id and "/sub" in r.request_id and not r.allow_unchecked:
            # A sub-thunk of a request that allows unchecked values allows them too.
            with self._lock:
                r.allow_unchecked = r.request_id.partition("/sub")[0] in self._unchecked
        timeout_ms = evalRequest.timeoutMs or self.options.timeout_ms
        r.limits = {"max_steps": evalRequest.maxSteps, "max_heap": evalRequest.maxHeap,
                    "max_depth": evalRequest.maxDepth, "timeout_ms": timeout_ms,
                    "no_cache": evalRequest.noCache}
        r.deadline = _mono() + timeout_ms / 1e3 + self.options.dispatch_timeout
        r.compile_ms = (_perf() - t0) * 1e3
        with self._lock:
            r.market_needs = self._plan(r.needs)
            if thunk:
                self._register_thunk(r)
            hit = None if r.no_cache else self._cache.get(r.digest)
            if hit is not None:
                self._cache.move_to_end(r.digest)
                self.counters["cache_hits"] += 1
                r.cached = True
                self._deliver(r, value=hit[0], nodes=hit[1], node="cache",
                              verified_by=hit[2])
                return r
            if not r.no_cache:
                leader = self._leaders.get(r.digest)
                if leader is not None:
                    # The same program is running for another request: share its run.
                    leader.followers.append(r)
                    self.counters["shared_runs"] += 1
                    return r
                self._leaders[r.digest] = r
            self.counters["cache_misses"] += 1
            if r.market_needs is not r.needs:
                self.counters["split_requests"] += 1
            self._kinds_seen[r.kind] = r
            if r.allow_unchecked:
                self._unchecked[r.id] = True      # (until it concludes)
            self._sub_checks[r.id] = None         # (until it concludes: see _deliver)
            r.job = self.market.open_job(r.kind, r.market_needs,
                                         local_check=self._engine_can_check(r))
            addresses = r.job.start(time.time())
            self._in_flight.add(r)
            if r.job.done:
                self._conclude(r)
        self._launch(r, addresses, inline)
        return r

    def _plan(self, needs) -> frozenset:
        """What a worker must offer to take a request that needs ``needs`` (under the
        lock): all of it when one live worker does; otherwise only the node data types
        and classes it names, the rest being delegated by that worker to the others as
        sub-thunks (``_sub_thunk_plan``).  UnknownFunctionError when something is
        offered by no live worker, or cannot be delegated."""
        if not needs:
            return needs
        market = self.market
        missing = market.missing_functions(needs)
        if missing:
            raise UnknownFunctionError("no worker offers " + _describe(missing))
        live = [w for w in market.workers.values() if w.alive]
        if any(w.offers(needs) for w in live):
            return needs
        declared = frozenset(k for k in needs if k.startswith(("data ", "class ")))
        if not any(w.offers(declared) for w in live):
            raise UnknownFunctionError(
                "no single worker declares every data type and class this program "
                "uses: " + _describe(declared))
        for key in needs - declared:
            kind, d = self._delegable.get(key, (None, None))
            if kind is None:
                raise UnknownFunctionError(f"{_describe([key])} is not offered by the "
                                           "worker that would run the program and "
                                           "cannot be asked of another")
            if kind == "func" and any(s == T.Strictness.LAZY for s in (d.strictness or [])):
                raise UnknownFunctionError(
                    f"{_describe([key])} is not offered by one worker with the rest of "
                    "the program, and it has a lazy parameter, so it cannot be computed "
                    "on another (a sub-thunk's arguments travel as values)")
        return declared

    def _sub_thunk_plan(self, r: _Request, address: str):
        """The SubThunkPlan for running ``r`` on ``address``: what it lacks is delegated
        back here; None when it needs none (nothing delegated, no par-map or par)."""
        w = self.market.workers.get(address)
        lacking = r.needs - (w.functions or frozenset()) if w is not None else r.needs
        if not lacking and not r.subthunks:
            return None
        if self.port is None:
            return None                 # not listening (a handler used in-process)
        funcs, insts = [], {}
        for key in sorted(lacking):
            kind, d = self._delegable.get(key, (None, None))
            if kind == "func":
                funcs.append(d)
            elif kind == "inst":
                insts[(d.className, d.head)] = d
        return T.SubThunkPlan(callbackPort=self.port, delegatedFunctions=funcs,
                              delegatedInstances=list(insts.values()), parent=r.id)

    def _launch(self, r: _Request, addresses, inline: bool = False) -> None:
        if not addresses:
            return
        sent = _mono()
        for address in addresses:
            r.sent[address] = sent
        first, rest = (addresses[0], addresses[1:]) if inline else (None, addresses)
        for address in rest:
            self._pool.submit(self._dispatch, r, address)
        if first is not None:
            self._dispatch(r, first)

    def _dispatch(self, r: _Request, address: str) -> None:
        """Run the request on one worker and report to the market (on a pool thread)."""
        link = self._links.get(address)
        t0 = _perf()
        outcome = result = None
        limit = None
        try:
            if link is None:
                raise RemoteError(f"worker {address} is gone")
            plan = self._sub_thunk_plan(r, address)
            # The request id lets thunkCancel reach the run (evaluate has no thunk).
            value = link.client().evaluate(r.payload, sub_thunks=plan, request_id=r.id,
                                           **r.limits)
            outcome, result = ("value", repr(value)), value
        except _OUTCOME_ERRORS as err:
            if isinstance(err, LimitExceeded):
                # The message carries the worker's own numbers; which limit is the verdict.
                outcome = ("error", err.kind, err.limit)
                limit = err.limit or "timeout"
            else:
                outcome = ("error", err.kind, err.message)
            result = err
        except ExathunkError as err:
            # Transport, overload, a function it lacks, or its own internal error.
            log.info("worker %s failed a request: %s: %s", address, err.kind, err.message)
            if isinstance(err, RemoteError) and link is not None and \
                    "connect" in err.message:
                link.reset()
        except Exception as err:          # a bug here must not lose the request
            log.warning("dispatch to %s: unexpected %r", address, err)
        elapsed = _perf() - t0
        self.counters["evaluations"] += 1
        with self._lock:
            if limit is not None:
                r.results[address] = (("error", "LimitExceeded", limit), result, elapsed)
                more = r.job.on_limit(address, limit, elapsed, time.time())
            elif outcome is not None:
                r.results[address] = (outcome, result, elapsed)
                more = r.job.on_result(address, outcome, elapsed, time.time())
                self._mean_run_ms += (elapsed * 1e3 - self._mean_run_ms) * 0.05
            else:
                self.counters["worker_failures"] += 1
                more = r.job.on_failure(address, time.time())
            # Still in flight even if already answered (cancelled, or timed out at the
            # broker): the verdict must still conclude it, or it is never let go.
            if r.job.done and r in self._in_flight:
                self._conclude(r)
        self._launch(r, more)

    def _engine_can_check(self, r: _Request) -> bool:
        """Can the broker run the program itself?  Only a pure one: no host function or
        instance method (their code lives on the workers; node data types and classes
        are declarations, which the broker's Library has)."""
        return self.options.engine_check and \
            all(k.startswith(("data ", "class ")) for k in r.needs)

    def _check_on_engine(self, r: _Request) -> None:
        """Run a pure program on the broker's own engine (on a pool thread) to check the
        one value a worker gave; then conclude.  Same value: it is verified, and the
        worker credited.  Another value (or an error): the broker's run is the verdict,
        and the worker loses its vote.  A limit passed or a failure here checks nothing."""
        t0 = _perf()
        outcome = result = None
        try:
            program = r.payload
            if isinstance(program, str):
                from . import driver
                program = driver.compile(program, library=self.library)
            limits = r.limits
            value = program.run(max_steps=limits.get("max_steps"),
                                max_heap=limits.get("max_heap"),
                                max_depth=limits.get("max_depth"), library=self.library,
                                timeout=(limits.get("timeout_ms") or
                                         self.options.timeout_ms) / 1e3)
            value = wire.nodes_to_value(*wire.value_to_nodes(value))  # as workers send it
            outcome, result = ("value", repr(value)), value
        except EvaluationError as err:
            outcome, result = ("error", err.kind, err.message), err
        except ExathunkError as err:
            log.info("the broker could not check a request itself: %s: %s", err.kind,
                     err.message)
        except Exception as err:            # a bug here must not lose the request
            log.warning("checking a request on the broker's engine: unexpected %r", err)
        elapsed = _perf() - t0
        with self._lock:
            job = r.job
            if outcome is not None:
                self.counters["engine_checks"] += 1
                now = time.time()
                self.market.settle(dict(job.outcomes), outcome, now)
                if outcome != job.outcome:
                    self.counters["engine_overruled"] += 1
                    log.warning("the broker's engine overruled %s on a request",
                                ", ".join(a for a, o in job.outcomes.items()
                                          if o == job.outcome))
                    r.results["broker"] = (outcome, result, elapsed)
                    job.outcome = outcome
                job.verified_by = "broker-engine"
            if r in self._in_flight:
                self._conclude(r)

    def _unverifiable(self, r: _Request) -> Unverifiable:
        """The error for a value nobody could check, naming what only one worker offers."""
        hosts = [k for k in r.needs if not k.startswith(("data ", "class "))]
        now = time.time()
        live = [w for w in self.market.workers.values()
                if w.alive and self.market.refresh_state(w, now) != SHUT_OUT]
        sole = [k for k in hosts if sum(1 for w in live if w.offers(frozenset([k]))) < 2]
        providers = sorted({a for a, o in r.job.outcomes.items() if o == r.job.outcome})
        who = ", ".join(providers) or "one worker"
        if sole:
            what = (f"only {who} offers {_describe(sole)}, so no other worker could "
                    "check its value, and the broker cannot run it itself")
        elif providers and not any(self.market.established(self.market.workers[a])
                                   for a in providers if a in self.market.workers):
            what = (f"only new workers ({who}), not yet confirmed by an established "
                    "worker or by the broker's engine, computed "
                    f"{_describe(hosts) or 'this program'}; their word carries no weight")
        else:
            what = (f"no second worker could check the value {who} gave for "
                    f"{_describe(hosts) or 'this program'} (the others failed or are "
                    "shut out)")
        worker = providers[0] if providers else "HOST:PORT"
        return Unverifiable(f"{what}; ask with allow_unchecked=True (eval "
                            "--allow-unchecked) to take it unchecked, or have the operator "
                            f"trust the worker (broker --trust {worker})")

    def _conclude(self, r: _Request) -> None:
        """The job has a verdict (called with the lock held)."""
        job = r.job
        self._unchecked.pop(r.id, None)
        if job.error is None and job.verified_by == "none" and not r.engine_checked \
                and job.outcome is not None and job.outcome[0] == "value" \
                and job.local_check:
            # Nobody checked the value, but the program is pure: the broker checks it.
            r.engine_checked = True
            self._pool.submit(self._check_on_engine, r)
            return
        self._in_flight.discard(r)
        if not self._in_flight:
            self._idle.notify_all()
        if self._leaders.get(r.digest) is r:
            del self._leaders[r.digest]
        weakest = self._sub_checks.pop(r.id, None)
        if job.error is None and job.disputed and job.verified_by == "none":
            # Workers without weight disagreed and the broker's own run settled nothing:
            # no answer is handed out, not even to a client that allows unchecked ones.
            job.error = "workers disagree and no majority could be formed"
        if job.error is not None:
            self.counters["errors"] += 1
            self._deliver(r, error=RemoteError(f"no worker could answer: {job.error}"))
            return
        for address, (outcome, result, elapsed) in r.results.items():
            if outcome == job.outcome:
                r.run_ms = elapsed * 1e3
                if isinstance(result, ExathunkError):
                    self.counters["errors"] += 1
                    self._deliver(r, error=result, node=address)
                else:
                    nodes = wire.value_to_nodes(result)
                    verified = job.verified_by or "none"
                    if weakest is not None and \
                            _CHECK_STRENGTH[weakest] < _CHECK_STRENGTH[verified]:
                        verified = weakest        # its sub-thunks were checked less
                    unverifiable = self._unverifiable(r) if verified == "none" else None
                    if not r.no_cache and unverifiable is None:
                        self._cache[r.digest] = (result, nodes, verified)
                        if len(self._cache) > self.options.cache_size:
                            self._cache.popitem(last=False)
                    self._deliver(r, value=result, nodes=nodes, node=address,
                                  verified_by=verified, unverifiable=unverifiable)
                return
        self._deliver(r, error=RemoteError("the agreed result was lost"))

    def _deliver(self, r: _Request, value=None, nodes=None, error=None, node=None,
                 verified_by=None, unverifiable=None) -> None:
        """A verdict to the request and to those that shared its run.  A value nobody
        checked (``unverifiable``: the error saying so) goes only to the requests that
        allow unchecked values; the others get the Unverifiable error."""
        for f in [r] + r.followers:
            if f is not r:
                f.run_ms = r.run_ms
            f.verified_by = verified_by
            if verified_by is not None and f.request_id and "/sub" in f.request_id:
                # Only a parent still running records it (a late or forged "x/sub1"
                # id of no running request leaves nothing behind).
                parent = f.request_id.partition("/sub")[0]
                if parent in self._sub_checks:
                    known = self._sub_checks[parent]
                    if known is None or _CHECK_STRENGTH[verified_by] < _CHECK_STRENGTH[known]:
                        self._sub_checks[parent] = verified_by
            if unverifiable is not None and not f.allow_unchecked:
                self.counters["unverifiable"] += 1
                self._finish(f, error=unverifiable)
            else:
                self._finish(f, value=value, nodes=nodes, error=error, node=node)
        r.followers = []

    def _finish(self, r: _Request, value=None, nodes=None, error=None, node=None) -> None:
        if r.finished_at is not None:
            return
        r.value, r.payload_nodes, r.error, r.node = value, nodes, error, node
        if error is not None and r.source is not None and isinstance(error, ExathunkError):
            error.with_source(r.source)
        r.finished_at = _mono()
        r.done.set()
        with self._finished:
            self._finished.notify_all()

    def _register_thunk(self, r: _Request) -> None:
        """Put a request in the thunk table (the caller holds self._lock), within its
        client's quota (exathunk.admission): a client over it, or the heaviest ones when
        the table is full, get Overloaded; nobody's unfetched result is dropped for it."""
        o = self.options
        now = _mono()
        if len(self._thunks) >= o.max_thunks or now - self._last_sweep > 1.0:
            self._last_sweep = now
            for t in [t for t in self._thunks.values()
                      if t.finished_at is not None and now - t.finished_at > o.thunk_ttl]:
                self._drop_thunk(t)
            if len(self._thunks) >= o.max_thunks:
                for t in [t for t in self._thunks.values() if t.finished_at is not None
                          and t.fetched][:o.max_thunks // 10 + 1]:
                    self._drop_thunk(t)
        client = admission.current_client()
        why = self._quota.refusal(client, len(self._thunks))
        if why is not None:
            self.counters["overloaded"] += 1
            self.counters["quota_refused"] += 1
            raise wire.overloaded(f"broker: {why}", retry_after_ms=1000)
        r.owner = client
        self._thunks[r.id] = r
        self._quota.take(client)

    def _drop_thunk(self, r: _Request) -> None:
        del self._thunks[r.id]
        self._expired.add(r.id)
        if not r.fetched:
            self._quota.release(r.owner)

    def _mark_fetched(self, r: _Request) -> None:
        if not r.fetched:
            with self._lock:
                if not r.fetched:
                    r.fetched = True
                    if self._thunks.get(r.id) is r:
                        self._quota.release(r.owner)

    def _find(self, tid) -> _Request | None:
        """The request of a thunk id, None when unknown or expired (dropped now)."""
        r = self._thunks.get(tid) if tid is not None else None
        if r is not None and r.finished_at is not None \
                and _mono() - r.finished_at > self.options.thunk_ttl:
            with self._lock:
                if self._thunks.get(tid) is r:
                    self._drop_thunk(r)
            return None
        return r

    def _missing(self, tid):
        """The declared error for an id not in the table: Expired or UnknownThunk."""
        if tid is not None and tid in self._expired:
            return T.ExathunkException(kind=admission.EXPIRED_KIND,
                                       message=admission.expired_message(
                                           tid, self.options.thunk_ttl))
        return T.UnknownThunk(kind="UnknownThunk", message=f"no thunk {tid!r}")

    def _varcont(self, r: _Request):
        nodes, root = r.payload_nodes
        return T.VarCont(nodes=nodes, root=root, typeText=r.type_text, digest=r.digest,
                         requestId=r.request_id,
                         stats=T.RunStats(steps=0, peakHeap=0, gcRuns=0,
                                          compileMs=r.compile_ms, queueMs=0.0,
                                          runMs=r.run_ms, cached=r.node == "cache",
                                          node=r.node, verifiedBy=r.verified_by))

    def _outcome(self, r: _Request):
        if r.finished_at is None:
            if _mono() > r.deadline:
                self._finish(r, error=LimitExceeded("wall-clock limit passed at the broker",
                                                    limit="timeout"))
            else:
                raise T.NotDone(kind="NotDone", message=f"thunk {r.id} is not finished",
                                state=T.ThunkState.RUNNING)
        self._mark_fetched(r)
        if r.error is not None:
            raise r.error
        return self._varcont(r)

    def _lookup(self, remote) -> _Request:
        tid = getattr(remote, "id", None)
        r = self._find(tid)
        if r is None:
            raise self._missing(tid)
        return r

    def _wait(self, r: _Request, seconds: float) -> None:
        r.done.wait(max(0.0, min(seconds, r.deadline - _mono() + 0.001)))

    # ---------------------------------------------------------------- the service
    def _live_links(self) -> list:
        with self._lock:
            return [link for link in self._links.values()
                    if self.market.workers[link.address].alive]

    def getFuncDefs(self, funcIds):
        """The live workers' functions: one FuncDef per name (the first worker's, when
        workers offer a name at different types)."""
        defs: dict = {}
        for link in self._live_links():
            for d in link.func_defs:
                defs.setdefault(d.name, d)
        if not funcIds:
            return list(defs.values())
        out = []
        for fid in funcIds:
            d = defs.get(getattr(fid, "name", None))
            if d is None:
                raise UnknownFunctionError(f"unknown function {getattr(fid, 'name', None)!r}")
            out.append(d)
        return out

    def getClassDefs(self):
        """The live workers' data types and classes (one declaration per name: the first
        worker's) and every instance any of them offers (one per class and type)."""
        datas, classes, instances = {}, {}, {}
        for link in self._live_links():
            d = link.class_defs
            if d is None:
                continue
            for x in d.dataTypes or []:
                datas.setdefault(x.name, x)
            for x in d.classes or []:
                classes.setdefault(x.name, x)
            for x in d.instances or []:
                instances.setdefault((x.className, x.head), x)
        if not datas:
            datas = {x.name: x for x in wire.class_defs(self.library).dataTypes}
        return T.ClassDefs(dataTypes=list(datas.values()), classes=list(classes.values()),
                           instances=list(instances.values()))

    def submitEvalRequest(self, evalRequest):
        r = self._submit(evalRequest)
        return T.RemoteThunk(id=r.id, requestId=r.request_id, digest=r.digest)

    def thunkGet(self, thunk):
        return self._outcome(self._lookup(thunk))

    def thunkWait(self, thunk, timeoutMs):
        r = self._lookup(thunk)
        self._wait(r, min(max(0, timeoutMs or 0), 2000) / 1e3)
        return self._outcome(r)

    def thunkWaitAny(self, thunks, timeoutMs):
        found = [self._find(getattr(t, "id", None)) for t in (thunks or [])]
        deadline = _mono() + min(max(0, timeoutMs or 0), 2000) / 1e3
        with self._finished:
            while True:
                ready = [r for r in found if r is None or r.finished_at is not None
                         or _mono() > r.deadline]
                left = deadline - _mono()
                if ready or left <= 0:
                    break
                self._finished.wait(left)
        out = []
        for t, r in zip(thunks or [], found):
            if r is None:
                missing = self._missing(getattr(t, "id", None))
                out.append(T.ThunkOutcome(thunkId=str(getattr(t, "id", "")), cancelled=False,
                                          error=T.ExathunkException(
                                              kind=missing.kind, message=missing.message)))
            elif r in ready and r.cancelled:
                out.append(T.ThunkOutcome(thunkId=r.id, cancelled=True))
            elif r in ready:
                try:
                    out.append(T.ThunkOutcome(thunkId=r.id, cancelled=False,
                                              value=self._outcome(r)))
                except ExathunkError as err:
                    out.append(T.ThunkOutcome(thunkId=r.id, cancelled=False,
                                              error=wire.error_to_thrift(err)))
        return out

    def thunkCancel(self, thunk):
        """Cancel a request: answered as cancelled at once, and, unless another request
        shares its run, its job is abandoned (no retry, no reputation effect) and its
        workers are told to stop it (thunkCancel by request id)."""
        r = self._lookup(thunk)
        with self._lock:
            if r.finished_at is not None:
                return False
            r.cancelled = True
            self._finish(r, error=RemoteError(f"thunk {r.id} was cancelled"))
            if r.followers or r.job is None or r.job.done:
                return True
            r.job.abandon()
            self._unchecked.pop(r.id, None)
            self._sub_checks.pop(r.id, None)
            if self._leaders.get(r.digest) is r:
                del self._leaders[r.digest]
            if r in self._in_flight:
                self._in_flight.discard(r)
                if not self._in_flight:
                    self._idle.notify_all()
            addresses = list(r.sent)
        self.counters["cancelled"] += 1
        for address in addresses:
            self._pool.submit(self._cancel_on, address, r.id)
        return True

    def _cancel_on(self, address: str, request_id: str) -> None:
        link = self._links.get(address)
        if link is None:
            return
        try:
            link.client().cancel_request(request_id)
        except ExathunkError as err:      # it may be gone; its run ends at its limit
            log.info("cancelling %s on %s: %s", request_id, address, err.message)

    def evaluate(self, evalRequest):
        r = self._submit(evalRequest, inline=True, thunk=False)
        self._wait(r, r.deadline - _mono())
        return self._outcome(r)

    def submitBatch(self, evalRequests):
        out = []
        for req in evalRequests or []:
            try:
                r = self._submit(req)
                out.append(T.RemoteThunk(id=r.id, requestId=r.request_id, digest=r.digest))
            except ExathunkError as err:
                r = _Request(f"b{next(self._ids):x}-{os.urandom(4).hex()}")
                r.request_id, r.digest = getattr(req, "requestId", None), None
                r.deadline = _mono() + 1.0
                with self._lock:
                    self._register_thunk(r)
                self._finish(r, error=err)
                out.append(T.RemoteThunk(id=r.id, requestId=r.request_id))
        return out

    def evaluateBatch(self, evalRequests):
        submitted = []
        for req in evalRequests or []:
            try:
                submitted.append(self._submit(req, thunk=False))
            except ExathunkError as err:
                submitted.append(err)
        out = []
        for item in submitted:
            if isinstance(item, ExathunkError):
                out.append(T.EvalOutcome(error=wire.error_to_thrift(item)))
                continue
            self._wait(item, item.deadline - _mono())
            try:
                out.append(T.EvalOutcome(value=self._outcome(item)))
            except ExathunkError as err:
                out.append(T.EvalOutcome(error=wire.error_to_thrift(err)))
            except T.NotDone:
                out.append(T.EvalOutcome(error=T.ExathunkException(
                    kind="LimitExceeded", message="no answer in time", limit="timeout")))
        return out

    def worker_rows(self) -> list[dict]:
        with self._lock:
            return self.market.stats(time.time())

    def getStats(self):
        c = self.counters
        rows = self.worker_rows()
        workers = [T.WorkerStats(
            address=w["address"], state=_STATE_ENUM[w["state"]],
            reputation=float(w["reputation"]), latencyEstimateMs=1e3 * w["latency"],
            shareOfWork=float(w["share"]), requests=w["requests"], failures=w["failures"],
            verified=w["verified"] - w["disagreed"], disagreed=w["disagreed"])
            for w in rows]
        with self._lock:
            active, thunks = len(self._in_flight), len(self._thunks)
        return T.ServiceStats(
            role=self.role, version=__version__, uptimeS=_mono() - self.started,
            requests=c["requests"], evaluations=c["evaluations"], errors=c["errors"],
            cacheHits=c["cache_hits"], cacheMisses=c["cache_misses"],
            cacheSize=len(self._cache), running=active, queued=0, queueBound=0,
            workerThreads=self.options.dispatch_threads, thunks=thunks, overloaded=0,
            timeouts=c["timeouts"], meanRunMs=self._mean_run_ms, draining=self.draining,
            executionModel="broker", connections=self.connections(),
            rejectedFrames=self.rejected_frames(), workers=workers,
            subThunks=c["subthunks"], sharedRuns=c["shared_runs"],
            splitRequests=c["split_requests"],
            authRefused=c["auth_refused"] + c["auth_failed"], nodeId=self.node_id)

    def requestBid(self, evalRequest):
        """The broker's own bid: its best worker's expected latency for the request."""
        checked = self._compile(evalRequest)
        needs, kind = checked.needs, kind_of(checked.size)
        now = time.time()
        with self._lock:
            missing = sorted({_describe([k]) for k in
                              self.market.missing_functions(needs)})
            try:
                needs = self._plan(needs)
            except UnknownFunctionError:
                pass
            eligible = [w for w in self.market.workers.values()
                        if self.market.eligible(w, needs, now)]
            cached = self._cache.get(checked.digest) is not None
            best = min((self.market.expected_latency(w, kind, now) for w in eligible),
                       default=0.0)
        return T.Bid(canServe=bool(eligible) and not self.draining, price=best * 1e3,
                     latencyEstimateMs=0.0 if cached else best * 1e3,
                     queueDepth=len(self._in_flight), cached=cached, missingFunctions=missing)

    def registerWorker(self, host, port):
        if not host or not port or not 0 < int(port) < 65536:
            raise ExathunkError(f"registerWorker: bad address {host!r}:{port!r}")
        try:
            self.add_worker(host, int(port))
        except AuthenticationError as err:
            # The worker refused the broker's token: not the caller's authentication.
            raise RemoteError(f"registerWorker: the worker {host}:{port} refused the "
                              f"broker's token ({err.kind}: {err.message}); give both "
                              "the same --token-file") from None
        return True

    def _overdue_loop(self) -> None:
        """Hedge overdue dispatches: a slow worker's request is also sent elsewhere.

        Every ``hedge_tick`` seconds, scan the requests in flight (a few hundred at
        most) rather than arming a timer per dispatch, which would cost every request a
        thread wake-up."""
        o = self.options
        while not self._closing.wait(o.hedge_tick):
            launches = []
            now_mono, now = _mono(), time.time()
            with self._lock:
                for r in list(self._in_flight):
                    job = r.job
                    if job is None or job.done:
                        continue
                    overdue = max(o.hedge_min,
                                  o.hedge_factor * self.market.typical_latency(r.kind))
                    for address, sent in list(r.sent.items()):
                        if now_mono - sent > overdue and address in job.outstanding \
                                and address not in job.late:
                            more = job.on_slow(address, now)
                            if more:
                                launches.append((r, more, address))
            for r, more, address in launches:
                self.counters["hedges"] += 1
                log.info("worker %s is overdue on a request; also asking %s", address,
                         ", ".join(more))
                self._launch(r, more)

    # ---------------------------------------------------------------- background work
    def _monitor_loop(self) -> None:
        o = self.options
        last_bids = 0.0
        while not self._closing.wait(o.flush_interval):
            try:
                with self._lock:
                    self.market.flush()
                for address, (host, port) in list(self._pending_workers.items()):
                    try:
                        self.add_worker(host, port)
                    except WorkerRefused as err:
                        log.warning("worker %s refused: %s", address, err.message)
                        self._pending_workers.pop(address, None)
                    except ExathunkError:
                        pass
                if _mono() - last_bids >= o.bid_interval:
                    last_bids = _mono()
                    self._ask_bids()
            except Exception:
                log.warning("broker monitor: unexpected error", exc_info=True)

    def _ask_bids(self) -> None:
        with self._lock:
            samples = list(self._kinds_seen.values())
            links = list(self._links.values())
        for r in samples[:8]:
            for link in links:
                self._pool.submit(self._bid, link, r.kind, r.payload)

    def _bid(self, link: _WorkerLink, kind: str, payload) -> None:
        try:
            bid = link.client().request_bid(payload)
        except ExathunkError:
            return
        if bid.get("canServe"):
            with self._lock:
                self.market.set_bid(link.address, kind, bid.get("price") or 0.0,
                                    (bid.get("latencyEstimateMs") or 0.0) / 1e3)

    # ---------------------------------------------------------------- shutdown
    def drain(self, timeout: float) -> bool:
        with self._lock:
            self.draining = True
            return self._idle.wait_for(lambda: not self._in_flight, timeout)

    def unfetched(self) -> int:
        """Finished thunks nobody has fetched yet (a graceful stop lingers for them)."""
        with self._lock:
            return sum(1 for r in self._thunks.values()
                       if r.finished_at is not None and not r.fetched)

    def close(self) -> None:
        self._closing.set()
        self._monitor.join(timeout=5.0)
        if self._hedger is not None:
            self._hedger.join(timeout=5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self.market.flush()
            links = list(self._links.values())
        for link in links:
            link.reset()
        if self.store is not None:
            self.store.close()


def start(host: str = "127.0.0.1", port: int = 0, workers=(), db_path: str | None = None,
          **options):
    """Start a broker in background threads; returns the server's handle
    (``.host``, ``.port``, ``.stop()``, ``.handler`` is the BrokerHandler).

    ``workers``: ("host", port) pairs or "host:port" strings.  ``options``: the
    BrokerOptions fields, the market Policy's fields, and the server's Options.
    """
    from . import server
    broker_options, policy, server_options = _split_options(options)
    server_options["security"] = _security(server_options)
    handler = BrokerHandler(workers, db_path=db_path, options=broker_options, policy=policy,
                            client_security=server_options["security"].client)
    try:
        return server.start(host, port, handler=handler, **server_options)
    except BaseException:
        handler.close()
        raise


def serve(host: str = "127.0.0.1", port: int = 9090, workers=(),
          db_path: str | None = "exathunk-broker.sqlite3", **options) -> None:
    """Run a broker until SIGTERM or SIGINT (blocking)."""
    from . import server
    broker_options, policy, server_options = _split_options(options)
    server_options["security"] = _security(server_options)
    handler = BrokerHandler(workers, db_path=db_path, options=broker_options, policy=policy,
                            client_security=server_options["security"].client)
    server.serve(host, port, handler=handler, **server_options)


def _security(server_options: dict):
    """The broker's resolved security settings (token file read once), from the
    server options (token, token_file, require_client_token, tls_cert, tls_key, tls_ca)."""
    from . import server
    names = ("token", "token_file", "require_client_token", "tls_cert", "tls_key", "tls_ca",
             "security")
    return server.security_of(server.Options.build(
        **{k: server_options.pop(k) for k in names if k in server_options}))


def join(broker_host: str, broker_port: int, my_host: str, my_port: int,
         timeout: float = 10.0, **security) -> bool:
    """Register the worker at my_host:my_port with a broker (``serve --join``);
    ``security``: connect's token, token_file, tls, tls_ca or security."""
    from .client import connect
    client = connect(broker_host, broker_port, timeout=timeout, **security)
    try:
        return client.register_worker(my_host, my_port)
    finally:
        client.close()
