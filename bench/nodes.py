"""Nodes in processes of their own, for the benchmarks that need real peers on loopback
(as in production: no GIL shared with the client)."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile

from benchkit import child_env


def spawn(code: str):
    """Run ``code`` (which serves a node and prints "exathunk serving on HOST:PORT") in
    a new process; returns (process, host, port) once it listens.

    The process imports the same exathunk as this one (child_env), and runs in the
    temporary folder: with the checkout as its current directory, ``-c`` would put the
    source tree first on its path, whatever this process imported."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=child_env(),
                            cwd=tempfile.gettempdir())
    line = proc.stdout.readline()
    if "serving on" not in line:
        proc.kill()
        raise RuntimeError("node did not start: %r" % line)
    host, _, port = line.strip().rsplit(" ", 1)[1].rpartition(":")
    return proc, host, int(port)


def stop(procs) -> None:
    """SIGTERM every node (last started first), then wait for each (kill after 10 s)."""
    for proc in reversed(procs):
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
