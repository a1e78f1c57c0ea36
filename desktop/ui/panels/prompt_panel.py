"""PromptPanel: the system prompt and the custom instructions, each with presets.

GUI thread only. Two ChatGPT-style fields: the system prompt (the deployer's role for the model)
and custom instructions (the user's standing wishes), which go either into the system message or
in front of the first user message (`core.templates.prompt.build_messages`'
`instructions_placement`).

API
- `PromptPanel(store: PromptPresetStore | None = None)` — where user presets are kept (the main
  window passes `AppSettings` once it has the two methods of `PromptPresetStore`; without a
  store they last for the session only).
- `system_prompt()`, `set_system_prompt(str)`, `instructions()`, `set_instructions(str)`,
  `placement() -> "system" | "first_user"`, `set_placement(str)`.
- `presets(kind) -> dict[str, str]` (kind: "system" or "instructions"), `apply_preset(kind,
  name)`, `save_preset(kind, name) -> bool` (saves the field's current text).
- Signals (also on programmatic changes, only when the value changes):
  `sig_system_prompt_changed(str)`, `sig_instructions_changed(str)`,
  `sig_instructions_placement_changed(str)`.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.panels.controls import CUSTOM, fill_preset_combo, hint_label, show_preset

SYSTEM, INSTRUCTIONS = "system", "instructions"
PLACEMENTS = (("system", "In the system message"),
              ("first_user", "Before the first user message"))

BUILTIN_PRESETS: dict[str, dict[str, str]] = {
    SYSTEM: {
        "None": "",
        "Helpful assistant": "You are a helpful assistant. Answer accurately, and say so when "
                             "you are not sure.",
        "Concise": "You are a concise assistant. Answer in as few words as the question allows.",
        "Teacher": "You are a patient teacher. Explain step by step with a simple example, then "
                   "check that the explanation was understood.",
        "Programmer": "You are an expert programmer. Answer with working code and a short "
                      "explanation, and point out edge cases.",
        "Translator": "You translate the user's text into English, keeping its meaning and "
                      "tone. Reply with the translation only.",
    },
    INSTRUCTIONS: {
        "None": "",
        "Short answers": "Keep answers short: a few sentences unless I ask for more.",
        "Plain language": "Use plain language and avoid jargon; define any technical term you "
                          "must use.",
        "Step by step": "Think the problem through step by step before giving the final answer.",
        "Metric and ISO dates": "Use metric units and ISO dates (YYYY-MM-DD).",
    },
}

TIPS = {
    SYSTEM: "The system prompt: who the model should be and how it should behave. It is sent "
            "at the start of every turn, through the prompt template.",
    INSTRUCTIONS: "Your standing wishes, sent with every turn: in the system message or in "
                  "front of your first message (see “Put them”).",
    "placement": "Where the custom instructions go. Some models follow a system message "
                 "poorly; putting the instructions in your first message can help.",
}


class PromptPresetStore(Protocol):
    """Persistent user presets, by kind ("system" or "instructions")."""

    def user_prompt_presets(self, kind: str) -> dict[str, str]: ...

    def save_user_prompt_preset(self, kind: str, name: str, text: str) -> None: ...


class _PromptField(QGroupBox):
    """One editor with its preset picker and Save button."""

    def __init__(self, title: str, kind: str, panel: PromptPanel) -> None:
        super().__init__(title)
        self.kind, self._panel = kind, panel
        self._presets: dict[str, str] = {}
        self.combo = QComboBox()
        self.combo.setToolTip("Pick a preset to replace the text (Ctrl+Z brings it back)")
        self.combo.setAccessibleName(f"{title} preset")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save this text as a named preset")
        self.editor = QPlainTextEdit()
        self.editor.setToolTip(TIPS[kind])
        self.editor.setAccessibleName(title)
        self.editor.setPlaceholderText("Empty: nothing is sent for this part.")
        self.editor.setMinimumHeight(self.fontMetrics().lineSpacing() * 3 + 12)
        top = QHBoxLayout()
        label = QLabel("Preset")
        label.setBuddy(self.combo)
        top.addWidget(label)
        top.addWidget(self.combo, 1)
        top.addWidget(self.save_button)
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(6, 6, 6, 6)
        self.column.addLayout(top)
        self.column.addWidget(self.editor, 1)
        self.combo.activated.connect(self._on_activated)
        self.save_button.clicked.connect(self._ask_name)

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str, *, undoable: bool = False) -> None:
        if text == self.text():
            return
        if undoable:
            # Replace through a cursor, not setPlainText, so Ctrl+Z restores the old text.
            cursor = self.editor.textCursor()
            cursor.select(QTextCursor.SelectionType.Document)
            cursor.insertText(text)
        else:
            self.editor.setPlainText(text)

    def refresh(self) -> None:
        """Rebuild the preset list (after a save), then select the entry matching the text."""
        self._presets = self._panel.presets(self.kind)
        builtin = BUILTIN_PRESETS[self.kind]
        # presets() lists the built-in ones first, so this keeps the order.
        fill_preset_combo(self.combo, [n for n in self._presets if n in builtin],
                          [n for n in self._presets if n not in builtin])
        self.select_matching()

    def select_matching(self) -> None:
        """Show the preset whose text is the editor's, or “Custom”."""
        text = self.text()
        show_preset(self.combo, next((n for n, t in self._presets.items() if t == text), None))

    def _on_activated(self, index: int) -> None:
        name = self.combo.itemData(index)
        if isinstance(name, str) and name != CUSTOM:
            self._panel.apply_preset(self.kind, name)

    def _ask_name(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
        if ok:
            self._panel.save_preset(self.kind, name)


class PromptPanel(QWidget):
    sig_system_prompt_changed = Signal(str)
    sig_instructions_changed = Signal(str)
    sig_instructions_placement_changed = Signal(str)

    def __init__(self, store: PromptPresetStore | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PromptPanel")
        self._store = store
        self._session: dict[str, dict[str, str]] = {SYSTEM: {}, INSTRUCTIONS: {}}
        self.system_field = _PromptField("System prompt", SYSTEM, self)
        self.instructions_field = _PromptField("Custom instructions", INSTRUCTIONS, self)
        self.placement_combo = QComboBox()
        for key, text in PLACEMENTS:
            self.placement_combo.addItem(text, key)
        self.placement_combo.setToolTip(TIPS["placement"])
        self.placement_combo.setAccessibleName("Where custom instructions go")
        row = QHBoxLayout()
        put = QLabel("Put them")
        put.setToolTip(TIPS["placement"])
        put.setBuddy(self.placement_combo)
        row.addWidget(put)
        row.addWidget(self.placement_combo, 1)
        self.instructions_field.column.addLayout(row)
        self.message = hint_label(warning=True)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.system_field)
        splitter.addWidget(self.instructions_field)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)

        self._last = {SYSTEM: "", INSTRUCTIONS: ""}
        self._placement = PLACEMENTS[0][0]
        for field in (self.system_field, self.instructions_field):
            field.refresh()
            field.editor.textChanged.connect(
                lambda f=field: self._on_text_changed(f))  # GUI-thread signal: a lambda is fine
        self.placement_combo.currentIndexChanged.connect(self._on_placement_changed)

    def _field(self, kind: str) -> _PromptField:
        if kind not in (SYSTEM, INSTRUCTIONS):
            raise ValueError(f"unknown prompt kind {kind!r}")
        return self.system_field if kind == SYSTEM else self.instructions_field

    # --- public API ---

    def system_prompt(self) -> str:
        return self.system_field.text()

    def set_system_prompt(self, text: str) -> None:
        self.system_field.set_text(text)

    def instructions(self) -> str:
        return self.instructions_field.text()

    def set_instructions(self, text: str) -> None:
        self.instructions_field.set_text(text)

    def placement(self) -> str:
        return str(self.placement_combo.currentData())

    def set_placement(self, placement: str) -> None:
        index = self.placement_combo.findData(placement)
        self.placement_combo.setCurrentIndex(max(index, 0))

    def presets(self, kind: str) -> dict[str, str]:
        saved = (self._store.user_prompt_presets(kind) if self._store is not None
                 else self._session[kind])
        builtin = BUILTIN_PRESETS[kind]
        return {**builtin, **{n: t for n, t in saved.items() if n not in builtin}}

    def apply_preset(self, kind: str, name: str) -> None:
        presets = self.presets(kind)
        if name not in presets:
            self._set_message(f"There is no preset called “{name}”.")
            return
        self._set_message("")
        self._field(kind).set_text(presets[name], undoable=True)

    def save_preset(self, kind: str, name: str) -> bool:
        name = name.strip()
        if not name:
            self._set_message("A preset needs a name.")
            return False
        if name in BUILTIN_PRESETS[kind] or name == CUSTOM:
            self._set_message(f"“{name}” is a built-in preset; choose another name.")
            return False
        text = self._field(kind).text()
        if self._store is not None:
            self._store.save_user_prompt_preset(kind, name, text)
        else:
            self._session[kind][name] = text
        self._set_message("")
        self._field(kind).refresh()
        return True

    # --- reacting ---

    def _on_text_changed(self, field: _PromptField) -> None:
        text = field.text()
        field.select_matching()
        if text == self._last[field.kind]:
            return
        self._last[field.kind] = text
        if field.kind == SYSTEM:
            self.sig_system_prompt_changed.emit(text)
        else:
            self.sig_instructions_changed.emit(text)

    def _on_placement_changed(self, _index: int) -> None:
        placement = self.placement()
        if placement != self._placement:
            self._placement = placement
            self.sig_instructions_placement_changed.emit(placement)

    def _set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
