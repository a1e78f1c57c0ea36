"""ElidedLabel: a one-line label that cuts a long text in the middle ("tiny-gem…Q4_K_M.gguf"), so
both a file name's start and its quant stay visible, and shows the whole text on hover. It never
asks for more width than a few characters, so it never widens its row. GUI thread only."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

__all__ = ["ElidedLabel"]


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        if text == self._full:
            return
        self._full = text
        super().setText(text)
        self.setToolTip(text)

    def full_text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        """What fits the label's width now (the middle elided)."""
        return self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle,
                                             max(0, self.contentsRect().width()))

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(self.fontMetrics().horizontalAdvance("M" * 6), hint.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setFont(self.font())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment() | Qt.AlignmentFlag.AlignVCenter),
                         self.shown_text())
