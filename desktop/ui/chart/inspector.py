"""StepInspector: what-if controls for one real step, plus "continue with" and exports. GUI thread.

Temperature, top-k, top-p and min-p have a slider under their spin box; moving either asks at
once for a replay of the selected step (`sig_replay_requested`, every value: the chart dock's
`WhatIfReplays` coalesces them so that one replay is in flight at a time, and dragging is as live
as the engine allows). The engine recomputes that position's true distribution and the chart dock
draws it over the recorded one and hands it here through `show_replay`. The words saying what
changed come from `core.token_text.compare_steps`, set arithmetic on the two records' reported
candidates. Reset puts every control back to what the step was sampled with.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.sampler_stages import PARAM_BY_FIELD, STAGE_OF_FIELD
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import compare_steps, describe_comparison, format_prob, token_label
from desktop.ui.wheel_guard import guard_wheel

SLIDER_FIELDS = ("temperature", "top_k", "top_p", "min_p")
LIVE_TEXT = ("Following the newest token. Change a setting to recompute the shown step "
             "under it (this pins the step).")

# (field, label, minimum, maximum, step, decimals); decimals None → integer spin box. Ranges and
# steps are the stage registry's, so a what-if takes exactly what the Sampling panel takes.
_FIELDS: tuple[tuple[str, str, float, float, float, int | None], ...] = tuple(
    (p.field, p.label, p.panel_minimum, p.hi, p.step, None if p.is_int else p.decimals)
    for p in (PARAM_BY_FIELD[name] for name in (
        "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
        "frequency_penalty")))


def short_label(field: str) -> str:
    """A knob's name for the inspector's narrow cells, from the stage registry: "T" for
    temperature (as the chart's header writes it), the stage's own label for a one-knob stage
    ("top-p"), else the first word of the knob's label ("repeat")."""
    if field == "temperature":
        return "T"
    stage = STAGE_OF_FIELD[field]
    if len(stage.params) == 1:
        return stage.label
    return PARAM_BY_FIELD[field].label.split()[0].lower()


class _SliderScale:
    """A slider's integer positions for one knob: the registry's useful range in its steps."""

    def __init__(self, field: str) -> None:
        param = PARAM_BY_FIELD[field]
        self.lo, self.hi = param.slider or (param.panel_minimum, param.hi)
        self.step = param.step
        self.positions = round((self.hi - self.lo) / self.step)

    def position(self, value: float) -> int:
        return max(0, min(self.positions, round((value - self.lo) / self.step)))

    def value(self, position: int) -> float:
        return self.lo + position * self.step


class StepInspector(QWidget):
    sig_replay_requested = Signal(int, object)  # step, SamplerSettings
    sig_continue_requested = Signal(int, int)  # step, token id
    sig_original_requested = Signal()  # show the step as it was generated again
    sig_export_requested = Signal(str)  # "csv", "json" or "png"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.base = SamplerSettings()
        self.record: StepRecord | None = None  # the original step (never a replay)
        self.candidate: int | None = None
        self.replay_note = ""  # why what-ifs cannot run on this engine ("" = they can)
        self.spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self.sliders: dict[str, QSlider] = {}
        self._scales: dict[str, _SliderScale] = {}

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)  # the dock must fit a 720-pixel-high window
        for k, (name, title, lo, hi, step, decimals) in enumerate(_FIELDS):
            spin: QSpinBox | QDoubleSpinBox
            if decimals is None:
                spin = QSpinBox()
                spin.setRange(int(lo), int(hi))
                spin.setSpecialValueText(PARAM_BY_FIELD[name].special)
            else:
                spin = QDoubleSpinBox()
                spin.setRange(lo, hi)
                spin.setDecimals(decimals)
                spin.setSingleStep(step)
            spin.setObjectName(name)
            spin.setMaximumWidth(120)
            spin.setMinimumWidth(58)  # not its widest value's width: four cells fit a row
            spin.setAccelerated(True)
            spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
            spin.valueChanged.connect(self._on_setting_changed)
            # The short name beside its box (one row, not two: the dock must fit 720 pixels).
            label = QLabel(short_label(name))
            label.setBuddy(spin)
            spin.setToolTip(f"{title}: {PARAM_BY_FIELD[name].help}")
            cell = QHBoxLayout()
            cell.setSpacing(3)
            cell.addWidget(label)
            cell.addWidget(spin, 1)
            # The penalties go under top-k, top-p and min-p: "T" is the narrowest cell.
            row, col = divmod(k, 4)
            grid.addLayout(cell, 0 if row == 0 else 2, col if row == 0 else col + 1)
            self.spins[name] = spin
            if name in SLIDER_FIELDS:
                grid.addWidget(self._slider(name, title), 1, col)
        grid.setColumnStretch(4, 1)

        self.status = QLabel("Select a step in the timeline to try other settings on it.")
        self.status.setWordWrap(True)
        # Two lines kept for it (the live step's words take two where the idle ones take
        # one): a reply's first step then re-lays out nothing, so chart and timeline are drawn
        # once, not again at a new size.
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing())
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.candidate_label = QLabel("Click a bar to pick a candidate token.")
        self.continue_button = QPushButton("Continue with this token")
        self.continue_button.setEnabled(False)
        self.continue_button.clicked.connect(self._continue)
        self.original_button = QPushButton("Reset")
        self.original_button.setToolTip("Put the settings back to what this step was sampled "
                                        "with (the chart keeps showing what-ifs under the "
                                        "Sampling panel's settings where they differ)")
        self.original_button.clicked.connect(self.reset)
        # One row of buttons, exports in a menu: the dock must fit beside the chat in a
        # 1280×720 window.
        self.candidate_label.setWordWrap(True)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save the selected step as CSV, JSON or a PNG image")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        self.export_actions: dict[str, QAction] = {}
        for kind, text in (("csv", "CSV…"), ("json", "JSON…"), ("png", "PNG image…")):
            action = menu.addAction(text)
            action.triggered.connect(lambda _=False, k=kind: self.sig_export_requested.emit(k))
            self.export_actions[kind] = action
        self.export_button.setMenu(menu)
        buttons = QHBoxLayout()
        buttons.addWidget(self.continue_button)
        buttons.addWidget(self.original_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        layout.addWidget(self.candidate_label)
        layout.addLayout(buttons)
        self._show_settings(self.base)
        self.set_step(None)
        # Scrolling past the what-if controls replays nothing: they take the wheel once focused.
        guard_wheel(self)

    # --- state from the dock ---

    def set_base_settings(self, settings: SamplerSettings) -> None:
        """The settings the shown generation used: the starting point of every what-if."""
        self.base = settings
        self._show_settings(settings)

    def set_step(self, record: StepRecord | None, live: bool = False) -> None:
        """The step the what-ifs apply to (an original, never a replayed record).

        `live`: the dock follows the newest token, up to 30 times a second; then only the
        record is swapped and the words stay put, so no label relayout happens per paint.
        """
        changed = record is None or self.record is None or record.step != self.record.step
        self.record = record
        if live and record is not None and record.stages:
            # QLabel ignores the same text: free after once.
            self.status.setText(self.replay_note or LIVE_TEXT)
            if changed and self.candidate is not None:
                self.set_candidate(None)
            for widget in self._knobs():
                widget.setEnabled(not self.replay_note)
            for button in (self.export_button, self.original_button):
                button.setEnabled(True)
            return
        for widget in self._knobs():
            widget.setEnabled(record is not None and bool(record.stages) and not self.replay_note)
        self.export_button.setEnabled(record is not None)
        self.original_button.setEnabled(record is not None)
        if changed:
            self._show_settings(self.base)
            self.set_candidate(None)
        if changed:
            self._describe_original()

    def _describe_original(self) -> None:
        record = self.record
        if record is None:
            self.status.setText("Select a step in the timeline to try other settings on it.")
        else:
            self.status.setText(
                f"Step {record.step}: ‘{token_label(record.piece)}’ at "
                f"{format_prob(record.prob)} (raw rank {record.raw_rank}). "
                + (self.replay_note or "Change a setting to recompute this step's "
                   "distribution."))

    def set_replay_unavailable(self, reason: str) -> None:
        """Turn the what-ifs and "continue with" off, saying why (a remote engine cannot
        recompute a step); "" turns them back on."""
        self.replay_note = reason
        for widget in (*self._knobs(), self.continue_button):
            widget.setToolTip(reason)
        record, self.record = self.record, None  # set_step redoes the enabled state and words
        self.set_step(record)

    def set_candidate(self, token_id: int | None) -> None:
        self.candidate = token_id
        record = self.record
        if token_id is None or record is None:
            self.candidate_label.setText("Click a bar to pick a candidate token.")
            self.continue_button.setEnabled(False)
            return
        raw = record.stage("raw")
        p = raw.prob_of(token_id) if raw is not None else None
        text = token_label(record.pieces.get(token_id, ""))
        self.candidate_label.setText(
            f"Picked ‘{text}’ (id {token_id}" + (f", raw {format_prob(p)})" if p else ")"))
        self.continue_button.setEnabled(not self.replay_note)

    def show_replay(self, replayed: StepRecord) -> None:
        """Say what the replay changed against the original step."""
        if self.record is None or replayed.step != self.record.step:
            return
        cmp = compare_steps(self.record, replayed)
        pieces = {**self.record.pieces, **replayed.pieces}
        self.status.setText("Replay: " + describe_comparison(cmp, pieces))

    def current_settings(self) -> SamplerSettings:
        values: dict[str, float | int] = {}
        for name, spin in self.spins.items():
            values[name] = spin.value()
        return self.base.replace(**values)

    def moved(self) -> bool:
        """Whether the controls differ from what the step was sampled with."""
        return self.current_settings() != self.base

    def reset(self) -> None:
        """Back to the generation's settings and the step as it was generated."""
        self._show_settings(self.base)
        self._describe_original()
        self.sig_original_requested.emit()

    # --- internals ---

    def _slider(self, name: str, title: str) -> QSlider:
        scale = self._scales[name] = _SliderScale(name)
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setObjectName(f"{name}_slider")
        slider.setRange(0, scale.positions)
        slider.setMaximumWidth(120)
        slider.setAccessibleName(f"{title} what-if")
        slider.setToolTip(f"{title}: drag to reshape the shown step under another value "
                          f"(replayed by the engine from the step's own logits)")
        slider.valueChanged.connect(lambda position: self._on_slider_moved(name, position))
        self.sliders[name] = slider
        return slider

    def _knobs(self) -> tuple[QWidget, ...]:
        return (*self.spins.values(), *self.sliders.values())

    def _show_settings(self, settings: SamplerSettings) -> None:
        for name, spin in self.spins.items():
            spin.blockSignals(True)  # programmatic: not a what-if
            spin.setValue(getattr(settings, name))
            spin.blockSignals(False)
        self._sync_sliders()

    def _sync_sliders(self) -> None:
        for name, slider in self.sliders.items():
            slider.blockSignals(True)
            slider.setValue(self._scales[name].position(self.spins[name].value()))
            slider.blockSignals(False)

    def _on_slider_moved(self, name: str, position: int) -> None:
        # Through the spin box: it rounds to its decimals and emits the request.
        spin, value = self.spins[name], self._scales[name].value(position)
        if isinstance(spin, QSpinBox):
            spin.setValue(round(value))
        else:
            spin.setValue(value)

    def _on_setting_changed(self) -> None:
        self._sync_sliders()
        if self.record is not None:
            # Every value at once: the dock coalesces them (one replay in flight at a time).
            self.sig_replay_requested.emit(self.record.step, self.current_settings())

    def _continue(self) -> None:
        if self.record is not None and self.candidate is not None:
            self.sig_continue_requested.emit(self.record.step, self.candidate)
