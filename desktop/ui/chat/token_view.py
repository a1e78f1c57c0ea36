"""TokenView: a reply shown token by token, each shaded by how sure the model was. GUI thread.

The shade is the chosen token's probability in the distribution it was drawn from (from its
`StepRecord`; nothing is recomputed): clear when the model was sure, deeper orange the more it
hesitated. Hovering a token lists the candidates it was picked from; clicking it emits the step,
and the window shows that step in the chart. Token text is escaped: what the model wrote is
never HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QPoint, QUrl, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QToolTip, QWidget

from desktop.core.steps import StepRecord
from desktop.ui.chat.markdown_body import AutoHeightBrowser

SCHEME = "step"
TOP_SHOWN = 5


def shade(prob: float) -> str:
    """CSS background for a chosen-token probability: none when sure, orange when unsure."""
    alpha = max(0.0, min(1.0, 1.0 - prob)) * 0.55
    return "transparent" if alpha < 0.04 else f"rgba(255, 140, 0, {alpha:.2f})"


def tokens_html(steps: Sequence[StepRecord]) -> str:
    parts = []
    for record in steps:
        text = html.escape(record.text or "")
        if text:
            parts.append(f'<a href="{SCHEME}:{record.step}" '
                         f'style="background-color: {shade(record.prob)};">{text}</a>')
    # pre-wrap: a token's spaces and newlines are part of what the model wrote.
    return "<div style='white-space: pre-wrap;'>" + "".join(parts) + "</div>"


def candidates_text(record: StepRecord) -> str:
    """The hover text: the chosen token, its probability and rank, and the top candidates."""
    lines = [f"step {record.step + 1}: {record.piece!r} — p {record.prob:.1%}, "
             f"rank {record.raw_rank} of the raw softmax"]
    final = record.stages[-1] if record.stages else None
    if final is not None:
        for token_id, p in list(zip(final.ids, final.probs))[:TOP_SHOWN]:
            mark = "▸" if token_id == record.token_id else " "
            lines.append(f"{mark} {record.pieces.get(token_id, str(token_id))!r}  {p:.1%}")
    return "\n".join(lines)


class TokenView(AutoHeightBrowser):
    sig_step_clicked = Signal(int)

    def __init__(self, steps: Sequence[StepRecord], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Reply by token")
        self.steps = {r.step: r for r in steps}
        text_color = self.palette().color(self.foregroundRole()).name()
        self.document().setDefaultStyleSheet(
            f"a {{ color: {text_color}; text-decoration: none; }}")  # tokens, not web links
        self.setHtml(tokens_html(steps))
        self.anchorClicked.disconnect()  # AutoHeightBrowser would open web links
        self.anchorClicked.connect(self._clicked)
        self.highlighted.connect(self._hovered)

    def _step_of(self, url: QUrl | str) -> int | None:
        text = url.toString() if isinstance(url, QUrl) else str(url)
        if not text.startswith(SCHEME + ":"):
            return None
        try:
            return int(text.split(":", 1)[1])
        except ValueError:
            return None

    def _clicked(self, url: QUrl) -> None:
        step = self._step_of(url)
        if step is not None:
            self.sig_step_clicked.emit(step)

    def _hovered(self, url: Any) -> None:
        step = self._step_of(url)
        record = self.steps.get(step) if step is not None else None
        if record is None:
            QToolTip.hideText()
            return
        QToolTip.showText(QCursor.pos() + QPoint(12, 12), candidates_text(record), self)
