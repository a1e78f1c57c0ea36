"""ChatView: the chat transcript, the notice banner and the input box. GUI thread only.

A view, not a controller: it shows `MessageItem`s, streams one reply at a time and emits requests
(send, stop, edit, regenerate, continue, show another version, open a step); `ChatController`
acts on them. A reply's text arrives in batches (`append_batch`, one insertion per batch: the
generation tracker's redraw timer makes them, ~30 a second at most); `append_stream` takes text
piece by piece through a `StreamBuffer`, which joins it the same way. The Tokens toggle is the
view's: switching it on one reply shades every reply's tokens, and it stays on for new ones.
Replies show a reasoning model's thinking collapsed above the answer, split by the markers of
`reasoning_format` (set from the model's template); the Thinking box beside the input is shown
when the template takes `enable_thinking`, and the controller reads `thinking_enabled`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.reasoning import THINK, ReasoningFormat
from desktop.ui.chat.attachments import AttachmentsBar
from desktop.ui.chat.image_attachments import ImageAttachments
from desktop.ui.chat.message_widget import ASSISTANT, MessageItem, MessageWidget
from desktop.ui.chat.stream_buffer import StreamBuffer

COLUMN_WIDTH = 900  # a readable line length on wide screens


class ChatInput(QPlainTextEdit):
    """The message box: Enter (or Ctrl+Enter) sends, Shift+Enter starts a new line."""

    sig_submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Message")
        self.setPlaceholderText("Message the model… (Enter sends, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.sig_submitted.emit()
            return
        super().keyPressEvent(event)

    def _fit(self) -> None:
        lines = max(1, min(8, self.document().blockCount()))
        line = self.fontMetrics().lineSpacing()
        margins = self.contentsMargins()
        height = lines * line + 2 * int(self.document().documentMargin()) + margins.top() + \
            margins.bottom() + 4
        self.setFixedHeight(max(height, 2 * line + 12))


class NoticeBar(QFrame):
    """A message across the top of the transcript, with an optional action (e.g. Reload) and,
    when given, the technical words behind a "Details" link (shown on click, selectable)."""

    sig_action_triggered = Signal(str)  # the action's key

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName("Notice")
        self.details_link = QLabel('<a href="details">Details</a>')
        self.details_link.setAccessibleName("Show details")
        self.details_link.linkActivated.connect(lambda _: self._toggle_details())
        self.details = QLabel()
        self.details.setObjectName("noticeDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAccessibleName("Notice details")
        self.details.hide()
        self.action_button = QPushButton()
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        self._action = ""
        self.action_button.clicked.connect(self._trigger)
        words = QVBoxLayout()
        words.setContentsMargins(0, 0, 0, 0)
        words.addWidget(self.label)
        words.addWidget(self.details)
        layout = QHBoxLayout(self)
        layout.addLayout(words, 1)
        layout.addWidget(self.details_link)
        layout.addWidget(self.action_button)
        layout.addWidget(self.close_button)
        self.hide()

    def show_notice(self, text: str, action: str = "", action_label: str = "",
                    kind: str = "error", details: str = "") -> None:
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self.details.setText(details)
        self.details.hide()
        self.details_link.setVisible(bool(details))
        self.details_link.setText('<a href="details">Details</a>')
        self._action = action
        self.action_button.setText(action_label)
        self.action_button.setVisible(bool(action))
        self.show()

    def _toggle_details(self) -> None:
        shown = not self.details.isVisible()
        self.details.setVisible(shown)
        self.details_link.setText(f'<a href="details">{"Hide details" if shown else "Details"}'
                                  '</a>')

    def _trigger(self) -> None:
        self.hide()
        self.sig_action_triggered.emit(self._action)


class ChatView(QWidget):
    sig_send_requested = Signal(str)
    sig_stop_requested = Signal()
    sig_edit_submitted = Signal(object, str)  # message id, new text (becomes a new version)
    sig_edit_saved = Signal(object, str)  # the same, kept without sending (EditSaver)
    sig_transcript_changed = Signal()  # a branch shown, a message added, a reply finished
    sig_regenerate_requested = Signal(object)
    sig_continue_requested = Signal(object)
    sig_sibling_requested = Signal(object, int)
    sig_notice_action_triggered = Signal(str)
    sig_step_clicked = Signal(object, int)  # a reply's text was clicked: message id, step
    sig_steps_requested = Signal(object)  # a reply's stored steps are needed: message id
    sig_thinking_changed = Signal(bool)  # the Thinking box: enable_thinking for the next turns

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages: list[MessageWidget] = []
        self._streaming: MessageWidget | None = None
        self._busy = False
        self._stick_to_bottom = True
        self.shade_tokens = False  # the Tokens toggle, for every reply
        self.reasoning_format: ReasoningFormat = THINK  # the loaded model's thinking markers
        self.buffer = StreamBuffer(self._sink_text, parent=self)
        self._sink: Callable[[str], None] | None = None

        self.notice = NoticeBar(self)
        self.notice.sig_action_triggered.connect(self.sig_notice_action_triggered)

        self.transcript = QScrollArea(self)
        self.transcript.setWidgetResizable(True)
        self.transcript.setFrameShape(QFrame.Shape.NoFrame)
        self.transcript.setAccessibleName("Transcript")
        self.transcript.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        page = QWidget()
        page.setObjectName("transcriptPage")
        outer = QHBoxLayout(page)
        outer.setContentsMargins(12, 12, 12, 12)
        self.column = QWidget()
        self.column.setMaximumWidth(COLUMN_WIDTH)
        self.column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._column_layout = QVBoxLayout(self.column)
        self._column_layout.setContentsMargins(0, 0, 0, 0)
        self._column_layout.setSpacing(10)
        self.empty_label = QLabel()
        self.empty_label.setObjectName("emptyTranscript")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self._column_layout.addWidget(self.empty_label)
        self._column_layout.addStretch(1)
        outer.addStretch(0)
        outer.addWidget(self.column, 1)
        outer.addStretch(0)
        self.transcript.setWidget(page)
        bar = self.transcript.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

        self.input = ChatInput(self)
        self.input.sig_submitted.connect(self.submit)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.submit)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop generating")
        self.stop_button.setToolTip("Stop generating (Esc)")
        self.stop_button.clicked.connect(self.sig_stop_requested)
        self.stop_button.hide()
        self.thinking_check = QCheckBox("Thinking")
        self.thinking_check.setAccessibleName("Let the model think before answering")
        self.thinking_check.setToolTip(
            "The model's template has a thinking switch (enable_thinking): on, the model "
            "thinks before it answers; off, it answers at once")
        self.thinking_check.setChecked(True)
        self.thinking_check.toggled.connect(self.sig_thinking_changed)
        self.thinking_check.hide()
        self.attachments = AttachmentsBar(self)  # files sent with the next message
        row = QHBoxLayout()
        row.setContentsMargins(12, 4, 12, 12)
        row.addWidget(self.input, 1)
        row.addWidget(self.thinking_check, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.stop_button, 0, Qt.AlignmentFlag.AlignBottom)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        layout.addWidget(self.transcript, 1)
        # Images for a vision model (issue #20): picked, pasted or dropped on the input.
        self.images = ImageAttachments(self.input, self)
        self.images.setContentsMargins(12, 4, 12, 0)
        self.images.sig_refused.connect(self.notice.show_notice)
        layout.addWidget(self.images)
        layout.addWidget(self.attachments)
        # One row of attach actions: files and images side by side, thumbnails above them.
        self.attachments.add_button(self.images.attach_button)
        layout.addLayout(row)
        self.set_empty_text("Type a message below to start chatting.")

    # --- input ---

    def submit(self) -> None:
        text = self.input.toPlainText()
        if not text.strip() or self._busy:
            return
        if self.attachments.reading():  # the files would be left behind: the text stays
            self.notice.show_notice("Attached files are still being read; send once they "
                                    "are listed.")
            return
        self.input.clear()
        self.sig_send_requested.emit(text)
        if not self.input.toPlainText():  # taken (not given back): the files went with it
            self.attachments.clear()

    def set_busy(self, busy: bool) -> None:
        """While a reply streams: Stop instead of Send, message actions disabled."""
        self._busy = busy
        self.send_button.setVisible(not busy)
        self.stop_button.setVisible(busy)
        for widget in self.messages:
            widget.set_actions_enabled(not busy)

    @property
    def busy(self) -> bool:
        return self._busy

    def set_thinking_available(self, available: bool) -> None:
        """Show the Thinking box (the template takes `enable_thinking`) or hide it."""
        self.thinking_check.setVisible(available)

    @property
    def thinking_enabled(self) -> bool | None:
        """`enable_thinking` for the next prompt: None when the template has no such switch."""
        if self.thinking_check.isHidden():
            return None
        return self.thinking_check.isChecked()

    def set_thinking_enabled(self, on: bool) -> None:
        self.thinking_check.setChecked(on)

    def set_reasoning_format(self, fmt: ReasoningFormat) -> None:
        """The loaded model's thinking markers: every reply shown is split again by them."""
        if fmt == self.reasoning_format:
            return
        self.reasoning_format = fmt
        for widget in self.messages:
            widget.reasoning = fmt
            if widget is not self._streaming and widget.editor is None:
                widget.show_text(widget.item.text)

    def image_count(self) -> int:
        """Images the next prompt may carry: the transcript's and those attached now."""
        return sum(len(m.item.images) for m in self.messages) + len(self.images.images())

    def set_empty_text(self, text: str) -> None:
        self.empty_label.setText(text)
        self.empty_label.setVisible(not self.messages)

    # --- transcript ---

    def set_messages(self, items: Sequence[MessageItem]) -> None:
        """Show a whole branch (after switching conversation or version). The widgets of a
        leading run of messages already shown as they are stay: sending a message re-made
        every widget of the conversation (~3 ms each, 175 ms at 40 messages) before."""
        self.buffer.discard()
        self._streaming, self._sink = None, None
        keep = 0
        for widget, item in zip(self.messages, items):
            if not widget.shows(item):
                break
            keep += 1
        for widget in self.messages[keep:]:
            self._column_layout.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        del self.messages[keep:]
        for item in items[keep:]:
            self._add(item)
        self.empty_label.setVisible(not self.messages)
        self._stick_to_bottom = True
        self.sig_transcript_changed.emit()

    def add_message(self, item: MessageItem) -> MessageWidget:
        widget = self._add(item)
        self.empty_label.hide()
        self._stick_to_bottom = True
        return widget

    def _add(self, item: MessageItem) -> MessageWidget:
        widget = MessageWidget(item, self.column, self.reasoning_format)
        widget.sig_edit_submitted.connect(self.sig_edit_submitted)
        widget.sig_edit_saved.connect(self.sig_edit_saved)
        widget.sig_regenerate_requested.connect(self.sig_regenerate_requested)
        widget.sig_continue_requested.connect(self.sig_continue_requested)
        widget.sig_sibling_requested.connect(self.sig_sibling_requested)
        widget.sig_step_clicked.connect(self.sig_step_clicked)
        widget.sig_steps_requested.connect(self.sig_steps_requested)
        widget.sig_shading_toggled.connect(self.set_token_shading)
        widget.set_shaded(self.shade_tokens)
        widget.set_actions_enabled(not self._busy)
        # Before the trailing stretch, so messages stack from the top.
        self._column_layout.insertWidget(self._column_layout.count() - 1, widget)
        self.messages.append(widget)
        return widget

    def set_token_shading(self, on: bool) -> None:
        """Shade every reply's tokens by how sure the model was (on) or show Markdown (off)."""
        self.shade_tokens = on
        for widget in self.messages:
            widget.set_shaded(on)

    def widget_for(self, message_id: Any) -> MessageWidget | None:
        for widget in self.messages:
            if widget.item.id == message_id:
                return widget
        return None

    def truncate_after(self, message_id: Any) -> None:
        """Drop the widgets shown after a message (a new version replaces what followed it)."""
        keep = [w.item.id for w in self.messages]
        if message_id not in keep:
            return
        cut = keep.index(message_id) + 1
        for widget in self.messages[cut:]:
            self._column_layout.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self.messages = self.messages[:cut]

    # --- streaming ---

    def begin_stream(self, item: MessageItem, initial: str = "") -> None:
        """Start streaming into `item`'s widget (added if not shown yet, e.g. for a new reply)."""
        self.buffer.discard()
        widget = self.widget_for(item.id)
        if widget is None:
            widget = self.add_message(item)
        widget.begin_stream(initial)
        self._streaming = widget
        # The widget splits the text: thinking to its thinking block, the rest to the answer.
        self._sink = widget.append_streamed
        self._stick_to_bottom = True

    @property
    def streaming(self) -> bool:
        return self._streaming is not None

    def append_stream(self, text: str) -> None:
        if self._streaming is not None:
            self.buffer.push(text)

    def append_batch(self, text: str) -> None:
        """A batch of the reply's text, inserted at once (the caller batches: ≤ 30 a second)."""
        if self._streaming is not None:
            self.buffer.write(text)

    def streamed_text(self) -> str:
        """Everything streamed so far, including text not flushed to the screen yet."""
        if self._streaming is None:
            return ""
        return self._streaming.text() + self.buffer.pending

    def end_stream(self, item: MessageItem) -> None:
        """Flush, then show the finished message as Markdown (its id may now be the stored one)."""
        self.buffer.flush()
        self.buffer.discard()
        widget, self._streaming, self._sink = self._streaming, None, None
        if widget is None:
            widget = self.widget_for(item.id) or self.add_message(item)
        widget.finish(item)
        self.sig_transcript_changed.emit()  # the reply has its stored id and final text now

    def _sink_text(self, text: str) -> None:
        if self._sink is not None:
            self._sink(text)

    def _on_scrolled(self, value: int) -> None:
        bar = self.transcript.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 8

    def _on_range_changed(self, _low: int, high: int) -> None:
        if self._stick_to_bottom:
            self.transcript.verticalScrollBar().setValue(high)

    def last_assistant(self) -> MessageWidget | None:
        for widget in reversed(self.messages):
            if widget.item.role == ASSISTANT:
                return widget
        return None
