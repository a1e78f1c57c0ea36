"""ChartLegend: the distribution chart's legend as one line of words above the plot. GUI thread.

Outside the plot, so it never covers a bar or a label and takes no band of the y axis; it wraps
onto a second line in a narrow dock and can be hidden (the dock's Legend toggle). Each entry is a
coloured mark (a filled square for bars, an outlined one for outlined bars, a dash for lines)
and its words; the text is rebuilt only when an entry changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

MARKS = {"bar": "■", "outline": "□", "line": "—"}


@dataclass(frozen=True)
class LegendEntry:
    key: str
    text: str
    color: QColor
    mark: str = "bar"  # "bar", "outline" or "line"
    shown: bool = True


class ChartLegend(QLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chartLegend")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.entries: dict[str, LegendEntry] = {}

    def set_entries(self, entries: list[LegendEntry]) -> None:
        self.entries = {e.key: e for e in entries}
        self._render()

    def update_entry(self, key: str, **changes: object) -> None:
        """Change one entry's text, colour or visibility; nothing happens when none changed."""
        entry = self.entries.get(key)
        if entry is None:
            return
        new = replace(entry, **changes)  # type: ignore[arg-type]
        if new != entry:
            self.entries[key] = new
            self._render()

    def texts(self) -> list[str]:
        """The words of the entries shown, in order."""
        return [e.text for e in self.entries.values() if e.shown]

    def _render(self) -> None:
        # An entry never breaks across lines; the line wraps only between entries.
        parts = [f'<span style="color:{e.color.name()}">{MARKS[e.mark]}</span>&nbsp;'
                 f"{escape(e.text).replace(' ', '&nbsp;').replace('-', '&#8209;')}"
                 for e in self.entries.values() if e.shown]
        self.setText("&nbsp;&nbsp; ".join(parts))
