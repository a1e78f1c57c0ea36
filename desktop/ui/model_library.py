"""ModelLibraryPanel: the local models (the ready Gemma model and *.gguf files in the models
folder), with architecture, size and quant; Load, Eject and Import GGUF…. GUI thread only.

Everything that touches the disk runs as a `JobService` job: assembling the ready model on first
run (it copies and hashes 253 MB), scanning the folder, `check_gguf` on each file, importing. A file
that fails the check stays listed, marked, with the reason in plain words.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import paths
from desktop.core.gguf_check import GgufProblem, GgufReport, check_gguf
from desktop.ui.status_bar import format_bytes
from desktop.ui.workers import JobService

_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$")
PATH_ROLE = Qt.ItemDataRole.UserRole
CHECKING_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class ModelEntry:
    """One model file and what the check found (report, or the problem in plain words)."""

    path: str
    report: GgufReport | None
    problem: str = ""


def scan_models(folder: Path) -> tuple[str, ...]:
    """Model files under `folder`: *.gguf, first shards only, no partial downloads. Job thread."""
    found = []
    for path in sorted(folder.rglob("*.gguf")):
        shard = _LATER_SHARD.search(path.name)
        if shard and shard.group(1) != "00001":
            continue
        if path.is_file():
            found.append(str(path))
    return tuple(found)


def check_entry(path: str) -> ModelEntry:
    """Job thread: the report, or the problem as a plain sentence."""
    try:
        return ModelEntry(path, check_gguf(path))
    except GgufProblem as exc:
        return ModelEntry(path, None, str(exc))


def import_model(source: str, folder: Path) -> ModelEntry:
    """Job thread: check, then bring every shard into `folder` (hard link, symlink, or copy)."""
    entry = check_entry(source)
    if entry.report is None:
        return entry
    target_dir = folder / "imported"
    target_dir.mkdir(parents=True, exist_ok=True)
    first = ""
    for shard in entry.report.shards or (source,):
        target = target_dir / Path(shard).name
        if not target.exists():
            _link_or_copy(Path(shard), target)
        first = first or str(target)
    return ModelEntry(first, entry.report)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # same file system: no extra space, survives moving the source
        return
    except OSError:
        pass
    try:
        target.symlink_to(source.resolve())
        return
    except OSError:
        pass
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    partial.replace(target)  # the final name never holds a half-copied file


def ensure_ready_model(folder: Path) -> str:
    """Job thread: the shipped Gemma model, assembled into `folder` the first time."""
    from desktop.core.ready_model import ready_model_path

    return str(ready_model_path(folder))


class ModelLibraryPanel(QWidget):
    sig_load_requested = Signal(str)  # model path
    sig_eject_requested = Signal()
    sig_ready_model_found = Signal(str)  # the ready model's path (assembled or already there)
    sig_scan_finished = Signal()

    def __init__(self, jobs: JobService, models_dir: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.models_dir = models_dir or paths.models_dir()
        self.entries: dict[str, ModelEntry] = {}
        self.ready_path = ""
        self.loaded_path = ""
        self.loading_path = ""
        self._pending_checks = 0

        self.list = QListWidget(self)
        self.list.setAccessibleName("Local models")
        self.list.setSpacing(2)
        self.list.setWordWrap(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.itemDoubleClicked.connect(lambda *_: self.request_load())
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())

        self.load_button = QPushButton("Load")
        self.load_button.setAccessibleName("Load selected model")
        self.load_button.clicked.connect(self.request_load)
        self.eject_button = QPushButton("Eject")
        self.eject_button.setAccessibleName("Eject model")
        self.eject_button.clicked.connect(self.sig_eject_requested)
        self.import_button = QPushButton("Import GGUF…")
        self.import_button.setAccessibleName("Import a GGUF file")
        self.import_button.clicked.connect(self.choose_import)
        self.message = QLabel()
        self.message.setObjectName("libraryMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.eject_button)
        buttons.addStretch(1)
        buttons.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self._update_buttons()

    # --- discovery (jobs) ---

    def start(self, with_ready_model: bool = True) -> None:
        """Find models: the ready model first (assembled if needed), then the folder."""
        self.show_message("Looking for models…", error=False)
        if with_ready_model:
            self.jobs.submit(ensure_ready_model, self.models_dir, on_done=self._on_ready_model,
                             on_error=self._on_ready_missing)
        else:
            self.refresh()

    def _on_ready_model(self, path: str) -> None:
        self.ready_path = path
        self.sig_ready_model_found.emit(path)
        self.refresh()

    def _on_ready_missing(self, exc: Exception) -> None:
        self.show_message(f"The ready model is not available: {exc}")
        self.refresh()

    def refresh(self) -> None:
        self.jobs.submit(scan_models, self.models_dir, on_done=self._on_scanned,
                         on_error=lambda exc: self.show_message(f"Could not list models: {exc}"))

    def _on_scanned(self, found: tuple[str, ...]) -> None:
        for path in list(self.entries):
            if path not in found:
                self._remove(path)
        new = [p for p in found if p not in self.entries]
        for path in new:
            self._put(ModelEntry(path, None, ""), checking=True)
            self._pending_checks += 1
            self.jobs.submit(check_entry, path, on_done=self._on_checked)
        if not new:
            self._scan_done()

    def _on_checked(self, entry: ModelEntry) -> None:
        self._put(entry)
        self._pending_checks -= 1
        if self._pending_checks <= 0:
            self._scan_done()

    def _scan_done(self) -> None:
        self._pending_checks = 0
        if self.message.property("error") is not True:
            self.message.hide()
        if not self.entries:
            self.show_message(
                f"No models yet. Import a GGUF file, or put one in {self.models_dir}.",
                error=False)
        self.sig_scan_finished.emit()

    # --- import ---

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        self.show_message(f"Checking {Path(path).name}…", error=False)
        self.jobs.submit(import_model, path, self.models_dir, on_done=self._on_imported,
                         on_error=lambda exc: self.show_message(f"Import failed: {exc}"))

    def _on_imported(self, entry: ModelEntry) -> None:
        if entry.report is None:
            self.show_message(f"{Path(entry.path).name} can't be used: {entry.problem}")
            return
        self.message.hide()
        self._put(entry)
        self.select(entry.path)

    # --- rows: two lines each, the name, then architecture · size · quant · state ---

    def _items(self) -> list[QListWidgetItem]:
        items = (self.list.item(i) for i in range(self.list.count()))
        return [item for item in items if item is not None]

    def _item(self, path: str) -> QListWidgetItem | None:
        return next((it for it in self._items() if it.data(PATH_ROLE) == path), None)

    def _put(self, entry: ModelEntry, checking: bool = False) -> None:
        self.entries[entry.path] = entry
        item = self._item(entry.path)
        if item is None:
            item = QListWidgetItem()
            item.setData(PATH_ROLE, entry.path)
            item.setData(CHECKING_ROLE, checking)
            self.list.addItem(item)
            if self.list.currentItem() is None:
                self.list.setCurrentItem(item)
        item.setData(CHECKING_ROLE, checking)
        problem = entry.report is None and not checking
        tip = entry.path if not problem else f"{entry.path}\n\n{entry.problem}"
        item.setToolTip(tip)
        self._decorate(item)
        self._update_buttons()

    def details(self, path: str) -> str:
        """The second line of a row: architecture · size · quant (or why it is unusable)."""
        entry = self.entries.get(path)
        item = self._item(path)
        if entry is None or (item is not None and item.data(CHECKING_ROLE)):
            return "checking…"
        if entry.report is None:
            return "⚠ unusable: " + entry.problem
        r = entry.report
        return " · ".join(x for x in (r.architecture, format_bytes(r.file_size), r.quant) if x)

    def _remove(self, path: str) -> None:
        self.entries.pop(path, None)
        item = self._item(path)
        if item is not None:
            self.list.takeItem(self.list.row(item))

    def _decorate(self, item: QListWidgetItem) -> None:
        path = str(item.data(PATH_ROLE))
        state = ("  ● loaded" if path == self.loaded_path
                 else "  ◌ loading…" if path == self.loading_path else "")
        details = self.details(path)
        if len(details) > 60:
            details = details[:59] + "…"
        item.setText(f"{self.display_name(path)}\n{details}{state}")
        font = QFont(self.list.font())
        font.setBold(path == self.loaded_path)
        item.setFont(font)

    def _redecorate(self) -> None:
        for item in self._items():
            self._decorate(item)
        self._update_buttons()

    def select(self, path: str) -> None:
        item = self._item(path)
        if item is not None:
            self.list.setCurrentItem(item)

    def selected_path(self) -> str:
        item = self.list.currentItem()
        return str(item.data(PATH_ROLE)) if item is not None else ""

    def _update_buttons(self) -> None:
        path = self.selected_path()
        entry = self.entries.get(path)
        self.load_button.setEnabled(entry is not None and not self.loading_path
                                    and path != self.loaded_path)
        self.eject_button.setEnabled(bool(self.loaded_path) and not self.loading_path)

    # --- load state (from the main window) ---

    def request_load(self) -> None:
        path = self.selected_path()
        entry = self.entries.get(path)
        if entry is None:
            return
        if entry.report is None and entry.problem:
            self.show_message(f"{Path(path).name} can't be loaded: {entry.problem}")
            return
        self.sig_load_requested.emit(path)

    def set_loading(self, path: str) -> None:
        self.loading_path = path
        self.message.hide()
        self._redecorate()

    def set_loaded(self, path: str) -> None:
        self.loading_path = ""
        self.loaded_path = path
        self._redecorate()

    def set_load_failed(self, path: str, reason: str) -> None:
        self.loading_path = ""
        self.loaded_path = ""
        self.show_message(f"{Path(path).name} could not be loaded: {reason}")
        self._redecorate()

    def show_message(self, text: str, error: bool = True) -> None:
        self.message.setProperty("error", error)
        self.message.setText(text)
        self.message.show()

    def display_name(self, path: str) -> str:
        if path == self.ready_path:
            from desktop.core.ready_model import DISPLAY_NAME

            return DISPLAY_NAME
        entry = self.entries.get(path)
        if entry is not None and entry.report is not None and entry.report.name:
            return entry.report.name
        return Path(path).name
