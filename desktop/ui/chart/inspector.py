"""StepInspector: what-if controls for one real step, plus "continue with" and exports. GUI thread.

Moving a setting asks (debounced ~100 ms, so dragging does not flood the engine) for a replay of
the selected step; the engine recomputes that position's true distribution and the chart dock
hands the `Replayed` record back through `show_replay`. The words saying what changed come from
`core.token_text.compare_steps`, set arithmetic on the two records' reported candidates.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.sampler_stages import PARAM_BY_FIELD
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import compare_steps, describe_comparison, format_prob, token_label

REPLAY_DEBOUNCE_MS = 100
LIVE_TEXT = ("Following the newest token. Change a setting to recompute the shown step "
             "under it (this pins the step).")

# (field, label, minimum, maximum, step, decimals); decimals None → integer spin box. Ranges and
# steps are the stage registry's, so a what-if takes exactly what the Sampling panel takes.
_FIELDS: tuple[tuple[str, str, float, float, float, int | None], ...] = tuple(
    (p.field, p.label, p.panel_minimum, p.hi, p.step, None if p.is_int else p.decimals)
    for p in (PARAM_BY_FIELD[name] for name in (
        "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
        "frequency_penalty")))


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
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(REPLAY_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._request_replay)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
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
            spin.setAccelerated(True)
            spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
            spin.valueChanged.connect(self._on_setting_changed)
            label = QLabel(title)
            label.setBuddy(spin)
            row, col = divmod(k, 4)
            grid.addWidget(label, row * 2, col)
            grid.addWidget(spin, row * 2 + 1, col)
            self.spins[name] = spin
        grid.setColumnStretch(4, 1)

        self.status = QLabel("Select a step in the timeline to try other settings on it.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.candidate_label = QLabel("Click a bar to pick a candidate token.")
        self.continue_button = QPushButton("Continue with this token")
        self.continue_button.setEnabled(False)
        self.continue_button.clicked.connect(self._continue)
        self.original_button = QPushButton("Show original")
        self.original_button.setToolTip("Put the settings back and show the step as generated")
        self.original_button.clicked.connect(self.reset)
        # Two short rows rather than one long one: the dock must fit beside the chat on a
        # 1366-1440 px wide screen.
        self.candidate_label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.continue_button)
        buttons.addWidget(self.original_button)
        buttons.addStretch(1)
        exports = QHBoxLayout()
        exports.addWidget(QLabel("Export this step:"))
        self.export_buttons: dict[str, QPushButton] = {}
        for kind, text in (("csv", "CSV"), ("json", "JSON"), ("png", "PNG")):
            button = QPushButton(f"{text}…")
            button.setToolTip(f"Save the selected step as {text}")
            button.setProperty("export_kind", kind)
            button.clicked.connect(self._export_clicked)
            exports.addWidget(button)
            self.export_buttons[kind] = button
        exports.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        layout.addWidget(self.candidate_label)
        layout.addLayout(buttons)
        layout.addLayout(exports)
        self._show_settings(self.base)
        self.set_step(None)

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
            self._debounce.stop()
            # QLabel ignores the same text: free after once.
            self.status.setText(self.replay_note or LIVE_TEXT)
            if changed and self.candidate is not None:
                self.set_candidate(None)
            for spin in self.spins.values():
                spin.setEnabled(not self.replay_note)
            for button in (*self.export_buttons.values(), self.original_button):
                button.setEnabled(True)
            return
        self._debounce.stop()
        for spin in self.spins.values():
            spin.setEnabled(record is not None and bool(record.stages) and not self.replay_note)
        for button in self.export_buttons.values():
            button.setEnabled(record is not None)
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
        for widget in (*self.spins.values(), self.continue_button):
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

    def reset(self) -> None:
        """Back to the generation's settings and the step as it was generated."""
        self._debounce.stop()
        self._show_settings(self.base)
        self._describe_original()
        self.sig_original_requested.emit()

    # --- internals ---

    def _show_settings(self, settings: SamplerSettings) -> None:
        for name, spin in self.spins.items():
            spin.blockSignals(True)  # programmatic: not a what-if
            spin.setValue(getattr(settings, name))
            spin.blockSignals(False)

    def _on_setting_changed(self) -> None:
        if self.record is not None:
            self._debounce.start()  # restarts: one request once the value settles

    def _request_replay(self) -> None:
        if self.record is not None:
            self.sig_replay_requested.emit(self.record.step, self.current_settings())

    def _continue(self) -> None:
        if self.record is not None and self.candidate is not None:
            self.sig_continue_requested.emit(self.record.step, self.candidate)

    def _export_clicked(self) -> None:
        button = self.sender()
        if button is not None:
            self.sig_export_requested.emit(str(button.property("export_kind")))
