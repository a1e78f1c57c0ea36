"""ChartDock: the distribution chart, the timeline and the step inspector in one dock. GUI thread.

What it shows is one `Generation` (`show_generation`): a reply being generated, a stored one, or
nothing. The header says what the shown step was sampled with ("Sampled with T 0.20 · top-k 40 ·
top-p 0.95 · min-p 0.05 · seed 1234", words from the stage registry), and the cut lines, the
top-p and min-p levels and the inspector's what-if controls all start from those recorded
settings (`Generation.settings_at`), never from the Sampling panel. The dock draws what the
StepRecords report and never computes a probability of its own.

Tokens may arrive far faster than anyone can read (hundreds per second from a small model), and
repainting per token froze the GUI (FACTS.md). In the window, the generation tracker's one redraw
timer hands steps over in batches (`add_steps`, which only stores them and writes two numbers per
step into the timeline) and then ticks `on_frame`, which paints when at least 34 ms have passed
since the previous paint: at most ~30 paints a second however fast tokens come. The interval
stretches (up to 250 ms) when paints are dear, so the chart keeps to ~12% of one core: on a
2-core machine the engine's own threads need the rest (target: ≤ 5% tokens/s lost,
`desktop.bench.chart`). Fed one step at a time without a tracker (`add_step`: the benchmark, the
request log), the dock paces itself with its own single-shot timer, which runs only while
something new waits to be drawn.

"Live" follows the newest step; selecting a step (timeline click, `select_step`, or moving an
inspector setting) pins it until Live is pressed again. The last step stays on screen when a
generation ends or is stopped. The dock does not talk to the engine: the window connects
`sig_replay_requested` to `EngineService.replay` and feeds `Replayed` records to `show_replay`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.core.generation import Generation
from desktop.core.sampler_stages import stage_label
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import step_csv, step_json
from desktop.ui.chart.distribution_chart import MAX_BARS, MIN_BARS, DistributionChart
from desktop.ui.chart.inspector import StepInspector
from desktop.ui.chart.step_header import sampled_header, step_header
from desktop.ui.chart.timeline import Timeline

PAINT_INTERVAL_MS = 34  # ≥ 1000/30: never more than 30 paints a second
MAX_INTERVAL_MS = 250  # ... and never fewer than 4 while tokens arrive
# Share of one core the chart may take from the GUI thread (and, on a small machine, from the
# engine's threads): the interval stretches when a paint costs more than this allows. The
# measured cost misses some of Qt's own drawing, so the real share runs higher; and on a machine
# whose cores all run llama.cpp threads, a paint pre-empts one of them while the others spin at
# the next barrier. 0.05 (4-5 paints a second at 40 tokens/s on 2 cores) keeps tokens/s with
# the chart shown at 0.94-0.98 of the chart hidden there (`openlid bench --chart`).
PAINT_BUDGET = 0.05
TIMELINE_INTERVAL_S = 0.1  # the timeline only scrolls: 10 redraws a second are plenty
# Full records kept for selection: one with its stages and pieces is ~22 KiB (Gemma, top-50).
# Older steps keep only their timeline numbers.
HISTORY_LIMIT = 2000


class ChartDock(QDockWidget):
    sig_step_selected = Signal(int)  # a person picked a step here (timeline click)
    sig_replay_requested = Signal(int, object)  # step, SamplerSettings
    sig_continue_requested = Signal(int, int)  # step, token id
    sig_bar_count_changed = Signal(int)  # the person chose how many bars to draw (to persist)

    def __init__(self, parent: QWidget | None = None, history_limit: int = HISTORY_LIMIT) -> None:
        super().__init__("Token probabilities", parent)
        self.setObjectName("ChartDock")
        self.history_limit = history_limit
        self.latest: StepRecord | None = None
        self.shown: StepRecord | None = None  # what the chart draws (maybe a replay)
        self.selected_step: int | None = None  # None while live
        self.generation: Generation | None = None  # what is shown (its steps' settings)
        # What steps fed by `add_step` were sampled with (no Generation: the benchmark, tests).
        self.settings: SamplerSettings | None = None
        self.replay_settings: SamplerSettings | None = None
        self.paint_count = 0
        self.paint_cost_s = 0.0  # smoothed GUI time of one paint, drawing included
        self._rendered_s = 0.0
        self._painted_at = 0.0  # monotonic time of the last paint (frame pacing)
        self._dirty = False  # steps arrived since the last paint
        self._framed = False  # painted from the tracker's frames (else from its own timer)
        self._timeline_at = 0.0
        self._history: OrderedDict[int, StepRecord] = OrderedDict()
        self._stage_names: tuple[str, ...] = ()  # the shown record's stages
        self.available_stages: tuple[str, ...] = ()  # what the engine reports; () = all
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PAINT_INTERVAL_MS)
        self._timer.timeout.connect(self._paint)
        self._build()

    def _build(self) -> None:
        body = QWidget(self)
        self.header = QLabel("No step yet: generate some text to see its distributions.")
        self.header.setWordWrap(True)  # a long token and its figures must not be cut off
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # New text every paint must not ask the window for a new layout.
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        # What the shown step was sampled with: changes with the generation, not per paint.
        self.sampled_label = QLabel("")
        self.sampled_label.setObjectName("sampledWith")
        self.sampled_label.setWordWrap(True)
        self.sampled_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sampled_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.sampled_label.setToolTip("The sampler settings this step was drawn with, as sent "
                                      "to the engine (the Sampling panel may differ now)")
        self.sampled_label.setVisible(False)
        self.stage_box = QComboBox()
        self.stage_box.setToolTip("Which stage of the sampler chain the dark bars show")
        self.stage_box.setMinimumContentsLength(14)
        self.stage_box.currentIndexChanged.connect(self._on_stage_chosen)
        self.log_box = QCheckBox("Log scale")
        self.log_box.toggled.connect(self._on_log_toggled)
        self.bars_spin = QSpinBox()
        self.bars_spin.setRange(MIN_BARS, MAX_BARS)
        self.bars_spin.setValue(50)
        self.bars_spin.setPrefix("top ")
        self.bars_spin.setToolTip("How many candidates to draw (as many as the step carries)")
        self.bars_spin.valueChanged.connect(self._on_bars_changed)
        self.live_button = QPushButton("Live")
        self.live_button.setCheckable(True)
        self.live_button.setChecked(True)
        self.live_button.setToolTip("Follow the newest token; off while a past step is selected")
        self.live_button.toggled.connect(self.set_live)
        # Why some stages are missing (a remote engine reports only the raw distribution).
        self.stages_note = QLabel("")
        self.stages_note.setObjectName("stagesNote")
        self.stages_note.setWordWrap(True)
        self.stages_note.setVisible(False)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Stage:"))
        controls.addWidget(self.stage_box)
        controls.addWidget(self.log_box)
        controls.addWidget(self.bars_spin)
        controls.addStretch(1)
        controls.addWidget(self.live_button)

        self.chart = DistributionChart(body)
        self.chart.setMinimumHeight(220)
        self.chart.sig_candidate_picked.connect(self._on_candidate_picked)
        self.timeline = Timeline(body)
        self.timeline.setMinimumHeight(110)
        self.timeline.sig_step_selected.connect(self._on_timeline_clicked)
        self.inspector = StepInspector(body)
        self.inspector.sig_replay_requested.connect(self._on_replay_requested)
        self.inspector.sig_continue_requested.connect(self.sig_continue_requested)
        self.inspector.sig_original_requested.connect(self._show_original)
        self.inspector.sig_export_requested.connect(self._on_export_requested)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.chart)
        splitter.addWidget(self.timeline)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.stages_note)
        layout.addWidget(self.header)
        layout.addWidget(self.sampled_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.inspector)
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

    @Slot(object)
    def add_step(self, record: StepRecord) -> None:
        """Store a new step; cheap, whatever the rate. The dock's own timer paints it later."""
        self._framed = False
        self._take(record)
        if not self._timer.isActive():
            self._timer.start()

    def _take(self, record: StepRecord) -> None:
        if self.latest is not None and record.step <= self.latest.step:
            # Step numbers went back: a new generation or branch. Later steps no longer apply.
            for step in [s for s in self._history if s >= record.step]:
                del self._history[step]
        self.latest = record
        self._history[record.step] = record
        if len(self._history) > self.history_limit:
            self._history.popitem(last=False)
        self.timeline.append(record)
        self._dirty = True

    @Slot()
    def clear(self) -> None:
        """Show nothing; steps added after this carry no recorded settings until told."""
        self._timer.stop()
        self.latest = self.shown = None
        self.generation, self.settings = None, None
        self.selected_step = None
        self._history.clear()
        self.timeline.reset()
        self.chart.show_record(None)
        self.inspector.set_step(None)
        self._set_live_button(True)
        self.header.setText("No step yet: generate some text to see its distributions.")
        self.sampled_label.setText("")
        self.sampled_label.setVisible(False)

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
                                    f"{self.history_limit:,} steps are.")
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
        """Draw a `Replayed` record of the selected step at once (stale answers are dropped)."""
        current = self.selected_step if self.selected_step is not None else (
            self.latest.step if self.latest is not None else None)
        if record.step != current:
            return
        self._show(record, self.replay_settings)
        self.inspector.show_replay(record)

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

    def record_of(self, step: int) -> StepRecord | None:
        return self._history.get(step)

    # --- exports ---

    def export_csv(self, path: str | Path) -> None:
        if self.shown is not None:
            Path(path).write_text(step_csv(self.shown), encoding="utf-8")

    def export_json(self, path: str | Path) -> None:
        if self.shown is not None:
            Path(path).write_text(step_json(self.shown), encoding="utf-8")

    def export_png(self, path: str | Path) -> None:
        from pyqtgraph.exporters import ImageExporter

        ImageExporter(self.chart.getPlotItem()).export(str(path))

    # --- painting ---

    def _paint(self, timeline: bool = False) -> None:
        """One coalesced redraw: the newest step if live, and the timeline's new points."""
        if not self.isVisible():
            return  # a hidden or tabbed-away dock costs nothing; showEvent paints it
        started = time.perf_counter()
        self.paint_count += 1
        self._dirty = False
        live = self.selected_step is None
        if live and self.latest is not None and self.latest is not self.shown:
            settings = self.settings_of(self.latest)
            if settings is not None and settings is not self.inspector.base:
                self.inspector.set_base_settings(settings)
            self.inspector.set_step(self.latest, live=True)
            self._show(self.latest, settings)
        now = time.monotonic()
        self._painted_at = now
        if timeline or now - self._timeline_at >= TIMELINE_INTERVAL_S:
            self._timeline_at = now
            self.timeline.refresh(follow=live)
        elif self.timeline.dirty:  # its new points still need drawing, a little later
            self._dirty = True
            if not self._framed and not self._timer.isActive():
                self._timer.start()
        self._pace(time.perf_counter() - started)

    def _pace(self, work_s: float) -> None:
        """Stretch the paint interval when paints are dear (slow machine, big dock)."""
        rendered = self.chart.paint_seconds + self.timeline.paint_seconds
        cost = work_s + rendered - self._rendered_s  # this update + the last frame's drawing
        self._rendered_s = rendered
        self.paint_cost_s = 0.8 * self.paint_cost_s + 0.2 * cost
        interval = self.paint_cost_s / PAINT_BUDGET * 1000
        self._timer.setInterval(round(min(max(interval, PAINT_INTERVAL_MS), MAX_INTERVAL_MS)))

    def _show(self, record: StepRecord, settings: SamplerSettings | None) -> None:
        if self.shown is None or self.shown.step != record.step:
            self.chart.candidate = None  # a pick belongs to its step (a replay keeps it)
        self.shown = record
        names = tuple(s.name for s in record.stages)
        if names != self._stage_names:
            self._fill_stage_box(names)
        self.chart.show_record(record, settings)
        self.header.setText(step_header(record, len(self.chart.bar_ids)))
        self._show_sampled(record, settings)

    def _show_sampled(self, record: StepRecord, settings: SamplerSettings | None) -> None:
        # QLabel ignores the same text: following live steps costs a comparison.
        text = sampled_header(record, settings, self.settings_of(record),
                              known=self.generation is not None)
        self.sampled_label.setText(text)
        self.sampled_label.setVisible(bool(text))

    def _fill_stage_box(self, names: tuple[str, ...]) -> None:
        wanted = self.chart.stage_name
        self._stage_names = names
        if self.available_stages:  # offer only what the engine reports
            names = tuple(n for n in names if n in self.available_stages)
        self.stage_box.blockSignals(True)  # refilling is not a choice
        self.stage_box.clear()
        for k, name in enumerate(names):
            label = stage_label(name)
            self.stage_box.addItem(f"{label} (final)" if k == len(names) - 1 else label, name)
        index = names.index(wanted) if wanted in names else len(names) - 1
        self.stage_box.setCurrentIndex(index)
        self.stage_box.blockSignals(False)
        if self.available_stages and names:
            # By name: the record (a stored local reply, say) may carry stages left out here.
            self.chart.stage_name = names[index]

    def _set_live_button(self, on: bool) -> None:
        self.live_button.blockSignals(True)
        self.live_button.setChecked(on)
        self.live_button.blockSignals(False)

    # --- reactions ---

    def _on_stage_chosen(self, index: int) -> None:
        if index < 0:
            return
        name = self.stage_box.itemData(index)
        final = index == self.stage_box.count() - 1 and not self.available_stages
        self.chart.set_stage(None if final else name)

    def _on_log_toggled(self, on: bool) -> None:
        self.chart.set_log_scale(on)

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
        self.replay_settings = settings
        self.sig_replay_requested.emit(step, settings)

    def _show_original(self) -> None:
        record = self.inspector.record
        if record is not None:
            self._show(record, self.settings_of(record))

    def _on_export_requested(self, kind: str) -> None:
        record = self.shown
        if record is None:
            return
        suffix = {"csv": "CSV (*.csv)", "json": "JSON (*.json)", "png": "PNG image (*.png)"}[kind]
        name = f"step-{record.step}{'-replay' if record.replayed else ''}.{kind}"
        path, _ = QFileDialog.getSaveFileName(self, "Export step", str(Path.home() / name), suffix)
        if path:
            {"csv": self.export_csv, "json": self.export_json, "png": self.export_png}[kind](path)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._timer.isActive():
            self._timer.start()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._timer.stop()
        super().closeEvent(event)

