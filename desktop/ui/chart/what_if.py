"""WhatIfReplays: which settings the chart's what-if overlay shows, and the replays behind it.
GUI thread.

The overlay shows the shown step reshaped under other settings: the inspector's, once a person
moves them (an override that lasts until Reset or another step), else the Sampling panel's
where its shaping knobs differ from what the step was sampled with (`set_panel`). The dock asks
`target` for those settings and `want`s them; this object sends the replays.

Replays are coalesced rather than debounced: one is sent at once when none is in flight; while
one is, only the latest wanted settings wait, and go out when its answer comes (unless they are
what was just answered). A slider dragged faster than the engine answers thus gets a fresh
replay per answer, with no fixed delay added. An answer that never comes (the window's wiring
refused the request, the engine failed it) frees the slot after `ANSWER_TIMEOUT_MS`.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.sampling import SamplerSettings
from desktop.ui.chart.step_header import what_if_settings

ANSWER_TIMEOUT_MS = 5000

Want = tuple[int, SamplerSettings]  # step, settings


class WhatIfReplays(QObject):
    sig_replay_requested = Signal(int, object)  # step, SamplerSettings

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.panel: SamplerSettings | None = None  # the Sampling panel's settings now
        self.override: Want | None = None  # the inspector's settings for one step
        self.wanted: Want | None = None  # what the overlay should show now
        self.in_flight: Want | None = None
        self.pending: Want | None = None
        self.sent = 0  # replays sent (tests, the benchmark)
        self.sent_at = 0.0  # perf_counter() when the one in flight was sent
        self._timeout = QTimer(self)
        self._timeout.setObjectName("what-if-answer-timeout")
        self._timeout.setSingleShot(True)
        self._timeout.setInterval(ANSWER_TIMEOUT_MS)
        self._timeout.timeout.connect(self._gave_up)

    def set_panel(self, settings: SamplerSettings | None) -> None:
        self.panel = settings

    def set_override(self, step: int, settings: SamplerSettings | None) -> None:
        """The inspector's settings for `step` (None: back to the panel's, if they differ)."""
        self.override = None if settings is None else (step, settings)

    def target(self, step: int, recorded: SamplerSettings | None,
               replayable: bool) -> SamplerSettings | None:
        """The settings the overlay of `step` shows, or None for no overlay. `recorded`: what
        the step was sampled with; `replayable`: whether the panel's what-if may be asked for
        (a finished local generation), which a moved inspector control does not wait for."""
        if self.override is not None and self.override[0] == step:
            settings = self.override[1]
            return None if settings == recorded else settings
        if self.panel is None or recorded is None or not replayable:
            return None
        settings = what_if_settings(recorded, self.panel)
        return None if settings == recorded else settings

    def want(self, step: int, settings: SamplerSettings | None) -> None:
        """Make the overlay of `step` show `settings` (None: none): a replay now, or when the
        one in flight is answered."""
        wanted = None if settings is None else (step, settings)
        if wanted == self.wanted:
            return
        self.wanted = wanted
        if wanted is None or wanted == self.in_flight:
            self.pending = None
        elif self.in_flight is None:
            self._send(wanted)
        else:
            self.pending = wanted

    def answered(self) -> SamplerSettings | None:
        """A replay came back: the settings it was computed under (None when none was in
        flight, e.g. sent by someone else); sends the latest wanted settings if they differ."""
        done, self.in_flight = self.in_flight, None
        self._timeout.stop()
        pending, self.pending = self.pending, None
        if pending is not None and pending != done:
            self._send(pending)
        return done[1] if done is not None else None

    def stop(self) -> None:
        """Forget everything (the dock was cleared or closed); a late answer is dropped."""
        self._timeout.stop()
        self.override = self.wanted = self.in_flight = self.pending = None

    def _send(self, wanted: Want) -> None:
        self.in_flight = wanted
        self.sent += 1
        self.sent_at = time.perf_counter()
        self._timeout.start()
        self.sig_replay_requested.emit(*wanted)

    def _gave_up(self) -> None:
        self.in_flight = None
        pending, self.pending = self.pending, None
        if pending is not None:
            self._send(pending)
