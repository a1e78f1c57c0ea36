"""DistributionChart: the top-N candidates of one step as bars, stage by stage. GUI thread only.

Everything drawn comes from one `StepRecord` (and, for the min-p and top-p reference lines drawn
by `cut_markers`, the settings it was sampled with): the chart multiplies and sums reported
numbers for display but never computes a probability of its own. Items are created once and
updated in place with `setOpts`/`setData`; axis ranges are fixed per mode so a redraw never
triggers autorange; token labels are redrawn only when they change (FACTS.md: per-token item
churn froze the GUI).

x is the bar index in raw-softmax order (rank 1 at x = 0); y is probability, linear or log10.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette, QResizeEvent
from PySide6.QtWidgets import QWidget

from desktop.core.sampler_stages import stage_label
from desktop.core.sampling import STAGE_RAW, STAGE_TOP_P, SamplerSettings
from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import format_prob, stage_is_complete, token_label
from desktop.ui.chart.cut_markers import CutMarkers, head_removed
from desktop.ui.chart.paced_plot import PacedPlot
from desktop.ui.chart.token_axis import TokenAxis

LOG_FLOOR = -6.0  # log10 of the smallest probability the log axis shows
MIN_BARS, MAX_BARS = 10, 200

RAW_COLOR = QColor(150, 176, 214)
STAGE_COLOR = QColor(33, 97, 196)
CHOSEN_COLOR = QColor(235, 120, 0)
CANDIDATE_COLOR = QColor(200, 0, 140)


LEGEND_COLUMNS = 5  # every entry in one row ...
LEGEND_ONE_ROW_WIDTH = 760  # ... when the chart is at least this wide (pixels), else two rows


class DistributionChart(PacedPlot):
    """Bars for the selected step: raw softmax (wide, light) and the selected stage (narrow)."""

    _PALETTE_READY_ATTR = "legend"

    sig_candidate_picked = Signal(int)  # token id of the bar a person clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        self.axis = TokenAxis()
        super().__init__(parent, axisItems={"bottom": self.axis})
        self.record: StepRecord | None = None
        self.settings: SamplerSettings | None = None
        self.stage_name: str | None = None  # None: the last stage of the chain
        self.log_scale = False
        self.bar_count = 50
        self.bar_ids: tuple[int, ...] = ()
        self.candidate: int | None = None
        self._build()
        self._apply_palette()
        self.scene().sigMouseClicked.connect(self._on_clicked)

    def _apply_palette(self) -> None:
        """Follow the window's colours (the app switches light/dark live)."""
        palette = self.palette()
        fg, bg = palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base)
        self.setBackground(bg)
        plot = self.getPlotItem()
        for name in ("left", "bottom"):
            plot.getAxis(name).setPen(fg)
            plot.getAxis(name).setTextPen(fg)
        plot.setLabel("left", "probability", color=fg.name())
        self.legend.setLabelTextColor(fg)
        for _sample, label in self.legend.items:
            label.setText(label.text)  # the new colour only shows once the text is set again
        self.legend.setBrush(QColor(bg.red(), bg.green(), bg.blue(), 190))
        self.message.setColor(fg)
        # Removed candidates recede into the background in light and dark themes alike.
        self.removed_bars.setOpts(brush=_mix(bg, fg, 0.2), pen=pg.mkPen(_mix(bg, fg, 0.4)))

    def _build(self) -> None:
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.disableAutoRange()
        # Reference lines as one curve: pyqtgraph's axis grid cost 2 ms of every repaint.
        self.grid = pg.PlotCurveItem(pen=pg.mkPen(128, 128, 128, 60), connect="finite")
        plot.addItem(self.grid)

        def bars(color: QColor, width: float, pen: object = None) -> pg.BarGraphItem:
            item = pg.BarGraphItem(x=np.zeros(0), height=np.zeros(0), width=width,
                                   brush=color, pen=pen if pen is not None else pg.mkPen(None))
            plot.addItem(item)
            return item

        # Across the top band that the fixed y ranges keep free of bars: one row when the chart
        # is wide enough, two (and a taller band) when it is not (see resizeEvent).
        self.legend = plot.addLegend(offset=(-4, 2), colCount=5, horSpacing=14,
                                     labelTextSize="8pt")
        self.raw_bars = bars(RAW_COLOR, 0.84)
        self.removed_bars = bars(QColor(205, 205, 205), 0.84)  # recoloured by the palette
        self.stage_bars = bars(STAGE_COLOR, 0.46)
        # The chosen token and the picked candidate are separate one-bar items drawn on top,
        # not a per-bar brush list (STYLE.md): moving them costs one setOpts.
        self.chosen_bar = bars(QColor(0, 0, 0, 0), 0.96, pg.mkPen(CHOSEN_COLOR, width=3))
        self.candidate_bar = bars(QColor(0, 0, 0, 0), 1.04,
                                  pg.mkPen(CANDIDATE_COLOR, width=2, style=Qt.PenStyle.DashLine))
        # Cut lines and levels sit above the bars; the legend lists the cumulative curve.
        self.cuts = CutMarkers(plot)
        self.cumulative = self.cuts.cumulative
        self.cut_lines = self.cuts.cut_lines
        self.min_p_line, self.top_p_line = self.cuts.min_p_line, self.cuts.top_p_line
        self.available_stages: tuple[str, ...] = ()  # what the engine reports; () = all
        self._fill_legend()
        self.chosen_text = pg.TextItem(color=CHOSEN_COLOR, anchor=(0.5, 1.0))
        plot.addItem(self.chosen_text)
        self.message = pg.TextItem(anchor=(0.5, 0.5))
        plot.addItem(self.message)
        self._apply_ranges()
        self._clear_items()

    # --- public ---

    def show_record(self, record: StepRecord | None,
                    settings: SamplerSettings | None = None) -> None:
        """Draw a step now. `settings` (what it was sampled with) places the min-p/top-p lines."""
        self.record, self.settings = record, settings
        self._redraw()

    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.record.stages) if self.record else ()

    def shown_stage(self) -> StageView | None:
        record = self.record
        if record is None or not record.stages:
            return None
        if self.stage_name is not None:
            view = record.stage(self.stage_name)
            if view is not None:
                return view
        return record.stages[-1]

    def set_available_stages(self, names: tuple[str, ...]) -> None:
        """What the loaded engine can report (empty: all); the legend lists only that."""
        if names != self.available_stages:
            self.available_stages = names
            self._fill_legend()
            self._apply_palette()  # new labels take the theme's colour
            self._redraw()

    def _fill_legend(self) -> None:
        names = self.available_stages
        chain = not names or any(n != STAGE_RAW for n in names)  # False: raw only (remote)
        self.legend.clear()
        for item, text, shown in (
            (self.raw_bars, "raw softmax", chain),
            (self.stage_bars, "after stage" if chain else "raw softmax", True),
            (self.removed_bars, "removed by the chain", chain),
            (self.chosen_bar, "chosen token", True),
            (self.cumulative, "cumulative (top-p input)", not names or STAGE_TOP_P in names),
        ):
            if shown:
                self.legend.addItem(item, text)

    def set_stage(self, name: str | None) -> None:
        self.stage_name = name
        self._redraw()

    def set_log_scale(self, on: bool) -> None:
        if on != self.log_scale:
            self.log_scale = on
            self._apply_ranges()
            self._redraw()

    def set_bar_count(self, n: int) -> None:
        n = max(MIN_BARS, min(MAX_BARS, n))
        if n != self.bar_count:
            self.bar_count = n
            self._apply_ranges()
            self._redraw()

    def set_candidate(self, token_id: int | None) -> None:
        self.candidate = token_id
        self._redraw()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        legend = getattr(self, "legend", None)  # a resize can come while __init__ runs
        columns = LEGEND_COLUMNS if self.width() >= LEGEND_ONE_ROW_WIDTH else 3
        if legend is not None and columns != legend.columnCount:
            self.legend.setColumnCount(columns)
            self._apply_ranges()

    def y_of(self, p: float) -> float:
        """Where probability `p` sits on the current axis."""
        if not self.log_scale:
            return p
        return max(math.log10(p), LOG_FLOOR) if p > 0 else LOG_FLOOR

    # --- drawing ---

    def _apply_ranges(self) -> None:
        plot = self.getPlotItem()
        plot.setXRange(-0.6, self.bar_count - 0.4, padding=0)
        left = plot.getAxis("left")
        two_rows = self.legend.columnCount < LEGEND_COLUMNS
        if self.log_scale:
            plot.setYRange(LOG_FLOOR, 1.6 if two_rows else 0.9, padding=0)
            ticks = [(float(e), "1" if e == 0 else f"1e{e}") for e in range(int(LOG_FLOOR), 1)]
        else:
            plot.setYRange(0.0, 1.4 if two_rows else 1.2, padding=0)
            ticks = [(v / 4, f"{v * 25}%") for v in range(5)]
        left.setTicks([ticks])
        right = self.bar_count + 1.0
        self.grid.setData(
            [x for _ in ticks for x in (-1.0, right, np.nan)],
            [y for value, _ in ticks for y in (value, value, np.nan)])
        self.message.setPos(self.bar_count / 2, self.y_of(0.5))

    def _bars(self, item: pg.BarGraphItem, x: np.ndarray, p: np.ndarray) -> None:
        if self.log_scale:
            with np.errstate(divide="ignore"):
                top = np.where(p > 0, np.log10(np.maximum(p, 1e-300)), LOG_FLOOR)
            item.setOpts(x=x, y0=np.full(len(x), LOG_FLOOR),
                         height=np.maximum(top, LOG_FLOOR) - LOG_FLOOR)
        else:
            item.setOpts(x=x, y0=np.zeros(len(x)), height=p)

    def _clear_items(self) -> None:
        empty = np.zeros(0)
        for item in (self.raw_bars, self.removed_bars, self.stage_bars, self.chosen_bar,
                     self.candidate_bar):
            self._bars(item, empty, empty)
        self.cuts.clear()
        self.chosen_text.setText("")
        self.bar_ids = ()
        self.axis.set_labels(())

    def _redraw(self) -> None:
        record, stage = self.record, self.shown_stage()
        raw = record.stage(STAGE_RAW) if record is not None else None
        if record is None or stage is None or raw is None:
            self._clear_items()
            self.message.setText("" if record is None else "this step carries no distribution")
            return
        self.message.setText("")
        ids = raw.ids[: self.bar_count]
        self.bar_ids = ids
        pos = {token: i for i, token in enumerate(ids)}
        x = np.arange(len(ids), dtype=float)
        raw_p = np.asarray(raw.probs[: len(ids)], dtype=float)
        listed = dict(zip(stage.ids, stage.probs))
        stage_p = np.array([listed.get(t, 0.0) for t in ids], dtype=float)
        # Unlisted tokens were removed only when the stage lists all it kept; a stage that cut
        # the head (XTC) names the tokens it took, listed or not.
        gone = head_removed(record, stage.name)
        complete = stage_is_complete(stage)
        removed = np.array([(complete and t not in listed) or t in gone for t in ids], dtype=bool)
        self._bars(self.raw_bars, x, raw_p)
        self._bars(self.removed_bars, x[removed], raw_p[removed])
        shown = stage_p > 0
        self._bars(self.stage_bars, x[shown], stage_p[shown])
        self._legend_label(self.stage_bars, "raw softmax" if stage.name == STAGE_RAW
                           else f"after {stage_label(stage.name)}")
        self._draw_chosen(record, pos, raw_p, stage_p)
        self._draw_candidate(pos, raw_p, stage_p)
        self.cuts.draw(record, self.settings, pos, len(ids), self.y_of, stage)
        self.axis.set_labels(tuple(token_label(record.pieces.get(t, "")) for t in ids))

    def _legend_label(self, item: object, text: str) -> None:
        for sample, label in self.legend.items:
            if sample.item is item and label.text != text:
                label.setText(text)

    def _draw_chosen(self, record: StepRecord, pos: dict[int, int], raw_p: np.ndarray,
                     stage_p: np.ndarray) -> None:
        i = pos.get(record.token_id)
        if i is None:
            self._bars(self.chosen_bar, np.zeros(0), np.zeros(0))
            self.chosen_text.setText("")
            return
        top = max(raw_p[i], stage_p[i])
        self._bars(self.chosen_bar, np.array([float(i)]), np.array([top]))
        self.chosen_text.setText(f"{format_prob(record.prob)} · #{record.raw_rank}")
        # Centred over its bar, except at either end, where half the label would be cut off.
        x, anchor = float(i), (0.5, 1.0)
        if i == 0:
            x, anchor = i - 0.4, (0.0, 1.0)
        elif i == len(raw_p) - 1:
            x, anchor = i + 0.4, (1.0, 1.0)
        self.chosen_text.setAnchor(anchor)
        self.chosen_text.setPos(x, self.y_of(top) + (0.012 if not self.log_scale else 0.05))

    def _draw_candidate(self, pos: dict[int, int], raw_p: np.ndarray,
                        stage_p: np.ndarray) -> None:
        i = pos.get(self.candidate) if self.candidate is not None else None
        if i is None:
            self._bars(self.candidate_bar, np.zeros(0), np.zeros(0))
        else:
            self._bars(self.candidate_bar, np.array([float(i)]),
                       np.array([max(raw_p[i], stage_p[i])]))

    def _on_clicked(self, event: object) -> None:
        if event.isAccepted():  # type: ignore[attr-defined]
            return  # a legend entry took the click (it toggles its item)
        vb = self.getPlotItem().getViewBox()
        scene_pos = event.scenePos()  # type: ignore[attr-defined]
        if not vb.sceneBoundingRect().contains(scene_pos):
            return
        i = round(vb.mapSceneToView(scene_pos).x())
        if 0 <= i < len(self.bar_ids):
            token = self.bar_ids[i]
            self.set_candidate(token)
            self.sig_candidate_picked.emit(token)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t),
                  round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))
