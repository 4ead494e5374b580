"""The cost of the shared token and of TLS: round trip and connect, four ways.

One node on loopback (2 evaluation threads) per configuration: plaintext, token, TLS,
TLS and token.  The round trip is a cached ``(+ 1 2)`` on one pooled connection (median
of 5 runs of N calls, after a warm-up); connect is ``connect()`` + ``close()``, which
for a token includes the authenticate round trip and for TLS the handshake (a
self-signed P-256 certificate made with openssl for the run).  Configurations run in
order, then in reverse, so that a drift in the machine's load shows.

    python bench/bench_auth.py [--calls N] [--connects N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from exathunk import client, server  # noqa: E402


def self_signed(directory: str) -> tuple[str, str]:
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def measure(sopt: dict, copt: dict, calls: int, connects: int) -> tuple[float, float]:
    h = server.start(workers=2, **sopt)
    try:
        c = client.connect(h.host, h.port, **copt)
        for _ in range(500):
            c.evaluate("(+ 1 2)")
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(calls):
                c.evaluate("(+ 1 2)")
            runs.append((time.perf_counter() - t) / calls * 1e6)
        c.close()
        t = time.perf_counter()
        for _ in range(connects):
            client.connect(h.host, h.port, **copt).close()
        return statistics.median(runs), (time.perf_counter() - t) / connects * 1e3
    finally:
        h.stop(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--connects", type=int, default=100)
    args = ap.parse_args()
    token = "t" * 32
    with tempfile.TemporaryDirectory() as d:
        cert, key = self_signed(d)
        tls = {"tls_cert": cert, "tls_key": key}
        configs = [("plain", {}, {}), ("token", {"token": token}, {"token": token}),
                   ("tls", tls, {"tls_ca": cert}),
                   ("tls+token", {**tls, "token": token}, {"tls_ca": cert, "token": token})]
        print(f"load average {os.getloadavg()[0]:.1f}")
        for name, sopt, copt in configs + configs[::-1]:
            rt, conn = measure(sopt, copt, args.calls, args.connects)
            print(f"{name:10s} round trip {rt:7.1f} us   connect {conn:6.2f} ms")


if __name__ == "__main__":
    main()
