"""Two parts of the server panel's form: `ModelChoice` (which model the server answers with) and
`AccessFields` (the web pages and host names let in, the time limit per request). GUI thread only.

`ModelChoice` offers "The model loaded in the window (shared)" — the window's engine answers, so
no second copy of the model is loaded, and requests take turns with the chat — when the server
can share the window's engine, then every model of the library, which the server loads in an
engine of its own. `AccessFields` checks what is typed with the server's own rules
(`desktop.server.access.parse_origin`), so a mistake shows before Start rather than as a failed
start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QWidget

from desktop.core.model_info import ModelInfo
from desktop.server.access import parse_origin
from desktop.server.config import DEFAULT_MAX_REQUEST_S, ServerConfigError
from desktop.server.openlid_server import model_name

__all__ = ["SHARED_CHOICE", "AccessFields", "ModelChoice", "split_list"]

SHARED_CHOICE = "The model loaded in the window (shared)"
_SHARED = ""  # the box's item data for the shared choice (the others hold a path)
_LIST_SPLIT = re.compile(r"[\s,]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")


def split_list(text: str) -> list[str]:
    """Entries typed one after another, separated by commas or spaces."""
    return [item for item in _LIST_SPLIT.split(text.strip()) if item]


class ModelChoice(QWidget):
    """The model box and, under it, a line saying what the choice means."""

    sig_changed = Signal()

    def __init__(self, can_share: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.can_share = can_share
        self.window_model: ModelInfo | None = None
        self.box = QComboBox()
        self.box.setAccessibleName("Model to serve")
        self.box.setToolTip(
            "The window's model is served through the window's engine: no second copy in "
            "memory, and requests take turns with the chat. Another model is loaded by the "
            "server in an engine of its own.")
        if can_share:
            self.box.addItem(SHARED_CHOICE, _SHARED)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.box.currentIndexChanged.connect(lambda _i: self.sig_changed.emit())

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("Model", self.box)
        form.addRow("", self.label)

    # --- the choice ---

    def chosen(self) -> str | None:
        """"" for the shared choice, a model's path, or None when nothing is chosen."""
        data = self.box.currentData()
        return data if isinstance(data, str) else None

    @property
    def shared(self) -> bool:
        return self.chosen() == _SHARED

    def model_path(self) -> Path | None:
        """The file the server would load for itself; None for the shared choice or none."""
        chosen = self.chosen()
        return Path(chosen) if chosen else None

    def set_library_models(self, models: Iterable[tuple[str, str]]) -> None:
        """The models the server may load for itself, as (path, name); the choice is kept
        while its model is still listed (else the first entry is chosen)."""
        chosen = self.chosen()
        box = self.box
        box.blockSignals(True)  # one change at the end, not one per row
        try:
            while box.count() > (1 if self.can_share else 0):
                box.removeItem(box.count() - 1)
            for path, name in models:
                box.addItem(name or Path(path).name, str(path))
                box.setItemData(box.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
            index = box.findData(chosen) if chosen is not None else -1
            box.setCurrentIndex(index if index >= 0 else min(0, box.count() - 1))
        finally:
            box.blockSignals(False)
        self.sig_changed.emit()

    def set_model_path(self, path: str | Path | None) -> None:
        """Choose this model for the server's own engine (listed if it is not yet); None: the
        shared choice, where there is one."""
        box = self.box
        if path is None or path == "":
            box.setCurrentIndex(box.findData(_SHARED) if self.can_share else -1)
            return
        index = box.findData(str(path))
        if index < 0:
            box.addItem(Path(path).name, str(path))
            index = box.count() - 1
        box.setCurrentIndex(index)

    def problem(self) -> str:
        """Why Start cannot serve this choice ("" when it can)."""
        chosen = self.chosen()
        if chosen is None:
            return "Choose a model to serve first: load one, or pick it in the model library."
        if chosen == _SHARED and self.window_model is None:
            return ("No model is loaded in the window: load one there to share it, or choose "
                    "another model for the server.")
        return ""

    def snippet_name(self) -> str:
        """The model name the snippets show before the server runs."""
        chosen, window = self.chosen(), self.window_model
        if chosen:
            return Path(chosen).stem
        return model_name(window) if chosen == _SHARED and window is not None else "MODEL"

    def show_meaning(self, serving: Path | bool | None) -> None:
        """Say what the choice means; `serving`: what a running server serves (its model file,
        None for the window's model), or False while none runs."""
        chosen, window = self.chosen(), self.window_model
        window_name = model_name(window) if window is not None else ""
        if serving is not False:
            text = (f"Serving {serving.name} in the server's own engine"
                    if isinstance(serving, Path) else
                    "Serving the window's model, whichever it is: "
                    + (window_name or "none loaded now"))
        elif chosen is None:
            text = "none chosen"
        elif chosen == _SHARED:
            text = (f"{window_name}, through the window's engine (no second copy)"
                    if window is not None else "no model is loaded in the window")
        else:
            text = f"{Path(chosen).name}, loaded by the server in an engine of its own"
        self.label.setText(text)
        self.label.setToolTip(str(self.model_path() or ""))


class AccessFields(QWidget):
    """Allowed web pages (origins), extra host names, and the time limit per request."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.origins_edit = QLineEdit()
        self.origins_edit.setAccessibleName("Allowed web pages")
        self.origins_edit.setPlaceholderText("none (e.g. http://localhost:3000; * for any page)")
        self.origins_edit.setToolTip(
            "Web pages (origins) that may use the server from a browser, separated by commas "
            "or spaces; they also get CORS headers. Any other page's requests get 403.")
        self.hosts_edit = QLineEdit()
        self.hosts_edit.setAccessibleName("Extra host names")
        self.hosts_edit.setPlaceholderText("none (e.g. my-laptop.lan)")
        self.hosts_edit.setToolTip(
            "Other names clients reach this computer by (besides localhost and the address it "
            "listens on), separated by commas or spaces. Requests for any other name get 403.")
        self.time_spin = QDoubleSpinBox()
        self.time_spin.setAccessibleName("Time limit per request")
        self.time_spin.setDecimals(0)
        self.time_spin.setRange(1, 24 * 3600)
        self.time_spin.setValue(DEFAULT_MAX_REQUEST_S)
        self.time_spin.setSuffix(" s per request")
        self.time_spin.setToolTip("A request generates for at most this long; then it is "
                                  "stopped and answered with what it has.")
        self.origins_edit.textChanged.connect(lambda _t: self.sig_changed.emit())
        self.hosts_edit.textChanged.connect(lambda _t: self.sig_changed.emit())

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("Web pages", self.origins_edit)
        form.addRow("Host names", self.hosts_edit)
        form.addRow("Time limit", self.time_spin)

    def widgets(self) -> tuple[QWidget, ...]:
        return self.origins_edit, self.hosts_edit, self.time_spin

    def origins(self) -> tuple[str, ...]:
        return tuple(split_list(self.origins_edit.text()))

    def hosts(self) -> tuple[str, ...]:
        return tuple(split_list(self.hosts_edit.text()))

    def max_request_seconds(self) -> float:
        return float(self.time_spin.value())

    def problem(self) -> str:
        """What is wrong with the typed web pages or host names ("" when nothing)."""
        for origin in self.origins():
            try:
                parse_origin(origin)
            except ServerConfigError as exc:
                return f"Web pages: {exc}."
        for name in self.hosts():
            if not _HOST_NAME.fullmatch(name):
                return (f"Host names: '{name}' is not a host name; write the name alone, with "
                        "no scheme, port or path (e.g. my-laptop.lan).")
        return ""
