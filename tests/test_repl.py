"""The REPL as a user drives it: through a pseudo-terminal (Ctrl-C, Ctrl-D, history),
and through its functions (redefinition, :load, :type, :time)."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time

import pytest

from exathunk.errors import TypeCheckError
from exathunk.repl import Repl, definition_key, history_entry, split_forms

# Runs until it is stopped (or for minutes): what a Ctrl-C has to interrupt.
LONG = "(length (iterate (lambda (x) x) 0))"


class PtyRepl:
    """``exathunk repl`` on a pseudo-terminal, so that readline, the terminal's Ctrl-C
    (SIGINT to the foreground process) and Ctrl-D behave as for a user."""

    def __init__(self, *args, home):
        env = dict(os.environ, HOME=str(home), TERM="xterm")
        pid, fd = pty.fork()
        if pid == 0:                                   # the child: become the REPL
            try:
                os.execvpe(sys.executable, [sys.executable, "-m", "exathunk", "repl", *args],
                           env)
            finally:
                os._exit(127)
        self.pid, self.fd, self.buf, self.status = pid, fd, "", None

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Read until ``text`` appears; return what came before it, consume through it."""
        deadline = time.monotonic() + timeout
        while text not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} within {timeout} s; got {self.buf!r}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:               # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"REPL ended before {text!r}; got {self.buf!r}")
                self.buf += chunk.decode(errors="replace")
        before, _, self.buf = self.buf.partition(text)
        return before

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:                              # drain, or the child may block writing
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.buf += os.read(self.fd, 65536).decode(errors="replace")
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return os.waitstatus_to_exitcode(status)
        raise AssertionError("REPL did not exit")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


@pytest.fixture
def repl_on_pty(tmp_path):
    started = []

    def start(*args):
        r = PtyRepl(*args, home=tmp_path)
        started.append(r)
        r.expect("xt> ")
        return r
    yield start
    for r in started:
        r.close()


@pytest.fixture
def node():
    from exathunk import server
    handle = server.start(host="127.0.0.1", port=0)
    try:
        yield handle
    finally:
        handle.stop(timeout=5)


def _ctrl_c_keeps_the_session(r):
    r.send("(define (sq x) (* x x))\r")
    r.expect("defined")
    r.expect("xt> ")
    r.send(LONG + "\r")
    time.sleep(1.0)                           # let the evaluation get going
    r.send("\x03")                            # the terminal's Ctrl-C: SIGINT
    r.expect("interrupted", timeout=30)
    r.expect("xt> ")
    r.send("(sq 12)\r")
    assert "144" in r.expect("xt> ")
    r.send("\x04")                            # Ctrl-D
    assert r.wait() == 0


def test_ctrl_c_interrupts_a_local_evaluation_and_keeps_definitions(repl_on_pty):
    _ctrl_c_keeps_the_session(repl_on_pty())


def test_ctrl_c_cancels_a_remote_evaluation_and_keeps_definitions(repl_on_pty, node):
    _ctrl_c_keeps_the_session(repl_on_pty("--remote", f"127.0.0.1:{node.port}"))
    # The node stopped the run (not just the REPL that stopped waiting for it).
    from exathunk import connect
    with connect("127.0.0.1", node.port) as client:
        deadline = time.monotonic() + 10
        while client.stats().get("running") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.stats().get("running")


def test_ctrl_c_at_the_prompt_drops_the_line_and_ctrl_d_leaves_with_a_newline(repl_on_pty):
    r = repl_on_pty()
    r.send("(+ 1")
    r.expect("(+ 1")
    r.send("\x03")
    r.expect("xt> ")                           # a fresh prompt, not "... "
    r.send("(+ 2 3)\r")
    assert "5" in r.expect("xt> ")
    r.send("\x04")
    assert r.wait() == 0
    assert r.buf.startswith("\r\n") or r.buf.startswith("\n"), repr(r.buf)


def test_a_multi_line_form_is_one_history_entry(repl_on_pty, tmp_path):
    r = repl_on_pty()
    r.send("(define (inc x)\r")
    r.expect("... ")
    r.send("  (+ x 1))\r")
    r.expect("defined")
    r.expect("xt> ")
    r.send("\x10\r")                           # Ctrl-P: the previous entry, whole
    r.expect("redefined inc")
    r.expect("xt> ")
    r.send("(inc 41)\r")
    assert "42" in r.expect("xt> ")
    r.send("\x04")
    assert r.wait() == 0
    history = (tmp_path / ".exathunk_history").read_text().splitlines()
    assert "(define (inc x) (+ x 1))" in history, history


# ---- through its functions ---------------------------------------------------------

def test_type_shows_constraints_not_a_defaulted_type():
    r = Repl()
    assert r.handle(":type +") == "Num a => (-> a a a)"
    r.handle("(define (sq x) (* x x))")
    assert r.handle(":type sq") == "Num a => (-> a a)"
    assert r.handle("(sq 2.5)") == "6.25"


def test_redefinition_replaces_and_later_definitions_use_the_new_one():
    r = Repl()
    assert r.handle("(define (sq x) (* x x))") == "defined"
    r.handle("(define (quad x) (sq (sq x)))")
    assert r.handle("(quad 3)") == "81"
    assert r.handle("(define (sq x) (+ x x))") == "redefined sq"
    assert r.handle("(quad 3)") == "12"
    assert len(r.defines) == 2


def test_a_redefinition_that_breaks_a_user_is_refused_and_the_old_one_kept():
    r = Repl()
    r.handle("(define n 10)")
    r.handle("(define (next) (+ n 1))")
    with pytest.raises(TypeCheckError) as info:
        r.handle('(define n "ten")')
    assert "(define (next) (+ n 1))" in info.value.render()
    assert "the old n is kept" in info.value.message
    assert r.handle("(next)") == "11"


def test_load_adds_definitions_and_shows_the_final_expression(tmp_path):
    f = tmp_path / "lib.xt"
    f.write_text("; a library\n(define (twice f x) (f (f x)))\n(define n 5)\n(twice (lambda (y) (* y y)) n)\n")
    r = Repl()
    r.handle("(define n 1)")
    reply = r.handle(f":load {f}")
    assert reply.splitlines() == [f"loaded {f}: 2 definitions (replaced n)", "625"]
    assert r.handle("(twice (lambda (y) (+ y 1)) n)") == "7"


def test_load_reports_errors_at_the_files_own_line(tmp_path):
    f = tmp_path / "bad.xt"
    f.write_text("(define ok 1)\n\n(define (bad x)\n  (+ x true))\n")
    r = Repl()
    with pytest.raises(TypeCheckError) as info:
        r.handle(f":load {f}")
    assert info.value.render().startswith(f"{f}:4:")
    assert r.defines == []                     # all or nothing


def test_time_shows_wall_time_and_steps():
    r = Repl()
    first, second = r.handle(":time (sum (range 0 1000))").splitlines()
    assert first == "499500"
    assert second.startswith("; ") and " ms wall, " in second and second.endswith((" steps", " step"))
    assert r.handle(":time") == "timing on"
    assert len(r.handle("(+ 1 2)").splitlines()) == 2
    assert r.handle(":time") == "timing off"
    assert r.handle("(+ 1 2)") == "3"


def test_help_lists_every_command():
    text = Repl().handle(":help")
    for command in (":type", ":defs", ":load", ":time", ":reset", ":help", ":quit"):
        assert command in text


def test_forms_keys_and_history_entries():
    forms = split_forms('; c\n(define (f x)\n  x) (define n 3)\n"s" (f n)\n')
    assert [line for line, _ in forms] == [1, 2, 3, 3]
    assert [definition_key(t) for _, t in forms] == [("define", "f"), ("define", "n"),
                                                     None, None]
    assert definition_key("(class (=> (Eq a) (Keyed a)) (key (-> a Int)))") == ("class", "Keyed")
    assert definition_key("(instance (=> (Size a) (Size (List a))) (define (size xs) 1))") \
        == ("instance", "(Size (List a))")
    assert definition_key("(data (Opt a) (No) (Yes a))") == ("data", "Opt")
    assert history_entry(["(f 1", "  2)"]) == "(f 1 2)"
    # a comment or a string across lines would change meaning when joined by spaces
    assert history_entry(["(f 1 ; one", "  2)"]) == "(f 1 ; one\n  2)"
    assert history_entry(['(concat "a', 'b")']) == '(concat "a\nb")'
