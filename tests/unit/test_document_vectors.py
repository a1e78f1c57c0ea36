"""Retrieval by meaning: chunk vectors stored per embedding model, ranked by cosine similarity,
deleted with their document; the X-ray's score says "cosine". The embedder here is a plain
bag-of-words one (the engine's real model is tested in tests/engine/test_embedding.py)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from desktop.core.conversations import xray as X
from desktop.core.conversations.store import ConversationStore
from desktop.core.conversations.xray_record import _doc_ref
from desktop.core.documents import prompt as D
from desktop.core.documents import vectors as V
from desktop.core.documents.extract import read_document
from desktop.core.documents.retrieval import Excerpt, retrieve
from desktop.core.documents.store import DocumentStore
from tests.unit.test_documents import TOPICS, long_text


class BagOfWords:
    """Hashed word counts, normalised: equal words, near vectors."""

    def __init__(self, name: str = "bow.gguf", dim: int = 256) -> None:
        self.model = V.EmbeddingModel(name, 1234)
        self.dim = dim
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(tuple(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(out, texts, strict=True):
            for word in re.findall(r"\w+", text.lower()):
                if word not in ("lorem", "ipsum", "dolor", "sit", "amet"):
                    row[zlib.crc32(word.encode()) % self.dim] += 1
            norm = np.linalg.norm(row)
            if norm:
                row /= norm
        return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    return tmp_path / "openlid.sqlite3"


def _count(docs: DocumentStore) -> int:
    return int(docs.connection.execute("SELECT count(*) FROM document_vectors").fetchone()[0])


def test_cosine_ranking_equals_numpy_and_chunks_are_embedded_once(db: Path) -> None:
    embed = BagOfWords()
    question = "When is the sourdough starter fed with rye?"
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        cid = conversations.create("c").id
        docs.attach(cid, read_document(db.parent / "corpus.md"))
        excerpts = retrieve(docs, cid, question, embed=embed, top=len(TOPICS))
        assert len(embed.calls[0]) == len(TOPICS) + 1  # every chunk, then the question
        assert _count(docs) == len(TOPICS)
        again = retrieve(docs, cid, question, embed=embed, top=len(TOPICS))
        assert embed.calls[1] == (question,)  # kept: only the question is embedded again
    assert again == excerpts
    assert {e.kind for e in excerpts} == {"cosine"}
    assert TOPICS["bakery"] in excerpts[0].text
    chunks = embed.calls[0][:-1]
    vectors = embed([*chunks, question])
    scores = vectors[:-1] @ vectors[-1]
    order = np.argsort(-scores, kind="stable")
    assert [e.text for e in excerpts] == [chunks[i] for i in order]
    assert [e.score for e in excerpts] == pytest.approx([float(scores[i]) for i in order])


def test_bm25_stays_the_default_and_models_keep_their_own_vectors(db: Path) -> None:
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        cid = conversations.create("c").id
        docs.attach(cid, read_document(db.parent / "corpus.md"))
        assert {e.kind for e in retrieve(docs, cid, "sourdough rye")} == {"BM25"}
        retrieve(docs, cid, "rye", embed=BagOfWords("a.gguf"))
        retrieve(docs, cid, "rye", embed=BagOfWords("b.gguf", dim=64))
        assert _count(docs) == 2 * len(TOPICS)
        # vectors of another length than the question's are never compared with it
        other = V.EmbeddingModel("b.gguf", 1234)
        assert V.nearest(docs, cid, other, np.ones(256, np.float32), 3) == []


def test_vectors_go_with_their_document_and_conversation(db: Path) -> None:
    embed = BagOfWords()
    corpus = read_document(db.parent / "corpus.md")
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        keep, drop = conversations.create("keep").id, conversations.create("drop").id
        removed = docs.attach(keep, corpus)
        docs.attach(keep, corpus)
        docs.attach(drop, corpus)
        for cid in (keep, drop):
            retrieve(docs, cid, "rocket", embed=embed)
        assert _count(docs) == 3 * len(TOPICS)
        docs.remove(removed.id)
        conversations.delete(drop)
        assert _count(docs) == len(TOPICS)
        # a pending document's vectors are rolled back with it
        retrieve(docs, keep, "rocket", pending=[corpus], embed=embed)
        assert _count(docs) == len(TOPICS)


def test_xray_says_cosine_and_reads_old_records() -> None:
    with pytest.raises(V.EmbeddingError, match="cannot be read"):
        V.EmbeddingModel.of("/no/such/model.gguf")
    cosine = Excerpt("a.md", 2, "text", 0.8312, 0, "cosine")
    bm25 = Excerpt("a.md", 0, "text", 4.1, 1)
    block = D.compose((cosine, bm25), "question")
    refs = [ref for _, _, ref in block.spans if ref is not None]
    assert refs == [("a.md", 2, 0.8312, "cosine"), ("a.md", 0, 4.1)]
    assert [X.score_words(r) for r in refs] == ["cosine 0.83", "BM25 4.10"]
    assert X.score_words(("a.md", 0, None)) == "whole"
    assert _doc_ref(["a.md", 2, 0.83, "cosine"]) == ("a.md", 2, 0.83, "cosine")
    assert _doc_ref(["a.md", 2, 4.1]) == ("a.md", 2, 4.1)
