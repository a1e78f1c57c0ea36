"""Open Openlid's shared SQLite file in WAL mode, safely from several threads at once, and write
to it one transaction at a time.

Conversations, the download queue and the model library live in one file. Switching a brand-new
file to WAL needs an exclusive lock and SQLite does not always wait for it (the busy handler is not
consulted), so two stores opening the file at the same first start could fail with "database is
locked". Connections to it are opened by `desktop.core.database.connect` (private file, damage
check), which calls `enable_wal`. Pure; any thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator


def enable_wal(conn: sqlite3.Connection, *, wait_s: float = 10.0) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on a connection opened with isolation_level=None.

    IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout instead of
    one failing half-way with "database is locked"."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
