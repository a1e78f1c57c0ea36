"""The distribution chart's y axis: its range and ticks, fixed or fitted to the tallest bar.

Pure arithmetic (no Qt), called on the GUI thread by `distribution_chart`. The fixed linear axis
runs 0–100% and the log axis 1e-6–1, as before; the auto-scaled linear axis ends at the smallest
"nice" value (1, 2 or 5 × 10^k, or 100%) at or above the tallest bar drawn, so the range and its
tick labels change only when that value does, not with every step. Above the top value a band is
left for text (the chosen token's label, then the cut lines' labels), sized in pixels so the
labels never print over each other or leave the plot, whatever its height.
"""

from __future__ import annotations

import math

LOG_FLOOR = -6.0  # log10 of the smallest probability the log axis shows
MIN_PLOT_PX = 40.0  # below this the band would take the whole plot: keep some room for bars

Ticks = list[tuple[float, str]]


def nice_top(tallest: float) -> float:
    """The smallest of 1, 2, 5 × 10^k (k ≤ -1) or 1.0 that is ≥ `tallest` (0.0001 at least)."""
    if tallest >= 0.5:
        return 1.0
    for exponent in range(-4, 0):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if tallest <= value * (1 + 1e-9):
                return value
    return 1.0


def _percent(v: float) -> str:
    return f"{round(v * 100, 6):g}%"


def linear_ticks(top: float) -> Ticks:
    """Ticks from 0 to `top` (a `nice_top` value, or 1.0): 4 or 5 steps with round labels."""
    if top >= 1.0:
        return [(v / 4, f"{v * 25}%") for v in range(5)]
    mantissa = round(top / 10 ** math.floor(math.log10(top) + 1e-9))
    parts = 4 if mantissa == 2 else 5
    return [(top * k / parts, _percent(top * k / parts)) for k in range(parts + 1)]


def log_ticks() -> Ticks:
    return [(float(e), "1" if e == 0 else f"1e{e}") for e in range(int(LOG_FLOOR), 1)]


def y_range(bottom: float, top: float, plot_px: float, band_px: float) -> tuple[float, float]:
    """The view range that puts `top` (in axis units) `band_px` pixels below the plot's top."""
    bars_px = max(plot_px - band_px, MIN_PLOT_PX)
    return bottom, top + (top - bottom) * band_px / bars_px
