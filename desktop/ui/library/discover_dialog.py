"""LibraryDiscoverDialog: the models found in the Hugging Face cache and LM Studio's folders, each
with a checkbox (name, where found, size); "Add selected" asks the library to import the checked
ones in place. GUI thread only; the search itself ran earlier as a job (`discover_models`), and
the import runs as one too, in the panel.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.library.catalog import LocalModel
from desktop.ui.library.entries import format_bytes, summary
from desktop.ui.palette import indicator_palette

PATH_ROLE = Qt.ItemDataRole.UserRole
SOURCE_ROLE = Qt.ItemDataRole.UserRole + 1
_WHERE = {"hf cache": "Hugging Face cache", "lm studio": "LM Studio"}


class LibraryDiscoverDialog(QDialog):
    # ((path, source), ...): the checked models, to import in place
    sig_add_requested = Signal(tuple)

    def __init__(self, models: tuple[LocalModel, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models on this computer")
        self.setObjectName("libraryDiscoverDialog")
        intro = QLabel(f"Found {len(models)} model{'s' if len(models) != 1 else ''} that the "
                       "library does not list yet. Adding one links it where it is; nothing is "
                       "copied.")
        intro.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setAccessibleName("Models found")
        self.list.setSpacing(2)
        # The items' check boxes outlined as the theme outlines check boxes (ui.palette).
        self.list.setPalette(indicator_palette(self.list.palette()))
        for model in models:
            where = _WHERE.get(model.source, model.source)
            item = QListWidgetItem(f"{model.name}\n{where} · {format_bytes(model.size_bytes)}"
                                   f" · {summary(model)}")
            item.setToolTip(model.path)
            item.setData(PATH_ROLE, model.path)
            item.setData(SOURCE_ROLE, model.source)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.addItem(item)
        self.list.itemChanged.connect(lambda *_: self._update_button())
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.add_button = self.buttons.addButton("Add selected",
                                                 QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._add)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.buttons)
        self.resize(640, 360)
        self._update_button()

    def _items(self) -> list[QListWidgetItem]:
        items = (self.list.item(i) for i in range(self.list.count()))
        return [item for item in items if item is not None]

    def checked(self) -> tuple[tuple[str, str], ...]:
        return tuple((str(it.data(PATH_ROLE)), str(it.data(SOURCE_ROLE))) for it in self._items()
                     if it.checkState() == Qt.CheckState.Checked)

    def set_checked(self, path: str, checked: bool) -> None:
        for item in self._items():
            if item.data(PATH_ROLE) == path:
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def _update_button(self) -> None:
        self.add_button.setEnabled(bool(self.checked()))

    def _add(self) -> None:
        chosen = self.checked()
        if chosen:
            self.sig_add_requested.emit(chosen)
        self.accept()


def open_discover_dialog(parent: QWidget, models: tuple[LocalModel, ...],
                         on_add: Callable[[tuple[tuple[str, str], ...]], None]
                         ) -> LibraryDiscoverDialog:
    """Show the dialog window-modally without a nested event loop (`open`, not `exec`); it deletes
    itself when closed. `on_add` gets the checked (path, source) pairs."""
    dialog = LibraryDiscoverDialog(models, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.sig_add_requested.connect(on_add)
    dialog.open()
    return dialog
