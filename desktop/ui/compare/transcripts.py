"""TranscriptColumns: the sets' transcripts of one sample side by side, tokens clickable. GUI
thread only.

One column per set: a header (the set's name and colour, its seed, tokens and how it ended) and
the generated text, each token an anchor (`step:N`) so a click anywhere selects that step in all
columns. The first step where the transcripts differ is marked in every column (bold red type);
the selected step is underlined on a yellow wash. Token text is escaped — what the
model wrote is never HTML — and nothing is recomputed. `divergence_words` says where they part.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QTextBrowser, QVBoxLayout, QWidget

from desktop.core.compare import CompareReport, Sample
from desktop.core.steps import StepRecord
from desktop.core.token_text import format_prob, token_label

SCHEME = "step"
DIVERGE_COLOR = "#d22d2d"
# The divergent token in bold red type, the selected one on a yellow wash: a step can be both.
DIVERGE_CSS = f"color: {DIVERGE_COLOR}; font-weight: 700;"
SELECTED_CSS = "background-color: rgba(255, 200, 0, 0.5); text-decoration: underline;"


def column_html(steps: Sequence[StepRecord], divergence: int | None, selected: int | None,
                text_color: str) -> str:
    parts = []
    for r in steps:
        text = html.escape(r.text or "")
        if not text:
            continue  # a token that ends mid UTF-8 sequence: its characters come with the next
        style = "text-decoration: none;"
        style += DIVERGE_CSS if r.step == divergence else f"color: {text_color};"
        if r.step == selected:
            style += SELECTED_CSS
        tip = html.escape(f"step {r.step + 1}: {token_label(r.piece)} — p {format_prob(r.prob)}, "
                          f"rank {r.raw_rank} of the raw softmax", quote=True)
        parts.append(f'<a href="{SCHEME}:{r.step}" title="{tip}" style="{style}">{text}</a>')
    # pre-wrap: a token's spaces and newlines are part of what the model wrote.
    return "<div style='white-space: pre-wrap;'>" + "".join(parts) + "</div>"


class TranscriptColumn(QWidget):
    sig_step_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.setOpenExternalLinks(False)
        self.browser.anchorClicked.connect(self._on_anchor)
        font = self.browser.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)  # the text is what is compared: readable
        self.browser.setFont(font)
        self.steps: tuple[StepRecord, ...] = ()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.browser, 1)

    def show_steps(self, header: str, steps: Sequence[StepRecord], divergence: int | None,
                   selected: int | None) -> None:
        self.header.setText(header)
        self.steps = tuple(steps)
        color = self.palette().color(QPalette.ColorRole.Text).name()
        bar = self.browser.verticalScrollBar()
        keep = bar.value()
        self.browser.setHtml(column_html(self.steps, divergence, selected, color))
        bar.setValue(keep)

    def text(self) -> str:
        return self.browser.toPlainText()

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == SCHEME:
            try:
                self.sig_step_clicked.emit(int(url.path()))
            except ValueError:
                return


class TranscriptColumns(QWidget):
    """As many columns as sets; `show_sample` redraws them all."""

    sig_step_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(10)
        self.columns: list[TranscriptColumn] = []
        self.divergence: int | None = None
        self.selected: int | None = None

    def set_count(self, n: int) -> None:
        while len(self.columns) > n:
            column = self.columns.pop()
            self.row.removeWidget(column)
            column.deleteLater()
        while len(self.columns) < n:
            column = TranscriptColumn(self)
            column.sig_step_clicked.connect(self.sig_step_clicked)
            self.row.addWidget(column, 1)
            self.columns.append(column)

    def show_sample(self, headers: Sequence[str], steps: Sequence[Sequence[StepRecord]],
                    divergence: int | None, selected: int | None) -> None:
        self.set_count(len(headers))
        self.divergence, self.selected = divergence, selected
        for column, header, records in zip(self.columns, headers, steps):
            column.show_steps(header, records, divergence, selected)

    def show_one(self, index: int, header: str, steps: Sequence[StepRecord]) -> None:
        """Redraw one column (a run streaming in): the others stay as they are."""
        if 0 <= index < len(self.columns):
            self.columns[index].show_steps(header, steps, self.divergence, self.selected)


def set_header(label: str, color: QColor, detail: str) -> str:
    return (f"<b style='color:{color.name()}'>■</b> <b>Set {html.escape(label)}</b> "
            f"<span style='color: gray;'>{html.escape(detail)}</span>")


def divergence_words(report: CompareReport, n: int, found: Sequence[Sample | None],
                     colors: Sequence[QColor]) -> str:
    """Where sample `n` diverges, as rich text: each set's token there and its probability."""
    if sum(s is not None for s in found) < 2:
        return ""
    d = report.divergence(n)
    if d is None:
        if any(s is None for s in found):
            return "The finished sets agree so far."
        return "<b>No divergence</b>: every set wrote the same tokens."
    parts = []
    for i, r in enumerate(d.records):
        if found[i] is None:
            continue
        what = "ended" if r is None else (f"{html.escape(token_label(r.piece))} "
                                          f"({format_prob(r.prob)})")
        parts.append(f"<b style='color:{colors[i].name()}'>{html.escape(report.label(i))}</b> "
                     f"{what}")
    return (f"<b>Diverges at step {d.step + 1}</b> (in red): " + " · ".join(parts)
            + " — click any token to compare that step.")
