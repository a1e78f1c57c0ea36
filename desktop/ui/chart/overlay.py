"""WhatIfOverlay: the shown step reshaped under other settings, over the recorded one. GUI thread.

The chart dock tells it which recorded step is shown (`follow`); it asks `WhatIfReplays` which
settings the overlay should show (the inspector's once moved, else the Sampling panel's where
they differ) and for the replays, draws each answer for the shown step on the chart at once
(`answer`), and names the difference in one line ("What-if: top-p 0.5 would keep 5 of 23 ·
‘ the’ 76% → 91%", the longer account in its tooltip). The header and the cut lines stay the
recorded step's: only the outlined bars, the legend entry and this line speak of the what-if.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel

from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.ui.chart.distribution_chart import WHAT_IF_COLOR, DistributionChart
from desktop.ui.chart.inspector import StepInspector
from desktop.ui.chart.step_header import settings_difference, what_if_details, what_if_line
from desktop.ui.chart.what_if import WhatIfReplays


class WhatIfOverlay(QObject):
    def __init__(self, chart: DistributionChart, inspector: StepInspector, label: QLabel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.chart, self.inspector, self.label = chart, inspector, label
        self.replays = WhatIfReplays(self)
        self.record: StepRecord | None = None  # the replay drawn, of the shown step
        self.settings: SamplerSettings | None = None  # ... the settings it was replayed under
        self._shown: StepRecord | None = None
        self._recorded: SamplerSettings | None = None
        label.setStyleSheet(f"color: {WHAT_IF_COLOR.name()}")
        label.setVisible(False)

    def follow(self, shown: StepRecord | None, recorded: SamplerSettings | None,
               replayable: bool) -> None:
        """The recorded step on the chart now, what it was sampled with, and whether the
        panel's what-if may be replayed unasked: want the overlay it should have."""
        if shown is None or self._shown is None or shown.step != self._shown.step:
            self._draw(None, None)  # an overlay belongs to its step
            override = self.replays.override
            if shown is None or (override is not None and override[0] != shown.step):
                self.replays.override = None  # ... and so do the inspector's moved controls
        self._shown, self._recorded = shown, recorded
        if shown is None:
            self.replays.want(0, None)
            return
        target = self.replays.target(shown.step, recorded, replayable)
        self.replays.want(shown.step, target)
        if target is None:
            self._draw(None, None)
        elif self.record is None:
            self._say(f"What-if {settings_difference(recorded, target)}: replaying…")

    def answer(self, record: StepRecord) -> bool:
        """A replay came back: draw it if it is of the shown step and an overlay is still
        wanted (True); the next wanted settings go out meanwhile."""
        settings = self.replays.answered()
        wanted, shown = self.replays.wanted, self._shown
        if wanted is None or shown is None or record.step != shown.step \
                or wanted[0] != record.step:
            return False
        self._draw(record, settings or wanted[1])
        return True

    def stop(self) -> None:
        """Nothing shown: no overlay, no replay wanted; a late answer is dropped."""
        self.replays.stop()
        self._shown = None
        self._draw(None, None)

    def _draw(self, record: StepRecord | None, settings: SamplerSettings | None) -> None:
        if record is None and self.record is None:
            if self.label.text() and self.replays.wanted is None:
                self._say("")
            return
        self.record, self.settings = record, settings
        self.chart.show_what_if(record)
        shown = self._shown
        if record is None or shown is None or settings is None:
            self._say("")
            return
        self._say("What-if: " + what_if_line(shown, record, self._recorded, settings),
                  what_if_details(shown, record))
        self.chart.legend.update_entry(
            "what_if", text=f"what-if ({settings_difference(self._recorded, settings)})")
        self.inspector.show_replay(record)

    def _say(self, text: str, tip: str = "") -> None:
        self.label.setText(text)
        self.label.setToolTip(tip)
        self.label.setVisible(bool(text))
