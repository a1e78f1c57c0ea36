"""The chat's attached files: the bar (list, Remove, errors inline), the message taking them,
and the turn that stores them with the conversation and lays their excerpts into the prompt."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.core.conversations import xray as X
from desktop.core.conversations.files import export_json, export_markdown
from desktop.core.conversations.store import ConversationStore
from desktop.core.documents.store import DocumentStore
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import presets
from desktop.ui.chat import turns as T
from desktop.ui.chat.attachments import AttachmentsBar
from desktop.ui.chat.view import ChatView
from tests.unit.test_documents import TOPICS, long_text


def test_bar_lists_files_says_why_one_failed_and_removes(qtbot: QtBot, tmp_path: Path) -> None:
    bar = AttachmentsBar()
    qtbot.addWidget(bar)
    (tmp_path / "notes.md").write_text("# Notes\n\nThe door code is 4417.", encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 garbage")
    with qtbot.waitSignal(bar.sig_read_finished, timeout=10_000) as read:
        bar.add_paths([tmp_path / "notes.md", tmp_path / "scan.pdf"])
    problems = read.args[0]
    assert bar.names() == ["notes.md"]
    assert len(problems) == 1
    assert "scan.pdf cannot be read as a PDF" in problems[0]
    assert not bar.errors.isHidden()
    assert "scan.pdf" in bar.errors.text()
    assert "1 file go" in bar.hint.text()
    with qtbot.waitSignal(bar.sig_read_finished, timeout=10_000):
        bar.add_paths([tmp_path / "notes.md"])  # the same file again: listed once
    assert bar.names() == ["notes.md"]
    assert bar.errors.isHidden()
    bar.remove(bar.pending()[0])
    assert bar.pending() == ()
    assert bar.hint.text() == ""


def test_sent_message_takes_the_files(qtbot: QtBot, tmp_path: Path) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    (tmp_path / "a.txt").write_text("alpha", encoding="utf-8")
    with qtbot.waitSignal(view.attachments.sig_read_finished, timeout=10_000):
        view.attachments.add_paths([tmp_path / "a.txt"])
    sent: list[tuple[str, tuple[str, ...]]] = []
    view.sig_send_requested.connect(
        lambda text: sent.append((text, tuple(view.attachments.names())))
    )
    view.input.setPlainText("What is in a.txt?")
    view.submit()
    assert sent == [("What is in a.txt?", ("a.txt",))]  # read while sending
    assert view.attachments.pending() == ()  # then gone with the message


def _ctx(attachments: tuple = ()) -> T.PromptContext:
    return T.PromptContext(
        system_prompt="",
        instructions="",
        placement="system",
        template=presets()["gemma"],
        sampler=SamplerSettings(max_tokens=8),
        bos="<bos>",
        eos="<eos>",
        n_ctx=4096,
        attachments=attachments,
    )


def test_turn_stores_attachments_and_retrieves_per_message(qtbot: QtBot, tmp_path: Path) -> None:
    bar = AttachmentsBar()
    qtbot.addWidget(bar)
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    with qtbot.waitSignal(bar.sig_read_finished, timeout=10_000):
        bar.add_paths([tmp_path / "corpus.md"])
    db = tmp_path / "db.sqlite3"
    with ConversationStore(db) as store:
        turn = T.prepare_send(
            store, None, "What do I feed the sourdough starter?", _ctx(bar.pending())
        )
        cid = turn.conversation.id
        assert any("corpus.md attached" in note for note in turn.notes)
        prompt = "".join(t for t, _ in turn.pieces)
        assert TOPICS["bakery"] in prompt
        assert "[corpus.md]" in prompt
        docs = [lb for lb in turn.labels if lb.kind == X.DOCUMENT and lb.doc]
        assert docs
        assert docs[0].doc is not None
        assert docs[0].doc[0] == "corpus.md"
        assert store.active_path(cid)[-1].content == "What do I feed the sourdough starter?"
        # The next message retrieves again, from the stored document.
        store.append(cid, "assistant", "Rye flour.")
        second = T.prepare_send(store, cid, "How long does the second stage engine burn?", _ctx())
        text = "".join(t for t, _ in second.pieces)
        assert TOPICS["rocket"] in text.split("How long does")[0].split("Rye flour.")[1]
        data = export_json(store, cid)
        assert data["attachments"][0]["name"] == "corpus.md"
        assert TOPICS["volcano"] in data["attachments"][0]["pages"][0]["text"]
        assert "**Attached:** corpus.md" in export_markdown(store, cid)
        store.delete(cid)
    with DocumentStore(db) as documents:
        assert documents.documents(cid) == []
