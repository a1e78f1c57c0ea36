"""A reasoning model's thinking in the chat: collapsed above the answer, streaming while open, the
answer's body without it, the stored reply whole — on every turn, after a branch and after a
regenerate (LM Studio and Jan both have bugs where the block shows only on some turns).

Driven through the real ChatView, ChatController and store, with the FakeEngine replaying a
recorded reasoning-model reply word by word."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from desktop.core.conversations.store import ConversationStore
from desktop.core.reasoning import THINK
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import presets
from desktop.ui.chat.controller import ChatController
from desktop.ui.chat.markdown_body import MarkdownBody
from desktop.ui.chat.message_widget import MessageItem, MessageWidget
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.turns import PromptContext
from desktop.ui.chat.view import ChatView
from tests.ui.conftest import FakeEngine

pytestmark = [
    # The offscreen platform says this when a window is shown; not ours.
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
    pytest.mark.usefixtures("no_dangling"),
]

THOUGHT = "<think>\nThe user greets me. I should greet back briefly.\n</think>\n\n"
REPLY = THOUGHT + "Hello! How can I help?"
# DeepSeek-R1: its prompt opened the block, so the reply holds only the closing marker.
R1_REPLY = "The user greets me. Greet back.\n</think>\n\nHi there."


def answer_text(widget: MessageWidget) -> str:
    if widget.stream_view is not None:
        return widget.stream_view.toPlainText()
    assert isinstance(widget.body, MarkdownBody)
    return "\n".join(browser.toPlainText() for browser, _part, _start in widget.body.parts)


def assert_thinking_shown(widget: MessageWidget, answer: str) -> None:
    assert not widget.thinking.isHidden(), "the thinking block is missing"
    assert not widget.thinking.expanded
    assert widget.thinking.view.isHidden()  # collapsed: only its header shows
    assert widget.thinking.title.startswith("Thought")
    assert "greet" in widget.thinking.text()
    assert "think>" not in widget.thinking.text()
    shown = answer_text(widget)
    assert "think>" not in shown
    assert "greet" not in shown
    assert shown.strip() == answer


@pytest.fixture
def view(qtbot: Any) -> ChatView:
    widget = ChatView()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    return widget


def test_a_streamed_reply_shows_its_thinking_collapsed_and_streaming_while_open(
        qtbot: Any, view: ChatView) -> None:
    view.begin_stream(MessageItem("pending", "assistant", "", "Qwen3"))
    widget = view.messages[-1]
    for ch in "<think>\nThe user greets":  # piece by piece, through the coalescing buffer
        view.append_stream(ch)
    view.buffer.flush()
    assert not widget.thinking.isHidden()
    assert widget.thinking.title == "Thinking…"
    assert widget.thinking.view.isHidden()
    qtbot.waitExposed(widget)
    qtbot.mouseClick(widget.thinking.toggle, Qt.MouseButton.LeftButton)  # open it mid-stream
    assert widget.thinking.expanded
    assert widget.thinking.view.isVisibleTo(widget)
    assert widget.thinking.text() == "The user greets"
    view.append_batch(" me. I should greet back briefly.\n</th")
    assert widget.thinking.text().endswith("greet back briefly.\n")
    view.append_batch("ink>\n\nHello! How can I help?")
    assert widget.stream_view is not None
    assert widget.stream_view.toPlainText() == "Hello! How can I help?"
    assert view.streamed_text() == REPLY  # what is stored stays whole
    view.end_stream(MessageItem(7, "assistant", REPLY, "Qwen3"))
    assert widget.thinking.expanded  # still open: the person opened it
    assert widget.thinking.title == "Thought (9 words)"
    assert answer_text(widget).strip() == "Hello! How can I help?"
    assert widget.text() == REPLY


def test_stored_replies_are_split_again_when_shown(view: ChatView) -> None:
    view.set_messages([
        MessageItem(1, "user", "<think>typed by the person</think> hi", "You"),
        MessageItem(2, "assistant", REPLY, "Qwen3"),
        MessageItem(3, "user", "Hi again", "You"),
        MessageItem(4, "assistant", R1_REPLY, "DeepSeek-R1"),
        MessageItem(5, "user", "Plain?", "You"),
        MessageItem(6, "assistant", "Just an answer.", "Gemma"),
    ])
    user, first, _, second, _, plain = view.messages
    assert user.thinking.isHidden()  # the person's own text is never taken for thinking
    assert_thinking_shown(first, "Hello! How can I help?")
    assert_thinking_shown(second, "Hi there.")
    assert plain.thinking.isHidden()
    assert answer_text(plain).strip() == "Just an answer."
    view.set_reasoning_format(THINK.inside())  # an R1 model loaded now
    assert_thinking_shown(view.messages[3], "Hi there.")
    assert view.messages[5].thinking.isHidden()  # another model's plain reply stays an answer
    assert answer_text(view.messages[5]).strip() == "Just an answer."


def test_a_reply_streams_its_thinking_when_the_prompt_opened_the_block(
        view: ChatView) -> None:
    view.set_reasoning_format(THINK.inside())
    view.begin_stream(MessageItem("pending", "assistant", "", "DeepSeek-R1"))
    widget = view.messages[-1]
    view.append_batch("The user greets me.")  # no <think>: the prompt ended with it
    assert widget.thinking.text() == "The user greets me."
    assert widget.stream_view is not None
    assert widget.stream_view.toPlainText() == ""
    view.append_batch(" Greet back.\n</think>\n\nHi there.")
    assert widget.stream_view.toPlainText() == "Hi there."
    view.end_stream(MessageItem(9, "assistant", R1_REPLY, "DeepSeek-R1"))
    assert_thinking_shown(widget, "Hi there.")


# --- across turns, branches and regenerate, through the controller and the store ---


@pytest.fixture
def db(qtbot: Any, tmp_path: Path) -> Iterator[StoreService]:
    service = StoreService(tmp_path / "openlid.sqlite3")
    done: list[object] = []
    service.call(lambda s: None, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    yield service
    service.stop()


class Chat:
    def __init__(self, qtbot: Any, db: StoreService) -> None:
        self.qtbot = qtbot
        self.engine = FakeEngine(reply=REPLY)
        self.view = ChatView()
        qtbot.addWidget(self.view)
        self.view.show()
        ctx = PromptContext(
            system_prompt="", instructions="", placement="system", template=presets()["gemma"],
            sampler=SamplerSettings(temperature=0.3), bos="<bos>", eos="<eos>",
            model_name="Qwen3", model_path="/m/qwen3.gguf")
        self.controller = ChatController(self.engine, db, self.view, lambda: ctx)

    def send(self, text: str) -> None:
        self.view.input.setPlainText(text)
        self.view.submit()
        self.wait_idle()

    def wait_idle(self) -> None:
        self.qtbot.waitUntil(lambda: not self.controller.busy and not self.view.busy,
                             timeout=10_000)

    def replies(self) -> list[MessageWidget]:
        return [w for w in self.view.messages if w.item.role == "assistant"]

    def last_prompt(self) -> str:
        prompt, _, _ = self.engine.generated[-1]
        return "".join(text for text, _trusted in prompt)


@pytest.fixture
def chat(qtbot: Any, db: StoreService) -> Iterator[Chat]:
    c = Chat(qtbot, db)
    yield c
    c.engine.shutdown()


def test_the_block_shows_on_every_turn_after_a_branch_and_after_regenerate(
        qtbot: Any, chat: Chat, tmp_path: Path) -> None:
    for n, text in enumerate(("Hello", "Hello again", "And again")):
        chat.send(text)
        assert len(chat.replies()) == n + 1
        for widget in chat.replies():
            assert_thinking_shown(widget, "Hello! How can I help?")
    # Earlier replies' thinking is not sent again (Gemma's template knows nothing of it).
    assert chat.last_prompt().count("Hello! How can I help?") == 2
    assert "greets me" not in chat.last_prompt()
    conversation_id = chat.controller.conversation_id or 0
    with ConversationStore(tmp_path / "openlid.sqlite3") as store:
        stored = [m.content for m in store.active_path(conversation_id) if m.role == "assistant"]
    assert stored == [REPLY] * 3  # the store keeps every reply whole

    chat.engine.reply = R1_REPLY
    chat.view.sig_regenerate_requested.emit(chat.replies()[-1].item.id)
    chat.wait_idle()
    last = chat.replies()[-1]
    assert last.branch_label.text() == "2/2"
    assert_thinking_shown(last, "Hi there.")
    qtbot.mouseClick(last.prev_button, Qt.MouseButton.LeftButton)  # back to version 1
    qtbot.waitUntil(lambda: chat.replies()[-1].text() == REPLY, timeout=5000)
    assert_thinking_shown(chat.replies()[-1], "Hello! How can I help?")

    chat.engine.reply = REPLY
    second_user = [w for w in chat.view.messages if w.item.role == "user"][1]
    chat.view.sig_edit_submitted.emit(second_user.item.id, "Hello once more")  # a new branch
    chat.wait_idle()
    assert len(chat.replies()) == 2
    for widget in chat.replies():
        assert_thinking_shown(widget, "Hello! How can I help?")


# --- the real engine, its output forced into a thinking block by a grammar ---

THINKING_GRAMMAR = 'root ::= "<think>" [a-z ]{3,30} "</think>" [a-z ]{3,30}'


@pytest.mark.engine
def test_a_real_reply_with_a_thinking_block_on_every_turn_and_after_regenerate(
        qtbot: Any, home: Path, gemma_models_dir: Path) -> None:
    from desktop.core.model_info import LoadSettings
    from desktop.ui.settings import AppSettings
    from desktop.ui.window.main_window import MainWindow

    settings = AppSettings()
    # One thread: two wait on each other at every barrier on a loaded 2-core machine.
    settings.load_settings = LoadSettings(n_ctx=1024, n_threads=1)
    w = MainWindow(settings, models_dir=gemma_models_dir, with_services=False)
    qtbot.addWidget(w)
    w.show()
    w.start()
    try:
        qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading,
                        timeout=120_000)
        w.sampling_panel.set_settings(SamplerSettings(
            temperature=0.8, max_tokens=60, structured_output="gbnf", grammar=THINKING_GRAMMAR))

        def idle() -> bool:
            return not w.chat.busy and not w.chat_view.busy

        def check_all() -> None:
            replies = [m for m in w.chat_view.messages if m.item.role == "assistant"]
            for widget in replies:
                assert not widget.thinking.isHidden(), "the thinking block is missing"
                assert not widget.thinking.expanded
                assert "think>" not in answer_text(widget)
                assert "think>" not in widget.thinking.text()
                assert widget.text().startswith("<think>")  # the reply is kept whole
            last = replies[-1]
            assert last.generation is not None
            starts = list(accumulate((len(r.text) for r in last.generation.steps), initial=0))
            n = sum(1 for at in starts[:-1] if at < last.reasoning_split().thinking_end)
            assert n > 2
            assert last.thinking.title == f"Thought for {n} tokens"

        for text in ("Hello", "Hello again"):
            w.chat_view.input.setPlainText(text)
            w.chat_view.submit()
            qtbot.waitUntil(idle, timeout=120_000)
            check_all()
        last = [m for m in w.chat_view.messages if m.item.role == "assistant"][-1]
        w.chat_view.sig_regenerate_requested.emit(last.item.id)
        qtbot.waitUntil(idle, timeout=120_000)
        last = [m for m in w.chat_view.messages if m.item.role == "assistant"][-1]
        assert last.branch_label.text() == "2/2"
        check_all()
    finally:
        w.close()


def test_the_thinking_switch_shows_only_where_the_template_takes_enable_thinking(
        qtbot: Any, view: ChatView) -> None:
    from desktop.core.reasoning import takes_enable_thinking
    from tests.unit.test_reasoning import QWEN3, R1

    view.set_thinking_available(takes_enable_thinking(R1))
    assert view.thinking_check.isHidden()
    assert view.thinking_enabled is None  # nothing to pass: the template has no switch
    view.set_thinking_available(takes_enable_thinking(QWEN3))
    assert view.thinking_check.isVisible()
    assert view.thinking_enabled is True
    with qtbot.waitSignal(view.sig_thinking_changed) as changed:
        qtbot.mouseClick(view.thinking_check, Qt.MouseButton.LeftButton)
    assert changed.args == [False]
    assert view.thinking_enabled is False


# --- thinking counted as its own part: the footer and the context meter ---


def test_thinking_is_counted_in_the_footer_and_the_context_meter(
        qtbot: Any, chat: Chat, tmp_path: Path) -> None:
    from desktop.ui.panels.context_meter import ContextBox

    box = ContextBox((("refuse", "Refuse"),))
    qtbot.addWidget(box)
    box.show_counts((("system", 10), ("history", 30)), 1000, exact=True, how="")
    seen: list[tuple[int, int]] = []
    tally = chat.controller.thinking
    tally.sig_changed.connect(lambda current, not_sent: seen.append((current, not_sent)))
    tally.sig_changed.connect(box.set_thinking)

    # REPLY is 13 tokens (one a word); 9 of them start before </think>, as the block's title
    # counts them.
    chat.send("Hello")
    [reply] = chat.replies()
    assert reply.footer.text().startswith("13 tokens (9 thinking)")
    currents = [current for current, _ in seen]
    assert currents[0] == 0  # the reply's count starts empty ...
    assert currents == sorted(currents)  # ... grows while it thinks ...
    assert currents[-1] == 9  # ... and stops at the closing marker
    assert {not_sent for _, not_sent in seen} == {0}  # nothing earlier to leave out
    parts = [(p.name, p.tokens) for p in box.meter.parts()]
    assert parts == [("system", 10), ("history", 30), ("thinking", 9)]
    assert box.meter.used() == 49
    assert "thinking&nbsp;9" in box.legend.text()
    assert "not&nbsp;sent" not in box.legend.text()
    conversation_id = chat.controller.conversation_id or 0
    with ConversationStore(tmp_path / "openlid.sqlite3") as store:
        stored = [m.meta for m in store.active_path(conversation_id) if m.role == "assistant"]
    assert stored[0] is not None
    assert stored[0]["thinking_tokens"] == 9

    # The next turn: the first reply's thinking is left out of the prompt, so said as not sent.
    chat.send("Hello again")
    assert seen[-1] == (9, 9)
    assert "thinking&nbsp;not&nbsp;sent&nbsp;9" in box.legend.text()
    assert "greets me" not in chat.last_prompt()

    # A reply without thinking: no part of its own, no words in its footer; both earlier
    # replies' thinking is not sent.
    chat.engine.reply = "Just an answer."
    chat.send("Plain?")
    assert seen[-1] == (0, 18)
    assert [p.name for p in box.meter.parts()] == ["system", "history"]
    assert "thinking&nbsp;not&nbsp;sent&nbsp;18" in box.legend.text()
    assert chat.replies()[-1].footer.text().startswith("3 tokens")
    assert "thinking" not in chat.replies()[-1].footer.text()

    # Another conversation: nothing of this one is counted.
    chat.controller.new_conversation()
    assert seen[-1] == (0, 0)
    assert [p.name for p in box.meter.parts()] == ["system", "history"]


def test_a_stored_reply_without_its_steps_has_its_thinking_estimated() -> None:
    from desktop.ui.chat.thinking_count import estimated_thinking_tokens, thinking_tokens
    from tests.ui.conftest import fake_step

    steps = [fake_step(i, w) for i, w in enumerate(["<think>", "a", " b", "</think>", "ok"])]
    assert thinking_tokens("<think>a b</think>ok", steps, THINK) == 3
    assert thinking_tokens("<think>a b", steps[:3], THINK) == 3  # still open: every token
    assert thinking_tokens("just ok", [fake_step(0, "just"), fake_step(1, " ok")], THINK) == 0
    assert thinking_tokens(R1_REPLY, [fake_step(0, R1_REPLY)], THINK.inside()) == 1
    assert estimated_thinking_tokens(REPLY, THINK) > 0
    assert estimated_thinking_tokens("Just an answer.", THINK) == 0
    assert estimated_thinking_tokens(R1_REPLY, THINK.inside()) > 0
