"""ChartDock: the distribution chart, the timeline and the step inspector in one dock. GUI thread.

What it shows is one `Generation` (`show_generation`): a reply being generated, a stored one, or
nothing. The header says what the shown step was sampled with ("Sampled with T 0.20 · top-k 40 ·
top-p 0.95 · min-p 0.05 · seed 1234", words from the stage registry), and the cut lines, the
top-p and min-p levels and the inspector's what-if controls all start from those recorded
settings (`Generation.settings_at`), never from the Sampling panel. The dock draws what the
StepRecords report and never computes a probability of its own.

Tokens may arrive far faster than anyone can read. In the window, the generation tracker's one
redraw timer hands steps over in batches (`add_steps`, which only stores them and writes two
numbers per step into the timeline) and then ticks `on_frame`, which paints when the interval
`pacing` allows has passed since the previous paint (34 ms, stretched up to 250 ms when paints
are dear: ≤ 5% tokens/s lost on 2 cores, `desktop.ui.bench.chart`). Fed one step at a time
without a tracker (`add_step`: the benchmark, the request log), the dock paces itself with its
own single-shot timer, which runs only while something new waits to be drawn.

"Live" follows the newest step; selecting a step (timeline click, `select_step`, or moving an
inspector setting) pins it until Live is pressed again. The last step stays on screen when a
generation ends or is stopped.

What-if (`overlay.WhatIfOverlay`): where the Sampling panel's settings (`set_panel_settings`,
pushed by the window) shape a finished step differently from how it was sampled, or once the
inspector's sliders move, the chart draws that step replayed under them, outlined over the
recorded bars, and names the difference; header and cut lines stay the recorded step's. The
dock does not talk to the engine: the window connects `sig_replay_requested` (coalesced, one
replay in flight) to `EngineService.replay` and feeds `Replayed` records to `show_replay`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QDockWidget, QWidget

from desktop.core.generation import Generation
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.ui.chart.dock_body import NO_STEP, ChartBody
from desktop.ui.chart.exports import ask_and_export, write_export
from desktop.ui.chart.overlay import WhatIfOverlay
from desktop.ui.chart.pacing import PAINT_INTERVAL_MS, PaintPacing
from desktop.ui.chart.step_header import sampled_header, step_header
from desktop.ui.chart.step_history import HISTORY_LIMIT, StepHistory

TIMELINE_INTERVAL_S = 0.1  # the timeline only scrolls: 10 redraws a second are plenty
TIMELINE_DEFER_MS = 20  # a streaming step's timeline redraw comes this long after the chart's
TITLE = "Probabilities"  # the tab's words: short, so six tabs fit a 560-pixel-wide dock area


class ChartDock(QDockWidget):
    sig_step_selected = Signal(int)  # a person picked a step here (timeline click)
    sig_replay_requested = Signal(int, object)  # step, SamplerSettings
    sig_continue_requested = Signal(int, int)  # step, token id
    sig_bar_count_changed = Signal(int)  # the person chose how many bars to draw (to persist)
    sig_view_options_changed = Signal(object)  # {"log_scale", "auto_y", "legend": bool} (persist)

    def __init__(self, parent: QWidget | None = None, history_limit: int = HISTORY_LIMIT) -> None:
        super().__init__(TITLE, parent)
        self.setObjectName("ChartDock")
        self.latest: StepRecord | None = None
        self.shown: StepRecord | None = None  # the recorded step the chart draws
        self.selected_step: int | None = None  # None while live
        self.generation: Generation | None = None  # what is shown (its steps' settings)
        # What steps fed by `add_step` were sampled with (no Generation: the benchmark, tests).
        self.settings: SamplerSettings | None = None
        self.paint_count = 0
        self.pacing = PaintPacing()
        self._painted_at = 0.0  # monotonic time of the last paint (frame pacing)
        self._dirty = False  # steps arrived since the last paint
        self._framed = False  # painted from the tracker's frames (else from its own timer)
        self._timeline_at = 0.0
        self._history = StepHistory(history_limit)
        self._stage_names: tuple[str, ...] = ()  # the shown record's stages
        self.available_stages: tuple[str, ...] = ()  # what the engine reports; () = all
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PAINT_INTERVAL_MS)
        self._timer.timeout.connect(self._paint)
        # While a reply streams, the timeline's redraw waits a frame after the chart's: painted
        # in one pass of the event loop, the two stalled the window for the sum of both.
        self._timeline_timer = QTimer(self)
        self._timeline_timer.setSingleShot(True)
        self._timeline_timer.setInterval(TIMELINE_DEFER_MS)
        self._timeline_timer.timeout.connect(self._refresh_timeline)
        self._build()

    def _build(self) -> None:
        body = ChartBody(self)
        self.header, self.sampled_label = body.header, body.sampled_label
        self.what_if_label, self.stages_note = body.what_if_label, body.stages_note
        self.controls, self.chart = body.controls, body.chart
        self.timeline, self.inspector = body.timeline, body.inspector
        self.stage_box, self.log_box = self.controls.stage_box, self.controls.log_box
        self.auto_y_box, self.legend_box = self.controls.auto_y_box, self.controls.legend_box
        self.bars_spin, self.live_button = self.controls.bars_spin, self.controls.live_button
        self.stage_box.currentIndexChanged.connect(self._on_stage_chosen)
        self.log_box.toggled.connect(self._on_log_toggled)
        self.auto_y_box.toggled.connect(self._on_auto_y_toggled)
        self.legend_box.toggled.connect(self._on_legend_toggled)
        self.bars_spin.valueChanged.connect(self._on_bars_changed)
        self.live_button.toggled.connect(self.set_live)
        self.chart.sig_candidate_picked.connect(self._on_candidate_picked)
        self.timeline.sig_step_selected.connect(self._on_timeline_clicked)
        self.inspector.sig_replay_requested.connect(self._on_replay_requested)
        self.inspector.sig_continue_requested.connect(self.sig_continue_requested)
        self.inspector.sig_original_requested.connect(self._show_original)
        self.inspector.sig_export_requested.connect(self._on_export_requested)
        # The what-if overlay: which settings, the replays behind it, its words.
        self.what_if = WhatIfOverlay(self.chart, self.inspector, self.what_if_label, self)
        self.replays = self.what_if.replays
        self.replays.sig_replay_requested.connect(self.sig_replay_requested)
        self.setWidget(body)

    # --- public slots ---

    def show_generation(self, generation: Generation | None) -> None:
        """Show a reply: its steps so far and what each was sampled with (None: nothing). A
        reply being generated then grows through `add_steps`."""
        if generation is not None and generation is self.generation:
            return
        self.clear()
        self.generation = generation
        if generation is None:
            return
        for record in generation.steps:
            self._take(record)
        self.paint_now()

    @Slot(object)
    def add_steps(self, batch: tuple[StepRecord, ...]) -> None:
        """Store a batch of the shown generation's new steps; `on_frame` paints them."""
        for record in batch:
            self._take(record)

    def on_frame(self) -> bool:
        """A redraw tick (the generation tracker's timer): paint what is new if the pacing
        allows; True while something new still waits to be drawn."""
        self._framed = True
        if not self._dirty or not self.isVisible():
            return False  # a hidden dock is painted by showEvent
        if time.monotonic() - self._painted_at >= self._timer.interval() / 1000:
            self._paint()
        return self._dirty

    def paint_now(self) -> None:
        """Paint what is new at once (a generation ended, or was just shown)."""
        self._timer.stop()
        self._paint(timeline=True)
        self._update_what_if()  # a generation that just ended can be replayed now

    def finish(self) -> None:
        """The shown generation ended: its last steps drawn now, the timeline's last points a
        frame later (drawn in the same pass, the two stalled the window for their sum)."""
        self._timer.stop()
        self._paint()
        if self.isVisible():
            self._timeline_timer.start()
        self._update_what_if()  # a generation that just ended can be replayed now

    @Slot(object)
    def add_step(self, record: StepRecord) -> None:
        """Store a new step; cheap, whatever the rate. The dock's own timer paints it later."""
        self._framed = False
        self._take(record)
        if not self._timer.isActive():
            self._timer.start()

    def _take(self, record: StepRecord) -> None:
        self.latest = record
        self._history.add(record)  # drops the steps a new generation or branch replaces
        self.timeline.append(record)
        self._dirty = True

    @Slot()
    def clear(self) -> None:
        """Show nothing; steps added after this carry no recorded settings until told."""
        self._timer.stop()
        self._timeline_timer.stop()
        self.what_if.stop()
        self.latest = self.shown = None
        self.generation, self.settings = None, None
        self.selected_step = None
        self._history.clear()
        self.timeline.reset()
        self.chart.show_record(None)
        self.inspector.set_step(None)
        self._set_live_button(True)
        self.header.setText(NO_STEP)
        self.sampled_label.setText("")

    def settings_of(self, record: StepRecord) -> SamplerSettings | None:
        """What a step was sampled with: its generation's record, never the panel's."""
        if self.generation is not None:
            return self.generation.settings_at(record.step)
        return self.settings

    @Slot(int)
    def select_step(self, step: int) -> None:
        """Show a past step now and pin it (Live turns off)."""
        record = self._history.get(step)
        if record is None:
            if 0 <= step < self.timeline.count:
                self.header.setText(f"Step {step} is no longer kept: only the last "
                                    f"{self._history.limit:,} steps are.")
            return
        self.selected_step = step
        self._set_live_button(False)
        self.timeline.mark(step)
        settings = self.settings_of(record)
        if settings is not None:
            self.inspector.set_base_settings(settings)
        self.inspector.set_step(record)
        self._show(record, settings)

    @Slot(object)
    def show_replay(self, record: StepRecord) -> None:
        """A `Replayed` record came back: draw it over the shown step at once, if it is that
        step's and an overlay is still wanted (stale answers are dropped), and send the latest
        wanted settings if they moved on meanwhile."""
        self.what_if.answer(record)

    def set_panel_settings(self, settings: SamplerSettings) -> None:
        """The Sampling panel's settings now (the window pushes every change): where they
        shape a finished step differently from how it was sampled, the chart overlays it."""
        self.replays.set_panel(settings)
        self._update_what_if()

    def set_sampler_settings(self, settings: SamplerSettings) -> None:
        """What the steps fed by `add_step` were sampled with (reference lines, what-if base),
        for a dock used without a Generation; a shown Generation's own settings come first."""
        self.settings = settings
        if self.generation is None:
            self.inspector.set_base_settings(settings)

    def set_engine_stages(self, available: tuple[str, ...], note: str = "",
                          replay_note: str = "") -> None:
        """What the loaded engine can report (`ModelInfo.available_stages`, empty: all), the
        words saying why not all (`stages_note`), and why replay is unavailable ("" = it is)."""
        self.available_stages = available
        self.stages_note.setText(note)
        self.stages_note.setVisible(bool(note))
        self.inspector.set_replay_unavailable(replay_note)
        if not available:
            self.chart.stage_name = None  # back to "final" for a chain that has every stage
        if self._stage_names:
            self._fill_stage_box(self._stage_names)
        self.chart.set_available_stages(available)  # redraws with the stage just chosen

    @Slot(bool)
    def set_live(self, on: bool) -> None:
        """Follow the newest step (True) or hold the one on screen (False)."""
        if not on:
            if self.shown is not None:
                self.select_step(self.shown.step)
            else:
                self._set_live_button(True)  # nothing to hold yet
            return
        self._set_live_button(True)
        self.selected_step = None
        self.timeline.mark(None)
        self.shown = None  # force the next paint to draw the newest step
        if not self._timer.isActive():
            self._timer.start()

    def set_bar_count(self, n: int) -> None:
        self.bars_spin.setValue(n)  # clamps to 10..200; redraws through _on_bars_changed

    def view_options(self) -> dict[str, bool]:
        """Log scale, auto-scaled y axis, legend shown: for the window to remember."""
        return self.controls.view_options()

    def set_view_options(self, options: Mapping[str, object]) -> None:
        self.controls.set_view_options(options)

    def record_of(self, step: int) -> StepRecord | None:
        return self._history.get(step)

    # --- exports ---

    def export_csv(self, path: str | Path) -> None:
        write_export("csv", path, self.shown, self.chart)

    def export_json(self, path: str | Path) -> None:
        write_export("json", path, self.shown, self.chart)

    def export_png(self, path: str | Path) -> None:
        write_export("png", path, self.shown, self.chart)

    # --- painting ---

    def _paint(self, timeline: bool = False) -> None:
        """One coalesced redraw: the newest step if live, and the timeline's new points."""
        if not self.isVisible():
            return  # a hidden or tabbed-away dock costs nothing; showEvent paints it
        started = time.perf_counter()
        self.paint_count += 1
        self._dirty = False
        live = self.selected_step is None
        drawn = False
        if live and self.latest is not None and self.latest is not self.shown:
            settings = self.settings_of(self.latest)
            if settings is not None and settings is not self.inspector.base:
                self.inspector.set_base_settings(settings)
            self.inspector.set_step(self.latest, live=True)
            self._show(self.latest, settings)
            drawn = True
        now = time.monotonic()
        self._painted_at = now
        due = timeline or now - self._timeline_at >= TIMELINE_INTERVAL_S
        if due and drawn and not timeline:
            if not self._timeline_timer.isActive():
                self._timeline_timer.start()  # its own frame, after the chart's paint
        elif due:
            self._timeline_timer.stop()
            self._refresh_timeline()
        elif self.timeline.dirty:  # its new points still need drawing, a little later
            self._dirty = True
            if not self._framed and not self._timer.isActive():
                self._timer.start()
        self._pace(time.perf_counter() - started)

    def _refresh_timeline(self) -> None:
        if self.isVisible():
            self._timeline_at = time.monotonic()
            self.timeline.refresh(follow=self.selected_step is None)

    def _pace(self, work_s: float) -> None:
        """Stretch the paint interval when paints are dear (slow machine, big dock)."""
        rendered = self.chart.paint_seconds + self.timeline.paint_seconds
        self._timer.setInterval(self.pacing.interval_ms(work_s, rendered))

    def _show(self, record: StepRecord, settings: SamplerSettings | None) -> None:
        if self.shown is None or self.shown.step != record.step:
            self.chart.candidate = None  # a pick belongs to its step (a replay keeps it)
            self.what_if.follow(None, None, False)  # ... and so does an overlay
        self.shown = record
        names = tuple(s.name for s in record.stages)
        if names != self._stage_names:
            self._fill_stage_box(names)
        self.chart.show_record(record, settings, self.what_if.record)
        self.header.setText(step_header(record, len(self.chart.bar_ids)))
        self._show_sampled(record, settings)
        self._update_what_if()

    def _show_sampled(self, record: StepRecord, settings: SamplerSettings | None) -> None:
        # QLabel ignores the same text: following live steps costs a comparison.
        text = sampled_header(record, settings, self.settings_of(record),
                              known=self.generation is not None)
        self.sampled_label.setText(text)

    # --- the what-if overlay ---

    def _replayable(self) -> bool:
        """Whether the panel's what-if may be asked for the shown step unasked: a local engine
        and a finished generation with its prompt (a stored reply has none), or a pinned step
        fed without a Generation."""
        if self.inspector.replay_note:
            return False
        gen = self.generation
        if gen is None:
            return self.selected_step is not None
        return gen.finished and bool(gen.prompt_tokens)

    def _update_what_if(self) -> None:
        """Want the overlay the shown step should have now; a replay computes it."""
        shown = self.shown
        self.what_if.follow(shown, self.settings_of(shown) if shown is not None else None,
                            self._replayable())

    def _fill_stage_box(self, names: tuple[str, ...]) -> None:
        self._stage_names = names
        chosen = self.controls.fill_stages(names, self.chart.stage_name, self.available_stages)
        if self.available_stages and chosen is not None:
            # By name: the record (a stored local reply, say) may carry stages left out here.
            self.chart.stage_name = chosen

    def _set_live_button(self, on: bool) -> None:
        self.controls.set_live_checked(on)

    # --- reactions ---

    def _on_stage_chosen(self, index: int) -> None:
        if index < 0:
            return
        name = self.stage_box.itemData(index)
        final = index == self.stage_box.count() - 1 and not self.available_stages
        self.chart.set_stage(None if final else name)

    def _on_log_toggled(self, on: bool) -> None:
        self.chart.set_log_scale(on)
        self.sig_view_options_changed.emit(self.view_options())

    def _on_auto_y_toggled(self, on: bool) -> None:
        self.chart.set_auto_y(on)
        self.sig_view_options_changed.emit(self.view_options())

    def _on_legend_toggled(self, on: bool) -> None:
        self.chart.legend.setVisible(on)
        self.sig_view_options_changed.emit(self.view_options())

    def _on_bars_changed(self, n: int) -> None:
        self.chart.set_bar_count(n)
        if self.shown is not None:
            self.header.setText(step_header(self.shown, len(self.chart.bar_ids)))
        self.sig_bar_count_changed.emit(n)

    def _on_timeline_clicked(self, step: int) -> None:
        self.select_step(step)
        self.sig_step_selected.emit(step)

    def _on_candidate_picked(self, token_id: int) -> None:
        self.inspector.set_candidate(token_id)

    def _on_replay_requested(self, step: int, settings: SamplerSettings) -> None:
        if self.selected_step != step:  # a what-if pins the step it is about
            self.select_step(step)
        self.replays.set_override(step, settings)
        self._update_what_if()

    def _show_original(self) -> None:
        """Reset: the step's own settings in the inspector; the panel's what-if, if any."""
        record = self.inspector.record
        if record is not None:
            self.replays.set_override(record.step, None)
            self._show(record, self.settings_of(record))

    def _on_export_requested(self, kind: str) -> None:
        ask_and_export(self, kind, self.shown, self.chart)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._timer.isActive():
            self._timer.start()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._timer.stop()
        self._timeline_timer.stop()
        self.what_if.stop()
        super().closeEvent(event)

