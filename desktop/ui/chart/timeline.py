"""Timeline: entropy and chosen-token probability for every generated token. GUI thread only.

`append` only writes two numbers into numpy arrays; `refresh` (called from the chart dock's
≤ 30 Hz timer) hands the visible window to the curves. The x range moves in jumps of a quarter
window rather than every token, so the axes are re-ticked rarely; the y ranges are fixed (the
entropy range steps up only when a value would not fit). A click selects the nearest step.
A reasoning model's thinking/answer boundary (the step that closes its thinking block, e.g.
`</think>`) is marked with a labelled line.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

from desktop.core.reasoning import THINK
from desktop.core.steps import StepRecord
from desktop.ui.chart.paced_plot import PacedPlot

ENTROPY_COLOR = QColor(33, 97, 196)
PROB_COLOR = QColor(235, 120, 0)
THINKING_COLOR = QColor(118, 183, 178)
SELECTED_COLOR = QColor(200, 0, 140)
_ENTROPY_LADDER = (4.0, 8.0, 12.0, 18.0, 24.0)  # bits; log2(262,144) = 18


class Timeline(PacedPlot):
    _PALETTE_READY_ATTR = "prob_view"
    sig_step_selected = Signal(int)  # a person clicked near this step

    def __init__(self, parent: QWidget | None = None, window: int = 200) -> None:
        super().__init__(parent)
        self.window = window
        self.count = 0  # steps held: 0 .. count-1
        self.selected: int | None = None
        self._entropy = np.full(1024, np.nan)
        self._prob = np.full(1024, np.nan)
        self._x0 = 0
        self._y_max = _ENTROPY_LADDER[0]
        self._dirty = False
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.disableAutoRange()
        plot.showAxis("right")
        # Short: the label turns a quarter and must fit a 56-pixel-high plot (its ticks say bits).
        # 8 pt: at the default size "chosen p" ran past the plot's 56 pixels and was cut.
        plot.setLabel("left", "entropy", color=ENTROPY_COLOR.name(), **{"font-size": "8pt"})
        plot.setLabel("right", "chosen p", color=PROB_COLOR.name(), **{"font-size": "8pt"})
        # Probability has its own 0..1 scale: a second view box sharing x, on the right axis.
        self.prob_view = pg.ViewBox(enableMouse=False)
        self.prob_view.setMenuEnabled(False)
        plot.scene().addItem(self.prob_view)
        plot.getAxis("right").linkToView(self.prob_view)
        # Three ticks on each side: pyqtgraph's own (0.2 apart, or every 2 bits) print over
        # each other in a 56-pixel plot.
        plot.getAxis("right").setTicks([[(0.0, "0"), (0.5, ".5"), (1.0, "1")], []])
        self.prob_view.setXLink(plot)
        self.prob_view.setYRange(0.0, 1.06, padding=0)
        self.prob_view.disableAutoRange()
        plot.getViewBox().sigResized.connect(self._sync_views)
        self.entropy_curve = plot.plot(pen=pg.mkPen(ENTROPY_COLOR, width=1.5), connect="finite")
        self.prob_dots = pg.PlotDataItem(pen=None, symbol="o", symbolSize=5,
                                         symbolBrush=PROB_COLOR, symbolPen=None)
        self.prob_view.addItem(self.prob_dots)
        self.selected_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(SELECTED_COLOR, width=1.5, style=Qt.PenStyle.DashLine))
        self.selected_line.setVisible(False)
        plot.addItem(self.selected_line)
        self.thinking_close = THINK.close  # the marker that ends a thinking block
        self.boundary: int | None = None  # the step that closed the thinking block
        self._tail = ""  # the last characters before this step, for a marker split in tokens
        self.boundary_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(THINKING_COLOR, width=1.5), label="answer",
            labelOpts={"position": 0.85, "color": THINKING_COLOR})
        self.boundary_line.setVisible(False)
        plot.addItem(self.boundary_line)
        self._apply_ranges()
        self._apply_palette()
        self.scene().sigMouseClicked.connect(self._on_clicked)

    def _apply_palette(self) -> None:
        """Follow the window's colours (the app switches light/dark live)."""
        palette = self.palette()
        fg = palette.color(QPalette.ColorRole.Text)
        self.setBackground(palette.color(QPalette.ColorRole.Base))
        plot = self.getPlotItem()
        for name in ("left", "bottom", "right"):
            plot.getAxis(name).setPen(fg)
            plot.getAxis(name).setTextPen(fg)
        plot.setLabel("bottom", "generated token", color=fg.name())

    def _sync_views(self) -> None:
        vb = self.getPlotItem().getViewBox()
        self.prob_view.setGeometry(vb.sceneBoundingRect())

    def _apply_ranges(self) -> None:
        plot = self.getPlotItem()
        plot.setXRange(self._x0 - 0.5, self._x0 + self.window + 0.5, padding=0)
        plot.setYRange(0.0, self._y_max * 1.06, padding=0)
        top = self._y_max
        plot.getAxis("left").setTicks([[(0.0, "0"), (top / 2, f"{top / 2:g}"), (top, f"{top:g}")],
                                       []])

    # --- data (cheap; called per token) ---

    def append(self, record: StepRecord) -> None:
        step = record.step
        if step < self.count:  # a new generation or branch reusing step numbers
            self._entropy[step:self.count] = np.nan
            self._prob[step:self.count] = np.nan
        if step >= len(self._entropy):
            grow = max(step + 1, 2 * len(self._entropy)) - len(self._entropy)
            self._entropy = np.concatenate([self._entropy, np.full(grow, np.nan)])
            self._prob = np.concatenate([self._prob, np.full(grow, np.nan)])
        if step == 0 or step < self.count:
            self._tail = ""
            if self.boundary is not None and self.boundary >= step:
                self.boundary = None
        if self.boundary is None and self.thinking_close:
            tail = self._tail + record.text
            if self.thinking_close in tail:
                self.boundary = step
            self._tail = tail[-(len(self.thinking_close) - 1):] if len(
                self.thinking_close) > 1 else ""
        self._entropy[step] = record.entropy_raw
        self._prob[step] = record.prob
        self.count = step + 1
        self._dirty = True

    def reset(self) -> None:
        """Forget every step (not `clear`: PlotWidget binds that name to PlotItem.clear)."""
        self._entropy[: self.count] = np.nan
        self._prob[: self.count] = np.nan
        self.count, self._x0, self._y_max = 0, 0, _ENTROPY_LADDER[0]
        self.selected = None
        self.selected_line.setVisible(False)
        self.boundary, self._tail = None, ""
        self._dirty = True
        self._apply_ranges()
        self.refresh()

    @property
    def dirty(self) -> bool:
        """New points arrived since the last refresh."""
        return self._dirty

    def entropy_at(self, step: int) -> float:
        return float(self._entropy[step])

    def prob_at(self, step: int) -> float:
        return float(self._prob[step])

    # --- drawing (≤ 30 Hz) ---

    def refresh(self, follow: bool = True) -> bool:
        """Hand the visible window to the curves; False when nothing changed."""
        if not self._dirty:
            return False
        self._dirty = False
        if follow and self.count > self._x0 + self.window:
            # Jump a quarter window at a time: the axes re-tick a few times per window.
            self._x0 = self.count - (3 * self.window) // 4
            self._apply_ranges()
        lo, hi = max(0, self._x0 - 1), min(self.count, self._x0 + self.window + 2)
        x = np.arange(lo, hi, dtype=float)
        entropy = self._entropy[lo:hi]
        peak = float(np.nanmax(entropy)) if hi > lo and not np.all(np.isnan(entropy)) else 0.0
        if peak > self._y_max:
            self._y_max = next((v for v in _ENTROPY_LADDER if v >= peak), math.ceil(peak))
            self._apply_ranges()
        self.boundary_line.setVisible(self.boundary is not None)
        if self.boundary is not None:
            self.boundary_line.setPos(self.boundary + 0.5)  # the answer starts after it
        self.entropy_curve.setData(x, entropy)
        self.prob_dots.setData(x, self._prob[lo:hi])
        return True

    def mark(self, step: int | None) -> None:
        """Show which step the chart shows; scroll back to it when it is out of view."""
        self.selected = step
        self.selected_line.setVisible(step is not None)
        if step is None:
            return
        self.selected_line.setPos(step)
        if not self._x0 <= step <= self._x0 + self.window:
            self._x0 = max(0, step - self.window // 2)
            self._apply_ranges()
            self._dirty = True
            self.refresh(follow=False)

    def _on_clicked(self, event: object) -> None:
        vb = self.getPlotItem().getViewBox()
        scene_pos = event.scenePos()  # type: ignore[attr-defined]
        if self.count == 0 or not vb.sceneBoundingRect().contains(scene_pos):
            return
        step = min(max(round(vb.mapSceneToView(scene_pos).x()), 0), self.count - 1)
        if np.isnan(self._entropy[step]):
            return
        self.mark(step)
        self.sig_step_selected.emit(step)
