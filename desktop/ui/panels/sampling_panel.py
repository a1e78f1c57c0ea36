"""SamplingPanel: every `SamplerSettings` knob, with presets, a seed lock and the sampler order.

GUI thread only. Self-contained: the main window reads `settings()`, listens to
`sig_settings_changed`, and persists values through `AppSettings`. Its Structured output section
is `structured_output.StructuredOutputBox`.

API
- `SamplingPanel(app_settings: AppSettings | None = None)` — user presets are read from and saved
  to `app_settings` (without it they last for the session only).
- `settings() -> SamplerSettings` — always valid (`validated()` passes).
- `set_settings(SamplerSettings)` — shows the values; out-of-range values are clamped and a
  message says what was adjusted; never raises. Emits `sig_settings_changed` once if the result
  differs from what was shown.
- `apply_preset(name)`, `save_preset(name) -> bool`, `preset_names() -> list[str]`.
- `sig_settings_changed(object)` — the new `SamplerSettings`, after any change.
"""

from __future__ import annotations

import secrets
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.sampling import PRESETS, SamplerSettings, SettingsError
from desktop.ui.panels.controls import (
    CUSTOM,
    SPIN_WIDTH,
    NumberField,
    fill_preset_combo,
    fill_with_scroll,
    hint_label,
    show_preset,
)
from desktop.ui.panels.sampling_fields import (
    FIELD_BY_NAME,
    GROUPS,
    MIROSTAT_KEEPS,
    MIROSTAT_MODES,
    MIROSTAT_ONLY,
    SESSION_FIELDS,
    TIPS,
    decode_stop,
    encode_stop,
    shaping_equal,
)
from desktop.ui.panels.stage_order import StageOrderEditor
from desktop.ui.panels.structured_output import StructuredOutputBox
from desktop.ui.settings import AppSettings

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's "pick a new seed each run"
MAX_FIXED_SEED = RANDOM_SEED - 1
_DEFAULTS = SamplerSettings()


class SamplingPanel(QWidget):
    sig_settings_changed = Signal(object)  # SamplerSettings

    def __init__(self, app_settings: AppSettings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SamplingPanel")
        self._app_settings = app_settings
        self._session_presets: dict[str, SamplerSettings] = {}
        self._updating = False
        self._shown = _DEFAULTS
        self.fields: dict[str, NumberField] = {}

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(6, 6, 6, 6)
        column.addLayout(self._build_preset_row())
        self.message = hint_label(warning=True)
        self.message.setAccessibleName("Sampling settings message")
        column.addWidget(self.message)
        for title, names in GROUPS:
            column.addWidget(self._build_group(title, names))
        column.addWidget(self._build_output_extras())
        self.structured = StructuredOutputBox()
        self.structured.sig_changed.connect(self._on_edited)
        column.addWidget(self.structured)
        column.addWidget(self._build_order_group())
        column.addStretch(1)
        # One label width for every group, so the sliders line up down the whole panel.
        labels = body.findChildren(QWidget, "field_label")
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:
            label.setMinimumWidth(width)

        fill_with_scroll(self, body)

        self._show(_DEFAULTS)
        self._refresh_presets()
        self._after_change(announce_message=False)

    # --- building ---

    def _build_preset_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        label = QLabel("Preset")
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip(TIPS["preset"])
        self.preset_combo.setAccessibleName("Sampler preset")
        label.setBuddy(self.preset_combo)
        self.save_preset_button = QPushButton("Save…")
        self.save_preset_button.setToolTip("Save the current shaping knobs as a named preset")
        row.addWidget(label)
        row.addWidget(self.preset_combo, 1)
        row.addWidget(self.save_preset_button)
        self.preset_combo.activated.connect(self._on_preset_activated)
        self.save_preset_button.clicked.connect(self._ask_preset_name)
        return row

    def _build_group(self, title: str, names: tuple[str, ...]) -> QGroupBox:
        box = QGroupBox(title)
        form = QFormLayout(box)
        form.setContentsMargins(6, 6, 6, 6)
        if title == "Mirostat":
            self.mirostat_combo = QComboBox()
            self.mirostat_combo.addItems(MIROSTAT_MODES)
            self.mirostat_combo.setToolTip(TIPS["mirostat"])
            self.mirostat_combo.setAccessibleName("Mirostat mode")
            self.mirostat_combo.currentIndexChanged.connect(self._on_edited)
            form.addRow(self._label("Mode", TIPS["mirostat"]), self.mirostat_combo)
        for name in names:
            spec = FIELD_BY_NAME[name]
            field = NumberField(
                minimum=spec.minimum, maximum=spec.maximum, default=getattr(_DEFAULTS, name),
                decimals=spec.decimals, step=spec.step, slider_range=spec.slider_range,
                special_text=spec.special_text, tooltip=spec.tooltip,
            )
            field.setObjectName(name)
            field.spin.setAccessibleName(spec.label)
            field.sig_value_changed.connect(self._on_edited)
            self.fields[name] = field
            form.addRow(self._label(spec.label, spec.tooltip, field), field)
        if title == "Randomness":
            seed_row = self._build_seed_row()  # builds self.seed_lock, the row's label
            form.addRow(self.seed_lock, seed_row)
        if title == "Truncation":
            self.truncation_note = hint_label()
            form.addRow(self.truncation_note)
        if title == "DRY":
            self.breakers_edit = QPlainTextEdit()
            self.breakers_edit.setPlaceholderText("None: repeats run on across any text")
            self.breakers_edit.setToolTip(TIPS["dry_sequence_breakers"])
            self.breakers_edit.setAccessibleName("DRY sequence breakers")
            self.breakers_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 12)
            self.breakers_edit.textChanged.connect(self._on_edited)
            form.addRow(self._label("Sequence breakers", TIPS["dry_sequence_breakers"],
                                    self.breakers_edit), self.breakers_edit)
        return box

    def _label(self, text: str, tip: str, buddy: QWidget | None = None) -> QLabel:
        label = QLabel(text)
        label.setObjectName("field_label")
        label.setToolTip(tip)
        if buddy is not None:
            label.setBuddy(buddy)
        return label

    def _build_seed_row(self) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        self.seed_lock = QCheckBox("Fixed seed")
        self.seed_lock.setObjectName("field_label")
        self.seed_lock.setToolTip(TIPS["seed"])
        self.seed_lock.setAccessibleName("Fixed seed")
        # A double spin box: seeds are unsigned 32-bit, beyond QSpinBox's signed int range.
        self.seed_spin = QDoubleSpinBox()
        self.seed_spin.setDecimals(0)
        self.seed_spin.setRange(0, MAX_FIXED_SEED)
        self.seed_spin.setFixedWidth(SPIN_WIDTH)
        # Stepping a seed by one means nothing; the room is better spent on its ten digits.
        self.seed_spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
        self.seed_spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.seed_spin.setKeyboardTracking(False)
        self.seed_spin.setToolTip(TIPS["seed"])
        self.seed_spin.setAccessibleName("Seed")
        self.seed_spin.setValue(42)
        self.new_seed_button = QToolButton()
        self.new_seed_button.setText("New")
        self.new_seed_button.setToolTip("Pick a new random seed and fix it")
        layout.addStretch(1)
        layout.addWidget(self.seed_spin)
        layout.addWidget(self.new_seed_button)
        self.seed_lock.toggled.connect(self._on_edited)
        self.seed_spin.valueChanged.connect(self._on_edited)
        self.new_seed_button.clicked.connect(self._new_seed)
        return row

    def _build_output_extras(self) -> QGroupBox:
        box = QGroupBox("Stop strings")
        column = QVBoxLayout(box)
        column.setContentsMargins(6, 6, 6, 6)
        self.stop_edit = QPlainTextEdit()
        self.stop_edit.setPlaceholderText("One per line, e.g. \\n\\n or ###")
        self.stop_edit.setToolTip(TIPS["stop"])
        self.stop_edit.setAccessibleName("Stop strings")
        self.stop_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 12)
        self.stop_edit.textChanged.connect(self._on_edited)
        self.ignore_eos = QCheckBox("Ignore end-of-text (benchmarks)")
        self.ignore_eos.setToolTip(TIPS["ignore_eos"])
        self.ignore_eos.toggled.connect(self._on_edited)
        column.addWidget(self.stop_edit)
        column.addWidget(self.ignore_eos)
        return box

    def _build_order_group(self) -> QGroupBox:
        box = QGroupBox("Sampler order")
        box.setToolTip(TIPS["order"])
        column = QVBoxLayout(box)
        column.setContentsMargins(6, 6, 6, 6)
        self.order_editor = StageOrderEditor()
        self.order_editor.setToolTip(TIPS["order"])
        self.order_editor.sig_order_changed.connect(self._on_edited)
        column.addWidget(self.order_editor)
        return box

    # --- public API ---

    def settings(self) -> SamplerSettings:
        values: dict[str, Any] = {name: f.value() for name, f in self.fields.items()}
        return SamplerSettings(
            **values,
            mirostat=self.mirostat_combo.currentIndex(),
            seed=int(self.seed_spin.value()) if self.seed_lock.isChecked() else RANDOM_SEED,
            stop=decode_stop(self.stop_edit.toPlainText()),
            dry_sequence_breakers=decode_stop(self.breakers_edit.toPlainText()),
            order=self.order_editor.order(),
            ignore_eos=self.ignore_eos.isChecked(),
            **self.structured.fields(),
        )

    def set_settings(self, settings: SamplerSettings) -> None:
        problem = ""
        try:
            settings.validated()
        except SettingsError as exc:
            problem = str(exc)
        except (TypeError, ValueError) as exc:  # a hand-edited value of the wrong type
            problem = f"unreadable value ({exc})"
            settings = _DEFAULTS
        self._show(settings)
        shown = self.settings()
        if problem or shown != settings:
            self._set_message(f"Some values were out of range and were adjusted: {problem or ''}"
                              .rstrip(": "))
        self._after_change(announce_message=False)

    def preset_names(self) -> list[str]:
        return [*PRESETS, *self._user_presets()]

    def apply_preset(self, name: str) -> None:
        preset = PRESETS.get(name) or self._user_presets().get(name)
        if preset is None:
            self._set_message(f"There is no preset called “{name}”.")
            return
        current = self.settings()
        self.set_settings(preset.replace(**{f: getattr(current, f) for f in SESSION_FIELDS}))

    def save_preset(self, name: str) -> bool:
        name = name.strip()
        if not name:
            self._set_message("A preset needs a name.")
            return False
        if name in PRESETS or name == CUSTOM:
            self._set_message(f"“{name}” is a built-in preset; choose another name.")
            return False
        value = self.settings()
        if self._app_settings is not None:
            self._app_settings.save_user_sampler_preset(name, value)
        else:
            self._session_presets[name] = value
        self._refresh_presets()
        return True

    # --- reacting ---

    def _user_presets(self) -> dict[str, SamplerSettings]:
        if self._app_settings is not None:
            return self._app_settings.user_sampler_presets()
        return dict(self._session_presets)

    def _show(self, s: SamplerSettings) -> None:
        self._updating = True
        try:
            for name, field in self.fields.items():
                field.set_value(getattr(s, name))
            self.mirostat_combo.setCurrentIndex(s.mirostat if s.mirostat in (0, 1, 2) else 0)
            locked = s.seed != RANDOM_SEED
            self.seed_lock.setChecked(locked)
            if locked:
                self.seed_spin.setValue(min(max(s.seed, 0), MAX_FIXED_SEED))
            for edit, strings in ((self.stop_edit, s.stop),
                                  (self.breakers_edit, s.dry_sequence_breakers)):
                if decode_stop(edit.toPlainText()) != strings:
                    edit.setPlainText(encode_stop(tuple(x for x in strings if x)))
            self.order_editor.set_order(s.order)
            self.ignore_eos.setChecked(bool(s.ignore_eos))
            self.structured.set_fields(s.structured_output, s.json_schema, s.grammar)
        finally:
            self._updating = False

    def _on_edited(self, *_args: object) -> None:
        if not self._updating:
            self._after_change(announce_message=True)

    def _after_change(self, *, announce_message: bool) -> None:
        current = self.settings()
        self.seed_spin.setEnabled(self.seed_lock.isChecked())
        mirostat = current.mirostat != 0
        for name, field in self.fields.items():
            field.setEnabled(name in MIROSTAT_KEEPS if mirostat else name not in MIROSTAT_ONLY)
        self.breakers_edit.setEnabled(not mirostat)
        self.truncation_note.setText(self._notes(current))
        self.truncation_note.setVisible(bool(self.truncation_note.text()))
        if announce_message:
            self._set_message("")
        self._select_matching_preset(current)
        if current != self._shown:
            self._shown = current
            self.sig_settings_changed.emit(current)

    def _notes(self, s: SamplerSettings) -> str:
        """Plain warnings about combinations that make other knobs do nothing."""
        notes = []
        if s.mirostat:
            notes.append("Mirostat is on: as in llama.cpp, only temperature runs before it; "
                         "penalties, DRY, XTC and every truncation are skipped.")
        elif s.greedy:
            notes.append("Temperature 0 is greedy: the top token is always taken, so truncation "
                         "and the seed change nothing.")
        elif s.top_k == 1:
            notes.append("Top-k 1 keeps a single token: this is greedy decoding.")
        if not s.penalties_active and s.repeat_last_n == 0 and (
                s.repeat_penalty != 1 or s.presence_penalty or s.frequency_penalty):
            notes.append("The penalty window is 0 tokens, so the penalties do nothing.")
        if s.dry_multiplier and s.dry_penalty_last_n == 0:
            notes.append("The DRY window is 0 tokens, so DRY does nothing.")
        if s.xtc_probability and s.xtc_threshold > 0.5:
            notes.append("XTC's threshold is above 0.5, so XTC never removes anything.")
        return " ".join(notes)

    def _set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _new_seed(self) -> None:
        self.seed_spin.setValue(secrets.randbelow(MAX_FIXED_SEED + 1))
        self.seed_lock.setChecked(True)

    def _refresh_presets(self) -> None:
        fill_preset_combo(self.preset_combo, PRESETS, self._user_presets())
        self._select_matching_preset(self.settings())

    def _select_matching_preset(self, current: SamplerSettings) -> None:
        presets = {**PRESETS, **self._user_presets()}
        show_preset(self.preset_combo,
                    next((n for n, p in presets.items() if shaping_equal(current, p)), None))

    def _on_preset_activated(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if isinstance(name, str) and name != CUSTOM:
            self.apply_preset(name)

    def _ask_preset_name(self) -> None:
        name, ok = QInputDialog.getText(self, "Save sampler preset", "Preset name:")
        if ok:
            self.save_preset(name)
