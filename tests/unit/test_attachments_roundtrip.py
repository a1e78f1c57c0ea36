"""A conversation's documents and images go with it: exported to JSON (images in base64, the
documents' text), imported back (documents chunked again and searchable, images on the right
messages), named in Markdown, checked with clear messages, and deleted with the conversation,
a message or a branch."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from desktop.core.conversations.files import (
    ImportRefused,
    export_json,
    export_markdown,
    import_json,
)
from desktop.core.conversations.images import ImageStore, StoredImage
from desktop.core.conversations.import_attachments import MAX_DOCUMENTS, MAX_IMAGES
from desktop.core.conversations.store import ConversationStore
from desktop.core.documents.extract import Document, Page
from desktop.core.documents.store import DocumentStore
from desktop.core.vision import MAX_IMAGE_BYTES

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg body" * 50
NEEDLE = "The lighthouse keeper's cat is called Marmalade and sleeps on the lens."
LONG = "\n\n".join(
    [
        f"Paragraph {i} about harbours, tides and ropes. " + "filler words here " * 60
        for i in range(12)
    ]
    + [NEEDLE + " " + "more filler " * 40]
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "openlid.sqlite3"


def made(db: Path) -> tuple[int, int, int]:
    """A conversation with an edited question (a branch), images on two messages, a short
    and a long document. Returns (conversation, first question, its reply)."""
    with ConversationStore(db) as store:
        c = store.create("With attachments")
        q = store.append(c.id, "user", "What is in the picture?")
        a = store.append(c.id, "assistant", "A lighthouse.")
        store.edit_message(q.id, "And this one?")
        with ImageStore(db) as images:
            images.save(q.id, [StoredImage("photo.png", PNG), StoredImage("b.jpg", JPEG)])
            images.save(store.messages(c.id)[-1].id, [StoredImage("other.png", PNG)])
        with DocumentStore(db) as docs:
            docs.attach(c.id, Document("note.txt", "TEXT", 12, (Page(0, "A short note."),)))
            docs.attach(
                c.id,
                Document("harbour.pdf", "PDF", 9000, (Page(1, LONG[:3000]), Page(2, LONG[3000:]))),
            )
    return c.id, q.id, a.id


def test_json_round_trip_brings_back_documents_and_images(db: Path) -> None:
    cid, q, _ = made(db)
    with ConversationStore(db) as store:
        data = json.loads(json.dumps(export_json(store, cid)))  # as written to a file
        first = next(m for m in data["messages"] if m["id"] == q)
        assert [im["name"] for im in first["images"]] == ["photo.png", "b.jpg"]
        assert base64.b64decode(first["images"][0]["data"]) == PNG
        imported = import_json(store, data)
        new = store.messages(imported.id)
        with ImageStore(db) as images:
            found = images.load_many(m.id for m in new)
        by_text = {m.content: found.get(m.id, []) for m in new}
        assert by_text["What is in the picture?"] == [
            StoredImage("photo.png", PNG),
            StoredImage("b.jpg", JPEG),
        ]
        assert by_text["And this one?"] == [StoredImage("other.png", PNG)]
        assert by_text["A lighthouse."] == []
    with DocumentStore(db) as docs:
        before, after = docs.documents(cid), docs.documents(imported.id)
        assert [(d.name, d.kind, d.size, d.whole, d.chunks, d.added) for d in after] == [
            (d.name, d.kind, d.size, d.whole, d.chunks, d.added) for d in before
        ]
        assert after[1].chunks > 1  # chunked again: searchable in the new conversation
        hits = docs.search(imported.id, "Marmalade")
        assert hits
        assert NEEDLE in hits[0].chunk.text
        assert hits[0].name == "harbour.pdf"
        assert docs.pages(after[1].id) == docs.pages(before[1].id)


def test_markdown_names_the_images(db: Path) -> None:
    cid, _, _ = made(db)
    with ConversationStore(db) as store:
        text = export_markdown(store, cid)
    assert f"*Image: other.png ({len(PNG):,} bytes)*" in text  # the branch shown
    assert "photo.png" not in text  # on the other branch
    assert "**Attached:** harbour.pdf" in text


def refused(db: Path, change: object) -> list[str]:
    cid, _, _ = made(db)
    with ConversationStore(db) as store:
        data = export_json(store, cid)
        change(data)  # type: ignore[operator]
        n = len(store.list_conversations())
        with pytest.raises(ImportRefused) as caught:
            import_json(store, data)
        assert len(store.list_conversations()) == n  # nothing was stored
    return list(caught.value.problems)


def first_images(data: dict) -> list:  # type: ignore[type-arg]
    return next(m for m in data["messages"] if m.get("images"))["images"]  # type: ignore[no-any-return]


def test_bad_images_are_refused_with_their_path(db: Path) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        images = first_images(data)
        images[0]["data"] = "not base64!"
        images[1]["data"] = base64.b64encode(b"MZ an executable").decode()

    problems = refused(db, change)
    assert any(".images[0].data: not base64" in p for p in problems), problems
    assert any(
        ".images[1].data: 'b.jpg' is not a PNG, JPEG or WebP image" in p for p in problems
    ), problems


def test_image_limits(db: Path) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        images = first_images(data)
        images[0]["data"] = "A" * ((MAX_IMAGE_BYTES + 1024) * 4 // 3)
        images[1]["name"] = "b.gif"
        others = next(m for m in data["messages"] if not m.get("images"))
        others["images"] = [{"name": "x.png", "data": ""}] * (MAX_IMAGES + 1)

    problems = refused(db, change)
    assert any(f"larger than {MAX_IMAGE_BYTES >> 20} MB" in p for p in problems), problems
    assert any("'b.gif' is not a PNG, JPEG or WebP image" in p for p in problems), problems
    assert any(f"more than {MAX_IMAGES} on one message" in p for p in problems), problems


def test_bad_documents_are_refused_with_their_path(db: Path) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        data["attachments"][0]["pages"] = [{"page": -1, "text": "x"}, {"text": 5}]
        data["attachments"][1]["kind"] = "EXE"
        data["attachments"].append("a file")

    problems = refused(db, change)
    assert (
        "attachments[0].pages[0].page: expected a page number (a whole number ≥ 0), "
        "got -1" in problems
    )
    assert "attachments[0].pages[1].text: expected text, got 5" in problems
    assert any(
        p.startswith("attachments[1].kind: expected one of PDF, DOCX, TEXT") for p in problems
    )
    assert 'attachments[2]: expected an object, got "a file"' in problems


def test_too_many_documents(db: Path) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        data["attachments"] = data["attachments"][:1] * (MAX_DOCUMENTS + 1)

    assert f"attachments: {MAX_DOCUMENTS + 1:,} documents, more than {MAX_DOCUMENTS}" in refused(
        db, change
    )


def test_an_export_without_attachments_still_imports(db: Path) -> None:
    cid, _, _ = made(db)
    with ConversationStore(db) as store:
        data = export_json(store, cid)
        del data["attachments"]
        for m in data["messages"]:
            m.pop("images", None)
        imported = import_json(store, data)
    with DocumentStore(db) as docs:
        assert docs.documents(imported.id) == []


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def test_deleting_a_conversation_deletes_its_documents_chunks_and_images(db: Path) -> None:
    cid, _, _ = made(db)
    with ConversationStore(db) as store:
        keep = import_json(store, export_json(store, cid))
        assert count(db, "SELECT count(*) FROM message_images") == 6
        store.delete(cid)
    assert count(db, "SELECT count(*) FROM message_images") == 3  # the copy's
    assert count(db, f"SELECT count(*) FROM documents WHERE conversation_id = {cid}") == 0
    with DocumentStore(db) as docs:
        kept = docs.documents(keep.id)
        assert len(kept) == 2
        assert count(db, "SELECT count(*) FROM document_chunks") == kept[1].chunks
        assert docs.search(keep.id, "Marmalade")


def test_a_deleted_message_takes_its_images(db: Path) -> None:
    _, q, _ = made(db)
    conn = sqlite3.connect(db)  # as a branch deleted would: the message rows go
    conn.execute("PRAGMA foreign_keys=ON")
    with conn:
        conn.execute("UPDATE conversations SET active_leaf_id = NULL")
        conn.execute("UPDATE messages SET parent_id = NULL WHERE parent_id = ?", (q,))
        conn.execute("DELETE FROM messages WHERE id = ?", (q,))
    conn.close()
    with ImageStore(db) as images:
        assert images.load(q) == []
    assert count(db, "SELECT count(*) FROM message_images") == 1


def test_images_orphaned_before_the_trigger_are_pruned(db: Path) -> None:
    made(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DROP TRIGGER message_images_removed")  # as a file from before the fix
        conn.execute("UPDATE conversations SET active_leaf_id = NULL")
        conn.execute("UPDATE messages SET parent_id = NULL")
        conn.execute("DELETE FROM messages")
    conn.close()
    assert count(db, "SELECT count(*) FROM message_images") == 3
    ImageStore(db).close()
    assert count(db, "SELECT count(*) FROM message_images") == 0
