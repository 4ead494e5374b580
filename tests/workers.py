"""Test-only worker nodes that misbehave: slow, crashing, or lying.

Each is a real RemoteExecutionService server (exathunk.server with a subclass of its
ExecutionHandler) on a free 127.0.0.1 port, running the real engine, with a behaviour on
top: ``delay`` seconds of sleep per evaluation, a ``crash_rate`` of requests answered
with an internal error, a ``lie_rate`` of values replaced by a plausible wrong value of
the same type, ``times_out``: every run passes its wall-clock limit (it sleeps the
request's timeoutMs, then answers LimitExceeded "timeout", as a node too slow or too
loaded for the limit does).  ``kill`` stops one abruptly, as a crash would (connections dropped, new
ones refused).  Until the engine can run programs, evaluations fall back to the
reference interpreter (same values), so that the market can be tested end to end.
"""

from __future__ import annotations

import random
import threading
import time

from exathunk import server, wire
from exathunk.errors import LimitExceeded
from exathunk.library import Library

T = wire.thrift


def _engine_runs() -> bool:
    try:
        from exathunk import _core
        return hasattr(_core, "run")
    except ImportError:
        return False


ENGINE = _engine_runs()


def wrong_value(nodes, root):
    """A copy of a flat value tree with a plausible wrong value (same type)."""
    nodes = [T.ValueNode(kind=n.kind, intValue=n.intValue, doubleValue=n.doubleValue,
                         boolValue=n.boolValue, stringValue=n.stringValue,
                         constructor=n.constructor,
                         children=list(n.children) if n.children is not None else None)
             for n in nodes]
    target = root
    while nodes[target].kind in (T.ValueKind.LIST, T.ValueKind.DATA) \
            and nodes[target].children:
        target = nodes[target].children[0]
    n = nodes[target]
    if n.kind == T.ValueKind.INT:
        n.intValue = n.intValue + 1 if n.intValue < 2 ** 62 else n.intValue - 1
    elif n.kind == T.ValueKind.DOUBLE:
        n.doubleValue = n.doubleValue + 1.0
    elif n.kind == T.ValueKind.BOOL:
        n.boolValue = not n.boolValue
    elif n.kind == T.ValueKind.STRING:
        n.stringValue = n.stringValue + "x"
    elif n.kind == T.ValueKind.DATA:       # a nullary constructor: another name
        n.constructor = n.constructor + "x"
    else:                                  # the empty list: one element of nothing
        return [T.ValueNode(kind=T.ValueKind.LIST, children=[1]),
                T.ValueNode(kind=T.ValueKind.INT, intValue=0)], 0
    return nodes, root


class FakeWorker(server.ExecutionHandler):
    """A worker node's handler with a misbehaviour on top of the real one."""

    def __init__(self, library=None, options=None, delay: float = 0.0,
                 lie_rate: float = 0.0, crash_rate: float = 0.0, seed: int = 0,
                 times_out: bool = False):
        super().__init__(library, options)
        self.delay = delay
        self.lie_rate = lie_rate
        self.crash_rate = crash_rate
        self.times_out = times_out
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.served = 0
        self.lies = 0

    def _roll(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def evaluate(self, evalRequest):
        self.served += 1
        if self.delay:
            time.sleep(self.delay)
        if self.crash_rate and self._roll() < self.crash_rate:
            raise RuntimeError("simulated crash")
        if self.times_out:
            time.sleep((evalRequest.timeoutMs or 1000) / 1e3)
            raise LimitExceeded("the run passed its wall-clock limit", limit="timeout")
        vc = super().evaluate(evalRequest)
        if self.lie_rate and self._roll() < self.lie_rate:
            self.lies += 1
            nodes, root = wrong_value(vc.nodes, vc.root)
            return T.VarCont(nodes=nodes, root=root, typeText=vc.typeText, stats=vc.stats,
                             digest=vc.digest, requestId=vc.requestId)
        return vc

    def _run(self, job, queue_ms: float):
        if ENGINE:
            return super()._run(job, queue_ms)
        from exathunk import driver, reference
        t0 = time.perf_counter()
        checked = driver.check(job.source, self.library)
        value = reference.evaluate(checked, self.library,
                                   max_steps=job.limits.get("max_steps"))
        payload = (*wire.value_to_nodes(value), job.program.type)
        if not job.no_cache:
            self._results.put(job.cache_key, payload)
        return self._varcont(payload, job, cached=False, queue_ms=queue_ms,
                             run_ms=(time.perf_counter() - t0) * 1e3)


def start_worker(library: Library | None = None, join: str | None = None,
                 **behaviour) -> server.ServerHandle:
    """A worker on a free loopback port; behaviour: delay, lie_rate, crash_rate, seed,
    times_out.
    ``join``: "host:port" of a broker to register with, as ``exathunk serve --join``."""
    handler = FakeWorker(library, server.Options(workers=2, steps_per_second=20e6),
                         **behaviour)
    return server.start("127.0.0.1", 0, handler=handler, workers=2,
                        steps_per_second=20e6, join=join)


def kill(handle: server.ServerHandle) -> None:
    """Stop a worker abruptly: no draining, connections dropped mid-request."""
    handle._stopped = True
    handle.server.close(timeout=1.0)
    handle.handler.close()
