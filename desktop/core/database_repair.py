"""What to do with a damaged database (`database.DatabaseDamaged`): keep it and start fresh
(`reset`), or keep it and copy what can still be read into a new one (`recover`).

The damaged file is never changed, overwritten or deleted: `set_aside` renames it and its
-wal/-shm beside it as `openlid-damaged-<date>-<time>.sqlite3` (a name already taken gets
`-2`, `-3` …). A stale -wal must never stay beside the new file: SQLite would replay its pages
into it.

`recover` reads a scratch copy of the damaged files (opening a WAL database can checkpoint into
it, so the kept copy is never opened), table by table in rowid order, into a fresh database
with the current schema (made by opening every store on it); a page that fails is stepped over
(`database_salvage`). Rows whose values break the schema are left out. Then references to rows
that were lost are repaired (messages whose conversation was lost get a "Recovered
conversation"; a message whose parent was lost starts its own branch; a conversation's shown
branch ends at its newest message; images whose message was lost, and documents whose
conversation was lost, are left out and said), and the report says how many rows of each kind
came back, of how many (when SQLite can still count them through an index).

Attached documents come back from their rows (their text is kept whole in each row); their
FTS5 search index (`document_chunks` and its shadow tables) is never read from the damaged
file: it is made again from the recovered text, so a broken index page loses nothing. Images
(`message_images`) are copied row by row like messages.

Why not the `sqlite3` program's `.recover`: it is missing on many machines, and Debian's 3.40.1
fails with "SQL logic error" even on a healthy file (measured), so Openlid reads the file itself.

Pure; blocking (a large file takes seconds); any thread. Nothing else should have the file open:
the window runs this before it opens the database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from desktop.core import database_salvage as S
from desktop.core.conversations.images import ImageStore
from desktop.core.conversations.store import ConversationStore
from desktop.core.database import connect, forget
from desktop.core.documents.chunks import is_short, split_document
from desktop.core.documents.extract import Document, Page
from desktop.core.documents.store import DocumentStore
from desktop.core.downloads.store import JobStore
from desktop.core.library.store import LibraryStore

__all__ = ["KINDS", "RepairReport", "count_rows", "recover", "reset", "set_aside"]

# The tables of the shared file and what a person calls their rows (singular, plural).
KINDS: tuple[tuple[str, str, str], ...] = (
    ("conversations", "conversation", "conversations"),
    ("messages", "message", "messages"),
    ("message_steps", "saved reply's steps", "saved replies' steps"),
    ("message_images", "image", "images"),
    ("documents", "attached document", "attached documents"),
    ("library_models", "model in the library", "models in the library"),
    ("library_hidden", "hidden model", "hidden models"),
    ("download_jobs", "download", "downloads"),
    ("download_files", "download file", "download files"),
)
_COMPANIONS = ("-wal", "-shm", "-journal")
RECOVERED_TITLE = "Recovered conversation"


def words(table: str, n: int) -> str:
    """'1 message', '2,000 messages'."""
    for name, one, many in KINDS:
        if name == table:
            return f"{n:,} {one if n == 1 else many}"
    return f"{n:,} rows of {table}"


@dataclass(frozen=True)
class RepairReport:
    """What `reset` or `recover` did. `recovered`: (table, rows now in the new file, rows
    SQLite could count in the damaged one or None), for every kind; empty after a reset."""

    path: Path
    kept: Path | None
    recovered: tuple[tuple[str, int, int | None], ...] = ()
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return {table: n for table, n, _ in self.recovered}

    def summary(self) -> str:
        """The report in a few plain lines."""
        lines = [f"The damaged file is kept as {self.kept}." if self.kept is not None
                 else "There was no database file to keep."]
        if not self.recovered:
            lines.append(f"A new, empty database is in place at {self.path}.")
            return "\n".join(lines)
        got = [words(t, n) if counted is None or counted <= n else f"{n:,} of {words(t, counted)}"
               for t, n, counted in self.recovered if n or counted]
        lines.append(f"Recovered into {self.path}: " + ", ".join(got) + "." if got else
                     "Nothing could be read from it; the new database is empty.")
        lost = [words(t, counted - n) for t, n, counted in self.recovered
                if counted is not None and counted > n]
        if lost:
            lines.append("Could not be read: " + ", ".join(lost) + ".")
        lines.extend(self.notes)
        return "\n".join(lines)


def _companion(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _move_no_overwrite(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, refusing (FileExistsError) to replace anything at `dst`."""
    try:
        os.link(src, dst)  # fails if dst exists, unlike rename on POSIX
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: check, then rename
        if dst.exists():
            raise FileExistsError(f"{dst} already exists") from None
        os.rename(src, dst)
        return
    os.unlink(src)


def set_aside(path: Path, *, now: float | None = None) -> Path:
    """Rename the database at `path` and its -wal/-shm to a timestamped name beside it; returns
    the kept file's path. Never overwrites; FileNotFoundError when there is no file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"there is no database at {path}")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    for n in itertools.count(1):
        kept = path.with_name(f"{path.stem}-damaged-{stamp}{'' if n == 1 else f'-{n}'}"
                              f"{path.suffix}")
        if any(_companion(kept, s).exists() for s in ("", *_COMPANIONS)):
            continue
        try:
            _move_no_overwrite(path, kept)
        except FileExistsError:
            continue
        break
    forget(kept)
    for suffix in _COMPANIONS:
        if _companion(path, suffix).exists():
            _move_no_overwrite(_companion(path, suffix), _companion(kept, suffix))
    return kept


def _new_file(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-new-", suffix=path.suffix,
                                dir=path.parent)  # mode 0600
    os.close(fd)
    fresh = Path(name)
    # Every store creates its own tables, so the new file has exactly today's schema.
    ConversationStore(fresh).close()
    ImageStore(fresh).close()  # after the messages table: its trigger needs it
    DocumentStore(fresh).close()
    LibraryStore(fresh).close()
    JobStore(fresh).close()
    return fresh


def _remove(path: Path) -> None:
    for suffix in ("", *_COMPANIONS):
        with contextlib.suppress(OSError):
            _companion(path, suffix).unlink()


def _put_in_place(fresh: Path, path: Path) -> Path | None:
    """Set the file at `path` aside (if any) and move `fresh` there."""
    kept = set_aside(path) if path.exists() else None
    _move_no_overwrite(fresh, path)
    for suffix in _COMPANIONS:  # normally none: the last close checkpointed and removed them
        if _companion(fresh, suffix).exists():
            _move_no_overwrite(_companion(fresh, suffix), _companion(path, suffix))
    forget(path)
    return kept


def reset(path: Path) -> RepairReport:
    """Keep the database at `path` aside and put an empty one with today's schema there."""
    path = Path(path)
    fresh = _new_file(path)
    try:
        kept = _put_in_place(fresh, path)
    except BaseException:
        _remove(fresh)
        raise
    return RepairReport(path, kept)


def count_rows(path: Path) -> dict[str, int]:
    """How many rows of each kind the database at `path` holds (kinds whose table is missing
    are left out). Raises DatabaseDamaged like every open."""
    conn = connect(Path(path))
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                              "WHERE type = 'table'")}
        return {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])
                for t, _, _ in KINDS if t in present}
    finally:
        conn.close()


def recover(path: Path) -> RepairReport:
    """Keep the damaged database at `path` aside and put in its place a new one holding every
    row that could still be read. Raises OSError (in words) when the files cannot be copied or
    renamed; the damaged file is then still where it was."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"there is no database at {path}")
    with tempfile.TemporaryDirectory(prefix=".openlid-recover-", dir=path.parent) as scratch:
        source = Path(scratch) / path.name
        for suffix in ("", "-wal"):  # the -shm is only an index of the -wal; SQLite rebuilds it
            if _companion(path, suffix).exists():
                shutil.copyfile(_companion(path, suffix), _companion(source, suffix))
        fresh = _new_file(path)
        try:
            recovered, notes = _copy_all(source, fresh)
            kept = _put_in_place(fresh, path)
        except BaseException:
            _remove(fresh)
            raise
    return RepairReport(path, kept, recovered, notes)


# ---- copying what is left ----------------------------------------------------------------------

def _copy_all(source: Path, fresh: Path
              ) -> tuple[tuple[tuple[str, int, int | None], ...], tuple[str, ...]]:
    src = S.open_source(source)
    dst = sqlite3.connect(fresh, isolation_level=None)  # foreign keys off while rows arrive
    counted: dict[str, int | None] = {}
    try:
        dst.execute("BEGIN IMMEDIATE")
        for table, _, _ in KINDS:
            columns = S.columns(src, table) if src is not None else []
            wanted = [c for c in S.columns(dst, table) if c in columns]
            counted[table] = S.count(src, table) if src is not None and wanted else None
            if src is not None and wanted:
                S.copy_table(src, dst, table, wanted)
        notes = (*_repair_references(dst), *_index_documents(dst))
        dst.execute("COMMIT")
        recovered = tuple(
            (t, int(dst.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]), counted[t])
            for t, _, _ in KINDS)
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        dst.close()
        if src is not None:
            src.close()
    return recovered, notes


def _repair_references(db: sqlite3.Connection) -> tuple[str, ...]:
    """Make every reference point at a row that exists, saying what was done."""
    notes: list[str] = []
    orphans = db.execute(
        "SELECT m.conversation_id, min(m.created), max(m.created), count(*) FROM messages m "
        "WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id) "
        "GROUP BY m.conversation_id").fetchall()
    for conversation_id, first, last, _ in orphans:
        db.execute("INSERT INTO conversations(id, title, created, updated) VALUES (?, ?, ?, ?)",
                   (conversation_id, RECOVERED_TITLE, first, last))
    if orphans:
        n = sum(int(r[3]) for r in orphans)
        notes.append(f"{words('messages', n)} whose conversation was lost "
                     f"{'is' if n == 1 else 'are'} in {words('conversations', len(orphans))} "
                     f"titled '{RECOVERED_TITLE}'.")
    cut = db.execute(
        "UPDATE messages SET parent_id = NULL WHERE parent_id IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM messages p WHERE p.id = messages.parent_id "
        "AND p.conversation_id = messages.conversation_id)").rowcount
    if cut:
        one = cut == 1
        notes.append(f"{words('messages', cut)} lost the message before "
                     f"{'it' if one else 'them'} and now {'starts' if one else 'start'} a branch "
                     f"of {'its' if one else 'their'} own.")
    # The branch shown: the one the file said if it survived, else the newest message's.
    db.execute(
        "UPDATE conversations SET active_leaf_id = (SELECT max(id) FROM messages m "
        "WHERE m.conversation_id = conversations.id) WHERE active_leaf_id IS NULL OR NOT EXISTS ("
        "SELECT 1 FROM messages m WHERE m.id = conversations.active_leaf_id "
        "AND m.conversation_id = conversations.id)")
    dropped = db.execute("DELETE FROM message_steps WHERE message_id NOT IN "
                         "(SELECT id FROM messages)").rowcount
    if dropped:
        notes.append(f"{words('message_steps', dropped)} left out: the message was lost.")
    dropped = db.execute("DELETE FROM message_images WHERE message_id NOT IN "
                         "(SELECT id FROM messages)").rowcount
    if dropped:
        notes.append(f"{words('message_images', dropped)} left out: the message was lost.")
    dropped = db.execute("DELETE FROM documents WHERE conversation_id IS NOT NULL AND "
                         "conversation_id NOT IN (SELECT id FROM conversations)").rowcount
    if dropped:
        notes.append(f"{words('documents', dropped)} left out: the conversation was lost.")
    dropped = db.execute("DELETE FROM download_files WHERE job_id NOT IN "
                         "(SELECT id FROM download_jobs)").rowcount
    if dropped:
        notes.append(f"{words('download_files', dropped)} left out: the download was lost "
                     "(any partial files stay on disk).")
    # Anything else the schema's foreign keys would refuse (none today; a safety net).
    for table, rowid, _, _ in db.execute("PRAGMA foreign_key_check").fetchall():
        db.execute(f'DELETE FROM "{table}" WHERE rowid = ?', (rowid,))
    return tuple(notes)


def _index_documents(db: sqlite3.Connection) -> tuple[str, ...]:
    """The recovered documents' search index made again from their text (never copied from the
    damaged file); a document whose text cannot be read is left out and said."""
    broken: list[int] = []
    indexed = 0
    for row in db.execute("SELECT id, name, kind, size, pages_json FROM documents").fetchall():
        try:
            pages = tuple(Page(int(n), str(t)) for n, t in json.loads(row[4]))
        except (TypeError, ValueError):
            broken.append(int(row[0]))
            continue
        document = Document(str(row[1]), str(row[2]), int(row[3]), pages)
        whole = is_short(document)
        db.execute("UPDATE documents SET whole = ?, chars = ? WHERE id = ?",
                   (int(whole), document.chars, row[0]))
        if not whole:
            db.executemany(
                "INSERT INTO document_chunks(text, document_id, page, idx) VALUES (?, ?, ?, ?)",
                [(c.text, row[0], c.page, c.index) for c in split_document(document)])
            indexed += 1
    notes = []
    if broken:
        db.executemany("DELETE FROM documents WHERE id = ?", [(i,) for i in broken])
        notes.append(f"{words('documents', len(broken))} left out: the text stored with "
                     f"{'it' if len(broken) == 1 else 'them'} could not be read.")
    if indexed:
        notes.append(f"The search index of {words('documents', indexed)} was made again from "
                     "their text.")
    return tuple(notes)
