"""Open Openlid's shared SQLite file in WAL mode, safely from several threads at once.

Conversations and the download queue live in one file. Switching a brand-new file to WAL needs
an exclusive lock and SQLite does not always wait for it (the busy handler is not consulted), so
two stores opening the file at the same first start could fail with "database is locked". Pure;
any thread.
"""

from __future__ import annotations

import sqlite3
import time


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
