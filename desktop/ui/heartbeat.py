"""A GUI-thread heartbeat: a fast timer whose late ticks measure how long the event loop stalled.

GUI thread only (the timer fires there). Used by the benchmarks and the responsiveness tests.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer


class Heartbeat(QObject):
    """Records the gap between consecutive ticks of an `interval_ms` timer, in seconds."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)

    @property
    def worst(self) -> float:
        """The longest gap so far (0 before the second tick)."""
        return max(self.gaps, default=0.0)

    def start(self) -> None:
        """Forget earlier gaps and start measuring from now."""
        self.gaps.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        """Stop ticking; returns the longest gap."""
        self._timer.stop()
        return self.worst

    def _beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now
