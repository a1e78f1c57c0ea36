"""Where the sampler chain cut, drawn over the distribution chart's bars. GUI thread only.

A vertical line at the cut of every truncation stage that removed something: after the last
survivor of a stage that keeps a head (top-n-sigma, top-k, top-p, min-p, Mirostat), before the
first survivor of one that removes the head (XTC). Which stages cut, and which end, come from the
stage registry (`core.sampler_stages`). Besides the lines: the cumulative curve top-p read and its
p as a level, and min-p's threshold as a level on the bars. Everything is placed from one
`StepRecord` and the settings it was sampled with; the only arithmetic is display arithmetic on
reported numbers (a running sum, a product), never a probability of its own. Items are created
once and touched only when their position or label changes: re-laying out pyqtgraph text costs
more than comparing.

Truncations only remove tokens, XTC included: the survivors keep their probability ratios, so a
threshold read on one stage's bars holds on the raw bars too. XTC breaks the other habit, that a
cut keeps the head: it removes the most probable tokens, which `head_removed` names (from the
reported listings) so the chart can draw them as removed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from desktop.core.sampler_stages import (
    STAGE_MIN_P,
    STAGE_RAW,
    STAGE_TOP_K,
    STAGE_TOP_P,
    STAGES,
    is_truncation,
    removed_from_head,
)
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import feeding_stage, stage_changed, stage_is_complete

_PALETTE = {STAGE_TOP_K: QColor(200, 40, 40), STAGE_TOP_P: QColor(20, 140, 70),
            STAGE_MIN_P: QColor(130, 60, 180), "top_n_sigma": QColor(180, 110, 20),
            "xtc": QColor(0, 130, 150), "mirostat": QColor(90, 90, 90)}
_SPARE = (QColor(150, 60, 100), QColor(60, 100, 150), QColor(110, 120, 30))
# Every stage that cuts at one end gets a line: the registry says which, and which end.
_CUTS = {st.name: st.cut for st in STAGES if st.kind == "truncation" and st.cut in ("tail", "head")}
CUT_COLORS = {name: _PALETTE.get(name, _SPARE[k % len(_SPARE)]) for k, name in enumerate(_CUTS)}
_SAME_HEIGHT = 0.005  # cumulative points this close join whatever their order
_TITLES = {st.name: st.label for st in STAGES if st.name in _CUTS}


def head_removed(record: StepRecord, upto: str) -> set[int]:
    """The listed tokens that stages cutting the head (XTC) removed, up to the stage `upto`."""
    gone: set[int] = set()
    for before, after in zip(record.stages, record.stages[1:]):
        if _CUTS.get(after.name) == "head" and stage_changed(before, after):
            gone.update(removed_from_head(before.ids, before.probs, after.ids))
        if after.name == upto:
            break
    return gone


def cumulative_points(feed: StageView, pos: dict[int, int]
                      ) -> tuple[list[int], list[float], list[bool]]:
    """The cumulative curve top-p read, over the bars: for each bar (left to right) whose token
    top-p received, the mass top-p had summed when it reached that token; and whether each
    point joins the next, which it does when the next bar's token is the next top-p reached
    among those with a bar. Display arithmetic on reported numbers (a running sum): top-p
    keeps the shortest head of its input whose listed probabilities add up to p. Where a stage
    before top-p (penalties) reordered the tokens, a line through every point would climb and
    fall (a penalised token reached late stands high over its bar): then the curve is drawn
    as points, one over each bar. Two points at one height count as in order, whatever their
    order (a tail reordered near 100% keeps the line)."""
    total = np.cumsum(np.asarray(feed.probs, dtype=float))
    points = sorted((pos[t], k) for k, t in enumerate(feed.ids) if t in pos)
    x = [at for at, _ in points]
    y = [float(total[k]) for _, k in points]
    ranks = sorted(k for _, k in points)
    after = dict(itertools.pairwise(ranks))  # the next token top-p reached that has a bar
    joined = [after.get(a) == b or abs(total[b] - total[a]) < _SAME_HEIGHT
              for (_, a), (_, b) in itertools.pairwise(points)] + [False]
    return x, y, joined


class CutMarkers:
    """The cut lines, the cumulative curve and the min-p/top-p levels of one chart."""

    def __init__(self, plot: pg.PlotItem) -> None:
        color = CUT_COLORS[STAGE_TOP_P]
        self.cumulative = pg.PlotCurveItem(pen=pg.mkPen(color, width=1.5))
        plot.addItem(self.cumulative)
        # Where a stage before top-p reordered the bars, the curve is a point over each bar.
        self.cumulative_dots = pg.ScatterPlotItem(size=6, pen=pg.mkPen(color, width=1.5),
                                                  brush=pg.mkBrush(255, 255, 255))
        plot.addItem(self.cumulative_dots)
        self.cut_lines: dict[str, pg.InfiniteLine] = {}
        for name, title in _TITLES.items():
            line = pg.InfiniteLine(
                angle=90, pen=pg.mkPen(CUT_COLORS[name], width=1.5, style=Qt.PenStyle.DashLine),
                label=title, labelOpts={"position": 0.8, "color": CUT_COLORS[name],
                                        "anchors": [(1, 0), (1, 0)]})
            self.cut_lines[name] = line
            plot.addItem(line)
        self.min_p_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(CUT_COLORS[STAGE_MIN_P], width=1, style=Qt.PenStyle.DotLine),
            label="min-p", labelOpts={"position": 0.98, "color": CUT_COLORS[STAGE_MIN_P],
                                      "anchors": [(1, 1), (1, 1)]})
        self.top_p_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(CUT_COLORS[STAGE_TOP_P], width=1, style=Qt.PenStyle.DotLine))
        for line in (self.min_p_line, self.top_p_line):
            plot.addItem(line)

    def clear(self) -> None:
        self.cumulative.setData([], [])
        self.cumulative_dots.setData([], [])
        for line in (*self.cut_lines.values(), self.min_p_line, self.top_p_line):
            line.setVisible(False)

    def draw(self, record: StepRecord, settings: SamplerSettings | None, pos: dict[int, int],
             n: int, y_of: Callable[[float], float], shown: StageView | None) -> None:
        """Place everything for `record`: `pos` maps token id → bar index, `n` bars are shown,
        `y_of` maps a probability onto the y axis, `shown` is the stage drawn as bars."""
        for name, line in self.cut_lines.items():
            view, feed = record.stage(name), feeding_stage(record, name)
            at, text = None, ""
            if view is not None and feed is not None and stage_changed(feed, view):
                if _CUTS[name] == "head":
                    at = _head_boundary(feed, view, pos, n)
                    text = f"{_TITLES[name]} removed {feed.kept - view.kept} from the top"
                else:
                    at = _boundary(view, pos, n)
                    text = f"{_TITLES[name]} keeps {view.kept}"
            _place(line, at)
            if at is not None:
                _set_label(line, text)
        self._draw_top_p(record, settings, pos, y_of)
        self._draw_min_p(record, settings, y_of, shown)

    def arrange(self, px_of: Callable[[float], float], width: float, height: float,
                row_px: float, pad: float) -> int:
        """Place the shown cut lines' labels at the top of the plot: beside their line (left of
        it, the survivors' side, unless that would leave the plot), inside the plot, and a row
        lower where one would print over another. `px_of` maps x to pixels from the plot's left
        edge; the plot is `width` × `height` pixels. Returns the rows used (at least 1), which
        the chart keeps free of bars and of the chosen token's label."""
        placed: list[tuple[int, float, float]] = []  # row, left and right edge in pixels
        shown = sorted((line for line in self.cut_lines.values() if line.isVisible()),
                       key=lambda line: float(line.value()))
        for line in shown:
            w = float(line.label.textItem.boundingRect().width())
            at = px_of(float(line.value()))
            if at - w >= 0 or at + w > width:
                left, anchor = at - w, (1.0, 0.0)
            else:
                left, anchor = at, (0.0, 0.0)
            row = 0
            while any(r == row and left < right + pad and left + w + pad > start
                      for r, start, right in placed):
                row += 1
            placed.append((row, left, left + w))
            _anchor(line, anchor)
            position = 1.0 - (pad + row * (row_px + 1)) / height  # rows 1 pixel apart
            if line.label.orthoPos != position:
                line.label.setPosition(position)
        return max((r for r, _, _ in placed), default=0) + 1

    def _draw_top_p(self, record: StepRecord, settings: SamplerSettings | None,
                    pos: dict[int, int], y_of: Callable[[float], float]) -> None:
        view, feed = record.stage(STAGE_TOP_P), feeding_stage(record, STAGE_TOP_P)
        if view is None or feed is None or not stage_changed(feed, view):
            self.cumulative.setData([], [])
            self.cumulative_dots.setData([], [])
            _place(self.top_p_line, None)
            return
        x, y, joined = cumulative_points(feed, pos)
        y = [y_of(v) for v in y]
        if all(joined[:-1]):  # top-p read the bars left to right: one rising line
            self.cumulative.setData(x, y)
            self.cumulative_dots.setData([], [])
        else:  # a stage before it reordered them: a point over each bar, no line
            self.cumulative.setData([], [])
            self.cumulative_dots.setData(x, y)
        _place(self.top_p_line, y_of(settings.top_p) if settings is not None else None)

    def _draw_min_p(self, record: StepRecord, settings: SamplerSettings | None,
                    y_of: Callable[[float], float], shown: StageView | None) -> None:
        line, threshold = self.min_p_line, None
        view, feed = record.stage(STAGE_MIN_P), feeding_stage(record, STAGE_MIN_P)
        if (settings is not None and view is not None and feed is not None
                and feed.ids and stage_changed(feed, view)):
            m = settings.min_p
            if _ratios_kept_before(record, STAGE_MIN_P):
                # Truncations only renormalise, so min-p's cut is the same line on raw bars.
                raw = record.stage(STAGE_RAW)
                top_raw = raw.prob_of(feed.ids[0]) if raw is not None else None
                threshold = m * top_raw if top_raw is not None else None
            elif shown is feed:
                threshold = m * feed.probs[0]
        _place(line, y_of(threshold) if threshold is not None else None)
        if threshold is not None:
            _set_label(line, f"min-p {settings.min_p:g} × top")  # type: ignore[union-attr]


def _boundary(view: StageView, pos: dict[int, int], n: int) -> float | None:
    """x of the line after the last survivor of a stage, or None when it falls off the chart."""
    if stage_is_complete(view):
        places = [pos.get(t) for t in view.ids]
        if not places or any(p is None for p in places):
            return None
        at = max(p for p in places if p is not None) + 0.5
    else:
        at = view.kept - 0.5
    return at if at < n - 0.5 else None


def _head_boundary(feed: StageView, view: StageView, pos: dict[int, int],
                   n: int) -> float | None:
    """x of the line after the last bar a head cut removed, or None when none is shown."""
    places = [pos[t] for t in removed_from_head(feed.ids, feed.probs, view.ids) if t in pos]
    if not places:
        return None
    at = max(places) + 0.5
    return at if at < n - 0.5 else None


def _ratios_kept_before(record: StepRecord, name: str) -> bool:
    """True when every stage that changed anything before `name` only truncated."""
    for before, after in zip(record.stages, record.stages[1:]):
        if after.name == name:
            return True
        if not is_truncation(after.name) and stage_changed(before, after):
            return False
    return True


def _set_label(line: pg.InfiniteLine, text: str) -> None:
    if line.label.format != text:  # re-laying out the text item costs more than comparing
        line.label.setFormat(text)


def _anchor(line: pg.InfiniteLine, anchor: tuple[float, float]) -> None:
    label = line.label
    if tuple(label.anchor) != anchor:
        label.anchors = [anchor, anchor]
        label.setAnchor(anchor)


def _place(line: pg.InfiniteLine, at: float | None) -> None:
    """Show a line at `at` (hide it for None), touching it only when something changed."""
    if at is None:
        if line.isVisible():
            line.setVisible(False)
        return
    if line.value() != at:
        line.setPos(at)
    if not line.isVisible():
        line.setVisible(True)
