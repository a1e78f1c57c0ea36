"""Reading what is left of a damaged SQLite file, for `database_repair.recover`: the file opened
read-only however short it is, and a table copied in rowid order into another database, a page
that fails stepped over (the next readable rowid found by probing forward and then bisecting,
which works because a broken leaf or interior page fails exactly for the rowid range it covers).
Rows whose values break the target's schema are left out. Pure; blocking; any thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

_MIN_ROWID, _MAX_ROWID = -(2**63), 2**63 - 1
_CHUNK = 256


def open_source(source: Path) -> sqlite3.Connection | None:
    conn = sqlite3.connect(source, isolation_level=None)
    try:
        # writable_schema: read a file shorter than its header says (else "malformed" at once);
        # query_only: never write to it anyway.
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA cell_size_check=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:  # not a database at all, or page 1 is gone: nothing to read
        conn.close()
        return None
    return conn


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    try:
        return [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
    except sqlite3.DatabaseError:
        return []


def _readable_from(src: sqlite3.Connection, table: str, start: int) -> bool:
    try:
        src.execute(
            f'SELECT rowid FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1', (start,)
        ).fetchall()
    except sqlite3.DatabaseError:
        return False
    return True


def _next_readable(src: sqlite3.Connection, table: str, start: int) -> int | None:
    """The smallest rowid bound above `start` from which `table` can be read again, or None
    when nothing after `start` can be."""
    bad, step = start, 1
    while True:
        probe = start + step
        if probe > _MAX_ROWID:
            if _readable_from(src, table, _MAX_ROWID):
                probe = _MAX_ROWID
                break
            return None
        if _readable_from(src, table, probe):
            break
        bad, step = probe, step * 2
    good = probe
    while good - bad > 1:  # the broken range ends somewhere in (bad, good]
        mid = (bad + good) // 2
        if _readable_from(src, table, mid):
            good = mid
        else:
            bad = mid
    return good


def copy_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str, columns: list[str]
) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    select = f'SELECT rowid, {names} FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT ?'
    insert = f'INSERT INTO "{table}"(rowid, {names}) VALUES ({", ".join("?" * (len(columns) + 1))})'
    start: int | None = _MIN_ROWID
    while start is not None:
        try:
            rows = src.execute(select, (start, _CHUNK)).fetchall()
        except sqlite3.DatabaseError:
            try:  # somewhere in this chunk: read row by row up to the broken one
                rows = src.execute(select, (start, 1)).fetchall()
            except sqlite3.DatabaseError:
                start = _skip_row(src, table, start)
                continue
        if not rows:
            break
        for row in rows:
            with contextlib.suppress(sqlite3.IntegrityError):  # values the schema refuses
                dst.execute(insert, row)
        last = max(int(r[0]) for r in rows)
        start = last + 1 if start <= last < _MAX_ROWID else None


def _skip_row(src: sqlite3.Connection, table: str, start: int) -> int | None:
    """Past the unreadable row at or after `start`: its rowid + 1 when the rowid itself can
    still be read (the values are what is broken), else past the broken page."""
    try:
        row = src.execute(
            f'SELECT rowid FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1', (start,)
        ).fetchone()
    except sqlite3.DatabaseError:
        return _next_readable(src, table, start)
    if row is None or int(row[0]) >= _MAX_ROWID:
        return None
    return int(row[0]) + 1


def count(src: sqlite3.Connection, table: str) -> int | None:
    try:  # SQLite counts through the smallest index, which may have survived the table
        return int(src.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    except sqlite3.DatabaseError:
        return None
