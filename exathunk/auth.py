"""Authentication and TLS: the deployment's shared token and its TLS contexts.

One shared secret per deployment (a broker, its workers and their clients): the contents
of a token file (``--token-file``), read once at start, surrounding white space stripped.
A connection presents it once, with the ``authenticate`` call, and is authenticated for
the rest of its life (checked with ``hmac.compare_digest``; nothing is paid per call).
A worker with a token requires it of every method; a broker requires it of
``registerWorker``, and of every method with ``require_client_token``.  Outgoing
connections (a broker to its workers, a worker to the broker it joins or that sends it
sub-thunks) present the same token.

TLS is on request: a node started with a certificate and key (``--tls-cert``,
``--tls-key``) serves TLS only; a client verifies it against a CA file (``--tls-ca``,
``tls_ca=``) or the system's CAs (``tls=True``).  See docs/security.md.
"""

from __future__ import annotations

import hmac
import logging
import os
import ssl
import stat
from dataclasses import dataclass

from .errors import ConfigurationError

log = logging.getLogger("exathunk.auth")
log.addHandler(logging.NullHandler())

MAX_TOKEN = 4096          # bytes: a token file larger than this is not a token file


def read_token_file(path) -> str:
    """The token in ``path``, stripped.  ConfigurationError when the file is missing,
    unreadable, empty or too large; a warning when others than its owner may read it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigurationError(f"token file {path} is not a regular file")
            data = f.read(MAX_TOKEN + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"token file {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigurationError(f"token file {path} is a directory") from None
    except OSError as err:
        raise ConfigurationError(f"cannot read token file {path}: "
                                 f"{err.strerror or err}") from None
    if len(data) > MAX_TOKEN:
        raise ConfigurationError(f"token file {path} is over {MAX_TOKEN} bytes: "
                                 "not a token")
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"token file {path} is not UTF-8 text") from None
    if not token:
        raise ConfigurationError(f"token file {path} is empty")
    if st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("token file %s can be read by others than its owner (mode %o): "
                    "chmod 600 it", path, stat.S_IMODE(st.st_mode))
    return token


def token_matches(expected: bytes, given) -> bool:
    """Constant-time comparison of a presented token (str or bytes) with the node's."""
    if given is None:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, bytes(given).strip())


def server_context(cert, key=None) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 at least) from a PEM certificate (chain) and key
    (``key`` None: the key is in the certificate file)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(os.fspath(cert), os.fspath(key) if key is not None else None)
    except FileNotFoundError as err:
        raise ConfigurationError(f"TLS: {err.filename or cert}: no such file") from None
    except (ssl.SSLError, OSError) as err:
        raise ConfigurationError(f"TLS: cannot load the certificate {cert}"
                                 f"{' and key ' + str(key) if key else ''}: "
                                 f"{getattr(err, 'reason', None) or err}") from None
    return ctx


def client_context(ca=None) -> ssl.SSLContext:
    """A TLS client context that verifies the server's certificate and name: against
    the CA file ``ca``, or the system's CAs when None."""
    try:
        ctx = ssl.create_default_context(cafile=os.fspath(ca) if ca is not None else None)
    except FileNotFoundError:
        raise ConfigurationError(f"TLS: CA file {ca}: no such file") from None
    except (ssl.SSLError, OSError) as err:
        raise ConfigurationError(f"TLS: cannot load the CA file {ca}: "
                                 f"{getattr(err, 'reason', None) or err}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass(frozen=True)
class ClientSecurity:
    """What a client presents: the token (or None) and the TLS context (or None)."""
    token: str | None = None
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def build(cls, token=None, token_file=None, tls=None, tls_ca=None) -> "ClientSecurity":
        """``token`` or ``token_file`` (not both); ``tls``: True (the system's CAs), an
        ``ssl.SSLContext``, or None/False; ``tls_ca``: a CA file (implies TLS)."""
        if token is not None and token_file is not None:
            raise ConfigurationError("give token or token_file, not both")
        if token_file is not None:
            token = read_token_file(token_file)
        elif token is not None:
            token = str(token).strip()
            if not token:
                raise ConfigurationError("the token is empty")
        if isinstance(tls, ssl.SSLContext):
            context = tls
        elif tls or tls_ca is not None:
            context = client_context(tls_ca)
        else:
            context = None
        return cls(token, context)


NO_CLIENT_SECURITY = ClientSecurity()


@dataclass(frozen=True)
class NodeSecurity:
    """A node's settings: the token it requires (bytes, or None: none), whether a
    broker requires it of every client, its TLS server context, and what it presents
    on its own outgoing connections."""
    token: bytes | None = None
    require_client_token: bool = False
    server_ssl: ssl.SSLContext | None = None
    client: ClientSecurity = NO_CLIENT_SECURITY

    @classmethod
    def build(cls, token=None, token_file=None, require_client_token=None, tls_cert=None,
              tls_key=None, tls_ca=None) -> "NodeSecurity":
        client = ClientSecurity.build(token=token, token_file=token_file, tls_ca=tls_ca)
        if tls_key is not None and tls_cert is None:
            raise ConfigurationError("TLS: a key (--tls-key) needs a certificate (--tls-cert)")
        server_ssl = server_context(tls_cert, tls_key) if tls_cert is not None else None
        if require_client_token and client.token is None:
            raise ConfigurationError("requiring client tokens needs a token (--token-file)")
        raw = client.token.encode("utf-8") if client.token is not None else None
        return cls(raw, bool(require_client_token), server_ssl, client)


def wrap_client(sock, context: ssl.SSLContext, host: str):
    """``sock`` with a TLS client handshake done (raises ssl.SSLError/OSError)."""
    return context.wrap_socket(sock, server_hostname=host.strip("[]"))
