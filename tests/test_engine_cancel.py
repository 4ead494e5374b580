"""Stopping a run from outside: CancelToken (cancel=) and the wall-clock limit (timeout=).

Latencies are asserted generously (the machine may be loaded) and printed: run with -s
to see them.
"""

import threading
import time

import pytest

import exathunk
from exathunk import _core
from exathunk._core import CancelToken
from exathunk.errors import ExathunkError, LimitExceeded
from exathunk.library import Library

LOOP = "(define (loop n) (loop (+ n 1))) (loop 0)"
ITERATE = "(length (iterate (lambda (x) x) 0))"       # allocates, keeps the list live
FIB = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 25)"
# a 32 MB string, then forever: drop its first character, add one at the end
STRINGS = ("(define (dbl s n) (if (= n 0) s (dbl (++ s s) (- n 1))))\n"
           "(define (churn s) (churn (++ (substring s 1 (len s)) \"x\")))\n"
           "(churn (dbl \"abcdefgh\" 20))")
BIG = dict(max_steps=10**15)


def compiled(src, library=None):
    return exathunk.compile(src, library=library)


class Background:
    """A run in another thread; .outcome is ("value", v) or ("error", exc)."""

    def __init__(self, program, **kw):
        self.outcome = None
        self.ended = None
        self.thread = threading.Thread(target=self._work, args=(program, kw), daemon=True)
        self.thread.start()

    def _work(self, program, kw):
        try:
            self.outcome = ("value", program.run(**kw))
        except BaseException as exc:           # examined by the test
            self.outcome = ("error", exc)
        self.ended = time.perf_counter()

    def join(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not stop"
        return self.outcome


def cancel_after(program, delay, **kw):
    """Run, cancel after delay seconds: (the LimitExceeded, seconds from cancel to end)."""
    token = CancelToken()
    bg = Background(program, cancel=token, **kw)
    time.sleep(delay)
    assert bg.outcome is None, f"the run ended before it was cancelled: {bg.outcome}"
    t0 = time.perf_counter()
    token.cancel()
    kind, exc = bg.join()
    assert kind == "error" and isinstance(exc, LimitExceeded), (kind, exc)
    return exc, bg.ended - t0


def test_token_basics():
    token = CancelToken()
    assert not token.cancelled
    assert "active" in repr(token)
    token.cancel()
    token.cancel()                            # idempotent
    assert token.cancelled
    assert "cancelled" in repr(token)


@pytest.mark.parametrize("name,src,kw", [
    ("loop", LOOP, {}),
    ("iterate", ITERATE, dict(max_heap=1 << 30)),
    ("strings", STRINGS, dict(max_heap=1 << 30)),
])
def test_cancel_from_another_thread_stops_quickly(name, src, kw):
    program = compiled(src)
    latencies = []
    for delay in (0.05, 0.2, 0.4):
        exc, latency = cancel_after(program, delay, **BIG, **kw)
        assert exc.limit == "cancelled"
        assert "cancelled" in exc.message
        latencies.append(latency)
    print(f"\n{name}: cancel latency {[f'{x * 1e3:.2f} ms' for x in latencies]}")
    assert max(latencies) < 1.0


def test_cancelled_before_the_run_stops_it_at_once():
    token = CancelToken()
    token.cancel()
    for src in (LOOP, "(+ 1 2)"):
        t0 = time.perf_counter()
        with pytest.raises(LimitExceeded) as info:
            compiled(src).run(cancel=token, **BIG)
        assert info.value.limit == "cancelled"
        assert time.perf_counter() - t0 < 0.5


def test_an_uncancelled_token_changes_nothing():
    for src in (FIB, "(map (lambda (x) (* x x)) (range 0 10))", '(join "," (split " " "a b c"))'):
        program = compiled(src)
        plain, plain_stats = program.run_with_stats()
        token = CancelToken()
        value, stats = program.run_with_stats(cancel=token, timeout=60)
        assert value == plain
        assert stats["steps"] == plain_stats["steps"]
        assert not token.cancelled
    assert compiled(FIB).run(cancel=CancelToken()) == 75025


def test_timeout_stops_a_never_ending_program_at_its_limit():
    program = compiled(LOOP)
    for limit in (0.2, 0.5):
        t0 = time.perf_counter()
        with pytest.raises(LimitExceeded) as info:
            program.run(timeout=limit, **BIG)
        elapsed = time.perf_counter() - t0
        print(f"\ntimeout {limit * 1e3:.0f} ms: stopped after {elapsed * 1e3:.2f} ms")
        assert info.value.limit == "timeout"
        assert f"{limit * 1e3:.0f} ms" in info.value.message
        assert limit <= elapsed < limit + 1.0


def test_timeout_of_an_allocating_program():
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        compiled(ITERATE).run(timeout=0.3, max_heap=1 << 30, **BIG)
    elapsed = time.perf_counter() - t0
    print(f"\niterate, timeout 300 ms: stopped after {elapsed * 1e3:.2f} ms")
    assert info.value.limit == "timeout"
    assert 0.3 <= elapsed < 1.3


def test_a_program_that_ends_in_time_is_not_stopped():
    assert compiled(FIB).run(timeout=30) == 75025
    assert compiled(FIB).run(timeout=10**12) == 75025        # as good as no limit


def test_the_other_limits_still_come_first():
    with pytest.raises(LimitExceeded) as info:
        compiled(LOOP).run(max_steps=10_000, timeout=30, cancel=CancelToken())
    assert info.value.limit == "max_steps"
    with pytest.raises(LimitExceeded) as info:
        compiled(LOOP).run(max_steps=123_456_789, timeout=30)
    assert info.value.limit == "max_steps"


def test_the_next_run_after_a_stopped_one_is_sound():
    program = compiled(ITERATE)
    fib = compiled(FIB)
    for _ in range(3):
        exc, _ = cancel_after(program, 0.1, max_heap=1 << 30, **BIG)
        assert exc.limit == "cancelled"
        assert fib.run() == 75025
        assert compiled('(join "-" (map show (range 0 5)))').run() == "0-1-2-3-4"
        with pytest.raises(LimitExceeded):
            program.run(timeout=0.05, max_heap=1 << 30, **BIG)
        assert fib.run_with_stats()[0] == 75025
    # the same program, run again to its end
    assert compiled("(length (take 1000 (iterate (lambda (x) x) 0)))").run() == 1000


def test_cancelling_one_thread_leaves_the_other_running():
    loop = compiled(LOOP)
    first, second = CancelToken(), CancelToken()
    a = Background(loop, cancel=first, **BIG)
    b = Background(loop, cancel=second, **BIG)
    time.sleep(0.2)
    first.cancel()
    kind, exc = a.join()
    assert kind == "error" and exc.limit == "cancelled"
    time.sleep(0.3)
    assert b.outcome is None and b.thread.is_alive()     # still running
    second.cancel()
    kind, exc = b.join()
    assert kind == "error" and exc.limit == "cancelled"
    # a run finishes with its value while another one is cancelled beside it
    third = CancelToken()
    c = Background(loop, cancel=third, **BIG)
    d = Background(compiled(FIB), cancel=CancelToken())
    time.sleep(0.05)
    third.cancel()
    assert d.join() == ("value", 75025)
    assert c.join()[1].limit == "cancelled"
    # one token shared by two runs stops both
    shared = CancelToken()
    e = Background(loop, cancel=shared, **BIG)
    f = Background(loop, cancel=shared, **BIG)
    time.sleep(0.1)
    shared.cancel()
    assert e.join()[1].limit == "cancelled" and f.join()[1].limit == "cancelled"


def test_a_host_call_in_progress_is_not_interrupted():
    events = []
    lib = Library()

    def slow(x):
        events.append(("start", time.perf_counter()))
        time.sleep(0.3)
        events.append(("end", time.perf_counter()))
        return x + 1

    lib.register("slow", "(-> Int Int)", slow)
    program = compiled("(define (loop n) (loop (slow n))) (loop 0)", lib)
    token = CancelToken()
    bg = Background(program, cancel=token, library=lib, **BIG)
    while not events:
        time.sleep(0.005)
    token.cancel()                        # during the first call
    kind, exc = bg.join()
    assert kind == "error" and exc.limit == "cancelled"
    assert [e[0] for e in events] == ["start", "end"]       # ran to its end, no second
    print(f"\nstopped {(bg.ended - events[1][1]) * 1e3:.2f} ms after the host call returned")
    assert bg.ended >= events[1][1]


def test_a_host_call_heavy_program_stops_quickly():
    lib = Library()
    lib.register("ident", "(-> Int Int)", lambda x: x)
    program = compiled("(define (loop n) (loop (+ (ident n) 1))) (loop 0)", lib)
    exc, latency = cancel_after(program, 0.2, library=lib, **BIG)
    print(f"\nhost calls: cancel latency {latency * 1e3:.2f} ms")
    assert exc.limit == "cancelled" and latency < 1.0
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        program.run(library=lib, timeout=0.2, **BIG)
    assert info.value.limit == "timeout" and 0.2 <= time.perf_counter() - t0 < 1.2


def test_cancel_while_a_lazy_argument_is_forced_inside_a_host_call():
    lib = Library()
    seen = []

    def force(x):
        try:
            return x()
        except LimitExceeded as exc:      # the forcing stopped: the host sees why
            seen.append(exc.limit)
            raise

    lib.register("force", "(-> Int Int)", force, strict=(False,))
    program = compiled("(define (loop n) (loop (+ n 1))) (+ 1 (force (loop 0)))", lib)
    exc, latency = cancel_after(program, 0.1, library=lib, **BIG)
    assert exc.limit == "cancelled" and latency < 1.0
    assert seen == ["cancelled"]
    assert compiled("(+ 1 (force 41))", lib).run(library=lib, cancel=CancelToken()) == 42


def test_long_builtins_stop_quickly():
    # show of a shared tree: a small heap, an exponentially long text
    dag = ("(data T (L) (N T T))\n"
           "(define (dup n) (if (= n 0) L (let ((t (dup (- n 1)))) (N t t))))\n")
    for src in (dag + "(len (show (dup 40)))", dag + "(= (dup 40) (dup 40))", dag + "(dup 40)"):
        exc, latency = cancel_after(compiled(src), 0.2, max_heap=1 << 30, **BIG)
        print(f"\ncancel latency {latency * 1e3:.2f} ms: {src.splitlines()[-1]}")
        assert exc.limit == "cancelled" and latency < 1.0


def test_bad_arguments():
    program = compiled("(+ 1 2)")
    for bad in (0, -1, float("nan"), "1", True):
        with pytest.raises(ExathunkError):
            program.run(timeout=bad)
    with pytest.raises(TypeError):
        program.run(cancel="yes")
    with pytest.raises(TypeError):
        program.run(None, None, None, None, CancelToken())   # keyword-only


def test_the_low_level_run_keeps_its_signature():
    program = compiled(FIB)
    image = program._engine_image()
    value, stats = _core.run(image, [], 10**9, 1 << 28, 10**6)
    assert value == 75025 and stats["steps"] > 0
    token = CancelToken()
    assert _core.run(image, [], 10**9, 1 << 28, 10**6, cancel=token, timeout=30)[0] == 75025
    token.cancel()
    with pytest.raises(LimitExceeded) as info:
        _core.run(image, [], 10**9, 1 << 28, 10**6, cancel=token)
    assert info.value.limit == "cancelled"
    loop = compiled(LOOP)._engine_image()
    with pytest.raises(LimitExceeded) as info:
        _core.run(loop, [], 10**15, 1 << 28, 10**6, timeout=0.1)
    assert info.value.limit == "timeout"
