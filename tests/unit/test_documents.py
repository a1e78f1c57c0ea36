"""Attached documents: read (txt, md, code, pdf, docx, and the files that cannot be read),
split, stored with their conversation, searched by FTS5 BM25, laid into the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.conversations.store import ConversationStore
from desktop.core.documents import extract
from desktop.core.documents.chunks import CHUNK_CHARS, split_document
from desktop.core.documents.extract import DocumentError, read_document
from desktop.core.documents.retrieval import match_query, retrieve
from desktop.core.documents.store import DocumentStore
from tests.unit.documents_files import write_docx, write_encrypted_pdf, write_pdf

# A small corpus: each paragraph about one thing, so a question names exactly one chunk.
TOPICS = {
    "volcano": "Mount Kilauea erupts basaltic lava that flows into the ocean near Hilo.",
    "bakery": "The sourdough starter is fed rye flour every morning at six o'clock.",
    "rocket": "The second stage engine burns liquid oxygen and kerosene for 340 seconds.",
    "garden": "Tomatoes need staking once the vines reach forty centimetres in height.",
    "chess": "The Najdorf variation of the Sicilian defence begins with a6 on move five.",
    "violin": "A violin bow is strung with horsehair rubbed with rosin before playing.",
}


def long_text(filler_words: int = 170) -> str:
    """One paragraph per topic, each padded to about a chunk with neutral filler."""
    filler = " ".join(["lorem ipsum dolor sit amet"] * (filler_words // 5))
    return "\n\n".join(f"{fact} {filler}" for fact in TOPICS.values())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "openlid.sqlite3"


def test_text_markdown_and_code_read_as_text(tmp_path: Path) -> None:
    for name, body in (
        ("a.txt", "plain words\r\nline two"),
        ("b.md", "# Title\n\nbody"),
        ("c.py", "def f():\n    return 1\n"),
    ):
        (tmp_path / name).write_text(body, encoding="utf-8")
        doc = read_document(tmp_path / name)
        assert doc.kind == extract.TEXT
        assert doc.pages[0].number == 0
        assert "\r" not in doc.text
        assert doc.text.split()[0] in ("plain", "#", "def")


def test_pdf_pages_and_docx_paragraphs(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "r.pdf", [["First page words."], ["Second (page) words."]])
    doc = read_document(pdf)
    assert doc.kind == extract.PDF
    assert [p.number for p in doc.pages] == [1, 2]
    assert "Second (page) words." in doc.pages[1].text
    word = read_document(write_docx(tmp_path / "w.docx", ["Alpha paragraph", "Beta"]))
    assert word.kind == extract.DOCX
    assert word.text == "Alpha paragraph\nBeta"


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("bin.dat", b"\x7fELF\x00\x01\x02" * 50, "binary"),
        ("latin.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8"),
        ("empty.md", b"  \n\n ", "empty"),
        ("bad.pdf", b"%PDF-1.4\n this is not really a pdf", "cannot be read as a PDF"),
        ("bad.docx", b"PK not a zip", "cannot be read as a Word document"),
        ("old.doc", b"\xd0\xcf\x11\xe0", "legacy Word"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, name: str, body: bytes, words: str) -> None:
    (tmp_path / name).write_bytes(body)
    with pytest.raises(DocumentError, match=words) as info:
        read_document(tmp_path / name)
    assert name in str(info.value)


def test_encrypted_scanned_missing_and_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = write_pdf(tmp_path / "p.pdf", [["Secret plans."]])
    locked = write_encrypted_pdf(plain, tmp_path / "locked.pdf", "hunter2")
    with pytest.raises(DocumentError, match="password-protected"):
        read_document(locked)
    with pytest.raises(DocumentError, match="no text layer"):
        read_document(write_pdf(tmp_path / "scan.pdf", [[]]))
    with pytest.raises(DocumentError, match="does not exist"):
        read_document(tmp_path / "gone.txt")
    monkeypatch.setattr(extract, "MAX_FILE_BYTES", 100)
    (tmp_path / "big.txt").write_text("x" * 200)
    with pytest.raises(DocumentError, match="too large"):
        read_document(tmp_path / "big.txt")


def test_chunks_stay_within_size_and_page(tmp_path: Path) -> None:
    pages = [[f"Page {n} sentence {i} about things." for i in range(60)] for n in (1, 2)]
    doc = read_document(write_pdf(tmp_path / "long.pdf", pages))
    chunks = split_document(doc)
    assert len(chunks) > 2
    assert all(len(c.text) <= CHUNK_CHARS for c in chunks)
    assert {c.page for c in chunks} == {1, 2}
    assert all(f"Page {c.page} " in c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_match_query_drops_stop_words() -> None:
    assert match_query("What is the Najdorf variation?") == '"najdorf" OR "variation"'
    assert match_query("? !") == ""


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("How long does the second stage engine burn?", "rocket"),
        ("What do I feed the sourdough starter?", "bakery"),
        ("Which move starts the Najdorf?", "chess"),
        ("what is rubbed on the horsehair of a bow", "violin"),
    ],
)
def test_retrieval_finds_the_chunk_a_question_names(
    tmp_path: Path, db: Path, question: str, topic: str
) -> None:
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        cid = conversations.create("c").id
        stored = docs.attach(cid, read_document(tmp_path / "corpus.md"))
        assert not stored.whole
        assert stored.chunks == len(TOPICS)
        excerpts = retrieve(docs, cid, question)
    assert excerpts, question
    best = excerpts[0]
    assert TOPICS[topic] in best.text
    assert best.file == "corpus.md"
    assert best.score is not None
    assert best.score > 0
    assert all(best.score >= e.score for e in excerpts if e.score is not None)


def test_short_documents_go_whole_and_pending_ones_are_not_kept(tmp_path: Path, db: Path) -> None:
    (tmp_path / "note.txt").write_text("The door code is 4417.", encoding="utf-8")
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    note, corpus = (read_document(tmp_path / n) for n in ("note.txt", "corpus.md"))
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        cid = conversations.create("c").id
        excerpts = retrieve(docs, cid, "tomatoes staking height", pending=[note, corpus])
        assert [e.whole for e in excerpts][:1] == [True]
        assert excerpts[0].text == "The door code is 4417."
        assert TOPICS["garden"] in excerpts[1].text
        assert docs.documents(cid) == []  # searched provisionally, nothing stored
        assert retrieve(docs, None, "tomatoes", pending=[corpus])
        assert docs.documents(None) == []


def test_documents_are_deleted_with_their_conversation(tmp_path: Path, db: Path) -> None:
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        keep, drop = conversations.create("keep").id, conversations.create("drop").id
        for cid in (keep, drop):
            docs.attach(cid, read_document(tmp_path / "corpus.md"))
        conversations.delete(drop)
        assert docs.documents(drop) == []
        assert retrieve(docs, drop, "sourdough") == ()
        assert len(docs.documents(keep)) == 1
        assert retrieve(docs, keep, "sourdough")
        count = docs._conn.execute("SELECT count(*) FROM document_chunks").fetchone()[0]
        assert count == len(TOPICS)  # the deleted conversation's chunks went with it
