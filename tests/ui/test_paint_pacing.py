"""The chart's paint interval: fast paints are capped at ~30 a second, dear ones stretch the
interval to keep the chart's share of a core to PAINT_BUDGET, never past MAX_INTERVAL_MS."""

from __future__ import annotations

import pytest

from desktop.ui.chart.pacing import MAX_INTERVAL_MS, PAINT_BUDGET, PAINT_INTERVAL_MS, PaintPacing


def _settle(pacing: PaintPacing, cost_s: float) -> int:
    rendered, interval = 0.0, 0
    for _ in range(60):  # the cost is smoothed: let it settle
        rendered += cost_s / 2
        interval = pacing.interval_ms(cost_s / 2, rendered)
    return interval


def test_cheap_paints_come_at_most_thirty_times_a_second() -> None:
    assert _settle(PaintPacing(), 0.0005) == PAINT_INTERVAL_MS


def test_a_dear_paint_keeps_the_chart_to_its_share_of_a_core() -> None:
    cost = 0.008
    interval = _settle(PaintPacing(), cost)
    assert interval == pytest.approx(cost / PAINT_BUDGET * 1000, rel=0.02)
    assert PAINT_INTERVAL_MS < interval < MAX_INTERVAL_MS


def test_while_tokens_arrive_the_chart_paints_at_least_twice_a_second() -> None:
    assert _settle(PaintPacing(), 0.5) == MAX_INTERVAL_MS == 500
