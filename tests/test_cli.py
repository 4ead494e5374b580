"""One end-to-end test per CLI verb, through ``python -m exathunk`` in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

EXE = [sys.executable, "-m", "exathunk"]


def run(*args, stdin=None, timeout=120):
    return subprocess.run(EXE + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc, deadline_s: float = 30.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start listening")


def stop(proc) -> None:
    """SIGTERM (a graceful drain), then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server_process():
    """An `exathunk serve` subprocess on a free loopback port; stopped by SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(EXE + ["serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        yield port, proc
    finally:
        stop(proc)


def test_help_on_every_verb():
    top = run("--help")
    assert top.returncode == 0
    for verb in ("demo", "eval", "check", "disasm", "repl", "serve", "broker", "status", "bench"):
        assert verb in top.stdout
        res = run(verb, "--help")
        assert res.returncode == 0, (verb, res.stderr)
        assert "usage: exathunk " + verb in res.stdout


def test_check_prints_type():
    res = run("check", "-e", "(+ 1 (/ 4 2))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Int"


def test_check_type_error_has_caret_under_the_culprit():
    res = run("check", "-e", "(* 4 true)")
    assert res.returncode == 65
    lines = res.stderr.splitlines()
    assert "TypeCheckError" in lines[0] and ":1:6:" in lines[0]
    src_line = next(i for i, l in enumerate(lines) if "(* 4 true)" in l)
    caret = lines[src_line + 1]
    assert caret.index("^") == lines[src_line].index("true")


def test_check_file_and_unknown_function(tmp_path):
    f = tmp_path / "prog.xt"
    f.write_text("; a comment\n(define (sq x) (* x x))\n(sq (blah 4 true))\n")
    res = run("check", str(f))
    assert res.returncode == 65
    assert "UnknownFunctionError" in res.stderr and f"{f}:3:6" in res.stderr


def test_check_warns_of_a_case_that_misses_values(tmp_path):
    f = tmp_path / "opt.xt"
    f.write_text("(data (Opt a) (No) (Yes a))\n"
                 "(define (get o) (case o ((Yes (Yes x)) x) ((Yes No) 0)))\n"
                 "(get (Yes (Yes 1)))\n")
    res = run("check", str(f))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Int"
    lines = res.stderr.splitlines()
    assert f"{f}:2:17: warning: this case does not cover every value: No is not matched" \
        in lines[0]
    assert lines[2].index("^") == lines[1].index("(case")
    clean = run("check", "-e", "(case 1 (0 true) (_ false))")
    assert clean.returncode == 0 and clean.stderr == ""


def test_check_missing_file_is_a_clear_error(tmp_path):
    res = run("check", str(tmp_path / "nope.xt"))
    assert res.returncode != 0 and "cannot read" in res.stderr


def test_disasm_prints_the_graph():
    res = run("disasm", "-e", "(define (sq x) (* x x)) (sq 7)")
    assert res.returncode == 0, res.stderr
    assert "sq" in res.stdout and len(res.stdout.splitlines()) > 3


def test_eval_local_value_and_stats():
    res = run("eval", "--stats", "-e", "(take 5 (iterate (lambda (x) (* 2 x)) 1))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(list 1 2 4 8 16)"
    assert "steps" in res.stderr


def test_eval_limit_and_runtime_error_exit_70():
    res = run("eval", "--max-steps", "10000", "-e", "(length (iterate (lambda (x) x) 0))")
    assert res.returncode == 70 and "LimitExceeded" in res.stderr and "max_steps" in res.stderr
    res = run("eval", "-e", "(head nil)")
    assert res.returncode == 70 and "EvaluationError" in res.stderr


def test_eval_from_stdin():
    res = run("eval", "-", stdin='(concat "a" (show 2.5))')
    assert res.returncode == 0 and res.stdout.strip() == '"a2.5"'


def test_repl_session_from_a_pipe():
    session = "\n".join([
        "(define (sq x)",
        "  (* x x))",
        "(sq 12)",
        ":type (lambda (x) (sq x))",
        ":type sq",
        "(* 4 true)",
        ":defs",
        ":quit",
    ]) + "\n"
    res = run("repl", stdin=session)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "defined" in out and "144" in out
    # types of functions, with their constraints (sq takes any number)
    assert out.splitlines().count("Num a => (-> a a)") == 2
    assert "TypeCheckError" in out
    assert "(define (sq x)" in out


def test_repl_keeps_data_class_and_instance_declarations():
    session = "\n".join([
        "(data (Opt a) (No) (Yes a))",
        "(class (Size a) (size (-> a Int)))",
        "(instance (Size String) (define (size s) (len s)))",
        '(list (Yes (size "abc")) No)',
        ":type size",
        ":quit",
    ]) + "\n"
    res = run("repl", stdin=session)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out.count("defined") == 3, res.stdout
    assert "(list (Yes 3) No)" in out
    assert "Size a => (-> a Int)" in out


def test_serve_eval_remote_status_and_sigterm(server_process):
    port, proc = server_process
    res = run("eval", "--remote", f"127.0.0.1:{port}", "-e", "(+ 1 (/ 4 2))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3"
    res = run("eval", "--remote", f"127.0.0.1:{port}", "-e", "(* 4 true)")
    assert res.returncode == 65 and "TypeCheckError" in res.stderr and "^" in res.stderr
    res = run("status", f"127.0.0.1:{port}")
    assert res.returncode == 0, res.stderr
    assert "requests" in res.stdout.lower()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_status_of_nothing_is_remote_error():
    res = run("status", f"127.0.0.1:{free_port()}")
    assert res.returncode == 69 and "RemoteError" in res.stderr


def test_broker_routes_to_its_worker(server_process, tmp_path):
    worker_port, _ = server_process
    port = free_port()
    proc = subprocess.Popen(EXE + ["broker", "--port", str(port), "--worker",
                                   f"127.0.0.1:{worker_port}", "--db", str(tmp_path / "b.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        res = run("eval", "--remote", f"127.0.0.1:{port}", "-e", "(sum (range 0 101))")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "5050"
        res = run("status", f"127.0.0.1:{port}")
        assert res.returncode == 0 and str(worker_port) in res.stdout
    finally:
        stop(proc)


def test_demo_runs_end_to_end():
    res = run("demo", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "75025" in res.stdout and "TypeCheckError" in res.stdout
    assert "server stopped" in res.stdout


def test_bench_quick_runs_the_compile_suite():
    res = run("bench", "--suite", "compile", "--quick",
              "--dir", os.path.join(os.path.dirname(__file__), "..", "bench"), timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "passed" in res.stdout


def test_runtime_error_names_the_file_and_shows_the_line(tmp_path):
    f = tmp_path / "div.xt"
    f.write_text('(define (safe-div a b)\n  (if (= b 0) (error "no zero") (/ a b)))\n'
                 '(map (lambda (x) (safe-div 10 x)) (list 1 0))\n')
    res = run("eval", str(f))
    assert res.returncode == 70
    first, second = res.stderr.splitlines()[:2]
    assert first.startswith(f"{f}:2:") and "EvaluationError: no zero" in first
    assert '(error "no zero")' in second


def test_usage_errors_exit_2():
    res = run("eval")
    assert res.returncode == 2 and "give a program" in res.stderr


def test_version():
    from exathunk import __version__
    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"exathunk {__version__}"


@pytest.mark.parametrize("flag, value", [("--max-steps", "-5"), ("--max-steps", "0"),
                                         ("--max-heap", "lots"), ("--max-depth", "1.5")])
def test_a_bad_limit_is_a_one_line_usage_error(flag, value):
    res = run("eval", flag, value, "-e", "1")
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"exathunk eval: error: argument {flag}: ")
    assert repr(value) in res.stderr and res.stdout == ""


@pytest.mark.parametrize("verb", ["serve", "broker"])
def test_a_port_in_use_is_one_line_and_exit_69(verb, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, XDG_DATA_HOME=str(tmp_path))
        res = subprocess.run(EXE + [verb, "--port", str(port)], capture_output=True,
                             text=True, timeout=60, env=env)
    assert res.returncode == 69, res.stderr
    assert res.stderr == (f"exathunk {verb}: cannot listen on 127.0.0.1:{port}: "
                          "address already in use\n")


def test_serve_shows_its_address_once(server_process):
    port, proc = server_process
    stop(proc)
    out, err = proc.communicate(timeout=15)
    assert (out + err).count(f"127.0.0.1:{port}") == 1, out + err
    assert f"exathunk serving on 127.0.0.1:{port}" in out


def test_serve_and_broker_default_to_different_ports():
    def default_port(verb):
        text = " ".join(run(verb, "--help").stdout.split())
        return text.split("port to listen on (default ")[1].split(";")[0]
    assert default_port("serve") == "9090"
    assert default_port("broker") == "9091"


def _start_broker(args, env):
    port = free_port()
    proc = subprocess.Popen(EXE + ["broker", "--port", str(port), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        first = proc.stdout.readline()
    finally:
        stop(proc)
    return first


def test_broker_keeps_its_store_in_the_data_dir_and_says_where(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    first = _start_broker([], env)
    store = tmp_path / "data" / "exathunk" / "broker.sqlite3"
    assert first.strip() == f"exathunk broker: reputation store {store}"
    assert store.is_file()
    other = tmp_path / "elsewhere" / "rep.db"
    first = _start_broker(["--store", str(other)], env)
    assert first.strip() == f"exathunk broker: reputation store {other}"
    assert other.is_file()


def test_status_json_and_watch(server_process):
    import json
    port, _ = server_process
    res = run("status", f"127.0.0.1:{port}", "--json")
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert stats["role"] == "worker" and isinstance(stats["requests"], int)
    res = run("status", f"127.0.0.1:{port}", "--watch", "0.1", "--count", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("role ") == 3
    res = run("status", f"127.0.0.1:{port}", "--json", "--watch", "0.1", "--count", "2")
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(x)["role"] == "worker" for x in lines)


def test_status_watch_stops_cleanly_on_ctrl_c(server_process):
    port, _ = server_process
    proc = subprocess.Popen(EXE + ["status", f"127.0.0.1:{port}", "--watch", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "role" in proc.stdout.readline() + proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        # communicate() drains both pipes while waiting: a watcher blocked on a full
        # pipe could never see its Ctrl-C.
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_market_sim_help():
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "market_sim.py")
    res = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "(5% of answers)" in " ".join(res.stdout.split())


_HOSTLIB = '''
import exathunk

def build():
    lib = exathunk.Library()
    lib.register("shout", "(-> String String)", lambda s: s.upper() + "!",
                 doc="the text in capitals")
    return lib

lib = build()
not_a_library = 42

def broken():
    raise ValueError("no luck")

def make_number():
    return 7
'''


def _library_env(tmp_path):
    (tmp_path / "xt_hostlib_mod.py").write_text(_HOSTLIB)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path)


@pytest.mark.parametrize("attr", ["lib", "build"])
def test_serve_library_offers_its_host_functions(tmp_path, attr):
    env = _library_env(tmp_path)
    port = free_port()
    proc = subprocess.Popen(EXE + ["serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--library", f"xt_hostlib_mod:{attr}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        r = run("eval", "--remote", f"127.0.0.1:{port}", "-e", '(shout "hi")')
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == '"HI!"'
        from exathunk.client import connect
        client = connect("127.0.0.1", port)
        try:
            defs = {d.name: d for d in client.func_defs()}
        finally:
            client.close()
        assert defs["shout"].typeText == "(-> String String)"
        assert defs["shout"].origin == "host"
    finally:
        stop(proc)


@pytest.mark.parametrize("spec, message", [
    ("xt_no_such_module:lib", "cannot import the module 'xt_no_such_module'"),
    ("xt_hostlib_mod:missing", "the module 'xt_hostlib_mod' has no attribute 'missing'"),
    ("xt_hostlib_mod:not_a_library", "not_a_library is of type int, not an exathunk.Library"),
    ("xt_hostlib_mod:broken", "broken() failed: ValueError: no luck"),
    ("xt_hostlib_mod:make_number",
     "make_number() returned a value of type int, not an exathunk.Library"),
    ("xt_hostlib_mod", "expected MODULE:ATTRIBUTE"),
])
def test_serve_bad_library_is_one_line_and_exit_2(tmp_path, spec, message):
    r = subprocess.run(EXE + ["serve", "--port", str(free_port()), "--library", spec],
                       env=_library_env(tmp_path), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("exathunk serve: error: --library ")
    assert message in lines[0]
    assert "Traceback" not in r.stderr


def test_serve_library_twice_is_a_usage_error(tmp_path):
    r = subprocess.run(EXE + ["serve", "--port", str(free_port()), "--library",
                              "xt_hostlib_mod:lib", "--library", "xt_hostlib_mod:build"],
                       env=_library_env(tmp_path), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "--library given more than once" in r.stderr


def test_broker_moves_a_corrupt_store_aside_and_says_where(tmp_path):
    store = tmp_path / "rep.db"
    store.write_bytes(b"garbage, not SQLite\n" * 100)
    port = free_port()
    proc = subprocess.Popen(EXE + ["broker", "--port", str(port), "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        first = proc.stdout.readline()
        r = run("status", f"127.0.0.1:{port}", "--json")
        assert r.returncode == 0 and '"role": "broker"' in r.stdout       # it serves
    finally:
        stop(proc)
    err = proc.stderr.read()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("rep.db.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"garbage, not SQLite")
    assert (f"exathunk broker: the reputation store {store} is corrupt: moved it aside "
            f"to {aside[0]}; starting with a fresh one") in err
    assert "Traceback" not in err
    assert first.strip() == f"exathunk broker: reputation store {store}"
    from exathunk.reputation import ReputationStore
    assert ReputationStore(str(store)).moved_aside is None     # a fresh, sound store


def test_broker_strict_store_refuses_a_corrupt_store_exit_74(tmp_path):
    store = tmp_path / "rep.db"
    store.write_bytes(b"garbage, not SQLite\n" * 100)
    r = run("broker", "--port", str(free_port()), "--store", str(store), "--strict-store",
            timeout=60)
    assert r.returncode == 74
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"exathunk broker: error: the reputation store {store} "
                               "is corrupt (file is not a database)")
    assert [p.name for p in tmp_path.iterdir()] == ["rep.db"]
    assert "74" in run("broker", "--help").stdout


def test_broker_trust_and_eval_allow_unchecked(cluster, tmp_path):
    """A host function only one worker offers: Unverifiable by default, a value with
    ``eval --allow-unchecked`` (said to be unchecked), served as trusted with --trust."""
    from exathunk.library import Library
    worker, _, _ = cluster
    lib = Library()
    lib.register("secret", "(-> Int Int)", lambda x: x + 1)
    sole = worker(library=lib, seed=1)
    plain = worker(seed=2)
    sole_at, plain_at = f"127.0.0.1:{sole.port}", f"127.0.0.1:{plain.port}"
    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(
            EXE + ["broker", "--port", str(port), "--worker", sole_at, "--worker", plain_at,
                   "--db", str(tmp_path / "b.db")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        wait_listening(port, procs[-1])
        res = run("eval", "--remote", f"127.0.0.1:{port}", "-e", "(secret 41)")
        assert res.returncode == 1 and "Unverifiable" in res.stderr and "'secret'" in res.stderr
        res = run("eval", "--remote", f"127.0.0.1:{port}", "--allow-unchecked", "-e",
                  "(secret 41)")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "42" and "unchecked" in res.stderr
        trusting = free_port()
        procs.append(subprocess.Popen(
            EXE + ["broker", "--port", str(trusting), "--worker", plain_at,
                   "--trust", sole_at, "--db", str(tmp_path / "t.db")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        wait_listening(trusting, procs[-1])
        res = run("eval", "--remote", f"127.0.0.1:{trusting}", "--stats", "-e", "(secret 41)")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "42" and "verified by trusted-worker" in res.stderr
    finally:
        for proc in procs:
            stop(proc)


def test_serve_takes_the_admission_limits_from_the_command_line():
    from exathunk import connect, wire
    port = free_port()
    proc = subprocess.Popen(EXE + ["serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--max-thunks-per-client", "2", "--max-connections", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def submit(client, source):
        return client._invoke("submitEvalRequest", evalRequest=wire.make_request(source))

    try:
        wait_listening(port, proc)
        with connect("127.0.0.1", port) as c:
            held = [submit(c, f"(+ {i} 1)") for i in range(2)]
            with pytest.raises(wire.Overloaded) as info:
                submit(c, "(+ 9 1)")
            assert "quota" in info.value.message
            assert [wire.varcont_to_value(c._invoke("thunkGet", thunk=t)) for t in held] == [1, 2]
    finally:
        stop(proc)
    assert run("serve", "--max-thunks-per-client", "0").returncode == 2
    assert run("broker", "--thunk-ttl", "-1").returncode == 2
