"""CompletionView: completion mode, one plain text editor the model continues. GUI thread only.

No template, no turns: a language model is a completion machine, and here it continues exactly
what was typed ("Elon Musk is…"). The text is sent as one untrusted piece (typed markup such as
`<start_of_turn>` stays plain text) and the reply streams onto the end of the same document in
batches (`append_batch`, from the generation tracker's redraw timer; `append_stream` joins single
pieces through a `StreamBuffer`). Ctrl+Enter in the editor continues the text. The view emits
requests; the main window talks to the engine.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontDatabase, QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat.stream_buffer import StreamBuffer, TextSink


class CompletionEditor(QPlainTextEdit):
    """Ctrl+Enter asks for a continuation; plain Enter is a newline, as in any editor."""

    sig_submitted = Signal()

    def event(self, event: QEvent) -> bool:
        # Claim Ctrl+Enter before any window-wide shortcut bound to it (the chat's send) sees it.
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and _is_ctrl_enter(event)):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if _is_ctrl_enter(event):
            self.sig_submitted.emit()
            return
        super().keyPressEvent(event)


def _is_ctrl_enter(event: QKeyEvent) -> bool:
    return event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and bool(
        event.modifiers() & Qt.KeyboardModifier.ControlModifier)


class CompletionView(QWidget):
    sig_generate_requested = Signal(str)  # the whole text, to be continued
    sig_stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = CompletionEditor(self)
        self.editor.setAccessibleName("Completion text")
        self.editor.setPlaceholderText(
            "Type the beginning of a text, e.g. “The three laws of robotics are”, and press "
            "Continue (Ctrl+Enter): the model writes what comes next, with no chat template."
        )
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.editor.setFont(font)
        self.editor.sig_submitted.connect(self.submit)
        self._sink = TextSink(self.editor.document())
        self.buffer = StreamBuffer(self._insert, parent=self)
        self.generate_button = QPushButton("Continue")
        self.generate_button.setAccessibleName("Continue the text")
        self.generate_button.setToolTip("Let the model continue the text (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.submit)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop generating")
        self.stop_button.clicked.connect(self.sig_stop_requested)
        self.stop_button.hide()
        self.info = QLabel("The text is sent exactly as written: no template, no turns.")
        self.info.setObjectName("completionInfo")
        row = QHBoxLayout()
        row.addWidget(self.info, 1)
        row.addWidget(self.generate_button)
        row.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addWidget(self.editor, 1)
        layout.addLayout(row)
        self._busy = False
        self.prompt_length = 0  # characters that were the prompt of the running generation

    def submit(self) -> None:
        text = self.editor.toPlainText()
        if self._busy or not text.strip():
            return
        self.prompt_length = len(text)
        self.sig_generate_requested.emit(text)

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.editor.setReadOnly(busy)  # typing mid-stream would interleave with the reply
        self.generate_button.setVisible(not busy)
        self.stop_button.setVisible(busy)
        if busy:
            cursor = self.editor.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            self.editor.setTextCursor(cursor)

    @property
    def busy(self) -> bool:
        return self._busy

    def append_stream(self, text: str) -> None:
        self.buffer.push(text)

    def append_batch(self, text: str) -> None:
        """A batch of the continuation, inserted at once (the caller batches it)."""
        self.buffer.write(text)

    def _insert(self, text: str) -> None:
        bar = self.editor.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        self._sink(text)
        if at_bottom:
            bar.setValue(bar.maximum())

    def end_stream(self, final_text: str | None = None, summary: str = "") -> None:
        """Flush; then make the tail exactly `final_text` (the engine's text, which leaves out a
        matched stop string that may have streamed in part)."""
        self.buffer.flush()
        self.buffer.discard()
        if final_text is not None:
            current = self.editor.toPlainText()[self.prompt_length:]
            if current != final_text:
                cursor = QTextCursor(self.editor.document())
                cursor.setPosition(self.prompt_length)
                cursor.movePosition(QTextCursor.MoveOperation.End,
                                    QTextCursor.MoveMode.KeepAnchor)
                cursor.insertText(final_text)
        if summary:
            self.info.setText(summary)
        self.set_busy(False)
        self.editor.setFocus()

    def show_error(self, text: str) -> None:
        self.buffer.discard()
        self.info.setText(text)
        self.set_busy(False)
