"""The base of the chart dock's plots: paint timing for the dock's pacing, live palette changes.

GUI thread only. The chart dock reads `paint_seconds` to keep its redraw rate affordable; the
what-if benchmark reads `painted_at`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QPaintEvent


class PacedPlot(pg.PlotWidget):  # type: ignore[misc]
    """A PlotWidget that adds up its paint time and re-applies `_apply_palette` when the
    window's palette changes (the app switches light/dark live)."""

    # An attribute that exists once the subclass has built the items `_apply_palette` colours.
    _PALETTE_READY_ATTR: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paint_seconds = 0.0  # total time spent drawing (read by the dock's pacing)
        self.painted_at = 0.0  # perf_counter() when the last paint ended (the benchmarks)

    def _apply_palette(self) -> None:
        """Follow the window's colours; subclasses colour their items here."""

    def paintEvent(self, event: QPaintEvent) -> None:
        started = time.perf_counter()
        super().paintEvent(event)
        self.painted_at = time.perf_counter()
        self.paint_seconds += self.painted_at - started  # the dock paces paints with it

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # pyqtgraph's own constructor changes the palette before our items exist.
        if (event.type() == QEvent.Type.PaletteChange
                and hasattr(self, self._PALETTE_READY_ATTR)):
            self._apply_palette()
