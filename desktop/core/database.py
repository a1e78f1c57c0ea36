"""The one place that opens Openlid's shared SQLite file (conversations, downloads and the model
library live in it): created private (0600, and SQLite gives its -wal/-shm files the same mode),
switched to WAL, and checked for damage before any store reads it.

Damage is a file that is not an SQLite database at all (garbage, "file is not a database"), one
cut short or with a broken page ("database disk image is malformed"), or one whose `PRAGMA
quick_check` finds broken pages. It is raised as `DatabaseDamaged`, whose `str()` says what
happened in plain words; the CLI and the window turn it into what to do next
(`desktop.core.database_repair` keeps the damaged file and recovers or starts fresh). The full
check reads every page (0.2 s for a 330 MB file, warm cache), so a process runs it once per
file it opens; the cheap part (the header and the schema) runs on every open.

Pure; any thread. Each caller owns the connection it gets, as before.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Literal

from desktop.core.sqlite_wal import enable_wal

__all__ = ["DatabaseDamaged", "check", "connect", "damage_detail", "forget", "make_private"]

# SQLite's primary result codes for "this is not a database" and "this database is damaged".
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_COMPANIONS = ("-wal", "-shm", "-journal")


class DatabaseDamaged(Exception):
    """Openlid's database file cannot be used as it is; `str()` says why, in plain words.
    `path` is the file, `detail` the reason alone."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = Path(path)
        self.detail = detail
        super().__init__(f"Openlid's database {self.path} is damaged: {detail}")


def damage_detail(exc: BaseException) -> str | None:
    """Plain words for an sqlite3 error that means the file is damaged; None for any other
    error (a lock, a full disk, a missing table), which is not damage."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _SQLITE_NOTADB or "file is not a database" in text:
        return "it is not an SQLite database (its contents are something else, or garbage)"
    if primary == _SQLITE_CORRUPT or "malformed" in text:
        return ("it is cut short or has broken pages "
                "(SQLite says: database disk image is malformed)")
    return None


# (st_dev, st_ino) of the files that passed the full check in this process.
_checked: set[tuple[int, int]] = set()
_checked_lock = threading.Lock()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def forget(path: Path) -> None:
    """Check `path` fully again at its next open (after it was replaced, or damaged on
    purpose by a test)."""
    key = _identity(Path(path))
    if key is not None:
        with _checked_lock:
            _checked.discard(key)


def make_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it is missing, and take group and other access away
    from it and its -wal/-shm files if they have it (files of an older Openlid). SQLite creates
    -wal and -shm with the database file's mode, so they are born private too."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        # O_EXCL: never truncate or re-create a file another process made meanwhile.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    if os.name != "posix":
        return
    for file in (path, *(path.with_name(path.name + s) for s in _COMPANIONS)):
        try:
            mode = file.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(file, mode & 0o700)
        except OSError:  # missing, or another user's file: not ours to change
            pass


def _quick_check(conn: sqlite3.Connection) -> str | None:
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if rows == ["ok"]:
        return None
    first = "; ".join(line.strip() for r in rows for line in r.splitlines()
                      if line.strip() and not line.startswith("***"))
    return f"SQLite's check found broken pages ({first[:300]})"


def check(path: Path, *, timeout_s: float = 10.0) -> None:
    """Run the full check on the file at `path` now, whether or not this process checked it
    before. Raises DatabaseDamaged, or sqlite3.Error/OSError when the file cannot be opened at
    all (that is not damage). A missing file is not checked and not created."""
    path = Path(path)
    if not path.exists():
        return
    forget(path)
    connect(path, timeout_s=timeout_s).close()


def connect(path: Path, *, timeout_s: float = 10.0,
            isolation_level: Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"] | None = None,
            check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to Openlid's database at `path` (created 0600 if missing), in WAL mode, with
    the file checked for damage; raises DatabaseDamaged instead of a bare sqlite3 error.
    `isolation_level=None`: no implicit transactions (callers use `sqlite_wal.transaction`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_private(path)
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=isolation_level,
                           check_same_thread=check_same_thread)
    try:
        # Reading the schema parses the header and page 1: garbage and a cut-short file fail
        # here, before WAL is switched on (which would write to a file in the old journal mode).
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        key = _identity(path)
        with _checked_lock:
            known = key in _checked
        if not known:
            problem = _quick_check(conn)
            if problem is not None:
                raise DatabaseDamaged(path, problem)
            if key is not None:
                with _checked_lock:
                    _checked.add(key)
        enable_wal(conn)
    except DatabaseDamaged:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        detail = damage_detail(exc)
        if detail is None:
            raise
        raise DatabaseDamaged(path, detail) from exc
    except BaseException:
        conn.close()
        raise
    return conn
