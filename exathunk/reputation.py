"""The broker's memory: worker reputations and statistics in an embedded SQLite file.

One row per worker address, holding what ``market.worker_record`` returns (counters and
state as columns, latency estimates as JSON), so that a restarted broker keeps trusting
whom it trusted and keeps a known liar shut out.  Honesty (agreed, lost, state) and
availability (``unavailable``: the decaying penalty of timeouts, crashes and connection
errors, raised at ``unavailable_at``) are separate columns: a slow worker is not a liar.
Thread-safe: one connection, one lock.

A store that is not a SQLite database, is damaged, or holds another table under the
name ``workers`` is *corrupt*: by default it is moved aside to
``<path>.corrupt-<UTC timestamp>`` (its ``-wal``/``-shm`` files along with it), a
warning names the new path, and the broker starts with a fresh store; with
``strict=True`` (``broker --strict-store``) it is a StoreError instead.  A store that
cannot be opened or written at all (a folder, no permission) is a StoreError either way.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time

from .errors import StoreError

log = logging.getLogger("exathunk.reputation")
log.addHandler(logging.NullHandler())

# sqlite3 error codes of a file that is not a database or is damaged.
_CORRUPT_CODES = {11, 26}          # SQLITE_CORRUPT, SQLITE_NOTADB

_COLUMNS = ("address", "state", "agreed", "lost", "streak", "requests", "completed",
            "failures", "shut_until", "shutouts", "probation_left", "trusted", "unavailable",
            "unavailable_at", "confirmed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    address TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    agreed INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    streak INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    shut_until REAL NOT NULL DEFAULT 0,
    shutouts INTEGER NOT NULL DEFAULT 0,
    probation_left INTEGER NOT NULL DEFAULT 0,
    trusted INTEGER NOT NULL DEFAULT 0,
    unavailable REAL NOT NULL DEFAULT 0,
    unavailable_at REAL NOT NULL DEFAULT 0,
    confirmed INTEGER NOT NULL DEFAULT 0,
    estimates TEXT NOT NULL DEFAULT '{}',
    updated REAL NOT NULL DEFAULT (julianday('now'))
)
"""


class ReputationStore:
    """Load and save worker records; ``path`` may be ":memory:" for a throwaway store."""

    def __init__(self, path: str, strict: bool = False):
        self.path = path
        self.moved_aside: str | None = None   # where a corrupt store went, if it did
        self._lock = threading.Lock()
        try:
            self._db = self._open(path)
        except _Corrupt as corrupt:
            if strict:
                raise StoreError(f"the reputation store {path} is corrupt ({corrupt}); "
                                 "move it aside, or start without --strict-store to "
                                 "have it moved aside and a fresh one started") from None
            self.moved_aside = _move_aside(path)
            log.warning("the reputation store %s is corrupt (%s): moved it aside to %s "
                        "and started a fresh one", path, corrupt, self.moved_aside)
            try:
                self._db = self._open(path)
            except _Corrupt as again:      # cannot happen to a new file; say so if it does
                raise StoreError(f"the reputation store {path}: a fresh store is corrupt "
                                 f"too ({again})") from None

    @staticmethod
    def _open(path: str):
        """Open, set up and check the store; raises _Corrupt or StoreError."""
        db = None
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            check = db.execute("PRAGMA quick_check").fetchall()
            if check == [("ok",)]:
                # A store written before the availability penalty: add its columns
                # (confirmed starts at 0: agreements counted by headcount earn no
                # vote weight).
                have = {row[1] for row in db.execute("PRAGMA table_info(workers)")}
                ours = {"address", "state", "agreed", "lost", "estimates"} <= have
                for column, kind in (("unavailable", "REAL"), ("unavailable_at", "REAL"),
                                     ("confirmed", "INTEGER")):
                    if ours and column not in have:
                        db.execute("ALTER TABLE workers ADD COLUMN %s %s NOT NULL "
                                   "DEFAULT 0" % (column, kind))
            if check != [("ok",)]:
                raise _Corrupt("integrity check: " + "; ".join(str(r[0]) for r in check[:3]))
            # Another schema under the same name is unusable too.
            db.execute("SELECT %s FROM workers LIMIT 1" % ", ".join(_COLUMNS)).fetchall()
            for (estimates,) in db.execute("SELECT estimates FROM workers"):
                json.loads(estimates or "{}")
        except _Corrupt:
            _close(db)
            raise
        except (ValueError, TypeError) as err:
            _close(db)
            raise _Corrupt(f"unreadable estimates: {err}") from None
        except sqlite3.DatabaseError as err:
            _close(db)
            code = getattr(err, "sqlite_errorcode", None)
            message = str(err)
            if code is not None and (code & 0xFF) in _CORRUPT_CODES:
                raise _Corrupt(message) from None
            if isinstance(err, sqlite3.OperationalError) and "no such column" in message:
                raise _Corrupt(f"another schema: {message}") from None
            if not isinstance(err, sqlite3.OperationalError):
                raise _Corrupt(message) from None
            raise StoreError(f"cannot use the reputation store {path}: {message}") from None
        return db

    def load(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT %s, estimates FROM workers" % ", ".join(_COLUMNS)).fetchall()
        records = []
        for row in rows:
            record = dict(zip(_COLUMNS, row))
            record["trusted"] = bool(record["trusted"])
            estimates = json.loads(row[-1] or "{}")
            record["latency"] = estimates.get("latency", {})
            if "ratio" in estimates:
                record["ratio"] = estimates["ratio"]
            records.append(record)
        return records

    def save(self, records: list[dict]) -> None:
        if not records:
            return
        placeholders = ", ".join("?" for _ in _COLUMNS)
        sql = ("INSERT OR REPLACE INTO workers (%s, estimates, updated) "
               "VALUES (%s, ?, julianday('now'))" % (", ".join(_COLUMNS), placeholders))
        rows = []
        for r in records:
            estimates = json.dumps({"latency": r.get("latency", {}),
                                    "ratio": r.get("ratio", [0.0, 0.0, 0, 0.0])})
            rows.append(tuple(int(r[c]) if c == "trusted" else r.get(c, 0) for c in _COLUMNS)
                        + (estimates,))
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Corrupt(Exception):
    """The store is not a SQLite database, is damaged, or is of another schema."""


def _close(db) -> None:
    if db is not None:
        try:
            db.close()
        except sqlite3.Error:
            pass


def _move_aside(path: str) -> str:
    """Rename a corrupt store (and its -wal, -shm files) to ``<path>.corrupt-<stamp>``,
    a name not taken yet; returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target, n = f"{path}.corrupt-{stamp}", 1
    while os.path.exists(target):
        target, n = f"{path}.corrupt-{stamp}-{n}", n + 1
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.replace(path + suffix, target + suffix)
    except OSError as err:
        raise StoreError(f"the reputation store {path} is corrupt and cannot be moved "
                         f"aside: {err.strerror or err}") from None
    return target
