"""The attach bar's stored documents (read and removed on the database thread) and files read
off the GUI thread ("reading…" meanwhile; sending waits for them)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from desktop.core.conversations.store import ConversationStore
from desktop.core.documents.extract import read_document
from desktop.core.documents.store import DocumentStore
from desktop.ui.chat import attachments as A
from desktop.ui.chat.attachments import AttachmentsBar
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.view import ChatView


def test_stored_documents_listed_and_removed(qtbot: QtBot, tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    (tmp_path / "a.md").write_text("# A\n\nThe door code is 4417.", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Bees make honey.", encoding="utf-8")
    with ConversationStore(db) as store:
        cid = store.create("docs").id
        other = store.create("other").id
    with DocumentStore(db) as docs:
        docs.attach(cid, read_document(tmp_path / "a.md"))
        docs.attach(cid, read_document(tmp_path / "b.txt"))
        docs.attach(other, read_document(tmp_path / "b.txt"))
    service = StoreService(db)
    bar = AttachmentsBar()
    qtbot.addWidget(bar)
    try:
        bar.bind(service)
        with qtbot.waitSignal(bar.sig_changed, timeout=10_000):
            bar.show_conversation(cid)
        assert [d.name for d in bar.stored()] == ["a.md", "b.txt"]
        assert bar.pending() == ()  # stored files are not sent again as new ones
        buttons = [b for b in bar.findChildren(QPushButton)
                   if b.accessibleName() == "Remove stored a.md"]
        assert len(buttons) == 1
        with qtbot.waitSignal(bar.sig_changed, timeout=10_000):
            buttons[0].click()
        qtbot.waitUntil(lambda: [d.name for d in bar.stored()] == ["b.txt"], timeout=10_000)
        with DocumentStore(db) as docs:
            assert [d.name for d in docs.documents(cid)] == ["b.txt"]
            assert [d.name for d in docs.documents(other)] == ["b.txt"]
        with qtbot.waitSignal(bar.sig_changed, timeout=10_000):
            bar.show_conversation(None)
        assert bar.stored() == ()
    finally:
        service.stop()
        bar.shutdown()


def test_files_are_read_off_the_gui_thread_and_send_waits(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    threads: list[str] = []
    real = A.read_document

    def slow_read(path: Path | str) -> A.Document:
        threads.append(threading.current_thread().name)
        release.wait(10)
        return real(path)

    monkeypatch.setattr(A, "read_document", slow_read)
    (tmp_path / "big.txt").write_text("A long report.", encoding="utf-8")
    view = ChatView()
    qtbot.addWidget(view)
    view.attachments.add_paths([tmp_path / "big.txt"])
    assert view.attachments.reading()
    assert "reading 1 file…" in view.attachments.hint.text()
    sent: list[str] = []
    view.sig_send_requested.connect(sent.append)
    view.input.setPlainText("Summarise it")
    view.submit()
    assert sent == []  # not sent without its file, and the text stays
    assert view.input.toPlainText() == "Summarise it"
    with qtbot.waitSignal(view.attachments.sig_read_finished, timeout=10_000):
        release.set()
    assert threads
    assert threads[0] != threading.main_thread().name
    assert view.attachments.names() == ["big.txt"]
    assert "reading" not in view.attachments.hint.text()
    view.submit()
    assert sent == ["Summarise it"]
    view.attachments.shutdown()
