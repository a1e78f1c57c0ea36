"""DistributionChart: the top-N candidates of one step as bars, stage by stage. GUI thread only.

Everything drawn comes from one `StepRecord` (and, for the min-p and top-p reference lines drawn
by `cut_markers`, the settings it was sampled with): the chart multiplies and sums reported
numbers for display but never computes a probability of its own. Items are created once and
updated in place with `setOpts`/`setData`; axis ranges change only when the axis mode, the bar
count, the plot's height or (auto-scaled) the tallest bar's "nice" ceiling does, never per step
otherwise; token labels are redrawn only when they change (FACTS.md: per-token item churn froze
the GUI).

A what-if overlay (`show_what_if`) draws the same step as a replay under other settings
reshaped it: outlined bars over the recorded ones, same x (the raw order), same stage. The cut
lines and levels stay the recorded step's. The legend is a `ChartLegend` line above the plot
(the dock lays it out), so it covers nothing; above the tallest bar the y range keeps a band
for text, one row for the chosen token's label and one per row of cut-line labels
(`CutMarkers.arrange` stacks labels that would overlap), sized in pixels.

x is the bar index in raw-softmax order (rank 1 at x = 0); y is probability, linear or log10.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

from desktop.core.sampler_stages import stage_label
from desktop.core.sampling import STAGE_RAW, STAGE_TOP_P, SamplerSettings
from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import format_prob, stage_is_complete, token_label
from desktop.ui.chart.cut_markers import CUT_COLORS, CutMarkers, head_removed
from desktop.ui.chart.draft_marks import DRAFT_COLOR, DraftMarks
from desktop.ui.chart.legend import ChartLegend, LegendEntry
from desktop.ui.chart.paced_plot import PacedPlot
from desktop.ui.chart.token_axis import TokenAxis
from desktop.ui.chart.y_axis import LOG_FLOOR, linear_ticks, log_ticks, nice_top, y_range

__all__ = ["LOG_FLOOR", "MAX_BARS", "MIN_BARS", "DistributionChart"]

MIN_BARS, MAX_BARS = 10, 200
X_LEFT = -0.6  # the x range: half a bar's gap either side of the bars

RAW_COLOR = QColor(150, 176, 214)
STAGE_COLOR = QColor(33, 97, 196)
CHOSEN_COLOR = QColor(235, 120, 0)
CANDIDATE_COLOR = QColor(200, 0, 140)
WHAT_IF_COLOR = QColor(0, 168, 150)
LABEL_PAD_PX = 3.0  # between the plot's top edge (or a label) and a label


class DistributionChart(PacedPlot):
    """Bars for the selected step: raw softmax (wide, light) and the selected stage (narrow),
    and a what-if's bars outlined over them."""

    _PALETTE_READY_ATTR = "legend"

    sig_candidate_picked = Signal(int)  # token id of the bar a person clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        self.axis = TokenAxis()
        super().__init__(parent, axisItems={"bottom": self.axis})
        self.record: StepRecord | None = None
        self.settings: SamplerSettings | None = None
        self.what_if: StepRecord | None = None  # a replay of `record` under other settings
        self.stage_name: str | None = None  # None: the last stage of the chain
        self.log_scale = False
        self.auto_y = False  # linear axis fitted to the tallest bar (else 0–100%)
        self.bar_count = 50
        self.bar_ids: tuple[int, ...] = ()
        self.candidate: int | None = None
        self.label_rows = 1  # rows of cut-line labels the band above the bars holds
        self.y_top = 1.0  # the top value of the axis, below the band (auto: a nice ceiling)
        self._ticks: tuple[list[tuple[float, str]], int] | None = None
        self._build()
        self._apply_palette()
        self.scene().sigMouseClicked.connect(self._on_clicked)
        self.getPlotItem().getViewBox().sigResized.connect(self._on_view_resized)

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
        self.message.setColor(fg)
        # The chosen token's label sits where the cumulative curve starts (its first point is
        # the top bar's probability): a backing of the plot's colour keeps it readable.
        backing = QColor(bg)
        backing.setAlpha(220)
        self.chosen_text.fill = pg.mkBrush(backing)
        # Removed candidates recede into the background in light and dark themes alike.
        removed = _mix(bg, fg, 0.2)
        self.removed_bars.setOpts(brush=removed, pen=pg.mkPen(_mix(bg, fg, 0.4)))
        self.legend.update_entry("removed", color=_mix(bg, fg, 0.4))

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

        self.legend = ChartLegend()  # the dock puts it above the plot
        self.raw_bars = bars(RAW_COLOR, 0.84)
        self.removed_bars = bars(QColor(205, 205, 205), 0.84)  # recoloured by the palette
        self.stage_bars = bars(STAGE_COLOR, 0.46)
        # The what-if: outlined, a little wider than the dark bars, so both read at once.
        self.what_if_bars = bars(QColor(WHAT_IF_COLOR.red(), WHAT_IF_COLOR.green(),
                                        WHAT_IF_COLOR.blue(), 50), 0.66,
                                 pg.mkPen(WHAT_IF_COLOR, width=2))
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
        self.chosen_text.setZValue(10)  # above the cut lines and the cumulative curve
        plot.addItem(self.chosen_text)
        self.chosen_text.setText("100% · #1")
        self.row_px = float(self.chosen_text.textItem.boundingRect().height())
        self.draft = DraftMarks(plot)  # speculative decoding's proposal for the step
        self.message = pg.TextItem(anchor=(0.5, 0.5))
        plot.addItem(self.message)
        self._apply_ranges()
        self._clear_items()

    # --- public ---

    def show_record(self, record: StepRecord | None,
                    settings: SamplerSettings | None = None,
                    what_if: StepRecord | None = None) -> None:
        """Draw a step now. `settings` (what it was sampled with) places the min-p/top-p lines;
        `what_if`, a replay of the same step under other settings, is drawn outlined over it."""
        self.record, self.settings, self.what_if = record, settings, what_if
        self._redraw()

    def show_what_if(self, what_if: StepRecord | None) -> None:
        """Draw (None: remove) the overlay: the shown step replayed under other settings."""
        if what_if is not self.what_if:
            self.what_if = what_if
            self._redraw()

    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.record.stages) if self.record else ()

    def shown_stage(self) -> StageView | None:
        return _stage_of(self.record, self.stage_name)

    def set_available_stages(self, names: tuple[str, ...]) -> None:
        """What the loaded engine can report (empty: all); the legend lists only that."""
        if names != self.available_stages:
            self.available_stages = names
            self._fill_legend()
            self._apply_palette()  # the removed entry takes the theme's colour
            self._redraw()

    def _fill_legend(self) -> None:
        names = self.available_stages
        chain = not names or any(n != STAGE_RAW for n in names)  # False: raw only (remote)
        self.legend.set_entries([
            LegendEntry("raw", "raw softmax", RAW_COLOR, shown=chain),
            LegendEntry("stage", "after stage" if chain else "raw softmax", STAGE_COLOR),
            LegendEntry("removed", "removed", QColor(160, 160, 160), shown=chain),
            LegendEntry("chosen", "chosen token", CHOSEN_COLOR, "outline"),
            LegendEntry("what_if", "what-if", WHAT_IF_COLOR, "outline", shown=False),
            LegendEntry("draft", "draft's proposal (✓ accepted, ✗ rejected)", DRAFT_COLOR,
                        "outline", shown=False),
            LegendEntry("cumulative", "cumulative (top-p's input)", CUT_COLORS[STAGE_TOP_P], "line",
                        shown=not names or STAGE_TOP_P in names),
        ])

    def set_stage(self, name: str | None) -> None:
        self.stage_name = name
        self._redraw()

    def set_log_scale(self, on: bool) -> None:
        if on != self.log_scale:
            self.log_scale = on
            self._apply_ranges()
            self._redraw()

    def set_auto_y(self, on: bool) -> None:
        """Fit the linear axis to the tallest bar drawn (True) or keep it at 0–100%."""
        if on != self.auto_y:
            self.auto_y = on
            self._redraw()
            self._apply_ranges()

    def set_bar_count(self, n: int) -> None:
        n = max(MIN_BARS, min(MAX_BARS, n))
        if n != self.bar_count:
            self.bar_count = n
            self._apply_ranges()
            self._redraw()

    def set_candidate(self, token_id: int | None) -> None:
        self.candidate = token_id
        self._redraw()

    def y_of(self, p: float) -> float:
        """Where probability `p` sits on the current axis."""
        if not self.log_scale:
            return p
        return max(math.log10(p), LOG_FLOOR) if p > 0 else LOG_FLOOR

    def y_view(self) -> tuple[float, float]:
        """The y range shown now."""
        low, high = self.getPlotItem().getViewBox().viewRange()[1]
        return float(low), float(high)

    # --- drawing ---

    def _plot_px(self) -> tuple[float, float]:
        rect = self.getPlotItem().getViewBox().rect()
        return max(float(rect.width()), 1.0), max(float(rect.height()), 1.0)

    def _on_view_resized(self) -> None:
        self._apply_ranges()
        self._redraw()  # the labels' places are worked out in pixels

    def _apply_ranges(self) -> None:
        plot = self.getPlotItem()
        plot.setXRange(X_LEFT, self.bar_count - 0.4, padding=0)
        if self.log_scale:
            bottom, top, ticks = LOG_FLOOR, 0.0, log_ticks()
        else:
            top = self.y_top if self.auto_y else 1.0
            bottom, ticks = 0.0, linear_ticks(top)
        band = (self.label_rows + 1) * (self.row_px + 1) + 2 * LABEL_PAD_PX
        low, high = y_range(bottom, top, self._plot_px()[1], band)
        plot.setYRange(low, high, padding=0)
        if (ticks, self.bar_count) != self._ticks:  # tick labels only when they change
            self._ticks = (ticks, self.bar_count)
            plot.getAxis("left").setTicks([ticks])
            right = self.bar_count + 1.0
            self.grid.setData(
                [x for _ in ticks for x in (-1.0, right, np.nan)],
                [y for value, _ in ticks for y in (value, value, np.nan)])
        self.message.setPos(self.bar_count / 2, (bottom + top) / 2)

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
        for item in (self.raw_bars, self.removed_bars, self.stage_bars, self.what_if_bars,
                     self.chosen_bar, self.candidate_bar):
            self._bars(item, empty, empty)
        self.cuts.clear()
        self.chosen_text.setText("")
        self.draft.clear(forget=self.record is None)
        self.legend.update_entry("draft", shown=self.draft.reserved)
        self.bar_ids = ()
        self.axis.set_labels(())
        self.legend.update_entry("what_if", shown=False)

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
        stage_p = _probs_at(stage, ids)
        # Unlisted tokens were removed only when the stage lists all it kept; a stage that cut
        # the head (XTC) names the tokens it took, listed or not.
        gone = head_removed(record, stage.name)
        complete = stage_is_complete(stage)
        listed = set(stage.ids)
        removed = np.array([(complete and t not in listed) or t in gone for t in ids], dtype=bool)
        what_if_p = self._draw_what_if(ids, x, stage.name)
        if self.auto_y and not self.log_scale:
            tallest = max(float(raw_p.max(initial=0.0)), float(stage_p.max(initial=0.0)),
                          float(what_if_p.max(initial=0.0)))
            self._set_y_top(nice_top(tallest))
        self._bars(self.raw_bars, x, raw_p)
        self._bars(self.removed_bars, x[removed], raw_p[removed])
        shown = stage_p > 0
        self._bars(self.stage_bars, x[shown], stage_p[shown])
        self.legend.update_entry("stage", text="raw softmax" if stage.name == STAGE_RAW
                                 else f"after {stage_label(stage.name)}")
        self._draw_candidate(pos, raw_p, stage_p)
        self.cuts.draw(record, self.settings, pos, len(ids), self.y_of, stage)
        width, height = self._plot_px()
        self.draft.expect(record)
        rows = (self.cuts.arrange(self._px_of, width, height, self.row_px, LABEL_PAD_PX)
                + self.draft.rows())
        if rows != self.label_rows:
            self.label_rows = rows
            self._apply_ranges()
        tops = np.maximum(np.maximum(raw_p, stage_p), what_if_p)
        self._draw_chosen(record, pos, tops)
        low, high = self.y_view()
        self.draft.draw(record, pos, tops, self._bars, self.chosen_text, self._px_of, width,
                        (high - low) / height, self.row_px, self.y_of)
        self.legend.update_entry("draft", shown=self.draft.reserved)
        self.axis.set_labels(tuple(token_label(record.pieces.get(t, "")) for t in ids))

    def _set_y_top(self, top: float) -> None:
        if top != self.y_top:
            self.y_top = top
            self._apply_ranges()

    def _px_of(self, x: float) -> float:
        """Pixels from the plot's left edge to bar position `x`."""
        return (x - X_LEFT) / (self.bar_count - 0.4 - X_LEFT) * self._plot_px()[0]

    def _draw_what_if(self, ids: tuple[int, ...], x: np.ndarray, stage: str) -> np.ndarray:
        """The overlay's bars (the replay's same stage, else its final one); their heights."""
        what_if, record = self.what_if, self.record
        view = _stage_of(what_if, stage)
        if view is None or record is None or what_if is None or what_if.step != record.step:
            self._bars(self.what_if_bars, np.zeros(0), np.zeros(0))
            self.legend.update_entry("what_if", shown=False)
            return np.zeros(len(ids))
        p = _probs_at(view, ids)
        shown = p > 0
        self._bars(self.what_if_bars, x[shown], p[shown])
        self.legend.update_entry("what_if", shown=True)
        return p

    def _draw_chosen(self, record: StepRecord, pos: dict[int, int], tops: np.ndarray) -> None:
        i = pos.get(record.token_id)
        if i is None:
            self._bars(self.chosen_bar, np.zeros(0), np.zeros(0))
            self.chosen_text.setText("")
            return
        top = float(tops[i])
        self._bars(self.chosen_bar, np.array([float(i)]), np.array([top]))
        text = f"{format_prob(record.prob)} · #{record.raw_rank}"
        if text != self.chosen_text.toPlainText():
            self.chosen_text.setText(text)
        # Centred over its bar, unless half of it would leave the plot: then flush with the
        # edge it would cross.
        half = self.chosen_text.textItem.boundingRect().width() / 2
        width = self._plot_px()[0]
        at, inset = self._px_of(float(i)), (self.bar_count - 0.4 - X_LEFT) * 2 / width
        x, anchor = float(i), (0.5, 1.0)
        if at - half < 2:
            x, anchor = X_LEFT + inset, (0.0, 1.0)
        elif at + half > width - 2:
            x, anchor = self.bar_count - 0.4 - inset, (1.0, 1.0)
        if tuple(self.chosen_text.anchor) != anchor:
            self.chosen_text.setAnchor(anchor)
        low, high = self.y_view()
        lift = (high - low) * 2 / self._plot_px()[1]  # two pixels above the bar
        self.chosen_text.setPos(x, self.y_of(top) + lift)

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
            return  # another item took the click
        vb = self.getPlotItem().getViewBox()
        scene_pos = event.scenePos()  # type: ignore[attr-defined]
        if not vb.sceneBoundingRect().contains(scene_pos):
            return
        i = round(vb.mapSceneToView(scene_pos).x())
        if 0 <= i < len(self.bar_ids):
            token = self.bar_ids[i]
            self.set_candidate(token)
            self.sig_candidate_picked.emit(token)


def _stage_of(record: StepRecord | None, name: str | None) -> StageView | None:
    """A record's stage by name, else its last one (None: no record or no stages)."""
    if record is None or not record.stages:
        return None
    if name is not None:
        view = record.stage(name)
        if view is not None:
            return view
    return record.stages[-1]


def _probs_at(view: StageView, ids: tuple[int, ...]) -> np.ndarray:
    listed = dict(zip(view.ids, view.probs))
    return np.array([listed.get(t, 0.0) for t in ids], dtype=float)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t),
                  round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))
