"""The model library's records in Openlid's one SQLite file: what
`desktop.core.library.catalog` knows about each model path, and which models-folder files the
user hid.

Tables (component "library" in `openlid_schema`, beside the conversation and download tables):
`library_models` (path primary key, source, size, mtime_ns, meta_json: the metadata last read
from the file, reused while size and mtime are unchanged) and `library_hidden` (paths removed
from the list without deleting them, else the next scan would list them again). Listing order
is insertion order (rowid), which an upsert keeps.

A store is one connection, opened for one library call and closed after it, so every thread
and process (the GUI's pool jobs, `openlid models`) has its own. WAL lets readers run during a
write; each write is one `BEGIN IMMEDIATE` transaction and a second writer waits up to the busy
timeout. A scan reads headers outside any transaction (they can take seconds, and the same file
holds the conversations) and then commits with `commit_scan`, a compare-and-set that writes a
path only if its row is still what the scan read: a concurrent import or remove always wins.

The first open after an upgrade imports the old `library.json` (if the tables are empty) and
renames it `library.json.migrated`; one that cannot be read is renamed `library.json.unreadable`
and the library starts empty. Pure Python; any thread, one store per thread.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.database import connect
from desktop.core.sqlite_wal import transaction

__all__ = ["COMPONENT", "SCHEMA_VERSION", "LibraryError", "LibraryStore", "ModelRecord"]

COMPONENT = "library"
SCHEMA_VERSION = 1
_LEGACY_VERSION = 1  # the "version" field of library.json


class LibraryError(Exception):
    """The library cannot do what was asked (a path is not a usable model, or the database is
    from a newer Openlid); `str()` says why, in plain words."""


@dataclass(frozen=True)
class ModelRecord:
    """One library row. `size`/`mtime_ns` are the file's stamp when `meta` was read; None when
    the file could not be read (a vanished imported model keeps its row and source)."""

    source: str
    size: int | None = None
    mtime_ns: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def _v1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE library_models (
            path TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            size INTEGER,
            mtime_ns INTEGER,
            meta_json TEXT NOT NULL DEFAULT '{}'
        )""")
    conn.execute("CREATE TABLE library_hidden (path TEXT PRIMARY KEY)")


# An upsert, not INSERT OR REPLACE: REPLACE deletes the row and gives it a new rowid, which would
# move the model to the end of the list.
_UPSERT = ("INSERT INTO library_models VALUES (?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
           "source = excluded.source, size = excluded.size, mtime_ns = excluded.mtime_ns, "
           "meta_json = excluded.meta_json")

# _MIGRATIONS[n] takes the schema from version n to n + 1; append, never edit, released steps.
_MIGRATIONS = (_v1,)


def _record(source: object, size: object, mtime: object, meta: object) -> ModelRecord | None:
    if not isinstance(source, str) or not isinstance(meta, dict):
        return None
    size = size if isinstance(size, int) and not isinstance(size, bool) else None
    mtime = mtime if isinstance(mtime, int) and not isinstance(mtime, bool) else None
    return ModelRecord(source, size, mtime, meta)


def _row(record: ModelRecord) -> tuple[str, int | None, int | None, str]:
    return (record.source, record.size, record.mtime_ns,
            json.dumps(dict(record.meta), sort_keys=True, separators=(",", ":")))


class LibraryStore:
    """The library tables in the SQLite file at `db_path` (created if missing). One per thread;
    open it for one call and close it (it is a context manager). `legacy_json` is the old
    library.json to import once, if there is one."""

    def __init__(self, db_path: str | Path, *, legacy_json: Path | None = None,
                 busy_timeout_s: float = 10.0) -> None:
        self.path = Path(db_path)
        # isolation_level=None: no implicit transactions; every write uses _transaction.
        # DatabaseDamaged when the file is garbage, cut short or has broken pages.
        self._conn = connect(self.path, timeout_s=busy_timeout_s, isolation_level=None)
        try:
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives app crashes
            self._migrate()
            if legacy_json is not None and legacy_json.is_file():
                self._import_legacy(legacy_json)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LibraryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    def _version(self) -> int:
        try:
            row = self._conn.execute("SELECT version FROM openlid_schema WHERE component = ?",
                                     (COMPONENT,)).fetchone()
        except sqlite3.OperationalError:  # no openlid_schema table yet: a new file
            return 0
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        # Every library call opens a store: read the version first, so an up-to-date file
        # costs one SELECT and no write lock.
        if self._version() == SCHEMA_VERSION:
            return
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS openlid_schema ("
                       "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            version = self._version()  # again, under the lock: another process may have won
            if version > SCHEMA_VERSION:
                raise LibraryError(f"the model library in {self.path} was written by a newer "
                                   f"Openlid (schema {version}, this version reads up to "
                                   f"{SCHEMA_VERSION})")
            for step in _MIGRATIONS[version:]:
                step(db)
            db.execute("INSERT INTO openlid_schema(component, version) VALUES (?, ?) "
                       "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                       (COMPONENT, SCHEMA_VERSION))

    # ---- the old library.json ----------------------------------------------------------------

    def _import_legacy(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("version") != _LEGACY_VERSION:
            # Renamed, not deleted: the user may want it; and not read again on every call.
            with contextlib.suppress(OSError):
                path.replace(path.with_name(path.name + ".unreadable"))
            return
        models = data.get("models")
        hidden = data.get("hidden")
        rows = [(key, rec) for key, raw in (models.items() if isinstance(models, dict) else ())
                if isinstance(raw, dict) and (rec := _record(
                    raw.get("source"), raw.get("size"), raw.get("mtime_ns"),
                    raw.get("meta", {}))) is not None]
        hidden_paths = [h for h in hidden if isinstance(h, str)] if isinstance(hidden, list) else []
        with self._transaction() as db:
            # Only into empty tables: a second process (or an old Openlid run after the upgrade
            # rewrote library.json) must not overwrite what the database already knows.
            if db.execute("SELECT EXISTS (SELECT 1 FROM library_models) "
                          "OR EXISTS (SELECT 1 FROM library_hidden)").fetchone()[0]:
                return
            db.executemany("INSERT OR IGNORE INTO library_models VALUES (?, ?, ?, ?, ?)",
                           [(key, *_row(rec)) for key, rec in rows])
            db.executemany("INSERT OR IGNORE INTO library_hidden VALUES (?)",
                           [(h,) for h in hidden_paths])
        # After the commit: a crash before it leaves library.json to import next time.
        with contextlib.suppress(OSError):
            path.replace(path.with_name(path.name + ".migrated"))

    # ---- reading -----------------------------------------------------------------------------

    def records(self) -> dict[str, ModelRecord]:
        """Every row by path, in the order they were first added."""
        out: dict[str, ModelRecord] = {}
        rows = self._conn.execute(
            "SELECT path, source, size, mtime_ns, meta_json FROM library_models ORDER BY rowid")
        for path, source, size, mtime, meta_json in rows:
            try:
                meta = json.loads(meta_json)
            except ValueError:
                meta = None
            # A damaged meta is just a cache miss: the next scan reads the file again.
            rec = _record(source, size, mtime, meta) or ModelRecord(str(source))
            out[path] = rec
        return out

    def hidden(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._conn.execute("SELECT path FROM library_hidden"))

    # ---- writing -----------------------------------------------------------------------------

    def put(self, path: str, record: ModelRecord) -> None:
        """Add or replace `path`'s row, and list it again if it was hidden."""
        with self._transaction() as db:
            db.execute(_UPSERT, (path, *_row(record)))
            db.execute("DELETE FROM library_hidden WHERE path = ?", (path,))

    def forget(self, path: str, *, hide: bool = False) -> None:
        """Drop `path`'s row; with `hide`, also keep a scan of the models folder from listing
        it again."""
        with self._transaction() as db:
            db.execute("DELETE FROM library_models WHERE path = ?", (path,))
            if hide:
                db.execute("INSERT OR IGNORE INTO library_hidden VALUES (?)", (path,))

    def commit_scan(self, before: Mapping[str, ModelRecord], after: Mapping[str, ModelRecord],
                    unhide: frozenset[str] = frozenset()) -> int:
        """Write what a scan found: each path whose record differs between `before` (what the
        scan read) and `after` (what it found; absent means drop the row) is written only if
        its row is still `before`'s and the path is not hidden meanwhile; `unhide` forgets
        hidden paths. Returns the number of rows written; takes no write lock when nothing
        changed."""
        changed = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
        if not changed and not unhide:
            return 0
        written = 0
        with self._transaction() as db:
            db.executemany("DELETE FROM library_hidden WHERE path = ?", [(h,) for h in unhide])
            now = self.records()
            hidden = self.hidden()
            for key in changed:
                if now.get(key) != before.get(key):
                    continue  # changed by someone else since the scan read it: theirs wins
                new = after.get(key)
                if new is None:
                    db.execute("DELETE FROM library_models WHERE path = ?", (key,))
                elif key in hidden:
                    continue
                else:
                    db.execute(_UPSERT, (key, *_row(new)))
                written += 1
        return written
