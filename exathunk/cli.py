"""The ``exathunk`` command: one verb per job, each with its own ``--help``.

Verbs: demo, eval, check, disasm, repl, serve, broker, status, bench.  Errors go to
stderr with the place and a caret.  Exit codes follow clox and sysexits: 0 success,
2 bad usage, 65 a program that does not compile, 70 a run that fails (EvaluationError,
LimitExceeded), 69 a remote node that cannot be reached, 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import (EvaluationError, ExathunkError, LimitExceeded, ParseError, RemoteError,
                     TypeCheckError, UnknownFunctionError)

EXIT_COMPILE, EXIT_RUNTIME, EXIT_UNAVAILABLE = 65, 70, 69


class UsageError(Exception):
    """The command line is off: reported in one line, exit code 2."""


def exit_code(err: ExathunkError) -> int:
    if isinstance(err, (ParseError, TypeCheckError, UnknownFunctionError)):
        return EXIT_COMPILE
    if isinstance(err, (EvaluationError, LimitExceeded)):
        return EXIT_RUNTIME
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


def _add_limit_args(p):
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after N reduction steps (LimitExceeded)")
    p.add_argument("--max-heap", type=int, metavar="BYTES",
                   help="stop when the live heap after a collection passes BYTES")
    p.add_argument("--max-depth", type=int, metavar="N",
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
        client = connect(*args.remote)
        try:
            started = time.perf_counter()
            try:
                value = client.evaluate(source, **_limits(args))
            except ExathunkError as err:
                err.filename = name
                raise
            elapsed = time.perf_counter() - started
        finally:
            client.close()
        print(show_value(value))
        if args.stats:
            print(f"; remote {args.remote[0]}:{args.remote[1]}, round trip {elapsed * 1e3:.2f} ms",
                  file=sys.stderr)
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


def _configure_logging(args) -> None:
    import logging
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_serve(args) -> int:
    from . import server
    _configure_logging(args)
    options = {k: v for k, v in _limits(args).items()}
    if args.workers is not None:
        options["workers"] = args.workers
    if args.timeout_ms is not None:
        options["timeout_ms"] = args.timeout_ms
    if args.join:
        options["join"] = args.join
    server.serve(host=args.host, port=args.port, **options)
    return 0


def cmd_broker(args) -> int:
    from . import broker
    _configure_logging(args)
    workers = list(args.worker or [])
    oracles = list(args.oracle or [])
    # An oracle is a worker whose answers are trusted: it must be connected as one too.
    workers += [o for o in oracles if o not in workers]
    options = {"oracles": tuple(oracles)} if oracles else {}
    broker.serve(host=args.host, port=args.port, workers=workers, db_path=args.db, **options)
    return 0


def cmd_status(args) -> int:
    from .client import connect, format_stats
    client = connect(*args.address)
    try:
        print(format_stats(client.stats()))
    finally:
        client.close()
    return 0


def cmd_repl(args) -> int:
    from .repl import Repl
    return Repl(remote=args.remote).loop()


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
    import subprocess
    bench_dir = args.dir or os.path.join(os.getcwd(), "bench")
    if not os.path.isdir(bench_dir):
        print(f"error: no benchmark folder at {bench_dir} (run from a checkout, or give --dir)",
              file=sys.stderr)
        return 2
    suites = BENCH_SUITES if args.suite == "all" else (args.suite,)
    # The suites are named bench_*.py, which pytest collects only when named explicitly.
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-q", "-p", "no:cacheprovider"]
    cmd += [os.path.join(bench_dir, f"bench_{suite}.py") for suite in suites]
    if args.json:
        cmd.append(f"--benchmark-json={args.json}")
    if args.quick:
        # Each benchmark runs once, as a test: checks the suite works, measures nothing.
        cmd.append("--benchmark-disable")
        cmd.remove("--benchmark-only")
    print("$ " + " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


# ---- argument parsing ---------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="exathunk",
        description="A pure, lazy, statically typed s-expression language whose whole "
                    "programs travel over Thrift RPC.",
        epilog="Run 'exathunk VERB --help' for a verb's options.")
    verbs = top.add_subparsers(dest="verb", metavar="VERB")
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
    p.add_argument("--stats", action="store_true",
                   help="also print steps, peak heap, GC runs and times to stderr")
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
    p.set_defaults(run=cmd_repl)

    p = verbs.add_parser("serve", help="run a RemoteExecutionService worker node",
                         description="Serve the engine over Thrift (RemoteExecutionService). "
                                     "SIGTERM or Ctrl-C drains in-flight work, then stops.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9090, help="port to listen on (default 9090)")
    p.add_argument("--workers", type=int, metavar="N", help="evaluation threads (default: cores)")
    p.add_argument("--timeout-ms", type=int, metavar="MS", help="default wall-clock limit per request")
    p.add_argument("--join", type=parse_address, metavar="HOST:PORT",
                   help="register this worker with a broker")
    _add_limit_args(p)
    _add_log_arg(p)
    p.set_defaults(run=cmd_serve)

    p = verbs.add_parser("broker", help="run a market broker over worker nodes",
                         description="Serve RemoteExecutionService by spreading requests over "
                                     "workers chosen by bids, latency and reputation.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9090, help="port to listen on (default 9090)")
    p.add_argument("--worker", type=parse_address, action="append", metavar="HOST:PORT",
                   help="a worker node (repeatable); workers may also join with 'serve --join'")
    p.add_argument("--oracle", type=parse_address, action="append", metavar="HOST:PORT",
                   help="a trusted worker whose answers settle disputes (repeatable)")
    p.add_argument("--db", metavar="PATH", default="exathunk-broker.sqlite3",
                   help="SQLite file for reputation and statistics (default %(default)s)")
    _add_log_arg(p)
    p.set_defaults(run=cmd_broker)

    p = verbs.add_parser("status", help="show a node's statistics as a table",
                         description="Ask a worker or broker for its statistics and health.")
    p.add_argument("address", type=parse_address, metavar="HOST:PORT")
    p.set_defaults(run=cmd_status)

    p = verbs.add_parser("bench", help="run the benchmark suites (from a checkout)",
                         description="Run the pytest-benchmark suites in bench/.")
    p.add_argument("--suite", default="all",
                   choices=["all", *BENCH_SUITES],
                   help="which suite (default all)")
    p.add_argument("--dir", help="the bench folder (default ./bench)")
    p.add_argument("--json", metavar="FILE", help="also write pytest-benchmark JSON here")
    p.add_argument("--quick", action="store_true",
                   help="run each benchmark once as a smoke test (no timing)")
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
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
