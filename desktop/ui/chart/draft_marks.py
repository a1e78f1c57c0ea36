"""Speculative decoding on the distribution chart: the draft's proposal for the shown step.

GUI thread only (the words are pure). A step made with a draft carries the draft's proposal for
its position (`StepRecord.draft_token`); the token itself is always the model's own draw, so the
proposal was accepted when the two are the same. The chart marks the proposal's bar with a dotted
outline and a "draft ✓" / "draft ✗" label above it (above the chosen token's label when they
share a bar or would print over each other), and the header says it in words: "Draft proposed
‘ x’ (target p 12%) — rejected: the model drew ‘ y’", noting when the proposal is not among the
bars shown (`step_header.draft_words`: the words are pure).

The band above the bars keeps one more row of labels once a drafted step has been drawn, until
the chart is cleared, so the axis does not move from step to step when a draft skips one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from desktop.core.steps import StepRecord

DRAFT_COLOR = QColor(120, 70, 210)
ACCEPTED_TEXT, REJECTED_TEXT = "draft ✓", "draft ✗"

Bars = Callable[[pg.BarGraphItem, np.ndarray, np.ndarray], None]


class DraftMarks:
    """The proposal's outlined bar and its label, on one chart's plot."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.bar = pg.BarGraphItem(
            x=np.zeros(0),
            height=np.zeros(0),
            width=1.12,
            brush=QColor(0, 0, 0, 0),
            pen=pg.mkPen(DRAFT_COLOR, width=2, style=Qt.PenStyle.DotLine),
        )
        plot.addItem(self.bar)
        self.label = pg.TextItem(color=DRAFT_COLOR, anchor=(0.5, 1.0))
        plot.addItem(self.label)
        self.reserved = False  # a drafted step was drawn since the chart was cleared
        self.index: int | None = None  # the proposal's bar, when it is shown

    def expect(self, record: StepRecord) -> None:
        """A step is about to be drawn: a drafted one keeps the band's row from now on."""
        if record.draft_token >= 0:
            self.reserved = True

    def rows(self) -> int:
        """Label rows the band above the bars keeps for the draft's label."""
        return 1 if self.reserved else 0

    def clear(self, forget: bool = False) -> None:
        """Draw no proposal; `forget` (the chart was cleared) gives the band's row back too."""
        self.bar.setOpts(x=np.zeros(0), y0=np.zeros(0), height=np.zeros(0))
        self.label.setText("")
        self.index = None
        if forget:
            self.reserved = False

    def draw(
        self,
        record: StepRecord,
        pos: dict[int, int],
        tops: np.ndarray,
        bars: Bars,
        chosen: pg.TextItem,
        px_of: Callable[[float], float],
        width_px: float,
        y_per_px: float,
        row_px: float,
        y_of: Callable[[float], float],
    ) -> None:
        """Mark the proposal's bar. `pos` maps token id → bar index, `tops` are the heights
        drawn, `bars` draws an item's bars on the current axis, `chosen` is the chosen token's
        label; `px_of` maps x to pixels from the plot's left edge (`width_px` wide), `y_per_px`
        is one pixel in y units and `row_px` one row of labels in pixels."""
        self.expect(record)
        i = pos.get(record.draft_token) if record.draft_token >= 0 else None
        if i is None:
            self.clear()
            return
        self.index = i
        top = float(tops[i])
        bars(self.bar, np.array([float(i)]), np.array([top]))
        text = ACCEPTED_TEXT if record.accepted else REJECTED_TEXT
        if self.label.toPlainText() != text:
            self.label.setText(text)
        # Centred over its bar, unless half of it would leave the plot: then from the bar's
        # edge inwards.
        w = float(self.label.textItem.boundingRect().width())
        at = px_of(float(i))
        x, anchor = float(i), (0.5, 1.0)
        if at - w / 2 < 2:
            x, anchor = i - 0.5, (0.0, 1.0)
        elif at + w / 2 > width_px - 2:
            x, anchor = i + 0.5, (1.0, 1.0)
        if tuple(self.label.anchor) != anchor:
            self.label.setAnchor(anchor)
        y = y_of(top) + 2 * y_per_px
        row = (row_px + 1) * y_per_px
        if chosen.toPlainText():
            # Above the chosen token's label when they share a bar or would print over each
            # other: both labels' extents in pixels, from their anchors.
            cw = float(chosen.textItem.boundingRect().width())
            c_left = px_of(float(chosen.pos().x())) - float(chosen.anchor[0]) * cw
            left = px_of(x) - anchor[0] * w
            chosen_y = float(chosen.pos().y())
            overlaps = left < c_left + cw + 2 and c_left < left + w + 2
            if record.accepted or (overlaps and abs(y - chosen_y) < row):
                y = max(y, chosen_y + row)
        self.label.setPos(x, y)
