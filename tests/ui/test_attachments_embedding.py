"""Searching attached documents by meaning in the app: the attach bar's "Search documents by"
choice picks an embedding GGUF (the ready Gemma 3 270M, mean-pooled), remembered in the app
settings; the chat's retrieval on the database thread asks the real engine for vectors through
`EngineService.embed_for`, and the X-ray record says "cosine"; a model that fails falls back to
BM25 with a notice."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog

from desktop.core.conversations import xray as X
from desktop.ui.chat.attachments import CHOOSE_MODEL, KEYWORDS, AttachmentsBar
from desktop.ui.chat.embedder import app_embed, remember_choice
from desktop.ui.settings import AppSettings
from tests.engine.test_embedding import BY_MEANING
from tests.ui.test_xray_view import RealChat
from tests.unit.test_documents import long_text

pytestmark = pytest.mark.engine


@pytest.fixture
def chat(qtbot: Any, gemma_path: Path, tmp_path: Path, home: Path) -> Iterator[RealChat]:
    real = RealChat(qtbot, gemma_path, tmp_path / "openlid.sqlite3")
    yield real
    real.view.attachments.shutdown()
    real.close()


def _choose_model(bar: AttachmentsBar, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pick "meaning: choose an embedding model…" and `path` in the file dialog."""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    index = bar.search_by.findText(CHOOSE_MODEL)
    bar.search_by.setCurrentIndex(index)
    bar.search_by.activated.emit(index)


def _attach_and_send(qtbot: Any, chat: RealChat, document: Path, text: str) -> dict[str, Any]:
    bar = chat.view.attachments
    with qtbot.waitSignal(bar.sig_read_finished, timeout=30_000):
        bar.add_paths([document])
    chat.ctx = dataclasses.replace(
        chat.ctx, attachments=bar.pending(), embed=app_embed(chat.engine, bar.search_model())
    )
    chat.send(text)
    meta: dict[str, Any] = chat.replies()[-1].meta
    return meta


def _doc_words(meta: dict[str, Any]) -> list[str]:
    return [X.score_words(tuple(p["doc"])) for p in meta["xray"]["parts"] if "doc" in p]


def test_choosing_an_embedding_model_retrieves_by_cosine_and_is_remembered(
    qtbot: Any, chat: RealChat, gemma_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AppSettings()
    bar = chat.view.attachments
    remember_choice(bar, settings)
    assert bar.search_by.currentText() == KEYWORDS
    assert bar.search_model() == ""
    _choose_model(bar, gemma_path, monkeypatch)
    assert bar.search_model() == str(gemma_path)
    assert bar.search_by.currentText() == f"meaning ({gemma_path.name})"

    document = tmp_path / "corpus.md"
    document.write_text(long_text(85), encoding="utf-8")
    meta = _attach_and_send(qtbot, chat, document, BY_MEANING["rocket"])
    words = _doc_words(meta)
    assert words
    assert all(w.startswith("cosine ") for w in words), words
    assert "by meaning failed" not in chat.view.notice.label.text()

    # The choice survives a restart of the settings (a new AppSettings reads the INI file).
    settings.sync()
    again = AppSettings()
    assert again.embedding_model == str(gemma_path)
    fresh = AttachmentsBar()
    qtbot.addWidget(fresh)
    remember_choice(fresh, again)
    assert fresh.search_model() == str(gemma_path)
    assert fresh.search_by.currentText() == f"meaning ({gemma_path.name})"
    # Back to keywords: remembered too.
    fresh.search_by.setCurrentIndex(0)
    fresh.search_by.activated.emit(0)
    assert AppSettings().embedding_model == ""
    fresh.shutdown()


def test_an_embedding_model_that_fails_falls_back_to_bm25_with_a_notice(
    qtbot: Any, chat: RealChat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_bytes(b"this is not a model" * 10)
    bar = chat.view.attachments
    _choose_model(bar, bad, monkeypatch)
    assert bar.search_model() == str(bad)
    document = tmp_path / "corpus.md"
    document.write_text(long_text(85), encoding="utf-8")
    meta = _attach_and_send(qtbot, chat, document, "How long does the second stage engine burn?")
    words = _doc_words(meta)
    assert words
    assert all(w.startswith("BM25 ") for w in words), words
    notice = chat.view.notice.label.text()
    assert "Searching the documents by meaning failed" in notice
    assert "not a usable embedding model" in notice
    assert "searched by keywords (BM25) instead" in notice
