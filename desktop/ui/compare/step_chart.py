"""StepOverlayChart: one step of every set, their distributions overlaid. GUI thread only.

For the step a person clicked, each set's record at that step gives one series of bars: the
final distribution it was drawn from (after the whole chain) or, switched, the raw softmax. The
tokens on the x axis are the most probable across the sets (every set's chosen token always
among them), each set's bar side by side in its colour, its chosen token outlined. Heights are
the probabilities the records list; a token a record does not list draws as 0 — the chart never
computes a probability. Items are made once per set and updated with `setOpts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import format_prob, token_label

MAX_TOKENS = 10
FINAL, RAW = "final", "raw"


def pick_stage(record: StepRecord, which: str) -> StageView | None:
    if not record.stages:
        return None
    if which == RAW:
        return record.stage("raw") or record.stages[0]
    return record.stages[-1]


def overlay_tokens(records: Sequence[StepRecord | None], which: str,
                   limit: int = MAX_TOKENS) -> tuple[int, ...]:
    """The tokens to draw: the most probable in any set, every chosen token included."""
    best: dict[int, float] = {}
    for r in records:
        stage = pick_stage(r, which) if r is not None else None
        if stage is None:
            continue
        for token, p in zip(stage.ids, stage.probs):
            best[token] = max(p, best.get(token, 0.0))
    chosen = [r.token_id for r in records if r is not None]
    ranked = sorted(best, key=lambda t: -best[t])
    keep = list(dict.fromkeys(t for t in chosen if t in best))
    for token in ranked:
        if len(keep) >= limit:
            break
        if token not in keep:
            keep.append(token)
    return tuple(sorted(keep, key=lambda t: -best[t]))


class StepOverlayChart(pg.PlotWidget):  # type: ignore[misc]
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.which = FINAL
        self.tokens: tuple[int, ...] = ()
        self.heights: list[list[float]] = []  # per set, per token (what is drawn; tests)
        self.labels: tuple[str, ...] = ()
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.disableAutoRange()
        plot.setYRange(0, 1, padding=0)
        plot.getAxis("left").enableAutoSIPrefix(False)  # probabilities, not "×0.001"
        self.legend = plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.bars: list[pg.BarGraphItem] = []
        self.chosen: list[pg.BarGraphItem] = []
        self.message = pg.TextItem(anchor=(0.5, 0.5))
        plot.addItem(self.message)
        # A message wraps to the plot's width (a long one ran off both sides at 1280x720).
        plot.getViewBox().sigResized.connect(self._fit_message)
        self._apply_palette()
        self.clear_chart("Run a comparison, then click a token: its step's distributions in "
                         "every set show here.")

    def _apply_palette(self) -> None:
        palette = self.palette()
        fg = palette.color(QPalette.ColorRole.Text)
        bg = palette.color(QPalette.ColorRole.Base)
        self.fg = fg
        self.setBackground(bg)
        plot = self.getPlotItem()
        for name in ("left", "bottom"):
            plot.getAxis(name).setPen(fg)
            plot.getAxis(name).setTextPen(fg)
        plot.setLabel("left", "probability", color=fg.name())
        self.legend.setLabelTextColor(fg)
        self.legend.setBrush(QColor(bg.red(), bg.green(), bg.blue(), 200))
        self.message.setColor(fg)

    def _ensure(self, n: int) -> None:
        plot = self.getPlotItem()
        while len(self.bars) < n:
            empty = np.zeros(0)
            bar = pg.BarGraphItem(x=empty, height=empty, width=0.3, pen=pg.mkPen(None))
            mark = pg.BarGraphItem(x=empty, height=empty, width=0.3, brush=QColor(0, 0, 0, 0),
                                   pen=pg.mkPen(self.fg, width=2))
            plot.addItem(bar)
            plot.addItem(mark)
            self.bars.append(bar)
            self.chosen.append(mark)

    def _fit_message(self, *_: object) -> None:
        width = self.getPlotItem().getViewBox().width()
        if width > 0:
            self.message.setTextWidth(max(120.0, 0.9 * width))

    def clear_chart(self, message: str = "") -> None:
        for item in (*self.bars, *self.chosen):
            item.setOpts(x=np.zeros(0), height=np.zeros(0))
        self.legend.clear()
        self.tokens, self.heights, self.labels = (), [], ()
        self.getPlotItem().getAxis("bottom").setTicks([[]])
        self.getPlotItem().setTitle("")
        self.getPlotItem().setXRange(-0.5, MAX_TOKENS - 0.5, padding=0)
        self.message.setText(message)
        self.message.setPos((MAX_TOKENS - 1) / 2, 0.5)

    def show_step(self, step: int, records: Sequence[StepRecord | None],
                  names: Sequence[str], colors: Sequence[QColor], note: str = "") -> None:
        """Draw every set's distribution at `step` (a None record: that set had ended)."""
        present = [r for r in records if r is not None]
        if not present:
            self.clear_chart(f"No set has a step {step + 1}.")
            return
        self.message.setText("")
        self._ensure(len(records))
        self.tokens = overlay_tokens(records, self.which)
        pieces: dict[int, str] = {}
        for r in present:
            pieces.update({t: p for t, p in r.pieces.items() if t in self.tokens})
        n = len(records)
        width = 0.84 / n
        self.heights = []
        self.legend.clear()
        top = 0.0
        for j, record in enumerate(records):
            offset = (j - (n - 1) / 2) * width
            stage = pick_stage(record, self.which) if record is not None else None
            heights = [(stage.prob_of(t) or 0.0) if stage is not None else 0.0
                       for t in self.tokens]
            self.heights.append(heights)
            top = max([top, *heights])
            xs = np.arange(len(self.tokens), dtype=float) + offset
            self.bars[j].setOpts(x=xs, height=np.array(heights), width=width * 0.92,
                                 brush=colors[j], pen=pg.mkPen(None))
            chosen = (record.token_id if record is not None else None)
            if chosen in self.tokens:
                i = self.tokens.index(chosen)
                self.chosen[j].setOpts(x=[xs[i]], height=[heights[i]], width=width * 0.92,
                                       pen=pg.mkPen(self.fg, width=2))
            else:
                self.chosen[j].setOpts(x=np.zeros(0), height=np.zeros(0))
            if record is None:
                words = f"{names[j]}: ended before this step"
            else:
                words = (f"{names[j]}: chose {token_label(record.piece, 12)!r} "
                         f"{format_prob(record.prob)}")
            self.legend.addItem(self.bars[j], words)
        for j in range(n, len(self.bars)):
            self.bars[j].setOpts(x=np.zeros(0), height=np.zeros(0))
            self.chosen[j].setOpts(x=np.zeros(0), height=np.zeros(0))
        self.labels = tuple(token_label(pieces.get(t, str(t)), 10) for t in self.tokens)
        self.getPlotItem().getAxis("bottom").setTicks([list(enumerate(self.labels))])
        # The y range follows the tallest bar, so at a flat distribution 3% bars stay visible;
        # the legend's rows get headroom above it.
        self.getPlotItem().setYRange(0, max(0.05, top) * (1.18 + 0.09 * n), padding=0)
        self.getPlotItem().setXRange(-0.6, max(len(self.tokens), 4) - 0.4, padding=0)
        stage_words = "the distribution each set drew from" if self.which == FINAL \
            else "the raw softmax"
        title = f"Step {step + 1}: {stage_words}" + (f" — {note}" if note else "")
        self.getPlotItem().setTitle(title, color=self.fg.name(), size="9pt")
