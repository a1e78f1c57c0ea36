"""SamplePlots: what N samples per set show, as four plots and a list. GUI thread only.

Drawn from `core.compare.SetStats` (numbers read from the records, never recomputed): the
distribution of the first token (each set's share of samples per token, side by side), distinct
continuations per set, mean entropy of the raw and of the final distribution (bars, with each
sample's mean as a dot), and the mean probability of the chosen token (bar and dots). Beside
them, every set's continuations with their counts. Redrawn after each finished sample — a few
dozen times a comparison, so the plots are simply rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from desktop.core.compare import SetStats
from desktop.core.token_text import format_prob, token_label

FIRST_TOKENS = 8  # tokens shown in the first-token plot


def _light(color: QColor, amount: float = 0.55) -> QColor:
    return QColor(int(color.red() + (255 - color.red()) * amount),
                  int(color.green() + (255 - color.green()) * amount),
                  int(color.blue() + (255 - color.blue()) * amount))


class SamplePlots(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        palette = self.palette()
        self.fg = palette.color(QPalette.ColorRole.Text)
        self.graphics.setBackground(palette.color(QPalette.ColorRole.Base))
        self.first = self._plot(0, 0, "First token: share of samples")
        self.first_legend = self.first.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.first_legend.setLabelTextColor(self.fg)
        self.distinct = self._plot(0, 1, "Distinct continuations")
        self.entropy = self._plot(1, 0, "Mean entropy (bits) of the raw and the final distribution")
        self.prob = self._plot(1, 1, "Chosen-token probability (mean; dots: per sample)")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Set", "×", "Continuation"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 3)
        layout.addWidget(self.table, 2)
        self.stats: tuple[SetStats, ...] = ()
        self.first_labels: tuple[str, ...] = ()
        self.first_heights: list[list[float]] = []  # per set, per token (tests)

    def _plot(self, row: int, col: int, title: str) -> pg.PlotItem:
        plot = self.graphics.addPlot(row=row, col=col)
        plot.setTitle(title, color=self.fg.name(), size="9pt")
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.getAxis("left").enableAutoSIPrefix(False)
        for name in ("left", "bottom"):
            plot.getAxis(name).setPen(self.fg)
            plot.getAxis(name).setTextPen(self.fg)
        return plot

    def show_stats(self, stats: Sequence[SetStats], colors: Sequence[QColor]) -> None:
        self.stats = tuple(stats)
        for plot in (self.first, self.distinct, self.entropy, self.prob):
            plot.clear()
        self.first_legend.clear()
        self._first_tokens(colors)
        self._per_set(colors)
        self._fill_table(colors)

    def _set_ticks(self, plot: pg.PlotItem) -> None:
        plot.getAxis("bottom").setTicks([[(i, s.label) for i, s in enumerate(self.stats)]])
        plot.setXRange(-0.6, max(len(self.stats), 2) - 0.4, padding=0)

    def _first_tokens(self, colors: Sequence[QColor]) -> None:
        totals: dict[int, float] = {}
        pieces: dict[int, str] = {}
        for s in self.stats:
            for t in s.first_tokens:
                totals[t.token_id] = totals.get(t.token_id, 0.0) + t.count / max(1, s.samples)
                pieces[t.token_id] = t.piece
        tokens = sorted(totals, key=lambda t: -totals[t])[:FIRST_TOKENS]
        n = max(1, len(self.stats))
        width = 0.84 / n
        self.first_heights = []
        for j, s in enumerate(self.stats):
            counts = {t.token_id: t.count for t in s.first_tokens}
            heights = [counts.get(t, 0) / max(1, s.samples) for t in tokens]
            self.first_heights.append(heights)
            xs = np.arange(len(tokens), dtype=float) + (j - (n - 1) / 2) * width
            bars = pg.BarGraphItem(x=xs, height=heights, width=width * 0.92, brush=colors[j],
                                   pen=pg.mkPen(None))
            self.first.addItem(bars)
            self.first_legend.addItem(bars, f"set {s.label}")
        self.first_labels = tuple(token_label(pieces[t], 9) for t in tokens)
        self.first.getAxis("bottom").setTicks([list(enumerate(self.first_labels))])
        self.first.setXRange(-0.6, max(len(tokens), 3) - 0.4, padding=0)
        self.first.setYRange(0, 1.15, padding=0)

    def _per_set(self, colors: Sequence[QColor]) -> None:
        most = max((s.samples for s in self.stats), default=1)
        top_bits = 0.0
        for i, s in enumerate(self.stats):
            color = colors[i]
            self.distinct.addItem(pg.BarGraphItem(x=[i], height=[s.distinct], width=0.6,
                                                  brush=color, pen=pg.mkPen(None)))
            words = pg.TextItem(f"{s.distinct} / {s.samples}", color=self.fg, anchor=(0.5, 1))
            words.setPos(i, s.distinct)
            self.distinct.addItem(words)
            raw, final = s.mean_entropy_raw or 0.0, s.mean_entropy_final or 0.0
            self.entropy.addItem(pg.BarGraphItem(x=[i - 0.17], height=[raw], width=0.32,
                                                 brush=_light(color), pen=pg.mkPen(None)))
            self.entropy.addItem(pg.BarGraphItem(x=[i + 0.17], height=[final], width=0.32,
                                                 brush=color, pen=pg.mkPen(None)))
            self._dots(self.entropy, i + 0.17, s.sample_entropy_final)
            self._dots(self.entropy, i - 0.17, s.sample_entropy_raw)
            top_bits = max([top_bits, raw, final, *s.sample_entropy_raw,
                            *s.sample_entropy_final])
            self.prob.addItem(pg.BarGraphItem(x=[i], height=[s.mean_prob or 0.0], width=0.6,
                                              brush=color, pen=pg.mkPen(None)))
            self._dots(self.prob, i, s.sample_prob)
            # Each mean is written above its bar and its dots, never over them.
            self._value(self.prob, i, max([s.mean_prob or 0.0, *s.sample_prob]),
                        format_prob(s.mean_prob or 0.0))
            self._value(self.entropy, i + 0.17, max([final, *s.sample_entropy_final]),
                        f"{final:.2f}")
        for plot in (self.distinct, self.prob):
            self._set_ticks(plot)
        self.entropy.getAxis("bottom").setTicks([[
            tick for i, s in enumerate(self.stats)
            for tick in ((i - 0.17, f"{s.label} raw"), (i + 0.17, f"{s.label} final"))]])
        self.entropy.setXRange(-0.6, max(len(self.stats), 2) - 0.4, padding=0)
        self.distinct.setYRange(0, most * 1.2, padding=0)
        self.entropy.setYRange(0, max(0.5, top_bits * 1.15), padding=0)
        self.prob.setYRange(0, 1.12, padding=0)

    def _value(self, plot: pg.PlotItem, x: float, y: float, words: str) -> None:
        item = pg.TextItem(words, color=self.fg, anchor=(0.5, 1))
        item.setPos(x, y)
        plot.addItem(item)

    def _dots(self, plot: pg.PlotItem, x: float, values: Sequence[float]) -> None:
        if not values:
            return
        # A small fixed spread keeps equal values apart without a random jitter.
        spread = np.linspace(-0.1, 0.1, len(values)) if len(values) > 1 else np.zeros(1)
        plot.addItem(pg.ScatterPlotItem(x=x + spread, y=list(values), size=5,
                                        brush=pg.mkBrush(self.fg), pen=pg.mkPen(None)))

    def _fill_table(self, colors: Sequence[QColor]) -> None:
        rows = [(i, c.count, c.text) for i, s in enumerate(self.stats) for c in s.continuations]
        self.table.setRowCount(len(rows))
        for r, (i, count, text) in enumerate(rows):
            label = QTableWidgetItem(f"■ {self.stats[i].label}")
            label.setForeground(colors[i])
            number = QTableWidgetItem(str(count))
            number.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            shown = text.replace("\n", "↵") or "∅ (ended at once)"
            words = QTableWidgetItem(shown)
            words.setToolTip(text)
            for c, item in enumerate((label, number, words)):
                self.table.setItem(r, c, item)
