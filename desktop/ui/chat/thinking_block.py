"""ThinkingBlock: a reasoning model's thinking, collapsed above its answer. GUI thread only.

A header button ("Thought for 212 tokens ▸") opens and closes the block; the text below it is
plain (the model's thinking is shown as written, never as HTML) and grows while the reply
streams, whether the block is open or not, so opening it mid-stream shows everything so far.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QFrame, QToolButton, QVBoxLayout, QWidget

from desktop.core.reasoning import ReasoningFormat, ReasoningSplit, ReasoningSplitter
from desktop.core.steps import StepRecord
from desktop.ui.chat.markdown_body import AutoHeightBrowser

OPEN, CLOSED = "▾", "▸"


def thinking_title(split: ReasoningSplit, text: str, steps: Sequence[StepRecord], *,
                   streaming: bool) -> str:
    """The block's header: its size in tokens when the reply's steps are known (and wrote all
    of `text`; a continued reply's older part has none), else in words."""
    if not split.closed:
        return "Thinking…" if streaming else "Thought (cut off)"
    if steps and "".join(r.text for r in steps) == text:
        at, n = 0, 0
        for record in steps:  # the tokens that start before the closing marker
            if at >= split.thinking_end:
                break
            n += 1
            at += len(record.text)
        return f"Thought for {n} token{'s' if n != 1 else ''}"
    words = len(split.thinking.split())
    return f"Thought ({words} word{'s' if words != 1 else ''})"


class ThinkingBlock(QFrame):
    """The header button and the thinking text (hidden until the button opens it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thinkingBlock")
        self.toggle = QToolButton()
        self.toggle.setObjectName("thinkingToggle")
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setAccessibleName("Show thinking")
        self.toggle.setToolTip("Show or hide what the model thought before answering")
        self.toggle.toggled.connect(self._on_toggled)
        self.view = AutoHeightBrowser()
        self.view.setObjectName("thinkingText")
        self.view.setAccessibleName("Thinking")
        self.view.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(self.view)
        self._title = "Thinking…"
        self._splitter: ReasoningSplitter | None = None
        self._update_title()
        self.hide()

    def show_split(self, split: ReasoningSplit, title: str) -> None:
        """A whole reply's thinking (hidden when it has none)."""
        self._splitter = None
        if not split.has_thinking:
            self.hide()
            return
        self.set_text(split.thinking.strip())
        self.set_title(title)

    def begin_stream(self, fmt: ReasoningFormat) -> None:
        self._splitter = ReasoningSplitter(fmt)
        self.set_text("")
        self.hide()
        self.set_title("Thinking…")

    def feed(self, text: str) -> tuple[str, bool, bool]:
        """Streamed text: its thinking is shown here. Returns the answer's part, whether that
        replaces the answer shown so far (a lone closing marker showed it was thinking), and
        whether the block closed."""
        if self._splitter is None:
            return text, False, False
        delta = self._splitter.feed(text)
        if delta.restart:
            self.view.setPlainText(delta.thinking.strip())
        else:
            self.append(delta.thinking)
        if self._splitter.has_thinking:
            self.show()
        return delta.answer, delta.restart, delta.closed

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_expanded(self, on: bool) -> None:
        self.toggle.setChecked(on)

    @property
    def title(self) -> str:
        return self._title

    def set_title(self, title: str) -> None:
        self._title = title
        self._update_title()

    def text(self) -> str:
        return self.view.toPlainText()

    def set_text(self, text: str) -> None:
        self.view.setPlainText(text)
        self.show()

    def append(self, text: str) -> None:
        """More thinking, streamed: one insertion at the end (the view's own cursor stays)."""
        if not text:
            return
        if not self.view.document().isEmpty() or text.strip():
            cursor = QTextCursor(self.view.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            # The first line break after <think> is the model's layout, not its thinking.
            cursor.insertText(text.lstrip("\n") if self.view.document().isEmpty() else text)
        self.show()

    def _on_toggled(self, on: bool) -> None:
        self.view.setVisible(on)
        self._update_title()

    def _update_title(self) -> None:
        self.toggle.setText(f"{self._title} {OPEN if self.expanded else CLOSED}")
