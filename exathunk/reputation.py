"""The broker's memory: worker reputations and statistics in an embedded SQLite file.

One row per worker address, holding what ``market.worker_record`` returns (counters and
state as columns, latency estimates as JSON), so that a restarted broker keeps trusting
whom it trusted and keeps a known liar shut out.  Honesty (agreed, lost, state) and
availability (``unavailable``: the decaying penalty of timeouts, crashes and connection
errors, raised at ``unavailable_at``) are separate columns: a slow worker is not a liar.  Thread-safe: one connection, one lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading

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

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        # A store written before the availability penalty: add its columns.
        have = {row[1] for row in self._db.execute("PRAGMA table_info(workers)")}
        # (confirmed starts at 0: agreements counted by headcount earn no vote weight.)
        for column, kind in (("unavailable", "REAL"), ("unavailable_at", "REAL"),
                             ("confirmed", "INTEGER")):
            if column not in have:
                self._db.execute("ALTER TABLE workers ADD COLUMN %s %s NOT NULL "
                                 "DEFAULT 0" % (column, kind))

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
