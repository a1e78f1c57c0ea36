"""Embedding vectors of documents' chunks, for retrieval by meaning (cosine similarity) when an
embedding model is chosen; BM25 over the FTS5 index stays the default.

Table (created here if missing, in the documents' own database beside `documents`):

* `document_vectors` — one row per (chunk, embedding model): the chunk's document and index,
  the model's file name and size in bytes (two files of one name are two models), the vector's
  length and the vector itself (float32 BLOB, unit length). A trigger removes a document's
  vectors with it, so they go with their conversation too.

Vectors are made on demand by an `Embed` (texts → unit vectors; in the app and the CLI, the
engine worker's embedding model) and kept, so each chunk is embedded once per model. Pure
over a `DocumentStore`; runs on the thread that owns it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from desktop.core.documents.chunks import Chunk
from desktop.core.documents.store import DocumentStore, Hit

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS document_vectors (
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        model TEXT NOT NULL,
        model_size INTEGER NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (document_id, idx, model, model_size)
    )""",
    """CREATE TRIGGER IF NOT EXISTS document_vectors_removed AFTER DELETE ON documents BEGIN
        DELETE FROM document_vectors WHERE document_id = old.id;
    END""",
)


class EmbeddingError(Exception):
    """The embedding model could not embed; `str()` says why, in words."""


@dataclass(frozen=True)
class EmbeddingModel:
    """Which embedding model made a vector: its file name and size in bytes."""

    name: str
    size: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> EmbeddingModel:
        """The model at `path`; `EmbeddingError` when it is not a readable file."""
        p = os.fspath(path)
        try:
            size = os.stat(p).st_size
        except OSError as exc:
            reason = exc.strerror or exc
            raise EmbeddingError(f"the embedding model {p} cannot be read ({reason})") from exc
        if not os.path.isfile(p):
            raise EmbeddingError(f"the embedding model {p} is not a file")
        return cls(os.path.basename(p), size)


class Embed(Protocol):
    """Texts → one unit-length float32 row each, from `model`; raises `EmbeddingError`."""

    model: EmbeddingModel

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def ensure_schema(store: DocumentStore) -> None:
    with store.transaction():
        for statement in _SCHEMA:
            store.connection.execute(statement)


def missing(
    store: DocumentStore, conversation_id: int | None, model: EmbeddingModel
) -> list[tuple[int, int, str]]:
    """(document id, chunk index, text) of the conversation's chunks `model` has not embedded."""
    return [
        (int(r[0]), int(r[1]), str(r[2]))
        for r in store.connection.execute(
            "SELECT c.document_id, c.idx, c.text FROM document_chunks c"
            " JOIN documents d ON d.id = c.document_id WHERE d.conversation_id IS ?"
            " AND NOT EXISTS (SELECT 1 FROM document_vectors v WHERE v.document_id ="
            " c.document_id AND v.idx = c.idx AND v.model = ? AND v.model_size = ?)"
            " ORDER BY c.document_id, c.idx",
            (conversation_id, model.name, model.size),
        ).fetchall()
    ]


def put(
    store: DocumentStore,
    model: EmbeddingModel,
    keys: Sequence[tuple[int, int]],
    vectors: npt.NDArray[np.float32],
) -> None:
    """Keep `vectors` (one row per (document id, chunk index) of `keys`) for `model`."""
    if len(keys) != len(vectors):
        raise EmbeddingError(f"{len(vectors)} vectors came back for {len(keys)} texts")
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = int(rows.shape[1]) if rows.ndim == 2 else 0
    with store.transaction():
        store.connection.executemany(
            "INSERT OR REPLACE INTO document_vectors(document_id, idx, model, model_size, dim,"
            " vector) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (d, i, model.name, model.size, dim, row.tobytes())
                for (d, i), row in zip(keys, rows, strict=True)
            ],
        )


def nearest(
    store: DocumentStore,
    conversation_id: int | None,
    model: EmbeddingModel,
    query: npt.NDArray[np.float32],
    limit: int,
) -> list[Hit]:
    """The conversation's chunks most similar to `query` (cosine of unit vectors), best first;
    ties in document and chunk order. Vectors of another length than `query`'s are skipped."""
    if limit <= 0:
        return []
    rows = store.connection.execute(
        "SELECT d.id, d.name, c.idx, c.page, c.text, v.vector FROM document_vectors v"
        " JOIN documents d ON d.id = v.document_id"
        " JOIN document_chunks c ON c.document_id = v.document_id AND c.idx = v.idx"
        " WHERE d.conversation_id IS ? AND v.model = ? AND v.model_size = ? AND v.dim = ?"
        " ORDER BY d.id, c.idx",
        (conversation_id, model.name, model.size, int(query.shape[0])),
    ).fetchall()
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(r[5] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    scores = matrix @ np.asarray(query, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")[:limit]
    return [
        Hit(
            int(rows[i][0]),
            str(rows[i][1]),
            Chunk(int(rows[i][2]), int(rows[i][3]), str(rows[i][4])),
            float(scores[i]),
        )
        for i in order
    ]


def search(
    store: DocumentStore, conversation_id: int | None, message: str, embed: Embed, limit: int
) -> list[Hit]:
    """The chunks nearest `message` in meaning: chunks not embedded yet by `embed`'s model are
    embedded first (and kept), then ranked by cosine similarity to the message's vector."""
    ensure_schema(store)
    todo = missing(store, conversation_id, embed.model)
    texts = [text for _, _, text in todo]
    vectors = embed([*texts, message])
    if len(vectors) != len(texts) + 1:
        raise EmbeddingError(f"{len(vectors)} vectors came back for {len(texts) + 1} texts")
    if todo:
        put(store, embed.model, [(d, i) for d, i, _ in todo], vectors[:-1])
    return nearest(store, conversation_id, embed.model, vectors[-1], limit)
