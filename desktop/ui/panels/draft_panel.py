"""DraftPanel: speculative decoding's load settings — no draft, a draft model (a smaller GGUF
with the model's vocabulary) or n-gram lookup in the context — and what the engine reports
once a model loaded with one.

GUI thread only. The panel edits LoadSettings' draft fields and nothing else; the Load panel
puts them into the settings it hands out (`apply_to`). Whether the draft model shares the
model's vocabulary is checked by the engine at load time, and its refusal is shown with the
load's other errors.

API
- `apply_to(LoadSettings) -> LoadSettings` — the settings with this panel's draft fields.
- `set_from(LoadSettings)` — show a settings' draft fields (never raises).
- `problem() -> str` — what stops these draft settings from loading, in words ("" when none).
- `set_model_info(info: ModelInfo | None)` — the drafting in effect after a load.
- Signal: `sig_changed(object)` — a dict of the draft fields, after every edit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from desktop.core.drafting import (
    DRAFT_KINDS,
    DRAFT_LABELS,
    DRAFT_MODEL,
    DRAFT_NONE,
    DRAFT_P_MIN,
    MAX_DRAFT,
)
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SettingsError
from desktop.ui.panels.controls import NumberField, hint_label

_DEFAULTS = LoadSettings()
TIPS = {
    "draft": "Speculative decoding: something cheap proposes the next tokens and the model "
             "checks them all in one pass. Each token is still the model's own draw, so the "
             "text is the model's; only the speed changes.",
    "draft_model": "A smaller GGUF of the same family (the same tokenizer), e.g. a 270M Gemma "
                   "drafting for a 4B Gemma.",
    "n_draft": "Tokens proposed per pass, at most. More pays off when proposals are often "
               "right (code, copying); each rejected one costs a little compute.",
    "draft_p_min": "The draft model stops proposing at a token it gives less than this "
                   "probability.",
}


class DraftPanel(QGroupBox):
    sig_changed = Signal(object)  # dict of LoadSettings' draft fields

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Speculative decoding", parent)
        self.setObjectName("DraftPanel")
        self.setToolTip(TIPS["draft"])
        self._updating = False
        form = QFormLayout(self)
        self.kind = QComboBox()
        for kind in DRAFT_KINDS:
            self.kind.addItem(DRAFT_LABELS[kind], kind)
        self.kind.setAccessibleName("Draft kind")
        self.kind.currentIndexChanged.connect(self._on_edited)
        form.addRow("Draft", self.kind)

        self.path = QLineEdit()
        self.path.setPlaceholderText("draft model file (.gguf)")
        self.path.setToolTip(TIPS["draft_model"])
        self.path.setAccessibleName("Draft model file")
        self.path.editingFinished.connect(self._on_edited)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._on_browse)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        self.path_row = QWidget()
        self.path_row.setLayout(row)
        form.addRow("Model", self.path_row)

        self.n_draft = NumberField(minimum=1, maximum=MAX_DRAFT, default=_DEFAULTS.n_draft,
                                   slider_range=(1, 16), tooltip=TIPS["n_draft"])
        self.n_draft.sig_value_changed.connect(self._on_edited)
        form.addRow("Max tokens", self.n_draft)
        self.p_min = NumberField(minimum=0.0, maximum=1.0, default=DRAFT_P_MIN, decimals=2,
                                 step=0.05, tooltip=TIPS["draft_p_min"])
        self.p_min.sig_value_changed.connect(self._on_edited)
        form.addRow("Min probability", self.p_min)
        self.note = hint_label()
        self.note.setObjectName("draft_note")
        form.addRow(self.note)
        self._enable()

    # --- public API ---

    def fields(self) -> dict[str, Any]:
        return {"draft": str(self.kind.currentData()), "draft_model": self.path.text().strip(),
                "n_draft": int(self.n_draft.value()), "draft_p_min": float(self.p_min.value())}

    def apply_to(self, settings: LoadSettings) -> LoadSettings:
        return settings.replace(**self.fields())

    def set_from(self, settings: LoadSettings) -> None:
        self._updating = True
        try:
            index = self.kind.findData(settings.draft)
            self.kind.setCurrentIndex(max(0, index))
            self.path.setText(settings.draft_model)
            self.n_draft.set_value(min(max(settings.n_draft, 1), MAX_DRAFT))
            self.p_min.set_value(min(max(settings.draft_p_min, 0.0), 1.0))
        finally:
            self._updating = False
        self._enable()
        self._show_problem()

    def problem(self) -> str:
        fields = self.fields()
        try:
            LoadSettings(**fields).validated()
        except SettingsError as exc:
            return str(exc)
        path = fields["draft_model"]
        if fields["draft"] == DRAFT_MODEL and not os.path.isfile(path):
            return f"the draft model file {path} does not exist"
        return ""

    def set_model_info(self, info: ModelInfo | None) -> None:
        if info is None:
            self._show_problem()
            return
        self.note.setText(f"In use: {info.draft}." if info.draft else "Loaded without a draft.")

    # --- internals ---

    def _enable(self) -> None:
        kind = self.kind.currentData()
        self.path_row.setEnabled(kind == DRAFT_MODEL)
        self.p_min.setEnabled(kind == DRAFT_MODEL)
        self.n_draft.setEnabled(kind != DRAFT_NONE)

    def _show_problem(self) -> None:
        problem = self.problem()
        self.note.setText(f"{problem[:1].upper()}{problem[1:]}." if problem else "")

    def _on_browse(self) -> None:
        start = self.path.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Draft model", start,
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.path.setText(path)
            if self.kind.currentData() != DRAFT_MODEL:
                self.kind.setCurrentIndex(self.kind.findData(DRAFT_MODEL))  # emits itself
                return
            self._on_edited()

    def _on_edited(self, *_args: object) -> None:
        if self._updating:
            return
        self._enable()
        self._show_problem()
        self.sig_changed.emit(self.fields())
