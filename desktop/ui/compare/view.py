"""CompareView: one prompt under two or more setting sets, side by side. GUI thread only.

Top: the prompt (continued as typed, no template), one `SetEditor` per set (filled from the
Sampling panel's settings; B starts at a contrasting temperature), and the run's knobs: samples
per set, tokens per sample, the seed (sample i of every set uses seed + i unless a set has its
own). Run generates every sample of every set one after the other on the window's engine
(`CompareRunner`); Stop ends it with what finished. Below, two tabs:

- Transcripts: the sets' transcripts of one sample in columns (`TranscriptColumns`), the first
  divergent step marked; a click on any token shows that step of every set overlaid
  (`StepOverlayChart`). With several samples a spin box picks which sample is shown.
- Samples: `SamplePlots` of each set's statistics (`core.compare.SetStats`).

Everything shown is read from the StepRecords the engine reported.
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.compare import (
    MAX_SAMPLES,
    MAX_SETS,
    CompareJob,
    CompareReport,
    CompareRun,
    Sample,
)
from desktop.core.compare_sets import set_label
from desktop.core.sampler_stages import RANDOM_SEED
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import StepRecord
from desktop.ui.compare.runner import CompareRunner
from desktop.ui.compare.sample_plots import SamplePlots
from desktop.ui.compare.set_editor import SEED_MAX, SetEditor
from desktop.ui.compare.step_chart import FINAL, RAW, StepOverlayChart
from desktop.ui.compare.transcripts import TranscriptColumns, divergence_words, set_header
from desktop.ui.engine_service import EngineService
from desktop.ui.wheel_guard import guard_wheel

SET_COLORS = (QColor(33, 97, 196), QColor(230, 115, 0), QColor(30, 150, 90),
              QColor(150, 60, 190), QColor(200, 50, 60), QColor(0, 145, 165),
              QColor(160, 125, 0), QColor(110, 110, 110))
DEFAULT_MAX_TOKENS = 32
TOP_N = 20  # candidates per stage a compared step carries


def contrasting(settings: SamplerSettings) -> SamplerSettings:
    """Set B's start: the same settings at a temperature far from A's."""
    return settings.replace(temperature=1.5 if settings.temperature < 1.2 else 0.2)


class CompareView(QWidget):
    def __init__(self, engine: EngineService,
                 panel_settings: Callable[[], SamplerSettings] | None = None,
                 parent: QWidget | None = None) -> None:
        """`panel_settings`: the Sampling panel's current settings (the sets start from them)."""
        super().__init__(parent)
        self.setObjectName("compareView")
        self.panel_settings = panel_settings or SamplerSettings
        self.runner = CompareRunner(engine, self)
        self.report: CompareReport | None = None
        self.live: dict[int, list[StepRecord]] = {}  # set → steps of its run now streaming
        self.selected: int | None = None
        self.editors: list[SetEditor] = []
        self._build()
        self.runner.sig_run_started.connect(self._on_run_started)
        self.runner.sig_step_added.connect(self._on_step)
        self.runner.sig_sample_finished.connect(self._on_sample_finished)
        self.runner.sig_finished.connect(self._on_finished)
        self.fill_from_panel()

    # --- building ---

    def _build(self) -> None:
        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("Prompt to compare")
        self.prompt.setPlaceholderText("The text every set continues, exactly as typed (no "
                                       "template), e.g. “Once upon a time”.")
        self.prompt.setMinimumWidth(220)
        self.sets_row = QHBoxLayout()
        self.sets_row.setContentsMargins(0, 0, 0, 0)
        self.add_button = QPushButton("+ Set")
        self.add_button.setToolTip("Add a setting set (a copy of the last one)")
        self.add_button.clicked.connect(lambda: self.add_set())
        self.sets_row.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignTop)
        sets_box = QWidget()
        sets_box.setLayout(self.sets_row)
        self.sets_scroll = QScrollArea()
        self.sets_scroll.setWidget(sets_box)
        self.sets_scroll.setWidgetResizable(True)
        self.sets_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.sets_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.samples = QSpinBox()
        self.samples.setRange(1, MAX_SAMPLES)
        self.samples.setAccessibleName("Samples per set")
        self.samples.setToolTip("How many times each set continues the prompt (sample i uses "
                                "seed + i). More than one adds the Samples plots.")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(DEFAULT_MAX_TOKENS)
        self.max_tokens.setAccessibleName("Tokens per sample")
        self.seed = QSpinBox()
        self.seed.setRange(0, SEED_MAX)
        self.seed.setAccessibleName("Seed")
        self.seed.setToolTip("Every set's sample i uses this seed + i: the sets are compared on "
                             "equal draws.")
        self.panel_button = QPushButton("From Sampling panel")
        self.panel_button.setToolTip("Start every set again from the Sampling panel's settings")
        self.panel_button.clicked.connect(self.fill_from_panel)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.setAccessibleName("Run the comparison")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop the comparison")
        self.stop_button.clicked.connect(self.cancel)
        self.stop_button.setEnabled(False)
        knobs = QFormLayout()
        knobs.setContentsMargins(0, 0, 0, 0)
        knobs.setVerticalSpacing(3)
        knobs.addRow("Samples", self.samples)
        knobs.addRow("Tokens", self.max_tokens)
        knobs.addRow("Seed", self.seed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        run_box = QVBoxLayout()
        run_box.setSpacing(4)
        run_box.addLayout(knobs)
        run_box.addLayout(buttons)
        run_box.addWidget(self.panel_button)

        top = QHBoxLayout()
        top.addWidget(self.prompt, 2)
        top.addWidget(self.sets_scroll, 5)
        top.addLayout(run_box)
        top_box = QWidget()
        top_box.setLayout(top)
        top_box.setMaximumHeight(150)

        self.status = QLabel("Type a prompt, set up two or more sets, and press Run.")
        self.status.setObjectName("compareStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)

        self.sample_pick = QSpinBox()
        self.sample_pick.setRange(1, 1)
        self.sample_pick.setPrefix("Sample ")
        self.sample_pick.setAccessibleName("Sample shown")
        self.sample_pick.valueChanged.connect(lambda _v: self._show_sample(keep_step=True))
        self.stage_pick = QComboBox()
        self.stage_pick.addItem("drawn from (after the chain)", FINAL)
        self.stage_pick.addItem("raw softmax", RAW)
        self.stage_pick.setAccessibleName("Distribution shown")
        self.stage_pick.currentIndexChanged.connect(self._on_stage_picked)
        self.columns = TranscriptColumns()
        self.columns.sig_step_clicked.connect(self.select_step)
        self.chart = StepOverlayChart()
        chart_box = QWidget()
        chart_layout = QVBoxLayout(chart_box)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_row = QHBoxLayout()
        chart_row.addWidget(QLabel("Distribution:"))
        chart_row.addWidget(self.stage_pick, 1)
        chart_layout.addLayout(chart_row)
        chart_layout.addWidget(self.chart, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.columns)
        split.addWidget(chart_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 420])
        split.setChildrenCollapsible(False)
        self.chart.setMinimumWidth(300)
        self.columns.setMinimumWidth(300)
        self.divergence_label = QLabel()
        self.divergence_label.setWordWrap(True)
        self.divergence_label.setTextFormat(Qt.TextFormat.RichText)
        head = QHBoxLayout()
        head.addWidget(self.sample_pick)
        head.addWidget(self.divergence_label, 1)
        transcripts = QWidget()
        t_layout = QVBoxLayout(transcripts)
        t_layout.setContentsMargins(4, 4, 4, 8)
        t_layout.addLayout(head)
        t_layout.addWidget(split, 1)
        self.plots = SamplePlots()
        self.results = QTabWidget()
        self.results.setDocumentMode(True)
        self.results.addTab(transcripts, "Transcripts")
        self.results.addTab(self.plots, "Samples")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(top_box)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)

    # --- sets ---

    def fill_from_panel(self) -> None:
        """A from the Sampling panel's settings, B the same at a contrasting temperature."""
        base = self.panel_settings()
        while len(self.editors) > 2:
            self.remove_set(self.editors[-1])
        while len(self.editors) < 2:
            self.add_set()
        self.editors[0].set_settings(base.replace(seed=RANDOM_SEED))
        self.editors[1].set_settings(contrasting(base).replace(seed=RANDOM_SEED))
        self.max_tokens.setValue(min(base.max_tokens, DEFAULT_MAX_TOKENS))
        self.seed.setValue(base.seed if base.seed <= SEED_MAX else random.randrange(SEED_MAX))

    def add_set(self, settings: SamplerSettings | None = None) -> SetEditor | None:
        if len(self.editors) >= MAX_SETS:
            return None
        start = settings or (self.editors[-1].settings() if self.editors
                             else self.panel_settings())
        i = len(self.editors)
        editor = SetEditor(set_label(i), SET_COLORS[i % len(SET_COLORS)], start)
        editor.setMinimumWidth(250)
        guard_wheel(editor)  # the wheel scrolls the sets, not a field under the pointer
        editor.sig_remove_requested.connect(self.remove_set)
        self.sets_row.insertWidget(i, editor, 1)
        self.editors.append(editor)
        self._update_set_buttons()
        return editor

    def remove_set(self, editor: object) -> None:
        if not isinstance(editor, SetEditor) or len(self.editors) <= 2 or self.runner.busy:
            return
        self.editors.remove(editor)
        self.sets_row.removeWidget(editor)
        editor.deleteLater()
        for i, e in enumerate(self.editors):  # names follow the order: A, B, C…
            e.set_label(set_label(i), SET_COLORS[i % len(SET_COLORS)])
        self._update_set_buttons()

    def _update_set_buttons(self) -> None:
        for e in self.editors:
            e.remove_button.setVisible(len(self.editors) > 2)
        self.add_button.setEnabled(len(self.editors) < MAX_SETS)

    def colors(self) -> list[QColor]:
        return [SET_COLORS[i % len(SET_COLORS)] for i in range(len(self.editors))]

    # --- running ---

    def run(self) -> None:
        prompt = self.prompt.toPlainText()
        if not prompt.strip():
            self._say("Type a prompt first: every set continues the same text.", error=True)
            return
        problem = self.runner.why_not()
        if problem:
            self._say(problem, error=True)
            return
        tokens = self.max_tokens.value()
        try:
            # The chart shows 10 candidates a set: 20 a stage keep a long run's records small.
            sets = tuple(e.settings().replace(max_tokens=tokens,
                                              top_n=min(e.settings().top_n, TOP_N)).validated()
                         for e in self.editors)
            job = CompareJob(prompt, sets, samples_per_set=self.samples.value(),
                             seed=self.seed.value(),
                             labels=tuple(e.label for e in self.editors),
                             base=self.editors[0].base.replace(max_tokens=tokens))
        except SettingsError as exc:
            self._say(f"These settings cannot run: {exc}", error=True)
            return
        self.report, self.live, self.selected = job.report(), {}, None
        self.sample_pick.blockSignals(True)
        self.sample_pick.setRange(1, job.samples_per_set)
        self.sample_pick.setValue(1)
        self.sample_pick.blockSignals(False)
        self.sample_pick.setVisible(job.samples_per_set > 1)
        self.results.setTabEnabled(1, job.samples_per_set > 1)
        self.results.setCurrentIndex(0)
        self.chart.clear_chart("Writing…")
        self._set_running(True)
        self._show_sample()
        self._say(f"Generating 0 of {len(job.runs)}…")
        self.runner.start(job)

    def cancel(self) -> None:
        self.runner.cancel()

    def shutdown(self) -> None:
        """The window closes: stop a running comparison (no new generation starts after)."""
        self.runner.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for widget in (*self.editors, self.add_button, self.panel_button, self.samples,
                       self.max_tokens, self.seed, self.prompt):
            widget.setEnabled(not running)
        self.prompt.setReadOnly(running)

    def _say(self, words: str, error: bool = False) -> None:
        text = html.escape(words)
        self.status.setText(f"<span style='color:#c83232'>{text}</span>" if error else text)

    # --- runner events (GUI thread) ---

    def _on_run_started(self, run: CompareRun) -> None:
        job = self.runner.job
        if job is None:
            return
        index, total = job.progress
        self._say(f"Generating {index + 1} of {total}: set {job.labels[run.set_index]}, "
                  f"sample {run.sample + 1} (seed {run.settings.seed})…")
        if run.sample == self.sample_pick.value() - 1:
            self.live[run.set_index] = []

    def _on_step(self, run: CompareRun, record: StepRecord) -> None:
        steps = self.live.get(run.set_index)
        if run.sample != self.sample_pick.value() - 1 or steps is None:
            return
        steps.append(record)
        self.columns.show_one(run.set_index, self._header(run.set_index, None, len(steps)),
                              steps)

    def _on_sample_finished(self, sample: Sample) -> None:
        self.report = self.runner.report()
        self.live.pop(sample.set_index, None)
        if sample.sample == self.sample_pick.value() - 1:
            self._show_sample(keep_step=True)
        if self.report is not None and self.report.samples_per_set > 1:
            self.plots.show_stats(self.report.stats(), self.colors())

    def _on_finished(self, report: CompareReport) -> None:
        self.report, self.live = report, {}
        self._set_running(False)
        if report.samples_per_set > 1:
            self.plots.show_stats(report.stats(), self.colors())
        self._show_sample()
        done = len(report.samples)
        if report.error:
            self._say(f"Stopped after {done} generation(s): {report.error}", error=True)
        elif report.cancelled:
            self._say(f"Stopped: {done} of {len(report.sets) * report.samples_per_set} "
                      "generations finished; the results show those.")
        else:
            self._say(f"Done: {done} generations, seed {report.seed}.")

    # --- showing ---

    def _header(self, i: int, sample: Sample | None, streaming: int = 0) -> str:
        label = self.editors[i].label if i < len(self.editors) else set_label(i)
        color = SET_COLORS[i % len(SET_COLORS)]
        if sample is None:
            detail = f"writing… {streaming} tokens" if streaming else "waiting"
        else:
            detail = (f"seed {sample.seed} · {len(sample.steps)} tokens · "
                      f"{sample.finish_reason}")
        return set_header(label, color, detail)

    def _show_sample(self, keep_step: bool = False) -> None:
        report = self.report
        if report is None:
            return
        n = self.sample_pick.value() - 1
        found = [report.sample(i, n) for i in range(len(report.sets))]
        d = report.divergence(n)
        divergence = d.step if d is not None else None
        if not keep_step or self.selected is None:
            self.selected = divergence if divergence is not None else (0 if any(found) else None)
        headers = [self._header(i, s, len(self.live.get(i, ()))) for i, s in enumerate(found)]
        steps = [s.steps if s is not None else self.live.get(i, [])
                 for i, s in enumerate(found)]
        self.columns.show_sample(headers, steps, divergence, self.selected)
        self.divergence_label.setText(divergence_words(report, n, found, self.colors()))
        if self.selected is not None and all(s is not None for s in found):
            self._show_step(self.selected)

    def select_step(self, step: int) -> None:
        self.selected = step
        self._show_sample(keep_step=True)

    def _show_step(self, step: int) -> None:
        report = self.report
        if report is None:
            return
        n = self.sample_pick.value() - 1
        found = [report.sample(i, n) for i in range(len(report.sets))]
        records = [s.steps[step] if s is not None and step < len(s.steps) else None
                   for s in found]
        d = report.divergence(n)
        if d is None:
            note = "the sets agree on every step"
        elif step < d.step:
            note = "before the divergence: same text so far"
        elif step == d.step:
            note = "the first step where they differ"
        else:
            note = "after the divergence: each set continues its own text"
        self.chart.show_step(step, records, [report.label(i) for i in range(len(found))],
                             self.colors(), note)

    def _on_stage_picked(self, _index: int) -> None:
        self.chart.which = self.stage_pick.currentData()
        if self.selected is not None:
            self._show_step(self.selected)
