"""Operations end to end: a real node's Prometheus metrics scraped over HTTP (requests by
method and outcome, the latency histogram, gauges read from getStats), a broker's
per-worker series, the JSON request log, and the CLI's flags and exit codes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from exathunk import metrics, server, wire  # noqa: E402
from exathunk.client import connect  # noqa: E402
from exathunk.errors import EvaluationError, ParseError  # noqa: E402
from test_cli import EXE, free_port, stop, wait_listening  # noqa: E402

T = wire.thrift


def scrape(url: str) -> dict:
    """{(sample name, ((label, value), ...)): value} of one /metrics page."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def series(samples: dict, name: str) -> dict:
    """{labels dict as a sorted tuple: value} of one sample name."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def node():
    handle = server.start("127.0.0.1", 0, metrics_port=0, workers=2,
                          steps_per_second=20e6)
    try:
        yield handle
    finally:
        handle.stop(5)


def test_a_node_counts_requests_by_kind_and_outcome_and_times_them(node):
    assert node.metrics.host == "127.0.0.1" and node.metrics.port not in (0, node.port)
    assert node.metrics.url == f"http://127.0.0.1:{node.metrics.port}/metrics"
    c = connect(node.host, node.port, timeout=30)
    try:
        assert c.evaluate("(+ 1 2)") == 3
        assert c.evaluate("(+ 1 2)") == 3          # a cache hit
        assert c.evaluate("(* 6 7)") == 42
        with pytest.raises(EvaluationError):
            c.evaluate("(/ 1 0)")
        with pytest.raises(ParseError):
            c.evaluate("(+ 1")
        assert c.submit("(+ 40 2)").result(timeout=30) == 42
        stats = c.stats()
        s = scrape(node.metrics.url)
    finally:
        c.close()
    requests = series(s, "exathunk_requests_total")
    assert requests[(("kind", "evaluate"), ("outcome", "ok"))] == 3
    assert requests[(("kind", "evaluate"), ("outcome", "EvaluationError"))] == 1
    assert requests[(("kind", "evaluate"), ("outcome", "ParseError"))] == 1
    assert requests[(("kind", "submitEvalRequest"), ("outcome", "ok"))] == 1
    assert requests[(("kind", "getStats"), ("outcome", "ok"))] == 1
    assert all(labels[0][0] == "kind" and labels[1][0] == "outcome" for labels in requests)
    # The histogram: one observation per evaluate, cumulative buckets ending at +Inf.
    assert s[("exathunk_request_seconds_count", (("kind", "evaluate"),))] == 5
    assert s[("exathunk_request_seconds_sum", (("kind", "evaluate"),))] > 0
    buckets = sorted(((float(dict(labels)["le"]), v) for labels, v in
                      series(s, "exathunk_request_seconds_bucket").items()
                      if dict(labels)["kind"] == "evaluate"))
    assert buckets[-1] == (float("inf"), 5)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert len(buckets) == len(metrics.BUCKETS) + 1
    # Gauges and counters read from getStats at the scrape, after the stats call.
    assert s[("exathunk_node_info", (("role", "worker"), ("version", stats["version"])))] == 1
    assert s[("exathunk_cache_hits_total", ())] == stats["cacheHits"] >= 1
    assert s[("exathunk_cache_misses_total", ())] == stats["cacheMisses"] >= 3
    assert s[("exathunk_errors_total", ())] == stats["errors"] == 2
    assert s[("exathunk_queue_depth", ())] == stats["queued"] == 0
    assert s[("exathunk_running", ())] == stats["running"] == 0
    assert s[("exathunk_queue_bound", ())] == stats["queueBound"]
    assert s[("exathunk_worker_threads", ())] == 2
    assert s[("exathunk_thunks", ())] == stats["thunks"] == 1
    assert s[("exathunk_connections", ())] == stats["connections"] >= 1
    assert s[("exathunk_draining", ())] == 0
    assert ("exathunk_worker_reputation", ()) not in s     # a worker has no workers


def test_two_nodes_in_one_process_keep_their_own_metrics(node):
    other = server.start("127.0.0.1", 0, metrics_port=0, steps_per_second=20e6)
    try:
        c = connect(other.host, other.port, timeout=30)
        try:
            for i in range(4):
                c.evaluate(f"(+ {i} 1)")
        finally:
            c.close()
        mine, theirs = scrape(node.metrics.url), scrape(other.metrics.url)
        key = ("exathunk_requests_total", (("kind", "evaluate"), ("outcome", "ok")))
        assert theirs[key] == 4 and key not in mine
        # Nothing landed in prometheus-client's global registry either.
        assert prometheus_client.REGISTRY.get_sample_value(
            "exathunk_requests_total", {"kind": "evaluate", "outcome": "ok"}) is None
    finally:
        other.stop(5)


def test_the_metrics_server_stops_with_the_node():
    handle = server.start("127.0.0.1", 0, metrics_port=0, steps_per_second=20e6)
    url = handle.metrics.url
    assert "exathunk_requests_total" in urllib.request.urlopen(url, timeout=10).read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url.replace("/metrics", "/elsewhere"), timeout=10)
    assert err.value.code == 404
    handle.stop(5)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_a_taken_metrics_port_is_an_oserror_naming_it_and_nothing_keeps_running():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(metrics.CannotListen) as err:
            server.start("127.0.0.1", 0, metrics_port=port, steps_per_second=20e6)
    assert (err.value.host, err.value.port) == ("127.0.0.1", port)
    assert isinstance(err.value, OSError)
    with pytest.raises(ValueError, match="log_format"):
        server.start("127.0.0.1", 0, log_format="xml", steps_per_second=20e6)


def test_a_broker_reports_each_workers_reputation_and_share(cluster):
    worker, start_broker, connect_to = cluster
    w1, w2 = worker(), worker()
    b = start_broker([w1, w2], metrics_port=0)
    c = connect_to(b)
    for i in range(30):
        assert c.evaluate(f"(+ {i} 1000)") == i + 1000
    # Checks of answers may still be in flight: wait until the broker's view is still.
    rows = None
    for _ in range(200):
        before = c.stats()["workers"]
        s = scrape(b.metrics.url)
        if before == c.stats()["workers"]:
            rows = before
            break
        time.sleep(0.05)
    assert rows is not None
    addresses = {f"{w.host}:{w.port}" for w in (w1, w2)}
    reputation = {dict(k)["worker"]: v for k, v in series(s, "exathunk_worker_reputation").items()}
    share = {dict(k)["worker"]: v for k, v in series(s, "exathunk_worker_share").items()}
    assert set(reputation) == set(share) == addresses
    for row in rows:
        assert reputation[row["address"]] == pytest.approx(row["reputation"])
        assert share[row["address"]] == pytest.approx(row["shareOfWork"])
        assert s[("exathunk_worker_requests_total", (("worker", row["address"]),))] \
            == row["requests"]
    assert sum(share.values()) == pytest.approx(1.0)
    assert all(0.0 <= r <= 1.0 for r in reputation.values())
    assert s[("exathunk_requests_total", (("kind", "evaluate"), ("outcome", "ok")))] == 30
    assert s[("exathunk_request_seconds_count", (("kind", "evaluate"),))] == 30
    assert ("exathunk_node_info", (("role", "broker"), ("version", c.stats()["version"]))) in s


HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_json_log_lines_parse_and_every_one_carries_a_request_id(capsys):
    handle = server.start("127.0.0.1", 0, log_format="json", steps_per_second=20e6)
    try:
        assert handle.metrics is None                  # the log needs no metrics
        c = connect(handle.host, handle.port, timeout=30)
        try:
            capsys.readouterr()
            c._invoke("evaluate", evalRequest=T.EvalRequest(source="(+ 1 1)",
                                                            requestId="req-given-7"))
            assert c.evaluate("(+ 2 2)") == 4
            with pytest.raises(EvaluationError):
                c.evaluate("(/ 1 0)")
            c.evaluate("(+ 2 2)")
        finally:
            c.close()
    finally:
        handle.stop(5)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert [(r["kind"], r["outcome"]) for r in records] == [
        ("evaluate", "ok"), ("evaluate", "ok"), ("evaluate", "EvaluationError"),
        ("evaluate", "ok")]
    for r in records:
        assert set(r) >= {"ts", "kind", "outcome", "seconds", "client", "request_id"}
        assert time.strptime(r["ts"][:19], "%Y-%m-%dT%H:%M:%S") and r["ts"].endswith("Z")
        assert isinstance(r["seconds"], float) and r["seconds"] >= 0
        assert re.fullmatch(r"127\.0\.0\.1:\d+", r["client"])
    assert len({r["client"] for r in records}) == 1          # one connection
    assert records[0]["request_id"] == "req-given-7" and records[0]["request_id_given"]
    generated = [r["request_id"] for r in records[1:]]
    assert all(HEX32.match(rid) for rid in generated)
    assert len(set(generated)) == 3                     # one fresh id per request
    assert not any(r["request_id_given"] for r in records[1:])


# ---------------------------------------------------------------------------- the CLI

def _run(*args, env=None):
    return subprocess.run(EXE + list(args), capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("verb", ["serve", "broker"])
@pytest.mark.parametrize("args, message", [
    (["--metrics-port"], "argument --metrics-port: expected one argument"),
    (["--metrics-port", "http"], "argument --metrics-port: expected a port number"),
    (["--log-format"], "argument --log-format: expected one argument"),
    (["--log-format", "xml"], "argument --log-format: invalid choice: 'xml'"),
    (["--port", "0", "--metrics-host", "0.0.0.0"], "--metrics-host needs --metrics-port"),
])
def test_bad_operations_flags_are_one_line_and_exit_2(verb, args, message, tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path))
    res = _run(verb, *args, env=env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert res.stderr.startswith(f"exathunk {verb}: error: ")


@pytest.mark.parametrize("verb", ["serve", "broker"])
def test_a_taken_metrics_port_is_one_line_and_exit_69(verb, tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _run(verb, "--port", "0", "--metrics-port", str(port), env=env)
    assert res.returncode == 69, res.stderr
    assert res.stderr == (f"exathunk {verb}: cannot listen on 127.0.0.1:{port} for "
                          "metrics: address already in use\n")


@pytest.mark.parametrize("verb", ["serve", "broker"])
def test_metrics_without_prometheus_client_say_how_to_install_it(verb, tmp_path):
    # A prometheus_client that cannot be imported, ahead of the real one on the path.
    blocker = tmp_path / "blocked" / "prometheus_client"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", ""),
                            os.getcwd()])
    env = dict(os.environ, PYTHONPATH=path, XDG_DATA_HOME=str(tmp_path))
    res = _run(verb, "--port", "0", "--metrics-port", "0", env=env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1
    assert "pip install 'exathunk[metrics]'" in res.stderr
    assert res.stderr.startswith(f"exathunk {verb}: error: --metrics-port: ")


def test_serve_with_metrics_and_json_logs_end_to_end():
    port, mport = free_port(), free_port()
    proc = subprocess.Popen(EXE + ["serve", "--port", str(port), "--metrics-port", str(mport),
                                   "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        assert proc.stdout.readline().strip() == f"exathunk serving on 127.0.0.1:{port}"
        assert proc.stdout.readline().strip() == \
            f"exathunk metrics on http://127.0.0.1:{mport}/metrics"
        res = _run("eval", "--remote", f"127.0.0.1:{port}", "-e", "(+ 20 22)")
        assert res.returncode == 0 and res.stdout.strip() == "42", res.stderr
        res = _run("eval", "--remote", f"127.0.0.1:{port}", "-e", "(/ 1 0)")
        assert res.returncode == 70, res.stderr
        s = scrape(f"http://127.0.0.1:{mport}/metrics")
        assert s[("exathunk_requests_total", (("kind", "evaluate"), ("outcome", "ok")))] == 1
        assert s[("exathunk_requests_total",
                  (("kind", "evaluate"), ("outcome", "EvaluationError")))] == 1
    finally:
        stop(proc)
    err = proc.stderr.read()
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    evaluates = [r for r in records if r["kind"] == "evaluate"]
    assert [r["outcome"] for r in evaluates] == ["ok", "EvaluationError"], err
    assert all(HEX32.match(r["request_id"]) for r in evaluates)


def test_a_handler_added_to_the_requests_logger_gets_the_lines_too(capsys):
    import logging

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    keep = Keep()
    handle = server.start("127.0.0.1", 0, log_format="json", steps_per_second=20e6)
    logging.getLogger("exathunk.requests").addHandler(keep)
    try:
        c = connect(handle.host, handle.port, timeout=30)
        try:
            capsys.readouterr()
            assert c.evaluate("(+ 5 5)") == 10
        finally:
            c.close()
    finally:
        handle.stop(5)                                  # writes the log's last lines
        logging.getLogger("exathunk.requests").removeHandler(keep)
    on_stderr = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert len(keep.lines) == len(on_stderr) == 1
    assert json.loads(keep.lines[0]) == json.loads(on_stderr[0])
    assert json.loads(on_stderr[0])["kind"] == "evaluate"
