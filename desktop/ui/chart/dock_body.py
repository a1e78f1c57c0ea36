"""ChartBody: the chart dock's widgets and their layout, top to bottom. GUI thread.

The controls row, the note on missing stages, the step header, the "Sampled with" line, the
what-if line and the legend above a splitter holding the distribution chart over the timeline,
then the step inspector. It only builds and lays them out; `chart_dock.ChartDock` connects them
and decides what they show.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from desktop.ui.chart.controls import ChartControls
from desktop.ui.chart.distribution_chart import DistributionChart
from desktop.ui.chart.inspector import StepInspector
from desktop.ui.chart.timeline import Timeline

NO_STEP = "No step yet: generate some text to see its distributions."


class ChartBody(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = _label(NO_STEP)
        # Two lines kept for the step's header, as for the inspector's status line: the first
        # step of a reply then re-lays out nothing (see StepInspector).
        self.header.setMinimumHeight(2 * self.header.fontMetrics().lineSpacing())
        # What the shown step was sampled with: changes with the generation, not per paint.
        # Always there, empty when no step is shown: appearing with a reply's first step, it
        # re-laid the dock out and drew chart and timeline twice in one stall.
        self.sampled_label = _label("", "sampledWith")
        self.sampled_label.setToolTip("The sampler settings this step was drawn with, as sent "
                                      "to the engine (the Sampling panel may differ now)")
        # What the overlay shows: the knobs it changes and what that does to this step.
        self.what_if_label = _label("", "whatIf")
        self.controls = ChartControls(self)
        # Why some stages are missing (a remote engine reports only the raw distribution).
        self.stages_note = _label("", "stagesNote")
        self.stages_note.setSizePolicy(QSizePolicy.Policy.Preferred,
                                       QSizePolicy.Policy.Preferred)
        self.stages_note.setVisible(False)
        self.chart = DistributionChart(self)
        self.chart.setMinimumHeight(140)
        self.timeline = Timeline(self)
        self.timeline.setMinimumHeight(56)
        self.inspector = StepInspector(self)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.chart)
        splitter.addWidget(self.timeline)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        layout.addWidget(self.controls)
        for label in (self.stages_note, self.header, self.sampled_label, self.what_if_label,
                      self.chart.legend):
            layout.addWidget(label)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.inspector)


def _label(text: str, name: str = "") -> QLabel:
    """A selectable, wrapping line of words that never asks the window for a new layout."""
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    label.setWordWrap(True)  # a long token and its figures must not be cut off
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return label
