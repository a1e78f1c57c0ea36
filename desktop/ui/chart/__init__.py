"""The live token-probability chart: distribution bars, timeline and step inspector (GUI thread).

`ChartDock` is the piece a window embeds; the others are its parts, importable for tests.
"""

from desktop.ui.chart.chart_dock import ChartDock
from desktop.ui.chart.distribution_chart import DistributionChart
from desktop.ui.chart.inspector import StepInspector
from desktop.ui.chart.timeline import Timeline
from desktop.ui.chart.token_axis import TokenAxis

__all__ = ["ChartDock", "DistributionChart", "StepInspector", "Timeline", "TokenAxis"]
