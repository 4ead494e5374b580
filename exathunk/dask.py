"""exathunk on Dask: whole programs as Dask tasks, par-map sub-thunks as Dask tasks.

Needs the optional extra: ``pip install 'exathunk[dask]'`` (dask and distributed).
This module imports without them; each entry point then raises ImportError saying so.

    from distributed import Client, LocalCluster
    import exathunk.dask as xd
    client = Client(LocalCluster(n_workers=2, processes=True, dashboard_address=None))
    client.register_plugin(xd.ExathunkPlugin("exathunk.demo:demo_library"))
    lib = exathunk.demo.demo_library()           # what the workers offer, to compile
    xd.submit(client, '(hash "abc")', library=lib).result()
    xd.evaluate(client, "(par-map (lambda (x) (* x x)) (range 0 8))")

The parts:

- ``submit(client, source_or_program, library=None, **limits)`` compiles a source here
  (against ``library``, which must describe what the workers offer, as a client in
  graph mode does) and submits one Dask task with the key ``exathunk-<digest>``
  (``task_key``): the same program is the same key, so Dask computes it once however
  many clients ask while its result is held.  A run with non-default limits gets the
  key ``exathunk-<digest>-<hash of the limits>``, so that an error under a small limit
  is never served to a run with a larger one.  It returns a ``distributed.Future`` of
  the Python value (int, float, bool, str, list, ``exathunk.Data``); a failed run
  raises the same ``exathunk`` error class from ``.result()``.  ``evaluate`` waits for it.
- ``ExathunkPlugin(library_factory, workers=None)``: a ``distributed.WorkerPlugin``
  that, on each worker it applies to (all, or those whose name or address is in
  ``workers``), calls the zero-argument factory (a module-level function, or its
  ``"module:function"`` name) to build the node's ``Library``, keeps it as
  ``worker.exathunk_library`` (the tasks' library; a worker without one runs with the
  default library: built-ins and prelude only), and advertises it as Dask resources.
- Capabilities as resources: every host function and instance method a worker's
  library offers (names starting with ``%``, which every node has, aside) is a Dask
  resource named ``exathunk:<name> :: <signature>`` (``resource_name``: the broker's
  routing key with a prefix) with a quantity of ``CAPACITY`` (2**30: a capability, not
  a count, so it never limits how many tasks run at once), set with
  ``Worker.set_resources``.  A task asks for 1 of the resource of every host function
  its program's bytecode calls (``program.hosts``, each at the signature it was
  compiled with), so the scheduler gives it only to a worker that offers them all.
  ``submit`` refuses at once (``UnknownFunctionError``) a program no current worker can
  run, instead of leaving the task waiting for a worker that may never come.
- ``DaskRunner``: the sub-thunk runner of a run inside a task (``exathunk.subthunks``'
  protocol).  Each ``par-map`` element (and each closed ``par``) is compiled on the
  worker against its library and submitted from inside the task, through the worker's
  client, as its own task keyed ``exathunk-<digest>`` (equal sub-programs are one
  task).  While it waits for them the running task *secedes* from the worker's thread
  pool (``distributed.secede``) and rejoins after (``distributed.rejoin``), so a worker
  with one thread whose task waits on sub-tasks still runs them.  A sub-program whose
  key is one of its own ancestors' (its value needs itself) fails with an
  EvaluationError instead of waiting forever.
"""

from __future__ import annotations

import hashlib
import importlib

from . import subthunks
from .errors import EvaluationError, ExathunkError, UnknownFunctionError

INSTALL_HINT = ("exathunk's Dask backend needs dask and distributed: "
                "pip install 'exathunk[dask]'")

try:  # the optional extra
    import distributed as _distributed
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - exercised only without the extra
    _distributed = None
    _WorkerPlugin = object

# A capability, not a count: every task asks for 1, a worker offers this many.
CAPACITY = 1 << 30
RESOURCE_PREFIX = "exathunk:"
KEY_PREFIX = "exathunk-"
LIMITS = ("max_steps", "max_heap", "max_depth", "timeout")


def available() -> bool:
    """Whether dask and distributed are installed."""
    return _distributed is not None


def _require():
    if _distributed is None:
        raise ImportError(INSTALL_HINT)
    return _distributed


# ---- names: task keys and resources ------------------------------------------------------

def resource_name(name: str, signature: str) -> str:
    """The Dask resource of a host function or instance method: the broker's routing key
    (``"hash@Hashable String :: (-> String Int)"``) with the prefix ``exathunk:``.
    Dask keeps resource names as plain dictionary keys (on the worker, the scheduler
    and in task annotations), so spaces, ``@`` and parentheses need no escaping."""
    return f"{RESOURCE_PREFIX}{name} :: {signature}"


def offered_resources(library) -> dict:
    """The resources a worker with ``library`` offers: one per host function and
    instance method (not the ``%`` ones every node has), each ``CAPACITY``."""
    specs = list(library.host_functions()) + list(library.instance_methods())
    return {resource_name(s.name, s.signature): CAPACITY for s in specs
            if s.name[:1] != "%" and s.fn is not None}


def needed_resources(program) -> dict:
    """The resources a task running ``program`` asks for: 1 of the resource of each
    host function and instance method its bytecode calls, at the signature it was
    compiled with (``program.hosts``)."""
    return {resource_name(h.name, h.signature): 1 for h in program.hosts
            if h.name[:1] != "%"}


def task_key(program, limits: dict | None = None) -> str:
    """``exathunk-<digest>``; with non-default limits, ``-<12 hex digits of them>``."""
    key = KEY_PREFIX + program.digest
    if limits:
        text = repr(sorted(limits.items())).encode()
        key += "-" + hashlib.sha256(text).hexdigest()[:12]
    return key


def _check_limits(limits: dict) -> dict:
    unknown = sorted(set(limits) - set(LIMITS))
    if unknown:
        raise TypeError(f"unknown run limit {unknown[0]!r} (the limits: {', '.join(LIMITS)})")
    return {k: v for k, v in limits.items() if v is not None}


# ---- libraries -----------------------------------------------------------------------------

def resolve_factory(factory):
    """A library factory: a callable, or ``"module:function"`` (dotted attributes)."""
    if isinstance(factory, str):
        module, sep, attr = factory.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"a library factory is 'module:function', not {factory!r}")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        factory = obj
    if not callable(factory):
        raise TypeError(f"a library factory must be callable, not {factory!r}")
    return factory


def _library(library):
    """A Library, from a Library, a factory or its name; None stays None."""
    if library is None:
        return None
    from .library import Library
    if isinstance(library, Library):
        return library
    made = _factory_libraries.get(library)
    if made is None:
        made = resolve_factory(library)()
        if not isinstance(made, Library):
            raise TypeError(f"the library factory {library!r} returned "
                            f"{type(made).__name__}, not an exathunk.Library")
        _factory_libraries[library] = made
    return made


# A factory given to submit is called once per process (its Library's id keys the
# compile cache).  A plugin's setup always calls its factory afresh.
_factory_libraries: dict = {}


def _worker():
    try:
        return _distributed.get_worker()
    except ValueError:
        return None


def worker_library():
    """The library of the worker this runs on (its plugin's), else the default one."""
    from .library import default_library
    worker = _worker()
    library = getattr(worker, "exathunk_library", None) if worker is not None else None
    return library if library is not None else default_library()


class ExathunkPlugin(_WorkerPlugin):
    """Installs a node's Library on Dask workers and advertises its capabilities.

    ``library_factory``: a zero-argument, picklable (module-level) function returning an
    ``exathunk.Library``, or its ``"module:function"`` name; it is called on the worker
    at setup.  ``workers``: the worker names or addresses it applies to (default all);
    on the others it does nothing, so that two plugins can give two groups of workers
    different libraries.  ``name``: the plugin's name in Dask (registering another
    plugin of the same name replaces it); by default derived from the factory and the
    workers.  A worker has one exathunk library: the last plugin set up wins.
    """

    def __init__(self, library_factory, workers=None, name: str | None = None):
        _require()
        if not isinstance(library_factory, str) and not callable(library_factory):
            raise TypeError("library_factory must be a callable or 'module:function'")
        self.library_factory = library_factory
        self.workers = None if workers is None else frozenset(str(w) for w in workers)
        if name is None:
            ref = library_factory if isinstance(library_factory, str) else \
                f"{getattr(library_factory, '__module__', '?')}:" \
                f"{getattr(library_factory, '__qualname__', repr(library_factory))}"
            scope = "*" if self.workers is None else ",".join(sorted(self.workers))
            name = "exathunk-library-" + hashlib.sha256(
                f"{ref}|{scope}".encode()).hexdigest()[:12]
        self.name = name

    def applies_to(self, worker) -> bool:
        return self.workers is None or bool({str(worker.name), worker.address}
                                            & self.workers)

    async def setup(self, worker):
        if not self.applies_to(worker):
            return
        library = resolve_factory(self.library_factory)()
        from .library import Library
        if not isinstance(library, Library):
            raise TypeError(f"the library factory {self.library_factory!r} returned "
                            f"{type(library).__name__}, not an exathunk.Library")
        offered = offered_resources(library)
        previous = getattr(worker, "exathunk_resources", None) or {}
        update = {r: 0 for r in previous if r not in offered}
        update.update(offered)
        worker.exathunk_library = library
        worker.exathunk_resources = offered
        worker.exathunk_plugin = self.name
        if update:
            await worker.set_resources(**update)

    async def teardown(self, worker):
        if getattr(worker, "exathunk_plugin", None) != self.name:
            return
        gone = {r: 0 for r in getattr(worker, "exathunk_resources", None) or {}}
        worker.exathunk_library = None
        worker.exathunk_resources = {}
        worker.exathunk_plugin = None
        from distributed.core import Status
        if gone and worker.status == Status.running:
            import asyncio
            try:
                await asyncio.wait_for(worker.set_resources(**gone), 5)
            except Exception:       # the scheduler is going away: nothing to tell it
                pass


# ---- the tasks -----------------------------------------------------------------------------

def run_task(program, key: str, limits: dict, ancestors: tuple = ()):
    """The Dask task: run ``program`` with this worker's library, its sub-thunks as
    Dask tasks."""
    library = worker_library()
    runner = DaskRunner(library, limits, ancestors + (key,))
    with subthunks.using(runner):
        return program.run(library=library, **limits)


class DaskRunner:
    """Sub-thunks as Dask tasks (the ``exathunk.subthunks`` runner protocol).

    ``submit(source)`` compiles the sub-program against ``library`` and submits it as
    the task ``exathunk-<digest>``, through ``client`` (default: the client of the
    worker this runs on, ``distributed.get_client()``); ``wait(futures)`` gathers their
    values, seceding from the worker's thread pool while it waits when it runs inside
    a task.  Usable outside a task too: ``with subthunks.using(DaskRunner(lib,
    client=c)): program.run(library=lib)`` runs a program here and its sub-thunks on
    the cluster."""

    def __init__(self, library=None, limits: dict | None = None, ancestors: tuple = (),
                 client=None):
        _require()
        from .library import default_library
        self.library = library if library is not None else default_library()
        self.limits = dict(limits or {})
        self.ancestors = tuple(ancestors)
        self.client = client
        self.submitted = 0
        self.keys: list = []

    def _client(self):
        if self.client is None:
            self.client = _distributed.get_client()
        return self.client

    def submit(self, source: str):
        from .driver import compile
        program = compile(source, library=self.library)
        key = task_key(program, self.limits)
        if key in self.ancestors:
            raise EvaluationError("a sub-thunk needs its own value (its sub-program "
                                  f"{key[:21]}... is one of its callers): it never ends")
        self.submitted += 1
        self.keys.append(key)
        return self._client().submit(run_task, program, key, self.limits, self.ancestors,
                                     key=key, resources=needed_resources(program) or None)

    def wait(self, futures) -> list:
        futures = list(futures)
        client = self._client()
        if not _in_task():
            return client.gather(futures)
        # Give this task's thread back to the worker while the sub-tasks run (they may
        # need it: a worker with one thread), and take a slot again before going on.
        _distributed.secede()
        try:
            return client.gather(futures)
        finally:
            _distributed.rejoin()


def _in_task() -> bool:
    worker = _worker()
    if worker is None:
        return False
    try:
        worker.get_current_task()
    except (KeyError, ValueError):
        return False
    return True


# ---- the client side ------------------------------------------------------------------------

def _program(source_or_program, library):
    from .program import Program
    if isinstance(source_or_program, Program):
        return source_or_program
    if isinstance(source_or_program, str):
        from .driver import compile
        return compile(source_or_program, library=library)
    raise TypeError("submit takes a program's source text or an exathunk.Program, not "
                    f"{type(source_or_program).__name__}")


# (id(client), needs) -> when a worker was last seen offering them: a check is a round
# trip to the scheduler, so one that passed is trusted for CHECK_TTL seconds.
CHECK_TTL = 2.0
_offered_seen: dict = {}


def _check_offered(client, needs: dict) -> None:
    """Refuse now a program that no worker of the cluster can run."""
    import time
    cache_key = (id(client), frozenset(needs))
    seen = _offered_seen.get(cache_key)
    if seen is not None and time.monotonic() - seen < CHECK_TTL:
        return
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    for info in workers.values():
        res = info.get("resources") or {}
        if all(res.get(r, 0) >= q for r, q in needs.items()):
            if len(_offered_seen) > 256:
                _offered_seen.clear()
            _offered_seen[cache_key] = time.monotonic()
            return
    names = sorted(r[len(RESOURCE_PREFIX):] for r in needs)
    raise UnknownFunctionError("no Dask worker offers every host function this program "
                               f"uses: {'; '.join(names)} (register an ExathunkPlugin "
                               "whose library offers them)")


def submit(client, source_or_program, library=None, check: bool = True, **limits):
    """Run a program as the Dask task ``exathunk-<digest>``; returns its Future.

    ``source_or_program``: source text (compiled here, against ``library``: a Library,
    or a factory or its ``"module:function"`` name, describing what the workers offer)
    or a compiled Program.  ``limits``: max_steps, max_heap, max_depth, timeout (as for
    ``Program.run``).  ``check``: refuse at once (UnknownFunctionError) a program whose
    host functions no current worker offers (asked of the scheduler; a pass is trusted
    for CHECK_TTL seconds); without it, or with an asynchronous client, the task waits
    until a worker offers them.
    A compile error is raised here; a run's error by the Future's ``result()``."""
    _require()
    limits = _check_limits(limits)
    program = _program(source_or_program, _library(library))
    key = task_key(program, limits)
    needs = needed_resources(program)
    # (An asynchronous client has no synchronous scheduler_info: its tasks are unchecked.)
    if needs and check and not getattr(client, "asynchronous", False):
        _check_offered(client, needs)
    return client.submit(run_task, program, key, limits, (), key=key,
                         resources=needs or None)


def evaluate(client, source_or_program, library=None, wait: float | None = None,
             **limits):
    """``submit(...).result()``: the program's value, or its error raised here.
    ``wait``: seconds to wait for it (a TimeoutError past them)."""
    future = submit(client, source_or_program, library, **limits)
    try:
        return future.result(timeout=wait)
    except ExathunkError as err:
        if isinstance(source_or_program, str):
            err.with_source(source_or_program)
        raise
