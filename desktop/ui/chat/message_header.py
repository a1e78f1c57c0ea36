"""The header row of a chat message: who wrote it, the branch arrows ‹ 1/2 ›, and its actions
(Copy, Tokens, Edit, Regenerate, Continue). GUI thread only.

The row only holds and shows the buttons; `MessageWidget` connects them to its requests, so the
header knows nothing of editing, streaming or steps.
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton

USER, ASSISTANT = "user", "assistant"


class MessageItem(Protocol):
    """What the header reads of a `message_widget.MessageItem` (no import back to it)."""

    @property
    def role(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def sibling_index(self) -> int: ...
    @property
    def sibling_count(self) -> int: ...


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


def tool_button(text: str, accessible: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setAutoRaise(True)
    button.setAccessibleName(accessible)
    button.setToolTip(accessible)
    return button


class MessageHeader(QHBoxLayout):
    """Who, ‹ n/m ›, Copy, Tokens, Edit, Regenerate, Continue — the buttons of one message."""

    def __init__(self, item: MessageItem) -> None:
        super().__init__()
        self.setSpacing(2)
        who = ElidedLabel(item.label or ("You" if item.role == USER else "Assistant"))
        who.setObjectName("messageRole")
        who.setToolTip(who.text())
        who.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        font = who.font()
        font.setBold(True)
        who.setFont(font)
        self.who = who
        self.addWidget(who, 1)
        self.prev_button = tool_button("‹", "Previous version")
        self.branch_label = QLabel(f"{item.sibling_index + 1}/{item.sibling_count}")
        self.branch_label.setAccessibleName("Version")
        self.next_button = tool_button("›", "Next version")
        for w in (self.prev_button, self.branch_label, self.next_button):
            self.addWidget(w)
        self.copy_button = tool_button("Copy", "Copy message")
        self.addWidget(self.copy_button)
        self.edit_button = tool_button("Edit", "Edit message")
        self.regenerate_button = tool_button("Regenerate", "Regenerate reply")
        self.continue_button = tool_button("Continue", "Continue reply")
        self.tokens_button = tool_button("Tokens", "Shade every reply's tokens by how sure the "
                                         "model was (click any token to inspect it either way)")
        self.tokens_button.setCheckable(True)
        self.tokens_button.hide()
        self.addWidget(self.tokens_button)
        self.edit_button.setVisible(item.role in (USER, ASSISTANT))  # replies can be edited too
        self.regenerate_button.setVisible(item.role == ASSISTANT)
        self.continue_button.setVisible(item.role == ASSISTANT)
        for w in (self.edit_button, self.regenerate_button, self.continue_button):
            self.addWidget(w)
        self.apply_branch(item)

    def apply_branch(self, item: MessageItem) -> None:
        """Show ‹ n/m › only when the message has other versions."""
        has_siblings = item.sibling_count > 1
        self.branch_label.setText(f"{item.sibling_index + 1}/{item.sibling_count}")
        for w in (self.prev_button, self.branch_label, self.next_button):
            w.setVisible(has_siblings)
        self.prev_button.setEnabled(item.sibling_index > 0)
        self.next_button.setEnabled(item.sibling_index < item.sibling_count - 1)

    def set_actions_enabled(self, item: MessageItem, enabled: bool) -> None:
        for w in (self.edit_button, self.regenerate_button, self.continue_button,
                  self.prev_button, self.next_button):
            w.setEnabled(enabled)
        if enabled:
            self.prev_button.setEnabled(item.sibling_index > 0)
            self.next_button.setEnabled(item.sibling_index < item.sibling_count - 1)
