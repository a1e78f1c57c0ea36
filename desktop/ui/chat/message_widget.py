"""One message of the chat transcript: header (who, branch arrows ‹ 1/2 ›, actions), body, footer.

GUI thread only. A finished message shows its text as Markdown (see markdown_body.py: each fenced
code block in its own monospace box with a Copy button); a streaming message shows plain text
that the chat view appends to in batches (see stream_buffer.py); the token view shows the reply
token by token. Text from the model is never trusted as HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat.markdown_body import AutoHeightBrowser, MarkdownBody
from desktop.ui.chat.token_view import TokenView

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"


@dataclass(frozen=True)
class MessageItem:
    """What the transcript shows of one message (built by the chat controller from the store)."""

    id: Any
    role: str
    text: str
    label: str = ""  # who: "You", the model's name
    sibling_index: int = 0  # 0-based position among the message's siblings
    sibling_count: int = 1
    footer: str = ""  # e.g. "42 tokens · 38 tok/s · stopped"
    has_steps: bool = False  # its StepRecords are stored: the token view can load them


class ElidedLabel(QLabel):
    """A one-line label that shrinks with an ellipsis instead of pushing its row wider."""

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        painter.setFont(self.font())
        painter.setPen(self.palette().color(self.foregroundRole()))
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             self.width())
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter), text)
        painter.end()


class MessageWidget(QFrame):
    """Header, body and footer of one message. Emits requests; the controller acts on them."""

    sig_edit_submitted = Signal(object, str)  # message id, new text
    sig_regenerate_requested = Signal(object)
    sig_continue_requested = Signal(object)
    sig_sibling_requested = Signal(object, int)  # message id, 0-based sibling index to show
    sig_step_clicked = Signal(int)  # a token of the token view was clicked: its step
    sig_steps_requested = Signal(object)  # the token view opened: message id (load / chart)

    def __init__(self, item: MessageItem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        self.setObjectName("userMessage" if item.role == USER else "assistantMessage")
        self.setFrameShape(QFrame.Shape.StyledPanel if item.role == USER else QFrame.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(12, 8, 12, 8)
        self._layout.setSpacing(4)
        self._layout.addLayout(self._build_header(item))
        self.body: QWidget = QWidget()
        self.stream_view: AutoHeightBrowser | None = None
        self.editor: QPlainTextEdit | None = None
        self.steps: tuple[Any, ...] = ()  # StepRecords of this reply, once known
        self.footer = QLabel(item.footer)
        self.footer.setObjectName("messageFooter")
        self.footer.setVisible(bool(item.footer))
        self._layout.addWidget(self.body)
        self._layout.addWidget(self.footer)
        self.show_text(item.text)
        self.set_steps(())

    def _build_header(self, item: MessageItem) -> QHBoxLayout:
        head = QHBoxLayout()
        head.setSpacing(2)
        who = ElidedLabel(item.label or ("You" if item.role == USER else "Assistant"))
        who.setObjectName("messageRole")
        who.setToolTip(who.text())
        who.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        font = who.font()
        font.setBold(True)
        who.setFont(font)
        head.addWidget(who, 1)
        self.prev_button = self._tool("‹", "Previous version")
        self.branch_label = QLabel(f"{item.sibling_index + 1}/{item.sibling_count}")
        self.branch_label.setAccessibleName("Version")
        self.next_button = self._tool("›", "Next version")
        self.prev_button.clicked.connect(lambda: self._go(-1))
        self.next_button.clicked.connect(lambda: self._go(+1))
        for w in (self.prev_button, self.branch_label, self.next_button):
            head.addWidget(w)
        self.copy_button = self._tool("Copy", "Copy message")
        self.copy_button.clicked.connect(self._copy)
        head.addWidget(self.copy_button)
        self.edit_button = self._tool("Edit", "Edit message")
        self.edit_button.clicked.connect(self.start_edit)
        self.regenerate_button = self._tool("Regenerate", "Regenerate reply")
        self.regenerate_button.clicked.connect(
            lambda: self.sig_regenerate_requested.emit(self.item.id))
        self.continue_button = self._tool("Continue", "Continue reply")
        self.continue_button.clicked.connect(
            lambda: self.sig_continue_requested.emit(self.item.id))
        self.tokens_button = self._tool("Tokens", "Show the reply token by token, shaded by "
                                        "how sure the model was; click a token to inspect it")
        self.tokens_button.setCheckable(True)
        self.tokens_button.toggled.connect(self._show_tokens)
        self.tokens_button.hide()
        head.addWidget(self.tokens_button)
        self.edit_button.setVisible(item.role == USER)
        self.regenerate_button.setVisible(item.role == ASSISTANT)
        self.continue_button.setVisible(item.role == ASSISTANT)
        for w in (self.edit_button, self.regenerate_button, self.continue_button):
            head.addWidget(w)
        self._apply_branch(item)
        return head

    def _apply_branch(self, item: MessageItem) -> None:
        has_siblings = item.sibling_count > 1
        self.branch_label.setText(f"{item.sibling_index + 1}/{item.sibling_count}")
        for w in (self.prev_button, self.branch_label, self.next_button):
            w.setVisible(has_siblings)
        self.prev_button.setEnabled(item.sibling_index > 0)
        self.next_button.setEnabled(item.sibling_index < item.sibling_count - 1)

    def _tool(self, text: str, accessible: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setAutoRaise(True)
        button.setAccessibleName(accessible)
        button.setToolTip(accessible)
        return button

    def _go(self, delta: int) -> None:
        self.sig_sibling_requested.emit(self.item.id, self.item.sibling_index + delta)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def set_actions_enabled(self, enabled: bool) -> None:
        for w in (self.edit_button, self.regenerate_button, self.continue_button,
                  self.prev_button, self.next_button):
            w.setEnabled(enabled)
        if enabled:
            self.prev_button.setEnabled(self.item.sibling_index > 0)
            self.next_button.setEnabled(self.item.sibling_index < self.item.sibling_count - 1)

    def text(self) -> str:
        if self.stream_view is not None:
            return self.stream_view.toPlainText()
        return self.item.text

    # --- body states: finished (Markdown), streaming (plain, appended), editing ---

    def _replace_body(self, body: QWidget) -> None:
        self._layout.replaceWidget(self.body, body)
        self.body.hide()
        self.body.deleteLater()
        self.body = body

    def show_text(self, text: str) -> None:
        self.stream_view = None
        self.editor = None
        self.tokens_button.blockSignals(True)
        self.tokens_button.setChecked(False)
        self.tokens_button.blockSignals(False)
        self._replace_body(MarkdownBody(text))

    def set_steps(self, steps: tuple[Any, ...]) -> None:
        """Offer the token view; steps that arrive while it waits for them are shown."""
        self.steps = steps
        self.tokens_button.setVisible((bool(steps) or self.item.has_steps)
                                      and self.item.role == ASSISTANT)
        if steps and self.tokens_button.isChecked():
            self._show_token_view()

    def _show_tokens(self, on: bool) -> None:
        if not on:
            self.show_text(self.item.text)
            return
        # Stored steps load on request (set_steps shows them); the chart follows this message.
        self.sig_steps_requested.emit(self.item.id)
        if self.steps:
            self._show_token_view()

    def _show_token_view(self) -> None:
        view = TokenView(self.steps)
        view.sig_step_clicked.connect(self.sig_step_clicked)
        self._replace_body(view)

    def begin_stream(self, initial: str = "") -> AutoHeightBrowser:
        view = AutoHeightBrowser()
        view.setPlainText(initial)
        self.stream_view = view
        self._replace_body(view)
        self.footer.setText("generating…")
        self.footer.show()
        return view

    def finish(self, item: MessageItem) -> None:
        self.item = item
        self._apply_branch(item)
        self.show_text(item.text)
        self.footer.setText(item.footer)
        self.footer.setVisible(bool(item.footer))
        self.set_steps(self.steps)

    def start_edit(self) -> None:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.editor = QPlainTextEdit(self.item.text)
        self.editor.setAccessibleName("Edited message")
        self.editor.setMinimumHeight(80)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        send = QPushButton("Save && send")
        send.setDefault(True)
        cancel.clicked.connect(lambda: self.show_text(self.item.text))
        send.clicked.connect(self._submit_edit)
        buttons.addWidget(cancel)
        buttons.addWidget(send)
        layout.addWidget(self.editor)
        layout.addLayout(buttons)
        self._replace_body(box)
        self.editor.setFocus()

    def _submit_edit(self) -> None:
        if self.editor is None:
            return
        text = self.editor.toPlainText()
        if text.strip():
            self.sig_edit_submitted.emit(self.item.id, text)
