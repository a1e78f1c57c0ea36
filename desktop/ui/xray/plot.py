"""SizePlot: the prompt's size per turn against the context window, stacked by part.

GUI thread only. One bar per recorded turn (the parts' tokens, in the context meter's colours),
then a "next" bar: the branch as the overflow policy would send it now, with the turns it would
leave out drawn grey above it, before anything is sent. A dashed line marks the context window;
a marker shows the first turn whose prompt left a turn out. Clicking a bar selects that turn.
Painted with QPainter from the values it is given; nothing is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.core.conversations import xray as X
from desktop.ui.panels.context_meter import PART_COLOURS

GREY = QColor(150, 150, 150, 110)
LIMIT = QColor("#d04040")


@dataclass(frozen=True)
class Bar:
    label: str  # "1", "2", …, "next"
    parts: tuple[tuple[str, int], ...]  # (category, tokens), bottom first
    greyed: int = 0  # tokens the overflow policy would leave out (drawn grey on top)
    recorded: bool = True
    falls_out: bool = False  # the first turn whose prompt left a turn out


class SizePlot(QWidget):
    sig_bar_clicked = Signal(int)  # the bar's index

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bars: tuple[Bar, ...] = ()
        self._n_ctx = 0
        self._selected = -1
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(150)
        self.setAccessibleName("Prompt size per turn")

    def set_bars(self, bars: tuple[Bar, ...], n_ctx: int) -> None:
        self._bars, self._n_ctx = bars, n_ctx
        self.update()

    def bars(self) -> tuple[Bar, ...]:
        return self._bars

    def select(self, index: int) -> None:
        self._selected = index
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(600, 190)

    def _plot_rect(self) -> QRectF:
        m = self.fontMetrics()
        return QRectF(self.rect()).adjusted(m.horizontalAdvance("00,000") + 8, m.height() + 6,
                                            -8, -(m.height() + 8))

    def _slot(self, plot: QRectF) -> float:
        return plot.width() / max(1, len(self._bars))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        plot = self._plot_rect()
        x = event.position().x() - plot.left()
        index = int(x // self._slot(plot)) if x >= 0 else -1
        if 0 <= index < len(self._bars):
            self.sig_bar_clicked.emit(index)

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        pal = self.palette()
        painter.fillRect(self.rect(), pal.base())
        plot = self._plot_rect()
        top = max([self._n_ctx, 1] + [sum(t for _, t in b.parts) + b.greyed for b in self._bars])
        scale = plot.height() / (top * 1.08)
        text = pal.text().color()
        painter.setPen(pal.mid().color())
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        painter.setPen(text)
        fm = self.fontMetrics()
        for value in (0, top // 2, top):
            y = plot.bottom() - value * scale
            painter.drawText(QRectF(0, y - fm.height() / 2, plot.left() - 4, fm.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             f"{value:,}")
        slot = self._slot(plot)
        width = max(4.0, min(48.0, slot * 0.7))
        for i, bar in enumerate(self._bars):
            x = plot.left() + slot * i + (slot - width) / 2
            y = plot.bottom()
            if i == self._selected:
                painter.fillRect(QRectF(plot.left() + slot * i, plot.top(), slot,
                                        plot.height()), pal.alternateBase())
            for category, tokens in bar.parts:
                h = tokens * scale
                painter.fillRect(QRectF(x, y - h, width, h), QColor(PART_COLOURS[category]))
                y -= h
            if bar.greyed:
                h = bar.greyed * scale
                painter.fillRect(QRectF(x, y - h, width, h), GREY)
                painter.setPen(QPen(pal.mid().color(), 1, Qt.PenStyle.DashLine))
                painter.drawRect(QRectF(x, y - h, width, h))
                y -= h
            painter.setPen(text)
            label = bar.label if bar.recorded else f"{bar.label}?"
            painter.drawText(QRectF(plot.left() + slot * i, plot.bottom() + 2, slot,
                                    fm.height() + 4), Qt.AlignmentFlag.AlignCenter, label)
            if bar.falls_out:
                painter.setPen(QPen(LIMIT, 1))
                painter.drawText(QPointF(x, y - 4), "▼ a turn falls out")
        if self._n_ctx:
            y = plot.bottom() - self._n_ctx * scale
            painter.setPen(QPen(LIMIT, 1.5, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.drawText(QPointF(plot.left() + 4, y - 3),
                             f"context window {self._n_ctx:,} tokens")
        painter.end()


def bars_of(x: X.ConversationXray, next_prompt: X.NextPrompt | None) -> tuple[Bar, ...]:
    """One bar per stored reply, then the "next" bar."""
    bars: list[Bar] = []
    fell = False
    for t in x.turns:
        totals = t.by_category() if t.has_parts else {X.HISTORY: t.prompt_tokens}
        falls = bool(t.dropped_turns) and not fell
        fell = fell or falls
        bars.append(Bar(str(t.turn), tuple((c, n) for c, n in totals.items() if n),
                        recorded=t.recorded and t.has_parts, falls_out=falls))
    if next_prompt is not None and x.turns:
        last = x.turns[-1]
        greyed = sum(p.tokens for p in last.parts if p.turn in next_prompt.dropped_turns)
        base = last.by_category() if last.has_parts else {X.HISTORY: last.prompt_tokens}
        # What stays of the last prompt (its question is history now), then the text added
        # since: the next prompt as the policy counts it, the turns it leaves out grey above.
        base[X.HISTORY] = base.get(X.HISTORY, 0) + base.pop(X.NEW, 0) - greyed
        base[X.HISTORY] += max(0, next_prompt.tokens - sum(base.values()))
        bars.append(Bar("next", tuple((c, n) for c, n in base.items() if n > 0), greyed))
    return tuple(bars)
