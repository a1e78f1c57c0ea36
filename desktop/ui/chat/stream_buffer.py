"""StreamBuffer and TextSink: coalesce streamed tokens into a few insertions per second.

GUI thread only. Tokens arrive at up to hundreds per second; inserting and repainting per token
freezes the window, and PySide6 6.12 on CPython 3.11 aborts after ~5,000 `insertPlainText` calls
(FACTS.md). So tokens are appended to a Python list and a ~30 Hz timer joins them into one
`QTextCursor.insertText` call. The timer runs only while text is waiting: an idle stream leaves no
timer ticking.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QTextCursor, QTextDocument

FLUSH_INTERVAL_MS = 33  # ≈ 30 insertions per second, whatever the token rate


class StreamBuffer(QObject):
    """Buffers text and hands it to `sink` in batches from a timer."""

    def __init__(self, sink: Callable[[str], None], interval_ms: int = FLUSH_INTERVAL_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sink = sink
        self._parts: list[str] = []
        self._timer = QTimer(self)
        self._timer.setObjectName("stream-flush")
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_tick)
        self.flushes = 0  # how many times the sink was called (tests and the UI bench)

    def push(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Hand over everything buffered now (before a final render, or on Stop)."""
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self.flushes += 1
            self._sink(text)

    def write(self, text: str) -> None:
        """Hand a batch made elsewhere (the generation tracker's) to the sink at once, after
        anything pushed piece by piece: one insertion, counted as a flush."""
        self.flush()
        if text:
            self.flushes += 1
            self._sink(text)

    def discard(self) -> None:
        self._parts.clear()
        self._timer.stop()

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    @property
    def pending(self) -> str:
        return "".join(self._parts)

    def _on_tick(self) -> None:
        if not self._parts:
            self._timer.stop()  # nothing arrived for a whole interval: go quiet
            return
        self.flush()


class TextSink:
    """Appends text at the end of a QTextDocument with one cursor insertion per batch.

    Works on the document, not the widget: no `moveCursor`/`insertPlainText` on the editor, and
    the user's own cursor and selection stay where they are.
    """

    def __init__(self, document: QTextDocument) -> None:
        self._doc = document

    def __call__(self, text: str) -> None:
        cursor = QTextCursor(self._doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
