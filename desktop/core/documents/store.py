"""Attached documents in Openlid's database, keyed by conversation, with an SQLite FTS5 index of
their chunks searched by BM25.

Tables (created here if missing, in the shared file opened through `core.database`):

* `documents` — one row per attached file: its conversation (deleted with it: `ON DELETE
  CASCADE`, enforced by the conversation store's connection, which turns foreign keys on), name,
  kind, size, whether it is sent whole, and its extracted pages as JSON (so an export carries
  the text even when the file has moved).
* `document_chunks` — an FTS5 table (porter stemming over unicode61) of a long document's chunks
  with their document, page and index; a trigger removes a document's chunks with it.

`provisional(...)` adds documents inside a transaction that is rolled back: the chat searches
files attached to a message not sent yet together with the stored ones, and nothing stays when
the message is refused. One connection per store, used on the thread that opened it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core.database import connect
from desktop.core.documents.chunks import Chunk, is_short, split_document
from desktop.core.documents.extract import Document, Page

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS documents (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        added REAL NOT NULL,
        whole INTEGER NOT NULL,
        chars INTEGER NOT NULL,
        pages_json TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS documents_by_conversation ON documents(conversation_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS document_chunks USING fts5(
        text, document_id UNINDEXED, page UNINDEXED, idx UNINDEXED,
        tokenize = 'porter unicode61')""",
    """CREATE TRIGGER IF NOT EXISTS document_chunks_removed AFTER DELETE ON documents BEGIN
        DELETE FROM document_chunks WHERE document_id = old.id;
    END""",
)


@dataclass(frozen=True)
class StoredDocument:
    """An attached document as listed: what the chat and the export say about it."""

    id: int
    conversation_id: int | None
    name: str
    kind: str
    size: int
    whole: bool  # short: sent whole every turn; long: its chunks are searched
    chars: int
    chunks: int
    added: float


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search, with its BM25 score (higher: more relevant)."""

    document_id: int
    name: str
    chunk: Chunk
    score: float


class DocumentStore:
    """Attached documents in the SQLite file at `path`. One per thread."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._conn = connect(self.path, timeout_s=busy_timeout_s, isolation_level=None)
        try:
            with self._transaction():
                for statement in _SCHEMA:
                    self._conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's connection, for the documents' other tables (`vectors`)."""
        return self._conn

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction (part of the open one inside `provisional`)."""
        return self._transaction()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._conn.in_transaction:  # inside provisional(): part of its transaction
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ---- writing --------------------------------------------------------------------------

    def attach(self, conversation_id: int | None, document: Document, *,
               added: float | None = None) -> StoredDocument:
        """Store `document` with the conversation; a long one's chunks are indexed. `added`:
        when it was attached (an import keeps the original's; now by default)."""
        whole = is_short(document)
        chunks = () if whole else split_document(document)
        pages = json.dumps([[p.number, p.text] for p in document.pages], ensure_ascii=False)
        with self._transaction():
            cur = self._conn.execute(
                "INSERT INTO documents(conversation_id, name, kind, size, added, whole, chars,"
                " pages_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    document.name,
                    document.kind,
                    document.size,
                    time.time() if added is None else added,
                    int(whole),
                    document.chars,
                    pages,
                ),
            )
            document_id = int(cur.lastrowid or 0)
            self._conn.executemany(
                "INSERT INTO document_chunks(text, document_id, page, idx) VALUES (?, ?, ?, ?)",
                [(c.text, document_id, c.page, c.index) for c in chunks],
            )
        return self.get(document_id)

    def remove(self, document_id: int) -> None:
        with self._transaction():
            self._conn.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    @contextlib.contextmanager
    def provisional(
        self, conversation_id: int | None, documents: Sequence[Document]
    ) -> Iterator[list[StoredDocument]]:
        """`documents` attached for the length of the block only (rolled back after it)."""
        if not documents:
            yield []
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield [self.attach(conversation_id, d) for d in documents]
        finally:
            self._conn.execute("ROLLBACK")

    # ---- reading --------------------------------------------------------------------------

    def _stored(self, row: Sequence[Any]) -> StoredDocument:
        count = self._conn.execute(
            "SELECT count(*) FROM document_chunks WHERE document_id = ?", (row[0],)
        ).fetchone()[0]
        return StoredDocument(
            int(row[0]),
            row[1],
            str(row[2]),
            str(row[3]),
            int(row[4]),
            bool(row[5]),
            int(row[6]),
            int(count),
            float(row[7]),
        )

    _COLUMNS = "id, conversation_id, name, kind, size, whole, chars, added"

    def get(self, document_id: int) -> StoredDocument:
        row = self._conn.execute(
            f"SELECT {self._COLUMNS} FROM documents WHERE id = ?", (document_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no document {document_id}")
        return self._stored(row)

    def documents(self, conversation_id: int | None) -> list[StoredDocument]:
        """The conversation's documents in the order they were attached."""
        rows = self._conn.execute(
            f"SELECT {self._COLUMNS} FROM documents WHERE conversation_id IS ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        return [self._stored(r) for r in rows]

    def pages(self, document_id: int) -> tuple[Page, ...]:
        row = self._conn.execute(
            "SELECT pages_json FROM documents WHERE id = ?", (document_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no document {document_id}")
        return tuple(Page(int(n), str(t)) for n, t in json.loads(row[0]))

    def search(self, conversation_id: int | None, match: str, limit: int = 3) -> list[Hit]:
        """The chunks of the conversation's long documents that best match the FTS5 query
        `match`, best first; BM25 scores made positive (SQLite's bm25() is lower-is-better)."""
        if not match or limit <= 0:
            return []
        rows = self._conn.execute(
            "SELECT d.id, d.name, c.idx, c.page, c.text, bm25(document_chunks) AS rank"
            " FROM document_chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE document_chunks MATCH ? AND d.conversation_id IS ?"
            " ORDER BY rank, d.id, c.idx LIMIT ?",
            (match, conversation_id, limit),
        ).fetchall()
        return [
            Hit(int(r[0]), str(r[1]), Chunk(int(r[2]), int(r[3]), str(r[4])), -float(r[5]))
            for r in rows
        ]

    def export_rows(self, conversation_id: int) -> list[dict[str, Any]]:
        """The conversation's documents as JSON-ready dicts, with their pages' text."""
        return [
            {
                "name": d.name,
                "kind": d.kind,
                "size": d.size,
                "added": d.added,
                "whole": d.whole,
                "chunks": d.chunks,
                "pages": [{"page": p.number, "text": p.text} for p in self.pages(d.id)],
            }
            for d in self.documents(conversation_id)
        ]
