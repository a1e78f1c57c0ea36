"""A damaged database with attached documents (an FTS5 index and its shadow tables) and message
images: recovery brings the documents back with a search index made again from their text, the
images row by row, and says in words what could not be read. Real files damaged on disk."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from desktop.core import database_repair
from desktop.core.conversations.images import ImageStore, StoredImage
from desktop.core.conversations.store import ConversationStore
from desktop.core.documents.extract import Document, Page
from desktop.core.documents.store import DocumentStore
from tests import dbfaults

DOCS = 6
FILLER = "tides harbours ropes and anchors " * 40


def image(n: int) -> bytes:
    """A PNG-signed ~1.5 KB image that names itself, so a page holding it can be found."""
    return b"\x89PNG\r\n\x1a\n" + f"image-{n:03d}|".encode() * 100


def long_text(d: int) -> str:
    return "\n\n".join(f"doc{d} paragraph {p} chunkmark-{d}-{p} {FILLER}" for p in range(8))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = dbfaults.populate(tmp_path_factory.mktemp("healthy") / "openlid.sqlite3")
    with ConversationStore(path) as store, ImageStore(path) as images, DocumentStore(path) as docs:
        conversations = store.list_conversations()
        for n, c in enumerate(conversations):
            images.save(store.messages(c.id)[0].id, [StoredImage(f"{n}.png", image(n))])
        for d in range(DOCS):
            docs.attach(
                conversations[d].id,
                Document(f"doc{d}.txt", "TEXT", 20_000, (Page(0, long_text(d)),)),
            )
        docs.attach(conversations[0].id, Document("short.md", "TEXT", 9, (Page(0, "short"),)))
    dbfaults.checkpoint(path)
    return path


@pytest.fixture
def db(healthy: Path, tmp_path: Path) -> Path:
    path = tmp_path / "data" / "openlid.sqlite3"
    path.parent.mkdir()
    shutil.copyfile(healthy, path)
    return path


def chunk_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM document_chunks").fetchone()[0])
    finally:
        conn.close()


def test_a_broken_search_index_is_made_again_from_the_text(db: Path) -> None:
    chunks = chunk_count(db)
    dbfaults.break_page(db, "chunkmark-2-3 ")  # a page of the FTS5 content shadow table
    report = database_repair.recover(db)
    counts = report.counts()
    assert counts["documents"] == DOCS + 1
    assert counts["message_images"] == dbfaults.CONVERSATIONS
    assert (
        "The search index of 6 attached documents was made again from their text."
        in report.summary()
    )
    assert chunk_count(db) == chunks
    with ConversationStore(db) as store, DocumentStore(db) as docs:
        c2 = store.list_conversations()[2]  # as listed when the documents were attached
        hits = docs.search(c2.id, "chunkmark")
        assert hits
        assert hits[0].name == "doc2.txt"
        store.delete(c2.id)  # still deleted with their conversation
        assert docs.documents(c2.id) == []
    assert chunk_count(db) == chunks - chunks // DOCS


def test_a_broken_image_page_loses_only_those_images(db: Path) -> None:
    dbfaults.break_page(db, "image-017|")
    report = database_repair.recover(db)
    counts = report.counts()
    assert 0 < counts["message_images"] < dbfaults.CONVERSATIONS
    summary = report.summary()
    assert f"of {dbfaults.CONVERSATIONS} images" in summary
    assert "Could not be read:" in summary
    assert counts["documents"] == DOCS + 1
    with ConversationStore(db) as store, ImageStore(db) as images:
        found = {
            im.name: im.data
            for c in store.list_conversations()
            for im in images.load(store.messages(c.id)[0].id)
        }
    assert "17.png" not in found
    assert found["0.png"] == image(0)
    assert found[f"{dbfaults.CONVERSATIONS - 1}.png"] == image(dbfaults.CONVERSATIONS - 1)


def test_a_broken_documents_page_is_said(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:  # make the documents table's page findable: its rows hold the pages' text
        conn.execute("UPDATE documents SET name = 'docs-table-mark' WHERE name = 'short.md'")
    conn.close()
    dbfaults.break_page(db, "docs-table-mark")
    report = database_repair.recover(db)
    counts = report.counts()
    assert counts["documents"] < DOCS + 1
    assert "attached documents" in report.summary()
    assert chunk_count(db) == sum(  # the index holds exactly the documents that came back
        d.chunks for d in _all_documents(db)
    )


def _all_documents(path: Path) -> list:  # type: ignore[type-arg]
    with ConversationStore(path) as store, DocumentStore(path) as docs:
        return [d for c in store.list_conversations() for d in docs.documents(c.id)]


def test_images_and_documents_whose_owner_was_lost_are_left_out_and_said(tmp_path: Path) -> None:
    path = tmp_path / "openlid.sqlite3"
    with ConversationStore(path) as store, ImageStore(path) as images, DocumentStore(path) as docs:
        c = store.create("kept")
        m = store.append(c.id, "user", "hello")
        images.save(m.id, [StoredImage("a.png", image(1))])
        docs.attach(c.id, Document("a.txt", "TEXT", 5, (Page(0, "hello"),)))
    conn = sqlite3.connect(path)  # rows whose owner is gone, as damage leaves them
    with conn:
        conn.execute("INSERT INTO message_images VALUES (999, 0, 'lost.png', x'89')")
        conn.execute(
            "INSERT INTO documents(conversation_id, name, kind, size, added, whole, "
            "chars, pages_json) VALUES (777, 'lost.txt', 'TEXT', 1, 0, 1, 1, '[]')"
        )
        conn.execute(
            "INSERT INTO documents(conversation_id, name, kind, size, added, whole, "
            f"chars, pages_json) VALUES ({c.id}, 'bad.txt', 'TEXT', 1, 0, 1, 1, '[[')"
        )
    conn.close()
    report = database_repair.recover(path)
    summary = report.summary()
    assert "1 image left out: the message was lost." in summary
    assert "1 attached document left out: the conversation was lost." in summary
    assert "1 attached document left out: the text stored with it could not be read." in summary
    assert report.counts()["message_images"] == 1
    assert [d.name for d in _all_documents(path)] == ["a.txt"]
