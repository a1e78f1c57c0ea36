"""Conversations in the window: the list (new, rename, delete, search), the database thread, and
the chat flow over the store — send, stop, regenerate and edit as branches, continue, errors —
driven through the real widgets with a fake engine (the real one is in test_main_window)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QUrl

from desktop.core.conversations.store import ConversationStore
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import presets
from desktop.ui.chat.controller import ChatController
from desktop.ui.chat.conversation_list import ConversationListPanel
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.turns import PromptContext, title_from
from desktop.ui.chat.view import ChatView
from tests.ui.conftest import FakeEngine

pytestmark = pytest.mark.usefixtures("no_dangling")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "openlid.sqlite3"


@pytest.fixture
def db(qtbot: Any, db_path: Path) -> Iterator[StoreService]:
    service = StoreService(db_path)
    # Let its thread create the file first: two connections switching a brand-new file to WAL
    # at the same instant can get "database is locked" (reported to the store's owner).
    done: list[object] = []
    service.call(lambda s: None, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    yield service
    service.stop()


def context(**changes: Any) -> PromptContext:
    values: dict[str, Any] = dict(
        system_prompt="Be brief.", instructions="", placement="system",
        template=presets()["gemma"], sampler=SamplerSettings(temperature=0.3),
        bos="<bos>", eos="<eos>", model_name="Gemma 3 270M", model_path="/m/gemma.gguf")
    values.update(changes)
    return PromptContext(**values)


class Chat:
    def __init__(self, qtbot: Any, db: StoreService) -> None:
        self.qtbot = qtbot
        self.engine = FakeEngine()
        self.view = ChatView()
        qtbot.addWidget(self.view)
        self.view.show()
        self.ctx: PromptContext | None = context()
        self.controller = ChatController(self.engine, db, self.view, lambda: self.ctx)

    def send(self, text: str) -> None:
        self.view.input.setPlainText(text)
        self.view.submit()
        self.wait_idle()

    def wait_idle(self) -> None:
        self.qtbot.waitUntil(lambda: not self.controller.busy and not self.view.busy,
                             timeout=10_000)

    def shown(self) -> list[tuple[str, str]]:
        return [(w.item.role, w.text()) for w in self.view.messages]


@pytest.fixture
def chat(qtbot: Any, db: StoreService) -> Iterator[Chat]:
    c = Chat(qtbot, db)
    yield c
    c.engine.shutdown()


def stored(db_path: Path, conversation_id: int) -> list[tuple[str, str]]:
    with ConversationStore(db_path) as store:  # a second connection: WAL lets it read
        return [(m.role, m.content) for m in store.active_path(conversation_id)]


# --- the database thread ---


def test_store_service_runs_calls_in_order_on_its_own_thread(qtbot: Any, db: StoreService) -> None:
    threads: list[str] = []
    results: list[Any] = []

    def create(store: ConversationStore) -> int:
        threads.append(threading.current_thread().name)
        return store.create("first").id

    db.call(create, on_done=results.append)
    db.call(lambda s: [c.title for c in s.list_conversations()], on_done=results.append)
    errors: list[Exception] = []
    db.call(lambda s: s.get(999), on_error=errors.append)
    qtbot.waitUntil(lambda: len(results) == 2 and bool(errors), timeout=5000)
    assert threads == ["openlid-db"]
    assert results[1] == ["first"]
    assert isinstance(errors[0], KeyError)
    with qtbot.waitSignal(db.sig_failed):
        db.call(lambda s: s.get(998))


# --- the list ---


def test_list_new_rename_delete_and_search(qtbot: Any, db: StoreService, db_path: Path) -> None:
    with ConversationStore(db_path) as store:
        paris = store.create("Trip to Paris")
        store.append(paris.id, "user", "What to see in Paris?")
        cats = store.create("Cats")
        store.append(cats.id, "user", "Why do cats purr?")
    panel = ConversationListPanel(db)
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.refresh()
    assert panel.titles() == ["Cats", "Trip to Paris"]

    with qtbot.waitSignal(panel.sig_conversation_selected) as blocker:
        panel.list.setCurrentRow(1)
    assert blocker.args == [paris.id]

    with qtbot.waitSignal(panel.sig_list_changed):
        panel.search.setText("purr")  # matches a message, not a title; debounced
    assert panel.titles() == ["Cats"]
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.search.clear()

    with qtbot.waitSignal(panel.sig_list_changed):
        panel.rename(cats.id, "Cat questions")
    assert "Cat questions" in panel.titles()

    with qtbot.waitSignal(panel.sig_conversation_deleted) as blocker:
        panel.delete(paris.id)
    assert blocker.args == [paris.id]
    qtbot.waitUntil(lambda: panel.titles() == ["Cat questions"], timeout=5000)
    with ConversationStore(db_path) as store:
        assert [c.title for c in store.list_conversations()] == ["Cat questions"]

    with qtbot.waitSignal(panel.sig_new_requested):
        qtbot.mouseClick(panel.new_button, Qt.MouseButton.LeftButton)


def test_inline_rename_through_the_item(qtbot: Any, db: StoreService, db_path: Path) -> None:
    with ConversationStore(db_path) as store:
        c = store.create("Old title")
    panel = ConversationListPanel(db)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.refresh()
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.list.item(0).setText("New title")  # what finishing an inline edit does
    with ConversationStore(db_path) as store:
        assert store.get(c.id).title == "New title"


# --- the chat flow ---


def test_send_renders_the_template_streams_and_stores_both_messages(
        qtbot: Any, chat: Chat, db_path: Path) -> None:
    with qtbot.waitSignal(chat.controller.sig_conversation_changed) as changed:
        chat.view.input.setPlainText("What is the capital of France?")
        chat.view.submit()
    chat.wait_idle()
    conversation_id = changed.args[0]
    prompt, settings, _ = chat.engine.generated[0]
    text = "".join(t for t, _ in prompt)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nWhat is the capital of France?"
                    "<end_of_turn>\n<start_of_turn>model\n")
    assert ("What is the capital of France?", False) in prompt  # typed text: never special
    assert settings.temperature == 0.3
    assert "<end_of_turn>" in settings.stop
    assert chat.shown() == [("user", "What is the capital of France?"),
                            ("assistant", "Paris is the capital of France.")]
    assert stored(db_path, conversation_id) == chat.shown()
    reply = chat.view.messages[-1]
    assert isinstance(reply.item.id, int)
    assert "99.0 tok/s" in reply.item.footer
    with ConversationStore(db_path) as store:
        conversation = store.get(conversation_id)
        meta = store.message(reply.item.id).meta or {}
    assert conversation.title == "What is the capital of France?"
    assert meta["sampler"]["temperature"] == 0.3
    assert meta["template_id"] == "gemma"

    chat.send("And of Italy?")
    prompt, _, _ = chat.engine.generated[1]
    text = "".join(t for t, _ in prompt)
    assert "Paris is the capital of France.<end_of_turn>" in text  # history is sent again
    assert len(stored(db_path, conversation_id)) == 4


def test_stop_keeps_the_partial_reply(qtbot: Any, chat: Chat, db_path: Path) -> None:
    chat.engine.reply = " ".join(f"w{i}" for i in range(2000))
    chat.engine.interval_ms = 5
    chat.view.input.setPlainText("Count")
    chat.view.submit()
    qtbot.waitUntil(lambda: len(chat.controller.steps) >= 5, timeout=5000)
    qtbot.mouseClick(chat.view.stop_button, Qt.MouseButton.LeftButton)
    chat.wait_idle()
    role, text = chat.shown()[-1]
    assert role == "assistant"
    assert text.startswith("w0 w1 w2 w3 w4")
    assert len(text.split()) < 2000
    assert "stopped" in chat.view.messages[-1].item.footer
    assert stored(db_path, chat.controller.conversation_id or 0)[-1] == (role, text)


def test_regenerate_and_edit_make_versions_with_arrows(qtbot: Any, chat: Chat,
                                                       db_path: Path) -> None:
    chat.send("Hi")
    first_reply = chat.view.messages[-1].item.id
    chat.engine.reply = "Hello there."
    chat.view.sig_regenerate_requested.emit(first_reply)
    chat.wait_idle()
    reply = chat.view.messages[-1]
    assert chat.shown() == [("user", "Hi"), ("assistant", "Hello there.")]
    assert (reply.item.sibling_index, reply.item.sibling_count) == (1, 2)
    assert not reply.branch_label.isHidden()
    assert reply.branch_label.text() == "2/2"

    qtbot.mouseClick(reply.prev_button, Qt.MouseButton.LeftButton)  # back to version 1
    qtbot.waitUntil(lambda: chat.shown()[-1][1] == "Paris is the capital of France.",
                    timeout=5000)

    chat.engine.reply = "Bonjour."
    user = chat.view.messages[0]
    chat.view.sig_edit_submitted.emit(user.item.id, "Salut")
    chat.wait_idle()
    assert chat.shown() == [("user", "Salut"), ("assistant", "Bonjour.")]
    assert chat.view.messages[0].branch_label.text() == "2/2"
    conversation_id = chat.controller.conversation_id or 0
    assert stored(db_path, conversation_id) == [("user", "Salut"), ("assistant", "Bonjour.")]
    with ConversationStore(db_path) as store:
        assert len(store.messages(conversation_id)) == 5  # nothing was overwritten


def test_continue_extends_a_reply_in_place(qtbot: Any, chat: Chat, db_path: Path) -> None:
    chat.engine.reply = "Once upon"
    chat.send("Tell a story")
    reply_id = chat.view.messages[-1].item.id
    chat.engine.reply = " a time."
    chat.view.sig_continue_requested.emit(reply_id)
    chat.wait_idle()
    prompt, _, _ = chat.engine.generated[-1]
    assert prompt[-1] == ("Once upon", False)  # the prompt ends inside the model's turn
    assert chat.shown()[-1] == ("assistant", "Once upon a time.")
    assert chat.view.messages[-1].item.id == reply_id
    assert stored(db_path, chat.controller.conversation_id or 0)[-1][1] == "Once upon a time."


def test_no_model_and_engine_errors_are_shown_in_plain_words(qtbot: Any, chat: Chat) -> None:
    chat.ctx = None
    chat.view.input.setPlainText("Hello?")
    chat.view.submit()
    assert "No model is loaded" in chat.view.notice.label.text()
    assert chat.view.input.toPlainText() == "Hello?"  # the text is given back
    chat.ctx = context()
    chat.engine.fail_next = "context_overflow"
    chat.view.submit()
    chat.wait_idle()
    assert chat.view.notice.label.text() == "it failed"
    assert chat.shown() == [("user", "Hello?")]  # the question is kept


def test_crash_keeps_the_conversation_and_the_partial_reply(qtbot: Any, chat: Chat) -> None:
    chat.engine.reply = " ".join(f"w{i}" for i in range(500))
    chat.engine.interval_ms = 5
    chat.view.input.setPlainText("Go")
    chat.view.submit()
    qtbot.waitUntil(lambda: len(chat.controller.steps) >= 3, timeout=5000)
    qtbot.waitUntil(lambda: chat.view.streamed_text() != "", timeout=5000)
    chat.engine.crash()
    chat.wait_idle()
    assert chat.shown()[0] == ("user", "Go")
    assert chat.shown()[1][1].startswith("w0")
    assert "engine crashed" in chat.view.messages[-1].item.footer


def test_switching_conversations(qtbot: Any, chat: Chat) -> None:
    chat.send("First chat")
    first = chat.controller.conversation_id
    chat.controller.new_conversation()
    assert chat.view.messages == []
    chat.send("Second chat")
    assert chat.controller.conversation_id != first
    with qtbot.waitSignal(chat.controller.sig_conversation_changed):
        chat.controller.open_conversation(first)
    assert chat.shown()[0] == ("user", "First chat")


def test_title_from_first_line() -> None:
    assert title_from("\n  Hello world \nmore") == "Hello world"
    assert len(title_from("x" * 300)) == 60


def test_the_latest_reply_shown_token_by_token(qtbot: Any, chat: Chat) -> None:
    from desktop.ui.chat.token_view import TokenView, candidates_text, shade

    chat.send("Hi")
    reply = chat.view.messages[-1]
    assert not reply.tokens_button.isHidden()
    reply.tokens_button.setChecked(True)
    assert isinstance(reply.body, TokenView)
    assert reply.body.toPlainText() == "Paris is the capital of France."
    with qtbot.waitSignal(chat.view.sig_step_clicked) as blocker:
        reply.body.anchorClicked.emit(QUrl("step:2"))
    assert blocker.args == [reply.item.id, 2]
    assert "p 75.0%" in candidates_text(reply.body.steps[2])
    assert shade(1.0) == "transparent"
    assert shade(0.2).startswith("rgba(255, 140, 0")
    reply.tokens_button.setChecked(False)
    assert not isinstance(reply.body, TokenView)
    chat.send("Again")  # a new reply: the older one keeps its stored steps
    assert not chat.view.messages[1].tokens_button.isHidden()
    assert not chat.view.messages[-1].tokens_button.isHidden()


def test_export_and_import_a_conversation(qtbot: Any, db: StoreService, db_path: Path,
                                          tmp_path: Path) -> None:
    with ConversationStore(db_path) as store:
        c = store.create("Recipes")
        store.append(c.id, "user", "How do I boil an egg?")
        store.append(c.id, "assistant", "Put it in boiling water for 9 minutes.")
    panel = ConversationListPanel(db)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.sig_message) as saved:
        panel.export_conversation(c.id, str(tmp_path / "recipes.md"))
    assert saved.args[0].startswith("Saved")
    assert "## Assistant" in (tmp_path / "recipes.md").read_text(encoding="utf-8")
    with qtbot.waitSignal(panel.sig_message):
        panel.export_conversation(c.id, str(tmp_path / "recipes.json"))
    with qtbot.waitSignal(panel.sig_conversation_selected) as opened:
        panel.import_conversation(str(tmp_path / "recipes.json"))
    assert opened.args[0] != c.id
    qtbot.waitUntil(lambda: panel.titles() == ["Recipes", "Recipes"], timeout=5000)
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with qtbot.waitSignal(panel.sig_message) as failed:
        panel.import_conversation(str(tmp_path / "broken.json"))
    assert "is not JSON" in failed.args[0]


def test_switching_away_mid_reply_stores_it_in_its_own_conversation(
        qtbot: Any, chat: Chat, db_path: Path) -> None:
    chat.send("First chat")
    first = chat.controller.conversation_id
    chat.controller.new_conversation()
    chat.engine.reply = " ".join(f"w{i}" for i in range(2000))
    chat.engine.interval_ms = 5
    chat.view.input.setPlainText("Long one")
    chat.view.submit()
    qtbot.waitUntil(lambda: len(chat.controller.steps) >= 3, timeout=5000)
    second = chat.controller.conversation_id
    chat.controller.open_conversation(first)  # stops the reply
    chat.wait_idle()
    assert chat.shown()[0] == ("user", "First chat")
    assert not chat.view.stop_button.isVisible()
    role, text = stored(db_path, second or 0)[-1]
    assert role == "assistant"
    assert text.startswith("w0 w1")


def test_a_refused_import_names_each_bad_field_and_the_list_keeps_working(
        qtbot: Any, db: StoreService, db_path: Path, tmp_path: Path) -> None:
    with ConversationStore(db_path) as store:
        store.create("Kept")
    panel = ConversationListPanel(db)
    qtbot.addWidget(panel)
    hostile = tmp_path / "hostile.json"
    hostile.write_text(
        '{"format": "openlid-conversation", "version": 1,'
        ' "conversation": {"title": "Bad", "updated": 1e20, "created": NaN},'
        ' "messages": [{"id": 1, "parent_id": null, "role": "assistant", "content": "x",'
        ' "steps": [5, null]}]}', encoding="utf-8")
    with qtbot.waitSignal(panel.sig_message) as failed:
        panel.import_conversation(str(hostile))
    assert failed.args[0] == ("Could not import hostile.json: conversation.created: expected a "
                              "time between 1970 and 3000 (seconds since 1970), got NaN "
                              "(and 3 more problems)")
    box = panel.import_error
    assert box is not None
    assert box.isVisible()
    assert box.text() == "hostile.json is damaged (4 problems). Nothing was imported."
    assert box.informativeText().splitlines() == [
        "conversation.created: expected a time between 1970 and 3000 (seconds since 1970), "
        "got NaN",
        "conversation.updated: expected a time between 1970 and 3000 (seconds since 1970), "
        "got 1e+20",
        "messages[0].steps[0]: expected an object, got 5",
        "messages[0].steps[1]: expected an object, got null"]
    box.close()
    assert panel.import_error is None
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.refresh()
    assert panel.titles() == ["Kept"]  # nothing stored, the list still fills

    many = tmp_path / "many.json"  # more problems than the box lists: the rest in its details
    many.write_text(json.dumps({"format": "openlid-conversation", "conversation": {},
                                "messages": [{"id": i, "role": "user", "content": i}
                                             for i in range(30)]}), encoding="utf-8")
    with qtbot.waitSignal(panel.sig_message):
        panel.import_conversation(str(many))
    box = panel.import_error
    assert box is not None
    assert box.informativeText().splitlines()[-1] == "(the whole list under Show Details)"
    assert len(box.detailedText().splitlines()) == 30
    box.close()

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": "openlid-conversation", "conversation": {
        "title": "Fine", "updated": 1.7e9}, "messages": []}), encoding="utf-8")
    with qtbot.waitSignal(panel.sig_conversation_selected):
        panel.import_conversation(str(good))
    qtbot.waitUntil(lambda: sorted(panel.titles()) == ["Fine", "Kept"], timeout=5000)


def test_absurd_stored_times_show_as_unknown_dates(qtbot: Any, db: StoreService,
                                                   db_path: Path) -> None:
    with ConversationStore(db_path) as store:  # rows an unchecked import could store
        store.create("Normal")
    with sqlite3.connect(db_path) as conn:
        for title, stamp in (("Huge", 1e20), ("Infinite", float("inf")), ("Text", "garbage")):
            conn.execute("INSERT INTO conversations(title, created, updated) VALUES (?, ?, ?)",
                         (title, stamp, stamp))
    panel = ConversationListPanel(db)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.refresh()
    assert sorted(panel.titles()) == ["Huge", "Infinite", "Normal", "Text"]
    tips = {panel.list.item(i).text(): panel.list.item(i).toolTip()
            for i in range(panel.list.count())}
    assert tips["Huge"] == "Huge\nlast changed an unknown date"
    assert tips["Text"].endswith("an unknown date")
    assert "unknown" not in tips["Normal"]
