"""The ``exathunk`` command: one verb per job, each with its own ``--help``.

Verbs: demo, eval, check, disasm, repl, serve, broker, status, bench.  Errors go to
stderr with the place and a caret; a bad command line is one line on stderr.  Exit
codes follow clox and sysexits: 0 success, 2 bad usage (a token, certificate or key
file that cannot be used too), 65 a program that does not compile, 70 a run that fails
(EvaluationError, LimitExceeded), 69 a remote node that cannot be reached or an address
a server cannot listen on (its metrics' address too), 74 a reputation store the broker
cannot use (corrupt, with --strict-store; or not openable), 77 a node that refuses the
token (AuthenticationError), 1 anything else (a broker's Unverifiable too).  serve and
broker take --metrics-port/--metrics-host (Prometheus, needs the metrics extra) and
--log-format json (one JSON line per request on stderr).
Default ports: serve 9090, broker 9091.  The broker's reputation store lives in
$XDG_DATA_HOME/exathunk/ (~/.local/share/exathunk/ when unset), and saved benchmark
runs in its bench/ folder (exathunk.benchstore).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import time

from .errors import (AuthenticationError, ConfigurationError, EvaluationError, ExathunkError,
                     LimitExceeded, ParseError, RemoteError, TypeCheckError,
                     UnknownFunctionError)

EXIT_USAGE, EXIT_COMPILE, EXIT_RUNTIME, EXIT_UNAVAILABLE, EXIT_NOPERM = 2, 65, 70, 69, 77
EXIT_IOERR = 74      # sysexits EX_IOERR: the broker's reputation store cannot be used
SERVE_PORT, BROKER_PORT = 9090, 9091


class UsageError(Exception):
    """The command line is off: reported in one line, exit code 2."""


class CannotListen(Exception):
    """A server's address is taken or not ours: reported in one line, exit code 69."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (and exit code 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(minimum: int, what: str):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what
    return parse


_positive = _count(1, "a positive integer")


def _port(text: str) -> int:
    value = _count(0, "a port number (0 for any free port)")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number up to 65535, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def data_dir() -> str:
    """Where exathunk keeps its files: $XDG_DATA_HOME/exathunk (~/.local/share/exathunk)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(base, "exathunk")


def default_store() -> str:
    return os.path.join(data_dir(), "broker.sqlite3")


def exit_code(err: ExathunkError) -> int:
    if isinstance(err, (ParseError, TypeCheckError, UnknownFunctionError)):
        return EXIT_COMPILE
    if isinstance(err, (EvaluationError, LimitExceeded)):
        return EXIT_RUNTIME
    if isinstance(err, AuthenticationError):
        return EXIT_NOPERM
    if isinstance(err, RemoteError):
        return EXIT_UNAVAILABLE
    return 1


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port), for argparse."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _read_program(args) -> tuple[str, str | None]:
    """The source given by -e EXPR, a FILE, or '-' for standard input."""
    if args.expr is not None:
        return args.expr, "<expr>"
    if args.file is None:
        raise UsageError("give a program: -e EXPR, a FILE, or - for standard input")
    if args.file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        with open(args.file, encoding="utf-8") as f:
            return f.read(), args.file
    except OSError as err:
        raise UsageError(f"cannot read {args.file}: {err.strerror}")


def _limits(args) -> dict:
    return {name: getattr(args, name) for name in ("max_steps", "max_heap", "max_depth")
            if getattr(args, name, None) is not None}


def _add_program_args(p):
    src = p.add_mutually_exclusive_group()
    src.add_argument("-e", "--expr", metavar="EXPR", help="the program text itself")
    src.add_argument("file", nargs="?", metavar="FILE",
                     help="a file holding the program ('-' for standard input)")


def _add_log_arg(p):
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="debug logs one line per request; warnings log failed requests "
                        "(default info)")


def _add_client_security_args(p):
    p.add_argument("--token-file", metavar="PATH",
                   help="present the deployment's shared token in PATH (the file's text, "
                        "white space stripped) to a node that requires one")
    p.add_argument("--tls-ca", metavar="PATH",
                   help="speak TLS and verify the node's certificate against this CA file")
    p.add_argument("--tls", action="store_true",
                   help="speak TLS and verify the node against the system's CAs")


def _add_server_security_args(p, broker: bool = False):
    who = "workers (registerWorker)" if broker else "every client"
    p.add_argument("--token-file", metavar="PATH",
                   help=f"require the shared token in PATH of {who}, and present it to "
                        "the nodes this one calls (chmod 600 it)")
    if broker:
        p.add_argument("--require-client-token", action="store_true",
                       help="require the token of every client too, not only of workers")
    p.add_argument("--tls-cert", metavar="PATH",
                   help="serve TLS with this PEM certificate (chain); plaintext clients "
                        "are refused")
    p.add_argument("--tls-key", metavar="PATH",
                   help="the certificate's PEM private key (default: in --tls-cert)")
    p.add_argument("--tls-ca", metavar="PATH",
                   help="speak TLS to the nodes this one calls, verifying them against "
                        "this CA file")


def _client_security(args):
    """The token and TLS of a client verb; a file that cannot be used: exit code 2."""
    from . import auth
    try:
        return auth.ClientSecurity.build(token_file=getattr(args, "token_file", None),
                                         tls=getattr(args, "tls", False) or None,
                                         tls_ca=getattr(args, "tls_ca", None))
    except ConfigurationError as err:
        raise UsageError(err.message) from None


def _server_security(args):
    """The token and TLS of serve and broker; a file that cannot be used: exit code 2."""
    from . import auth
    try:
        return auth.NodeSecurity.build(
            token_file=args.token_file,
            require_client_token=getattr(args, "require_client_token", False) or None,
            tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca)
    except ConfigurationError as err:
        raise UsageError(err.message) from None


def _add_admission_args(p):
    p.add_argument("--max-connections", type=_positive, metavar="N",
                   help="connections at once (default 256); when full, the least "
                        "recently active idle one is closed to admit a new client")
    p.add_argument("--max-thunks-per-client", type=_positive, metavar="N",
                   help="submitted results one client (connection) may leave unfetched "
                        "(default 10,000); beyond it its submits are Overloaded")
    p.add_argument("--thunk-ttl", type=_positive, metavar="SECONDS",
                   help="how long an unfetched result is kept (default 300); after "
                        "that, fetching it is the declared Expired error")


def _admission_options(args) -> dict:
    """The admission-control options of serve and broker (exathunk.admission)."""
    names = ("max_connections", "max_thunks_per_client", "thunk_ttl")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _add_ops_args(p):
    p.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics "
                        "(requests by method and outcome, latency histograms, queue, "
                        "cache and connection gauges; default off; 0 for any free port; "
                        "needs pip install 'exathunk[metrics]')")
    p.add_argument("--metrics-host", metavar="HOST",
                   help="address the metrics listen on (default 127.0.0.1; with "
                        "--metrics-port)")
    p.add_argument("--log-format", choices=["json"],
                   help="json: one JSON object per line per request on stderr (ts, kind, "
                        "outcome, seconds, client, request_id)")


def _ops_options(args) -> dict:
    """The metrics and request-log options of serve and broker."""
    options = {}
    if args.metrics_host is not None and args.metrics_port is None:
        raise UsageError("--metrics-host needs --metrics-port")
    if args.metrics_port is not None:
        from . import metrics
        if not metrics.available():
            raise UsageError(f"--metrics-port: {metrics.INSTALL_HINT}")
        options["metrics_port"] = args.metrics_port
        if args.metrics_host is not None:
            options["metrics_host"] = args.metrics_host
    if args.log_format is not None:
        options["log_format"] = args.log_format
    return options


def _add_limit_args(p):
    p.add_argument("--max-steps", type=_positive, metavar="N",
                   help="stop after N reduction steps (LimitExceeded)")
    p.add_argument("--max-heap", type=_positive, metavar="BYTES",
                   help="stop when the live heap after a collection passes BYTES")
    p.add_argument("--max-depth", type=_positive, metavar="N",
                   help="stop when the engine's stack passes N frames")


# ---- verbs -------------------------------------------------------------------------

def cmd_check(args) -> int:
    from .driver import check, warnings
    source, name = _read_program(args)
    checked = check(source, filename=name)
    for w in warnings(checked, source, name):
        print(w.render(), file=sys.stderr)
    print(checked.result_type_text)
    return 0


def cmd_disasm(args) -> int:
    from .driver import compile
    source, name = _read_program(args)
    print(compile(source, filename=name).disassemble())
    return 0


def cmd_eval(args) -> int:
    from .values import show_value
    source, name = _read_program(args)
    if args.remote:
        from .client import connect
        client = connect(*args.remote, security=_client_security(args))
        try:
            started = time.perf_counter()
            limits = _limits(args)
            if args.allow_unchecked:
                limits["allow_unchecked"] = True
            try:
                value, run = client.evaluate_with_stats(source, **limits)
            except ExathunkError as err:
                err.filename = name
                raise
            elapsed = time.perf_counter() - started
        finally:
            client.close()
        print(show_value(value))
        verified = (run or {}).get("verifiedBy")
        if verified == "none":
            print("; unchecked: nobody could check this value (one worker's word)",
                  file=sys.stderr)
        if args.stats:
            check = f", verified by {verified}" if verified else ""
            print(f"; remote {args.remote[0]}:{args.remote[1]}, round trip {elapsed * 1e3:.2f} ms"
                  f"{check}", file=sys.stderr)
        return 0
    from .driver import compile
    started = time.perf_counter()
    program = compile(source, filename=name)
    compiled = time.perf_counter()
    try:
        value, stats = program.run_with_stats(**_limits(args))
    except ExathunkError as err:
        raise err.with_source(source, name)
    finished = time.perf_counter()
    print(show_value(value))
    if args.stats:
        print(f"; steps {stats['steps']:,}, peak heap {stats['peak_heap']:,} bytes, "
              f"GC runs {stats['gc_runs']} ({stats.get('gc_time', 0) * 1e3:.2f} ms), compile {(compiled - started) * 1e3:.2f} ms, "
              f"run {(finished - compiled) * 1e3:.2f} ms", file=sys.stderr)
    return 0


def _not_the_listening_line(record) -> bool:
    # server.serve prints "exathunk serving on HOST:PORT" (stdout, which scripts read)
    # and start() logs the same address: the command shows it once.
    return not (record.name == "exathunk.server" and "listening on" in str(record.msg))


def _configure_logging(args) -> None:
    import logging
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_the_listening_line)


def _listening(verb: str, host: str, port: int, run) -> int:
    """Run a server; an address it cannot listen on is one line and exit code 69."""
    try:
        run()
    except OSError as err:
        listen_errors = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM)
        name_error = isinstance(err, socket.gaierror) or (err.errno or 0) < 0
        if err.errno not in listen_errors and not name_error:
            raise
        what = ""
        if hasattr(err, "host") and hasattr(err, "port"):
            # exathunk.metrics.CannotListen: the metrics' own address.
            what, host, port = " for metrics", err.host, err.port
        # socket.create_server's strerror repeats the address after the reason.
        reason = (err.strerror or str(err)).split(" (while attempting")[0].lower()
        raise CannotListen(f"exathunk {verb}: cannot listen on {host}:{port}{what}: "
                           f"{reason}") from None
    return 0


def load_library(spec: str):
    """``pkg.module:attr`` -> the Library it names: ``attr`` is a Library or a callable
    of no arguments that returns one.  Anything else is a UsageError (exit code 2)."""
    import importlib
    from .library import Library
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--library {spec}: expected MODULE:ATTRIBUTE "
                         "(e.g. mypkg.hostlib:lib)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        missing = getattr(err, "name", None) or module_name
        why = (f"no module named {missing!r}" if isinstance(err, ModuleNotFoundError)
               else f"{type(err).__name__}: {err}")
        raise UsageError(f"--library {spec}: cannot import the module {module_name!r} "
                         f"({why}; is it on PYTHONPATH?)") from None
    except Exception as err:      # the module itself fails while it is imported
        raise UsageError(f"--library {spec}: importing the module {module_name!r} "
                         f"failed: {type(err).__name__}: {err}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"--library {spec}: the module {module_name!r} has no "
                             f"attribute {attr!r}") from None
    if not isinstance(obj, Library) and callable(obj):
        try:
            obj = obj()
        except ExathunkError as err:
            raise UsageError(f"--library {spec}: {attr}() failed: {err.kind}: "
                             f"{err.message}") from None
        except Exception as err:
            raise UsageError(f"--library {spec}: {attr}() failed: "
                             f"{type(err).__name__}: {err}") from None
        what = f"{attr}() returned a value"
    else:
        what = f"{attr} is"
    if not isinstance(obj, Library):
        raise UsageError(f"--library {spec}: {what} of type {type(obj).__name__}, not an "
                         "exathunk.Library (give a Library or a function of no "
                         "arguments that returns one)")
    return obj


def cmd_serve(args) -> int:
    from . import server
    _configure_logging(args)
    options = {k: v for k, v in _limits(args).items()}
    if args.library:
        if len(args.library) > 1:
            raise UsageError("--library given more than once: a node serves one Library "
                             "(build one that registers everything)")
        options["library"] = load_library(args.library[0])
    if args.workers is not None:
        options["workers"] = args.workers
    if args.timeout_ms is not None:
        options["timeout_ms"] = args.timeout_ms
    if args.join:
        options["join"] = args.join
    options["security"] = _server_security(args)
    options.update(_ops_options(args))
    options.update(_admission_options(args))
    return _listening("serve", args.host, args.port,
                      lambda: server.serve(host=args.host, port=args.port, **options))


def _open_store(path: str, strict: bool) -> None:
    """Check the reputation store before the broker opens it: a corrupt one is moved
    aside (a line on stderr names where), or with --strict-store refused (StoreError)."""
    from .reputation import ReputationStore
    store = ReputationStore(path, strict=strict)
    store.close()
    if store.moved_aside:
        print(f"exathunk broker: the reputation store {path} is corrupt: moved it aside "
              f"to {store.moved_aside}; starting with a fresh one", file=sys.stderr,
              flush=True)


def cmd_broker(args) -> int:
    from . import broker
    from .errors import StoreError
    workers = list(args.worker or [])
    oracles = list(args.oracle or [])
    trusted = list(args.trust or [])
    # An oracle (or trusted worker) is a worker whose answers are trusted: it must be
    # connected as one too.
    workers += [o for o in oracles + trusted if o not in workers]
    options = {"oracles": tuple(oracles)} if oracles else {}
    if trusted:
        options["trusted"] = tuple(trusted)
    options["security"] = _server_security(args)
    options.update(_ops_options(args))
    options.update(_admission_options(args))
    store = os.path.abspath(os.path.expanduser(args.store or default_store()))
    try:
        os.makedirs(os.path.dirname(store), exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the folder of --store {store}: {err.strerror}")
    try:
        # Before logging is set up: the store's own warning stays quiet, this says it.
        _open_store(store, args.strict_store)
    except StoreError as err:
        print(f"exathunk broker: error: {err.message}", file=sys.stderr)
        return EXIT_IOERR
    _configure_logging(args)
    print(f"exathunk broker: reputation store {store}", flush=True)
    return _listening("broker", args.host, args.port,
                      lambda: broker.serve(host=args.host, port=args.port, workers=workers,
                                           db_path=store, strict_store=args.strict_store,
                                           **options))


def cmd_status(args) -> int:
    from .client import connect, format_stats
    if args.count is not None and args.watch is None:
        args.watch = 2.0
    client = connect(*args.address, security=_client_security(args))
    clear = args.watch is not None and not args.json and sys.stdout.isatty()
    shown = 0
    try:
        while True:
            stats = client.stats()
            if args.json:
                # One JSON object per line (JSON Lines when watching).
                print(json.dumps(stats, sort_keys=True, default=str), flush=True)
            else:
                if clear:
                    print("\x1b[H\x1b[2J", end="")
                if args.watch is not None:
                    print(f"{args.address[0]}:{args.address[1]} at "
                          f"{time.strftime('%H:%M:%S')} (every {args.watch:g} s, Ctrl-C stops)")
                print(format_stats(stats), flush=True)
            shown += 1
            if args.watch is None or (args.count is not None and shown >= args.count):
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0                 # the way to stop --watch
    finally:
        client.close()


def cmd_repl(args) -> int:
    from .repl import Repl
    security = _client_security(args)
    return Repl(remote=args.remote, security=security).loop()


def cmd_demo(args) -> int:
    if args.dask:
        from . import dask as xd
        if not xd.available():
            raise UsageError(f"--dask: {xd.INSTALL_HINT}")
        from .demo import run_dask_demo
        return run_dask_demo(verbose=not args.quiet)
    from .demo import run_demo
    return run_demo(verbose=not args.quiet)


BENCH_SUITES = ("compile", "engine", "service", "broker")


def cmd_bench(args) -> int:
    import pathlib
    import subprocess

    from . import benchstore
    storage = os.path.abspath(args.storage or benchstore.default_storage())
    if args.plot:
        if not args.plot.lower().endswith((".svg", ".png")):
            raise UsageError(f"--plot: the file must end in .svg or .png, got {args.plot!r}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError(f"--plot needs matplotlib: {benchstore.PLOT_HINT}") from None
        try:
            print(benchstore.plot(storage, args.plot))
        except benchstore.StorageError as err:
            raise UsageError(str(err)) from None
        return 0
    if args.compare and (args.quick or args.no_save):
        raise UsageError("--compare needs a timed, saved run: drop --quick and --no-save")
    bench_dir = args.dir or os.path.join(os.getcwd(), "bench")
    if not os.path.isdir(bench_dir):
        print(f"error: no benchmark folder at {bench_dir} (run from a checkout, or give --dir)",
              file=sys.stderr)
        return 2
    suites = BENCH_SUITES if args.suite == "all" else (args.suite,)
    # The suites are named bench_*.py, which pytest collects only when named explicitly.
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-q", "-p", "no:cacheprovider"]
    cmd += [os.path.join(bench_dir, f"bench_{suite}.py") for suite in suites]
    if args.k:
        cmd += ["-k", args.k]
    if args.json:
        cmd.append(f"--benchmark-json={args.json}")
    if args.quick:
        # Each benchmark runs once, as a test: checks the suite works, measures nothing.
        cmd.append("--benchmark-disable")
        cmd.remove("--benchmark-only")
    elif not args.no_save:
        # pytest-benchmark saves the run as <storage>/<machine id>/NNNN_*.json.
        pathlib.Path(storage).mkdir(parents=True, exist_ok=True)
        cmd += ["--benchmark-autosave", f"--benchmark-storage=file://{storage}"]
    before = {r.path for r in benchstore.load_runs(storage)} if args.compare else set()
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    rc = subprocess.call(cmd)
    if not args.quick and not args.no_save:
        print(f"runs are saved in {storage}", file=sys.stderr)
    if rc != 0 or not args.compare:
        return rc
    runs = benchstore.load_runs(storage)
    new = [r for r in runs if r.path not in before]
    old = [r for r in runs if r.path in before]
    if not new:
        print("exathunk bench: --compare: this run saved nothing to compare", file=sys.stderr)
        return 1
    if not old:
        print(f"no earlier run in {storage} to compare with: this one is the first")
        return 0
    lines, _slower = benchstore.compare_runs(old[-1], new[-1])
    print("\n".join(lines))
    return 0


# ---- argument parsing ---------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    top = _Parser(
        prog="exathunk",
        description="A pure, lazy, statically typed s-expression language whose whole "
                    "programs travel over Thrift RPC.",
        epilog="Run 'exathunk VERB --help' for a verb's options.  Exit codes: 0 ok, "
               "2 usage, 65 compile error, 70 run failure, 69 unreachable node or "
               "an address that cannot be listened on, 74 unusable broker store "
               "(broker --strict-store), 77 token refused.")
    top.add_argument("--version", action="version", version=f"exathunk {__version__}")
    verbs = top.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    p = verbs.add_parser("demo", help="start a loopback server, run programs through it, print results",
                         description="Start a server on a free loopback port, submit a few programs "
                                     "(arithmetic, laziness, recursion, an error), print results "
                                     "and timings, stop the server.")
    p.add_argument("-q", "--quiet", action="store_true", help="print results only")
    p.add_argument("--dask", action="store_true",
                   help="run the programs (par-map ones too) as Dask tasks on a local "
                        "cluster of 2 worker processes instead (needs "
                        "pip install 'exathunk[dask]')")
    p.set_defaults(run=cmd_demo)

    p = verbs.add_parser("eval", help="compile and run a program, print its value",
                         description="Compile and run a program locally (or on a remote node "
                                     "with --remote) and print its value as source.")
    _add_program_args(p)
    _add_limit_args(p)
    p.add_argument("--remote", type=parse_address, metavar="HOST:PORT",
                   help="evaluate on this worker or broker instead of locally")
    p.add_argument("--allow-unchecked", action="store_true",
                   help="with --remote on a broker: accept a value nobody could check "
                        "(one worker's word; reported on stderr) instead of the "
                        "Unverifiable error")
    p.add_argument("--stats", action="store_true",
                   help="also print steps, peak heap, GC runs and times to stderr")
    _add_client_security_args(p)
    p.set_defaults(run=cmd_eval)

    p = verbs.add_parser("check", help="typecheck a program, print its type",
                         description="Parse and typecheck a program and print its type.")
    _add_program_args(p)
    p.set_defaults(run=cmd_check)

    p = verbs.add_parser("disasm", help="print the compiled bytecode graph",
                         description="Compile a program and print its bytecode graph.")
    _add_program_args(p)
    p.set_defaults(run=cmd_disasm)

    p = verbs.add_parser("repl", help="an interactive session",
                         description="Read-eval-print loop with line editing and history. "
                                     "Type :help inside for commands.")
    p.add_argument("--remote", type=parse_address, metavar="HOST:PORT",
                   help="evaluate on this worker or broker")
    _add_client_security_args(p)
    p.set_defaults(run=cmd_repl)

    p = verbs.add_parser("serve", help="run a RemoteExecutionService worker node",
                         description="Serve the engine over Thrift (RemoteExecutionService). "
                                     "SIGTERM or Ctrl-C drains in-flight work, then stops.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=SERVE_PORT,
                   help=f"port to listen on (default {SERVE_PORT}; 0 for any free port)")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="evaluation threads (default: cores)")
    p.add_argument("--timeout-ms", type=_positive, metavar="MS",
                   help="default wall-clock limit per request")
    p.add_argument("--join", type=parse_address, metavar="HOST:PORT",
                   help="register this worker with a broker (presenting --token-file)")
    p.add_argument("--library", action="append", metavar="MODULE:ATTR",
                   help="offer the host functions, data types, classes and instances of "
                        "this exathunk.Library: ATTR of the importable MODULE, a Library "
                        "or a function of no arguments that returns one (e.g. "
                        "mypkg.hostlib:lib); once")
    _add_server_security_args(p)
    _add_limit_args(p)
    _add_log_arg(p)
    _add_ops_args(p)
    _add_admission_args(p)
    p.set_defaults(run=cmd_serve)

    p = verbs.add_parser("broker", help="run a market broker over worker nodes",
                         description="Serve RemoteExecutionService by spreading requests over "
                                     "workers chosen by bids, latency and reputation.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=BROKER_PORT,
                   help=f"port to listen on (default {BROKER_PORT}; serve's is {SERVE_PORT}; "
                        "0 for any free port)")
    p.add_argument("--worker", type=parse_address, action="append", metavar="HOST:PORT",
                   help="a worker node (repeatable); workers may also join with 'serve --join'")
    p.add_argument("--oracle", type=parse_address, action="append", metavar="HOST:PORT",
                   help="a trusted worker whose answers settle disputes (repeatable)")
    p.add_argument("--trust", type=parse_address, action="append", metavar="HOST:PORT",
                   help="trust this worker (repeatable): its word alone is a good answer "
                        "(verifiedBy trusted-worker), so a host function only it offers "
                        "is served instead of refused as Unverifiable")
    p.add_argument("--store", "--db", dest="store", metavar="PATH",
                   help="SQLite file for reputation and statistics, kept across restarts "
                        "(default $XDG_DATA_HOME/exathunk/broker.sqlite3, i.e. "
                        "~/.local/share/exathunk/broker.sqlite3; its path is printed at start)")
    p.add_argument("--strict-store", action="store_true",
                   help="refuse to start (exit code 74) when the store is corrupt; by "
                        "default a corrupt store is moved aside to "
                        "PATH.corrupt-TIMESTAMP (the new path is printed on stderr) and "
                        "a fresh one started")
    _add_server_security_args(p, broker=True)
    _add_log_arg(p)
    _add_ops_args(p)
    _add_admission_args(p)
    p.set_defaults(run=cmd_broker)

    p = verbs.add_parser("status", help="show a node's statistics as a table",
                         description="Ask a worker or broker for its statistics and health.")
    p.add_argument("address", type=parse_address, metavar="HOST:PORT")
    p.add_argument("--json", action="store_true",
                   help="print the statistics as one JSON object (one per line with --watch)")
    p.add_argument("--watch", type=_seconds, nargs="?", const=2.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 2) until Ctrl-C")
    p.add_argument("--count", type=_positive, metavar="N",
                   help="with --watch: stop after N refreshes")
    _add_client_security_args(p)
    p.set_defaults(run=cmd_status)

    p = verbs.add_parser("bench", help="run the benchmark suites (from a checkout), save, "
                                       "compare, plot",
                         description="Run the pytest-benchmark suites in bench/ and save the "
                                     "run (pytest-benchmark autosave) in the storage folder; "
                                     "--compare also prints the change against the last "
                                     "saved run, --plot draws the saved history instead of "
                                     "running.",
                         epilog="Storage: --storage DIR, default $XDG_DATA_HOME/exathunk/"
                                "bench (~/.local/share/exathunk/bench); "
                                "bench/compare_engine.py saves its ratio runs there too. "
                                "Exit codes: pytest's (0 passed, 1 failed, 5 nothing "
                                "selected); 2 usage, or --plot without matplotlib.")
    p.add_argument("--suite", default="all",
                   choices=["all", *BENCH_SUITES],
                   help="which suite (default all)")
    p.add_argument("--dir", help="the bench folder (default ./bench)")
    p.add_argument("-k", metavar="EXPR",
                   help="run only the benchmarks pytest's -k EXPR selects "
                        "(e.g. -k tiny_runs)")
    p.add_argument("--json", metavar="FILE", help="also write pytest-benchmark JSON here")
    p.add_argument("--quick", action="store_true",
                   help="run each benchmark once as a smoke test (no timing, nothing saved)")
    p.add_argument("--storage", metavar="DIR",
                   help="where runs are saved and read (default "
                        "$XDG_DATA_HOME/exathunk/bench, i.e. ~/.local/share/exathunk/bench)")
    p.add_argument("--no-save", action="store_true", help="do not save this run")
    p.add_argument("--compare", action="store_true",
                   help="after the run, print each benchmark's median in the last saved run "
                        "and in this one, the change, and SLOWER where it is slower beyond "
                        "noise")
    p.add_argument("--plot", metavar="FILE.svg|FILE.png",
                   help="run nothing: draw the history of each benchmark's median over the "
                        "saved runs and the latest compare_engine.py ratios against the "
                        "peers into FILE (needs pip install 'exathunk[plot]')")
    p.set_defaults(run=cmd_bench)
    return top


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ExathunkError as err:
        print(err.render(), file=sys.stderr)
        return exit_code(err)
    except UsageError as err:
        print(f"exathunk {args.verb}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except CannotListen as err:
        print(err, file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
