"""Authentication (the deployment's shared token, --token-file) and TLS (--tls-cert,
--tls-key, --tls-ca): unauthenticated or wrongly authenticated calls get a typed
AuthenticationError, the right token is accepted, TLS round trips, and a plaintext
client of a TLS node gets a clean error.  Everything on 127.0.0.1, every node stopped."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from exathunk import auth, broker, client, server, wire
from exathunk.errors import (AuthenticationError, AuthenticationFailed,
                             AuthenticationRequired, ConfigurationError, RemoteError)

TOKEN = "a-long-shared-secret-0123456789"
EXE = [sys.executable, "-m", "exathunk"]


@pytest.fixture
def nodes():
    """Start workers and brokers; all are stopped afterwards, clients closed."""
    started, clients = [], []

    def worker(**options):
        h = server.start("127.0.0.1", 0, workers=1, **options)
        started.append(h)
        return h

    def start_broker(**options):
        options.setdefault("seed", 3)
        h = broker.start("127.0.0.1", 0, **options)
        started.append(h)
        return h

    def connect(h, **kw):
        c = client.connect(h.host, h.port, timeout=10, **kw)
        clients.append(c)
        return c

    yield worker, start_broker, connect
    for c in clients:
        c.close()
    for h in reversed(started):
        h.stop(5)


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return str(path)


def _addresses(c) -> set:
    return {w["address"] for w in c.stats()["workers"]}


# ---------------------------------------------------------------- the token

def test_unauthenticated_register_worker_is_refused_with_a_typed_error(nodes):
    worker, start_broker, connect = nodes
    w = worker(token=TOKEN)
    b = start_broker(token=TOKEN)
    c = connect(b)                             # no token: clients need none on a broker
    with pytest.raises(AuthenticationRequired) as caught:
        c.register_worker(w.host, w.port)
    assert isinstance(caught.value, AuthenticationError)
    assert "registerWorker" in caught.value.message
    assert _addresses(c) == set()              # the broker took nothing
    # The connection stays usable after the refusal.
    assert c.stats()["role"] == "broker"


def test_wrong_token_is_refused_and_the_worker_not_taken(nodes):
    worker, start_broker, connect = nodes
    w = worker(token=TOKEN)
    b = start_broker(token=TOKEN)
    with pytest.raises(AuthenticationFailed) as caught:
        connect(b, token="not-the-token")
    assert TOKEN not in caught.value.message and "not-the-token" not in caught.value.message
    # join (serve --join's registration) with the wrong token: refused, nothing taken.
    with pytest.raises(AuthenticationFailed):
        broker.join(b.host, b.port, w.host, w.port, token="wrong")
    assert _addresses(connect(b)) == set()


def test_wrong_token_closes_the_connection_after_the_reply(nodes):
    worker, _, _ = nodes
    w = worker(token=TOKEN)
    ch = client._Channel(w.host, w.port, 5.0)
    args = client._METHODS["authenticate"][0](token="guess")
    result = ch.call("authenticate", args, 5.0)
    assert result.authError.kind == "AuthenticationFailed"
    # One guess per connection: the next call on it finds it closed.
    with pytest.raises(RemoteError, match="connection lost|closed"):
        ch.call("authenticate", client._METHODS["authenticate"][0](token=TOKEN), 5.0)
    ch.close()


def test_right_token_registers_the_worker_and_the_broker_uses_it(nodes):
    worker, start_broker, connect = nodes
    w = worker(token=TOKEN)                    # requires the token of the broker too
    b = start_broker(token=TOKEN)
    c = connect(b, token=TOKEN)
    assert c.register_worker(w.host, w.port) is True
    assert _addresses(c) == {f"{w.host}:{w.port}"}
    assert c.evaluate("(* 6 7)") == 42
    assert [r["requests"] for r in c.stats()["workers"]] == [1]
    assert w.handler.counters["evaluations"] == 1   # the worker itself ran it


def test_a_broker_without_the_workers_token_says_so(nodes):
    worker, start_broker, connect = nodes
    w = worker(token=TOKEN)
    b = start_broker()                          # no token: the worker refuses it
    with pytest.raises(RemoteError) as caught:
        connect(b).register_worker(w.host, w.port)
    assert not isinstance(caught.value, AuthenticationError)   # the caller's was fine
    assert "refused the broker's token" in caught.value.message
    assert "AuthenticationRequired" in caught.value.message


def test_a_worker_that_joins_with_the_token_is_registered(nodes):
    worker, start_broker, connect = nodes
    b = start_broker(token=TOKEN)
    w = worker(token=TOKEN, join=f"{b.host}:{b.port}")   # serve --join --token-file
    c = connect(b)
    for _ in range(200):
        if _addresses(c):
            break
        time.sleep(0.05)
    assert _addresses(c) == {f"{w.host}:{w.port}"}
    assert c.evaluate("(+ 40 2)") == 42


def test_a_worker_joining_without_the_token_is_not_registered(nodes, caplog):
    worker, start_broker, connect = nodes
    b = start_broker(token=TOKEN)
    with caplog.at_level(logging.ERROR, logger="exathunk.server"):
        w = worker(join=f"{b.host}:{b.port}")
        for _ in range(200):
            if any("could not join" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
    assert any("AuthenticationRequired" in r.getMessage() or "requires" in r.getMessage()
               for r in caplog.records if "could not join" in r.getMessage())
    assert _addresses(connect(b)) == set()


def test_node_with_a_token_refuses_unauthenticated_calls_and_serves_authenticated(nodes):
    worker, _, connect = nodes
    w = worker(token=TOKEN)
    anonymous = connect(w)
    for call in (lambda: anonymous.evaluate("(+ 1 2)"), anonymous.stats,
                 lambda: anonymous.func_defs(), lambda: anonymous.submit("(+ 1 2)").result(10)):
        with pytest.raises(AuthenticationRequired):
            call()
    assert w.handler.counters["evaluations"] == 0
    c = connect(w, token=TOKEN)
    assert c.evaluate("(+ 1 2)") == 3
    assert c.submit("(* 7 6)").result(10) == 42      # the waiter's own connection too
    assert c.evaluate_batch(["1", "2"]) == [1, 2]
    assert c.stats()["authRefused"] == 4          # the four refused calls above


def test_a_broker_with_require_client_token_refuses_anonymous_clients(nodes):
    worker, start_broker, connect = nodes
    w = worker(token=TOKEN)
    b = start_broker(token=TOKEN, require_client_token=True, workers=[(w.host, w.port)])
    with pytest.raises(AuthenticationRequired):
        connect(b).evaluate("(+ 1 2)")
    assert connect(b, token=TOKEN).evaluate("(+ 1 2)") == 3


def test_sub_thunks_call_back_a_token_broker_with_the_token(nodes):
    worker, start_broker, connect = nodes
    ws = [worker(token=TOKEN), worker(token=TOKEN)]
    b = start_broker(token=TOKEN, require_client_token=True,
                     workers=[(w.host, w.port) for w in ws])
    c = connect(b, token=TOKEN)
    assert c.evaluate("(par-map (lambda (x) (* x x)) (range 0 5))") == [0, 1, 4, 9, 16]
    # The elements went back to the broker as sub-thunks, over authenticated callbacks.
    assert c.stats()["subThunks"] >= 5


def test_without_a_token_nothing_changes_and_a_token_is_ignored(nodes):
    worker, _, connect = nodes
    w = worker()
    assert connect(w).evaluate("(+ 1 2)") == 3
    assert connect(w, token="anything").evaluate("(+ 2 2)") == 4
    ch = client._Channel(w.host, w.port, 5.0)
    try:
        result = ch.call("authenticate", client._METHODS["authenticate"][0](token="x"), 5.0)
        assert result.success is False                 # "this node checks no tokens"
    finally:
        ch.close()


def test_token_files(tmp_path, caplog):
    good = tmp_path / "good"
    good.write_text("  \n" + TOKEN + "\n\n")
    good.chmod(0o600)
    assert auth.read_token_file(good) == TOKEN
    with pytest.raises(ConfigurationError, match="no such file"):
        auth.read_token_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(ConfigurationError, match="empty"):
        auth.read_token_file(empty)
    with pytest.raises(ConfigurationError, match="directory"):
        auth.read_token_file(tmp_path)
    loose = tmp_path / "loose"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="exathunk.auth"):
        assert auth.read_token_file(loose) == TOKEN
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError):
        server.start("127.0.0.1", 0, token_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError):
        client.connect("127.0.0.1", 1, token_file=str(empty))


def test_the_token_is_compared_in_constant_time_and_exactly():
    assert auth.token_matches(b"abc", "abc")
    assert auth.token_matches(b"abc", b"abc")
    assert not auth.token_matches(b"abc", "abd")
    assert not auth.token_matches(b"abc", "ab")
    assert not auth.token_matches(b"abc", None)


# ---------------------------------------------------------------- TLS

def _self_signed(directory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor openssl is available")
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True,
                       timeout=60)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    with open(cert, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    os.chmod(key, 0o600)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    mine = _self_signed(str(tmp_path_factory.mktemp("pki")))
    other = _self_signed(str(tmp_path_factory.mktemp("other-pki")))
    return mine, other


def test_tls_round_trip(nodes, pki):
    (cert, key), _ = pki
    worker, _, connect = nodes
    w = worker(tls_cert=cert, tls_key=key)
    c = connect(w, tls_ca=cert)
    assert all(ch.tls for ch in c._pool)
    assert c.evaluate("(+ 1 2)") == 3
    assert c.submit('(++ "over " "tls")').result(10) == "over tls"
    big = c.evaluate("(range 0 100000)")              # a reply of many TLS records
    assert len(big) == 100000 and big[-1] == 99999


def test_a_plaintext_client_of_a_tls_node_gets_a_clean_error(nodes, pki):
    (cert, key), _ = pki
    worker, _, _ = nodes
    w = worker(tls_cert=cert, tls_key=key)
    with pytest.raises(RemoteError) as caught:
        c = client.connect(w.host, w.port, timeout=10)
        try:
            c.evaluate("(+ 1 2)")
        finally:
            c.close()
    assert type(caught.value) is RemoteError
    assert "this node serves TLS only" in caught.value.message
    # The node is unharmed.
    with client.connect(w.host, w.port, timeout=10, tls_ca=cert) as c:
        assert c.evaluate("(+ 2 2)") == 4


def test_a_tls_client_of_a_plaintext_node_or_an_untrusted_one_gets_a_clean_error(nodes, pki):
    (cert, key), (other_cert, _) = pki
    worker, _, _ = nodes
    plain = worker()
    with pytest.raises(RemoteError, match="handshake failed"):
        client.connect(plain.host, plain.port, timeout=10, tls_ca=cert)
    tls = worker(tls_cert=cert, tls_key=key)
    with pytest.raises(RemoteError, match="does not verify"):
        client.connect(tls.host, tls.port, timeout=10, tls_ca=other_cert)


def test_tls_and_the_token_across_a_broker(nodes, pki):
    (cert, key), _ = pki
    worker, start_broker, connect = nodes
    w = worker(token=TOKEN, tls_cert=cert, tls_key=key)
    b = start_broker(token=TOKEN, tls_cert=cert, tls_key=key, tls_ca=cert)
    c = connect(b, token=TOKEN, tls_ca=cert)
    assert c.register_worker(w.host, w.port)
    assert c.evaluate("(* 6 7)") == 42
    assert w.handler.counters["evaluations"] == 1


def test_tls_settings_that_cannot_be_used(tmp_path, pki):
    (cert, key), _ = pki
    with pytest.raises(ConfigurationError, match="no such file"):
        server.start("127.0.0.1", 0, tls_cert=str(tmp_path / "none.pem"))
    with pytest.raises(ConfigurationError, match="needs a certificate"):
        server.start("127.0.0.1", 0, tls_key=key)
    with pytest.raises(ConfigurationError):
        client.connect("127.0.0.1", 1, tls_ca=str(tmp_path / "none.pem"))


# ---------------------------------------------------------------- the command line

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args, timeout=120):
    return subprocess.run(EXE + list(args), capture_output=True, text=True, timeout=timeout)


def _spawn(*args):
    return subprocess.Popen(EXE + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_serving(proc) -> None:
    line = proc.stdout.readline()                    # "exathunk serving on HOST:PORT"
    if "serving on" not in line:
        proc.kill()
        raise AssertionError(f"did not start: {line!r} {proc.stderr.read()}")


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_cli_token_file_end_to_end(token_file, tmp_path):
    port = _free_port()
    proc = _spawn("serve", "--port", str(port), "--token-file", token_file, "--workers", "1")
    try:
        _wait_serving(proc)
        where = f"127.0.0.1:{port}"
        refused = _run("eval", "--remote", where, "-e", "(+ 1 2)")
        assert refused.returncode == 77, refused.stderr
        assert "AuthenticationRequired" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        ok = _run("eval", "--remote", where, "--token-file", token_file, "-e", "(+ 1 2)")
        assert (ok.returncode, ok.stdout.strip()) == (0, "3"), ok.stderr
        status = _run("status", where, "--json", "--token-file", token_file)
        assert status.returncode == 0 and '"role": "worker"' in status.stdout
        wrong = tmp_path / "wrong"
        wrong.write_text("nope")
        wrong.chmod(0o600)
        failed = _run("status", where, "--token-file", str(wrong))
        assert failed.returncode == 77 and "AuthenticationFailed" in failed.stderr
    finally:
        _stop(proc)
    missing = _run("eval", "--remote", "127.0.0.1:1", "--token-file",
                   str(tmp_path / "missing"), "-e", "1")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"exathunk eval: error: token file {tmp_path / 'missing'}: no such file"]
    serve_missing = _run("serve", "--port", "0", "--token-file", str(tmp_path / "missing"))
    assert serve_missing.returncode == 2 and "no such file" in serve_missing.stderr
    assert "Traceback" not in serve_missing.stderr


def test_cli_broker_and_joining_worker_share_the_token(token_file, tmp_path):
    bport = _free_port()
    b = _spawn("broker", "--port", str(bport), "--token-file", token_file,
               "--store", str(tmp_path / "store.sqlite3"))
    procs = [b]
    try:
        assert "reputation store" in b.stdout.readline()
        _wait_serving(b)
        broker_at = f"127.0.0.1:{bport}"
        w = _spawn("serve", "--port", "0", "--workers", "1", "--token-file", token_file,
                   "--join", broker_at)
        procs.append(w)
        _wait_serving(w)
        with client.connect("127.0.0.1", bport, timeout=10) as c:
            for _ in range(300):
                if c.stats()["workers"]:
                    break
                time.sleep(0.05)
            assert len(c.stats()["workers"]) == 1
        ok = _run("eval", "--remote", broker_at, "-e", "(* 6 7)")   # clients need none
        assert (ok.returncode, ok.stdout.strip()) == (0, "42"), ok.stderr
    finally:
        for p in reversed(procs):
            _stop(p)
