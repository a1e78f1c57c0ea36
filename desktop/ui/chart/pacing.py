"""How often the chart dock may repaint while tokens stream: the interval arithmetic. Pure (no
Qt); the dock calls it on the GUI thread after each paint.

Tokens may arrive far faster than anyone can read (hundreds per second from a small model), and
repainting per token froze the GUI (FACTS.md). The dock paints at most every `PAINT_INTERVAL_MS`
(~30 paints a second); the interval stretches (up to `MAX_INTERVAL_MS`) when paints are dear, so
the chart keeps its share of the GUI thread (and of a small machine's cores) to `PAINT_BUDGET`.
"""

from __future__ import annotations

PAINT_INTERVAL_MS = 34  # ≥ 1000/30: never more than 30 paints a second
MAX_INTERVAL_MS = 500  # ... and never fewer than 2 while tokens arrive
# Share of one core the chart may take from the GUI thread (and, on a small machine, from the
# engine's threads): the interval stretches when a paint costs more than this allows. The
# measured cost misses some of Qt's own drawing, so the real share runs higher; and on a machine
# whose cores all run llama.cpp threads, a paint pre-empts one of them while the others spin at
# the next barrier. On the 2-core machine (Gemma 270M at ~37 tokens/s, 512-token replies,
# `python -m desktop.ui.bench.chart`) 0.05 gave ~4 paints a second and tokens/s with the chart
# shown 0.929-0.941 of the chart hidden; 0.025 gives 2 a second (the window's own CPU per reply
# 0.8 s against 0.35 s hidden) and 0.954. A machine that paints faster gets more paints.
PAINT_BUDGET = 0.025


class PaintPacing:
    def __init__(self) -> None:
        self.cost_s = 0.0  # smoothed GUI time of one paint, drawing included
        self._rendered_s = 0.0

    def interval_ms(self, work_s: float, rendered_s: float) -> int:
        """The next interval, given this paint's update time and the plots' total drawing time
        so far (their `paint_seconds`, which include the last frame's drawing)."""
        cost = work_s + rendered_s - self._rendered_s
        self._rendered_s = rendered_s
        self.cost_s = 0.8 * self.cost_s + 0.2 * cost
        interval = self.cost_s / PAINT_BUDGET * 1000
        return round(min(max(interval, PAINT_INTERVAL_MS), MAX_INTERVAL_MS))
