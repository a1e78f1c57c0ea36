"""The chat transcript widget: coalesced streaming (with the 20,000-token soak), Markdown and
code blocks, message actions, branch arrows, the input box and the completion editor."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from desktop.ui.chat.completion_view import CompletionView
from desktop.ui.chat.markdown_body import (
    AutoHeightBrowser,
    CodeBlock,
    MarkdownBody,
    hard_breaks,
    split_code_blocks,
)
from desktop.ui.chat.message_widget import ASSISTANT, USER, MessageItem
from desktop.ui.chat.stream_buffer import StreamBuffer
from desktop.ui.chat.view import ChatView
from desktop.ui.heartbeat import Heartbeat

pytestmark = pytest.mark.usefixtures("no_dangling")

REPLY = "Sure:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nThat **adds** them."


@pytest.fixture
def view(qtbot: Any) -> ChatView:
    widget = ChatView()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    return widget


def tokens(n: int) -> list[str]:
    """Token-like pieces: words, punctuation, newlines, tabs, accents, CJK and an emoji."""
    pool = [" the", " cat", ",", " naïve", "\n", " 東京", "\t", " 🙂", " a", "b", " ```", "\n\n"]
    return [pool[(i * 7 + i // 3) % len(pool)] for i in range(n)]


def stream(qtbot: Any, view: ChatView, parts: list[str], per_tick: int) -> None:
    """Feed parts from a timer (the event loop runs, like real engine signals) and wait."""
    queue = list(reversed(parts))
    feeder = QTimer()
    feeder.setInterval(1)

    def feed() -> None:
        for _ in range(min(per_tick, len(queue))):
            view.append_stream(queue.pop())
        if not queue:
            feeder.stop()

    feeder.timeout.connect(feed)
    feeder.start()
    qtbot.waitUntil(lambda: not queue and not view.buffer.active, timeout=120_000)
    feeder.stop()


# --- streaming ---


def test_soak_20000_tokens_stream_exactly_through_the_coalescing_path(
        qtbot: Any, view: ChatView) -> None:
    parts = tokens(20_000)
    expected = "".join(parts)
    view.begin_stream(MessageItem("pending", "assistant", "", "Gemma"))
    heartbeat = Heartbeat(5)
    heartbeat.start()
    stream(qtbot, view, parts, per_tick=10)
    heartbeat.stop()
    stalls = heartbeat.gaps
    assert view.streamed_text() == expected
    assert max(stalls) < 2.0, f"the event loop froze for {max(stalls):.2f} s"
    assert view.messages[-1].stream_view is not None
    assert view.messages[-1].stream_view.toPlainText() == expected
    # Coalesced: far fewer insertions than tokens (one per ~33 ms tick at most).
    assert 0 < view.buffer.flushes < len(parts) / 10
    view.end_stream(MessageItem(7, "assistant", expected, "Gemma"))
    assert view.messages[-1].item.id == 7
    assert view.messages[-1].text() == expected


def test_tokens_arriving_faster_than_the_timer_are_joined(qtbot: Any, view: ChatView) -> None:
    view.begin_stream(MessageItem("pending", "assistant", "", "Gemma"))
    for part in tokens(500):
        view.append_stream(part)
    assert view.buffer.flushes == 0  # nothing inserted yet: only buffered
    assert view.streamed_text() == "".join(tokens(500))
    qtbot.waitUntil(lambda: not view.buffer.active, timeout=5000)
    assert view.buffer.flushes == 1
    assert view.messages[-1].text() == "".join(tokens(500))


def test_stream_buffer_timer_stops_when_idle(qtbot: Any) -> None:
    got: list[str] = []
    buffer = StreamBuffer(got.append)
    buffer.push("a")
    buffer.push("b")
    assert buffer.active
    qtbot.waitUntil(lambda: not buffer.active, timeout=2000)
    assert got == ["ab"]
    buffer.push("")
    assert not buffer.active


def test_end_stream_renders_markdown_with_code_blocks(view: ChatView) -> None:
    view.begin_stream(MessageItem("pending", "assistant", "", "Gemma"))
    view.append_stream(REPLY)
    view.end_stream(MessageItem(3, "assistant", REPLY, "Gemma", footer="12 tokens"))
    widget = view.messages[-1]
    assert isinstance(widget.body, MarkdownBody)
    [block] = widget.body.code_blocks
    assert block.source == "def add(a, b):\n    return a + b"
    prose = widget.body.findChildren(AutoHeightBrowser)
    assert any("adds" in p.toPlainText() and "**" not in p.toPlainText() for p in prose)
    assert widget.footer.text() == "12 tokens"


def test_code_block_copy_puts_the_source_on_the_clipboard(qtbot: Any) -> None:
    block = CodeBlock("print('hi')", "python")
    qtbot.addWidget(block)
    qtbot.mouseClick(block.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "print('hi')"
    assert block.copy_button.text() == "Copied"


def test_split_code_blocks_and_hard_breaks() -> None:
    assert split_code_blocks(REPLY) == [
        ("text", "Sure:\n", ""),
        ("code", "def add(a, b):\n    return a + b", "python"),
        ("text", "\nThat **adds** them.", ""),
    ]
    assert split_code_blocks("a\n```\nopen fence") == [("text", "a", ""),
                                                       ("code", "open fence", "")]
    assert hard_breaks("one\ntwo\n\nthree") == "one  \ntwo\n\nthree"


def test_model_text_cannot_load_local_files(view: ChatView, tmp_path: Any) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not an image")
    browser = AutoHeightBrowser()
    browser.document().setMarkdown(f"![x]({secret}) <b>bold</b>")
    assert browser.loadResource(2, secret.as_uri()) is None
    browser.deleteLater()


# --- actions, branches, input ---


def test_branch_arrows_show_position_and_ask_for_siblings(qtbot: Any, view: ChatView) -> None:
    view.set_messages([
        MessageItem(1, "user", "Hi", "You", 1, 3),
        MessageItem(2, "assistant", "Hello", "Gemma"),
    ])
    user, reply = view.messages
    assert not user.branch_label.isHidden()
    assert user.branch_label.text() == "2/3"
    assert reply.branch_label.isHidden()
    with qtbot.waitSignal(view.sig_sibling_requested) as blocker:
        qtbot.mouseClick(user.next_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [1, 2]
    with qtbot.waitSignal(view.sig_sibling_requested) as blocker:
        qtbot.mouseClick(user.prev_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [1, 0]


def test_message_actions_emit_requests(qtbot: Any, view: ChatView) -> None:
    view.set_messages([MessageItem(1, "user", "Hi", "You"),
                       MessageItem(2, "assistant", "Hello", "Gemma")])
    user, reply = view.messages
    assert not user.edit_button.isHidden()
    assert user.regenerate_button.isHidden()
    with qtbot.waitSignal(view.sig_regenerate_requested) as blocker:
        qtbot.mouseClick(reply.regenerate_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [2]
    with qtbot.waitSignal(view.sig_continue_requested) as blocker:
        qtbot.mouseClick(reply.continue_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [2]
    qtbot.mouseClick(user.edit_button, Qt.MouseButton.LeftButton)
    assert user.editor is not None
    user.editor.setPlainText("Hi again")
    with qtbot.waitSignal(view.sig_edit_submitted) as blocker:
        user._submit_edit()
    assert blocker.args == [1, "Hi again"]
    view.set_busy(True)
    assert not reply.regenerate_button.isEnabled()
    assert not view.stop_button.isHidden()
    assert view.send_button.isHidden()
    view.set_busy(False)


def test_enter_sends_and_shift_enter_makes_a_new_line(qtbot: Any, view: ChatView) -> None:
    view.input.setFocus()
    qtbot.keyClicks(view.input, "line one")
    qtbot.keyClick(view.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(view.input, "line two")
    assert view.input.toPlainText() == "line one\nline two"
    with qtbot.waitSignal(view.sig_send_requested) as blocker:
        qtbot.keyClick(view.input, Qt.Key.Key_Return)
    assert blocker.args == ["line one\nline two"]
    assert view.input.toPlainText() == ""
    qtbot.keyClick(view.input, Qt.Key.Key_Return)  # empty: nothing is sent
    view.set_busy(True)
    view.input.setPlainText("while busy")
    with qtbot.assertNotEmitted(view.sig_send_requested):
        view.submit()
    view.set_busy(False)


def test_notice_bar_action(qtbot: Any, view: ChatView) -> None:
    view.notice.show_notice("The engine process was killed.", "reload", "Reload")
    assert view.notice.isVisible()
    assert view.notice.action_button.text() == "Reload"
    with qtbot.waitSignal(view.sig_notice_action_triggered) as blocker:
        qtbot.mouseClick(view.notice.action_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["reload"]
    assert not view.notice.isVisible()


# --- completion mode ---


def test_completion_view_streams_onto_the_text_and_fixes_the_tail(qtbot: Any) -> None:
    view = CompletionView()
    qtbot.addWidget(view)
    view.show()
    view.editor.setPlainText("The cat")
    with qtbot.waitSignal(view.sig_generate_requested) as blocker:
        qtbot.keyClick(view.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == ["The cat"]
    view.set_busy(True)
    assert view.editor.isReadOnly()
    assert view.stop_button.isVisible()
    for part in (" sat", " on", " the", " mat", "\n\n#"):
        view.append_stream(part)
    qtbot.waitUntil(lambda: not view.buffer.active, timeout=2000)
    assert view.editor.toPlainText() == "The cat sat on the mat\n\n#"
    view.end_stream(" sat on the mat", "Done.")  # the engine cut a stop string
    assert view.editor.toPlainText() == "The cat sat on the mat"
    assert not view.editor.isReadOnly()
    assert view.info.text() == "Done."
    QApplication.processEvents()


def test_a_branch_shown_again_keeps_the_widgets_of_its_unchanged_messages(
        view: ChatView) -> None:
    """Sending a message shows the branch again: the messages already shown as they are keep
    their widgets (making every widget anew cost ~3 ms a message at each send); from the first
    changed one on, and for one being edited, the widgets are made anew."""
    items = [MessageItem(i, USER if i % 2 == 0 else ASSISTANT, f"message {i}", "")
             for i in range(6)]
    view.set_messages(items)
    first = list(view.messages)
    view.set_messages([*items, MessageItem(6, USER, "one more", "You")])
    assert view.messages[:6] == first
    assert [w.item.id for w in view.messages] == list(range(7))
    changed = dataclasses.replace(items[3], text="edited")
    view.set_messages([*items[:3], changed, *items[4:]])
    assert view.messages[:3] == first[:3]
    assert all(w not in first for w in view.messages[3:])
    assert [w.item.text for w in view.messages][3] == "edited"
    view.messages[1].start_edit()
    editing = view.messages[1]
    view.set_messages([*items[:3], changed, *items[4:]])
    assert view.messages[0] is first[0]
    assert view.messages[1] is not editing  # an open editor is not the message at rest
