"""StructuredOutputBox: the Sampling panel's Structured output section.

GUI thread only. A kind selector (Off / Any JSON / JSON schema / GBNF grammar), a JSON schema tab
(an editor with presets and a live check that names the line and column of a JSON error) and a
GBNF tab (an editor with presets). The texts are kept whichever kind is chosen.

API
- `fields() -> dict` — the `SamplerSettings` fields (structured_output, json_schema, grammar),
  always valid: while the schema in the editor is not valid JSON, the last valid schema is sent
  (the message says so) and the editor keeps what was typed.
- `set_fields(kind, json_schema, grammar)` — shows stored values.
- `sig_changed()` — after any edit.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.structured_output import (
    GBNF,
    GRAMMAR_PRESETS,
    JSON_SCHEMA,
    KIND_LABELS,
    KINDS,
    NONE,
    SCHEMA_PRESETS,
    schema_problem,
)
from desktop.ui.panels.controls import hint_label

_TIP = ("Constrains the reply with llama.cpp's grammar sampler: every token that cannot continue "
        "the format is removed before the other stages run. The chart shows it as the grammar "
        "stage: what it forbade and how much probability that held.")
_GBNF_NOTE = ("GBNF, as llama.cpp's grammars/README describes it; the reply starts at the rule "
              "named root. llama.cpp checks it when a reply starts, and an error names its line "
              "and column.")


class StructuredOutputBox(QGroupBox):
    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Structured output", parent)
        self.setToolTip(_TIP)
        self._valid_schema = ""
        self._updating = False
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 6)

        row = QHBoxLayout()
        label = QLabel("Reply as")
        self.kind_combo = QComboBox()
        for kind in KINDS:
            self.kind_combo.addItem(KIND_LABELS[kind], kind)
        self.kind_combo.setAccessibleName("Structured output kind")
        self.kind_combo.setToolTip(_TIP)
        label.setBuddy(self.kind_combo)
        row.addWidget(label)
        row.addWidget(self.kind_combo, 1)
        column.addLayout(row)

        self.tabs = QTabWidget()
        self.schema_edit, self.schema_presets, page = self._editor_tab(
            "JSON schema", SCHEMA_PRESETS, '{"type": "object", "properties": {...}}')
        self.schema_message = hint_label(warning=True)
        self.schema_message.setAccessibleName("JSON schema check")
        page.addWidget(self.schema_message)
        self.grammar_edit, self.grammar_presets, page = self._editor_tab(
            "GBNF", GRAMMAR_PRESETS, 'root ::= ("yes" | "no")')
        page.addWidget(hint_label(_GBNF_NOTE))
        self.grammar_message = hint_label(warning=True)
        self.grammar_message.setAccessibleName("GBNF grammar check")
        page.addWidget(self.grammar_message)
        column.addWidget(self.tabs)

        self.kind_combo.currentIndexChanged.connect(self._on_kind)
        self.schema_edit.textChanged.connect(self._on_edited)
        self.grammar_edit.textChanged.connect(self._on_edited)
        self.schema_presets.activated.connect(
            lambda i: self._use_preset(self.schema_presets, self.schema_edit, SCHEMA_PRESETS, i))
        self.grammar_presets.activated.connect(
            lambda i: self._use_preset(self.grammar_presets, self.grammar_edit, GRAMMAR_PRESETS,
                                       i))
        self._refresh()

    def _editor_tab(self, title: str, presets: dict[str, str],
                    placeholder: str) -> tuple[QPlainTextEdit, QComboBox, QVBoxLayout]:
        page = QWidget()
        column = QVBoxLayout(page)
        column.setContentsMargins(4, 4, 4, 4)
        combo = QComboBox()
        combo.addItem("Presets…", None)
        for name in presets:
            combo.addItem(name, name)
        combo.setAccessibleName(f"{title} presets")
        edit = QPlainTextEdit()
        edit.setPlaceholderText(placeholder)
        edit.setAccessibleName(f"{title} editor")
        edit.setFixedHeight(self.fontMetrics().lineSpacing() * 8 + 12)
        column.addWidget(combo)
        column.addWidget(edit)
        self.tabs.addTab(page, title)
        return edit, combo, column

    # --- API ---

    def kind(self) -> str:
        kind = self.kind_combo.currentData()
        return kind if isinstance(kind, str) else NONE

    def fields(self) -> dict[str, Any]:
        kind = self.kind()
        grammar = self.grammar_edit.toPlainText()
        if kind == JSON_SCHEMA and not self._valid_schema.strip():
            kind = NONE  # nothing valid yet: no constraint until the schema parses
        if kind == GBNF and not grammar.strip():
            kind = NONE
        return {"structured_output": kind, "json_schema": self._valid_schema, "grammar": grammar}

    def set_fields(self, kind: str, json_schema: str, grammar: str) -> None:
        self._updating = True
        try:
            index = self.kind_combo.findData(kind if kind in KINDS else NONE)
            self.kind_combo.setCurrentIndex(max(index, 0))
            if self.schema_edit.toPlainText() != json_schema:
                self.schema_edit.setPlainText(json_schema)
            if self.grammar_edit.toPlainText() != grammar:
                self.grammar_edit.setPlainText(grammar)
        finally:
            self._updating = False
        self._refresh()

    # --- reacting ---

    def _use_preset(self, combo: QComboBox, edit: QPlainTextEdit, presets: dict[str, str],
                    index: int) -> None:
        name = combo.itemData(index)
        combo.setCurrentIndex(0)
        if not isinstance(name, str):
            return
        wanted = JSON_SCHEMA if edit is self.schema_edit else GBNF
        self._updating = True  # one change, announced once
        try:
            edit.setPlainText(presets[name])
            self.kind_combo.setCurrentIndex(self.kind_combo.findData(wanted))
        finally:
            self._updating = False
        self.tabs.setCurrentIndex(0 if wanted == JSON_SCHEMA else 1)
        self._on_edited()

    def _on_kind(self) -> None:
        kind = self.kind()
        if kind in (JSON_SCHEMA, GBNF):
            self.tabs.setCurrentIndex(0 if kind == JSON_SCHEMA else 1)
        self._on_edited()

    def _on_edited(self) -> None:
        if self._updating:
            return
        self._refresh()
        self.sig_changed.emit()

    def _refresh(self) -> None:
        kind = self.kind()
        self.tabs.setEnabled(kind != NONE)
        text = self.schema_edit.toPlainText()
        problem = schema_problem(text)
        if not problem or not text.strip():
            self._valid_schema = text
        if problem and kind == JSON_SCHEMA and text.strip():
            tail = ("; replies use the last valid schema until this is fixed"
                    if self._valid_schema.strip()
                    else "; replies are not constrained until it is fixed")
            self._show(self.schema_message, problem[0].upper() + problem[1:] + tail)
        else:
            self._show(self.schema_message, "")
        empty = kind == GBNF and not self.grammar_edit.toPlainText().strip()
        self._show(self.grammar_message,
                   "The grammar is empty: replies are not constrained until it has a root rule."
                   if empty else "")

    @staticmethod
    def _show(label: QLabel, text: str) -> None:
        label.setText(text)
        label.setVisible(bool(text))
