"""NoticeBar: a one-line strip with a message (an error in plain words, or news) and the actions
that answer it ("Log in with a token…", "Try again"). GUI thread only.

Styled by the Hub window's style sheet through its `kind` property ("error" or "info").
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

__all__ = ["NoticeBar"]


class NoticeBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hubNotice")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(8, 6, 8, 6)
        self._row.addWidget(self.label, 1)
        self.hide()

    def add_button(self, text: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(lambda _checked=False: slot())
        self._row.addWidget(button, 0, Qt.AlignmentFlag.AlignVCenter)
        return button

    def show_message(self, text: str, error: bool = True) -> None:
        self.label.setText(text)
        self.setProperty("kind", "error" if error else "info")
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget() or self) else ""
