"""ModelDefaultsBar: which defaults the loaded model's settings came from, and the buttons to
change them. GUI thread only.

A small strip above the Sampling panel: "Model defaults: <where the settings came from>", the
difference between the panel and those defaults (and the author's recommended values) in words,
and three buttons. It only shows and asks; `ui.window.model_defaults` decides and applies.

API
- `ModelDefaultsBar()`; hidden until `show_state` is called.
- `show_state(source, details, *, author=False, author_differs=False, saved=False,
  can_save=True)` — the source line, the details (one fact per line), which buttons apply.
- `show_problem(text)` — a warning under the details ("" hides it).
- `clear()` — hide (no model loaded).
- `place_above(panel) -> bool` — put the bar above `panel` inside `panel`'s dock.
- `sig_apply_author_requested()`, `sig_save_requested()`, `sig_reset_requested()`.
"""

from __future__ import annotations

from PySide6.QtCore import Signal, SignalInstance
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.panels.controls import hint_label

_TIPS = {
    "apply": "Set the Sampling panel to the values the model's author recommends (from its "
             "generation_config.json or its GGUF metadata); the other knobs keep their values.",
    "save": "Remember the Sampling and Load panels' settings for this model: they are applied "
            "whenever it is loaded again.",
    "reset": "Forget the settings saved for this model and go back to its recommended values.",
}


class ModelDefaultsBar(QFrame):
    sig_apply_author_requested = Signal()
    sig_save_requested = Signal()
    sig_reset_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ModelDefaultsBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Model defaults")
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 4, 6, 4)
        column.setSpacing(2)
        self.source_label = QLabel()
        self.source_label.setObjectName("model_defaults_source")
        self.source_label.setWordWrap(True)
        self.source_label.setAccessibleName("Model defaults source")
        self.details_label = hint_label()
        self.details_label.setObjectName("model_defaults_details")
        self.problem_label = hint_label(warning=True)
        self.problem_label.setAccessibleName("Model defaults message")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        self.apply_author_button = self._button("Apply author's values", _TIPS["apply"],
                                                self.sig_apply_author_requested)
        self.save_button = self._button("Save as this model's defaults", _TIPS["save"],
                                        self.sig_save_requested)
        self.reset_button = self._button("Reset", _TIPS["reset"], self.sig_reset_requested)
        for button in (self.apply_author_button, self.save_button, self.reset_button):
            row.addWidget(button)
        row.addStretch(1)
        column.addWidget(self.source_label)
        column.addWidget(self.details_label)
        column.addWidget(self.problem_label)
        column.addLayout(row)
        self.setVisible(False)

    def _button(self, text: str, tip: str, signal: SignalInstance) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda: signal.emit())
        return button

    @property
    def source(self) -> str:
        return self.source_label.text().removeprefix("Model defaults: ")

    @property
    def details(self) -> str:
        return self.details_label.text()

    def show_state(self, source: str, details: str, *, author: bool = False,
                   author_differs: bool = False, saved: bool = False,
                   can_save: bool = True) -> None:
        self.source_label.setText(f"Model defaults: {source}")
        self.details_label.setText(details)
        self.details_label.setVisible(bool(details))
        self.apply_author_button.setVisible(author)
        self.apply_author_button.setEnabled(author_differs)
        self.save_button.setEnabled(can_save)
        self.reset_button.setEnabled(saved)
        self.setVisible(True)

    def show_problem(self, text: str) -> None:
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))

    def clear(self) -> None:
        self.show_problem("")
        self.setVisible(False)

    def place_above(self, panel: QWidget) -> bool:
        """Put the bar above `panel` in the dock that holds it (a column of the two becomes the
        dock's widget); False, and nothing moved, when `panel` is not a dock's widget."""
        dock = panel.parentWidget()
        if not isinstance(dock, QDockWidget) or dock.widget() is not panel:
            return False
        box = QWidget()
        box.setObjectName(f"{panel.objectName()}WithModelDefaults")
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self)
        column.addWidget(panel, 1)
        dock.setWidget(box)
        return True
