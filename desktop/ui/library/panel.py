"""ModelLibraryPanel: the models Openlid knows — the ready Gemma model, the models folder and models
imported in place — each named by file, quant and repo (`core.library.names`, the name the
status bar and the chat use too) with architecture, parameters, quant, context and template;
Load (button, double-click, Enter, the row's menu, `load_path` for a finished download), Eject,
Remove…, Import…, and Find models on this computer…. GUI thread only.

The list comes from `desktop.core.library.catalog` (shared with `openlid models`). Everything
that touches the disk runs as a `JobService` job (entries.py): assembling the ready model on first
run (it copies and hashes 253 MB), scanning, importing, deleting, discovering. A file that fails
its check stays listed, marked, with the reason in plain words. Rows are keyed by path; entries of
another kind (e.g. "remote:…", added with `add_entry`) survive rescans.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMenu,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core import paths
from desktop.ui.job_service import JobService
from desktop.ui.library.controls import button, label, row_menu
from desktop.ui.library.discover_dialog import LibraryDiscoverDialog, open_discover_dialog
from desktop.ui.library.entries import (
    DELETE,
    FILE,
    REMOTE,
    Discovered,
    LibraryEntry,
    LibraryList,
    confirm_removal,
    discover_models,
    ensure_ready_model,
    entry_from_remote,
    import_entries,
    import_target,
    info_line,
    removal_refusal,
    remove_entry,
    scan_entries,
)
from desktop.ui.library.remote_model_dialog import RemoteModelDialog


class ModelLibraryPanel(QWidget):
    sig_load_requested = Signal(str)  # model path
    sig_eject_requested = Signal()
    sig_ready_model_found = Signal(str)  # the ready model's path (assembled or already there)
    sig_scan_finished = Signal()
    sig_entry_removed = Signal(str)  # a row the user removed (deleted or unlisted)
    sig_models_dir_changed = Signal(str)  # the folder downloads and scans now use

    def __init__(self, jobs: JobService, models_dir: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.models_dir = models_dir or paths.models_dir()
        self.discover_dialog: LibraryDiscoverDialog | None = None
        self._scan_job = 0
        self.setAcceptDrops(True)  # files dropped on the list land here and are imported

        self.list = LibraryList(self)
        self.entries = self.list.entries  # the same dict, for callers that look entries up
        self._pending_load = ""  # a path to load once a scan lists it (a finished download)
        self._import_error = False  # the message shown is an import's refusal
        self.list.itemActivated.connect(lambda *_: self.request_load())  # double-click, Enter
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._row_menu)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.info = label("libraryInfo")
        self.message = label("libraryMessage")
        self.message.hide()
        self.load_button = button("Load", "Load selected model", self.request_load)
        self.eject_button = button("Eject", "Eject model", self.sig_eject_requested.emit)
        self.remove_button = button("Remove…", "Remove selected model", self.request_remove)
        self.import_button = button(
            "Import…", "Import a GGUF file or a safetensors folder", self.choose_import,
            "Add a .gguf file, or a safetensors model (pick its config.json), where it is: "
            "nothing is copied. You can also drop files onto the list.")
        self.find_button = button(
            "Find…", "Find models on this computer", self.find_models,
            "Find models on this computer: the Hugging Face cache and LM Studio's models "
            "folder")
        self.remote_button = button(
            "Add remote…", "Add a remote model", self.add_remote,
            "A model served by an OpenAI-compatible endpoint: llama-server (also with RPC "
            "workers across machines), vLLM, Ollama, LM Studio, or another Openlid")

        self.folder_label = label("modelsFolder")
        self.folder_label.setWordWrap(False)  # a long path is cut, never widens the dock
        self.folder_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.folder_button = button(
            "Change…", "Change the models folder", self.choose_models_dir,
            "Where downloads go and which folder is scanned for models (shared with the "
            "openlid command line)")
        self._show_folder()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(self.folder_button)
        layout.addLayout(folder_row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.info)
        layout.addWidget(self.message)
        for buttons in ((self.load_button, self.eject_button, self.remove_button),
                        (self.import_button, self.find_button, self.remote_button)):
            row = QHBoxLayout()
            for widget in buttons:
                row.addWidget(widget)
            row.addStretch(1)
            layout.addLayout(row)
        self._update_buttons()

    # --- listing (jobs) ---

    def start(self, with_ready_model: bool = True) -> None:
        """Find models: the ready model first (assembled if needed), then the library."""
        self.show_message("Looking for models…", error=False)
        if with_ready_model:
            self.jobs.submit(ensure_ready_model, self.models_dir, on_done=self._on_ready_model,
                             on_error=self._on_ready_missing)
        else:
            self.refresh()

    def _on_ready_model(self, path: str) -> None:
        self.list.ready_path = path
        self.sig_ready_model_found.emit(path)
        self.refresh()

    def _on_ready_missing(self, exc: Exception) -> None:
        self.show_message(f"The ready model is not available: {exc}")
        self.refresh()

    def refresh(self) -> None:
        """Rescan; a scan still running is superseded (its answer could predate a change)."""
        self.jobs.forget(self._scan_job)
        self._scan_job = self.jobs.submit(scan_entries, self.models_dir, on_done=self._on_scanned,
                                          on_error=self._on_scan_failed)

    def _on_scan_failed(self, exc: Exception) -> None:
        self._scan_job = 0
        self.show_message(f"Could not list models: {exc}")

    def _on_scanned(self, found: tuple[LibraryEntry, ...]) -> None:
        self._scan_job = 0
        paths_found = {e.path for e in found}
        for path, entry in list(self.entries.items()):
            if entry.kind in (FILE, REMOTE) and path not in paths_found:
                self._drop(path)
        for entry in found:
            self.add_entry(entry)
        if self.message.property("error") is not True or self._import_error:
            self.message.hide()  # an import's refusal is about a file the new list now shows
            self._import_error = False
        if not self.entries:
            self.show_message(f"No models yet. Import a GGUF file, find models on this computer, "
                              f"or put one in {self.models_dir}.", error=False)
        self.sig_scan_finished.emit()
        pending, self._pending_load = self._pending_load, ""
        if pending in self.entries:
            self.select(pending)
            self.request_load()
        elif pending:
            self.show_message(f"{Path(pending).name} is not in the library: it may have been "
                              "moved. Import it with Import….")

    def _after_change(self) -> None:
        if self._scan_job:
            self.refresh()

    # --- import (file dialog, drops, discovered models) ---

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a model (a .gguf file, or a safetensors model's config.json)",
            str(Path.home()), "Models (*.gguf config.json *.safetensors);;All files (*)")
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        """Add a .gguf file or a safetensors folder in place."""
        self.import_paths(((import_target(path), "imported"),))

    def import_paths(self, items: tuple[tuple[str, str], ...]) -> None:
        names = ", ".join(Path(p).name for p, _ in items)
        self.show_message(f"Checking {names}…", error=False)
        self.jobs.submit(import_entries, items, self.models_dir, on_done=self._on_imported,
                         on_error=self._on_import_failed)

    def _on_import_failed(self, exc: Exception) -> None:
        self.show_message(f"Import failed: {exc}")
        self._import_error = True

    def _on_imported(self, result: tuple[tuple[LibraryEntry, ...], tuple[str, ...]]) -> None:
        added, refused = result
        for entry in added:
            self.add_entry(entry)
        if added:
            self.select(added[-1].path)
        if refused:
            self.show_message("\n".join(refused))
            self._import_error = True
        else:
            self.show_message(f"Added {len(added)} model{'s' if len(added) != 1 else ''} "
                              "(linked in place).", error=False)
        self._after_change()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.import_paths(tuple((import_target(p), "imported") for p in files))

    # --- find models on this computer ---

    def find_models(self) -> None:
        self.find_button.setEnabled(False)
        self.show_message("Looking in the Hugging Face cache and LM Studio's folders…",
                          error=False)
        self.jobs.submit(discover_models, self.models_dir, on_done=self._on_discovered,
                         on_error=self._on_discover_failed)

    def _on_discover_failed(self, exc: Exception) -> None:
        self.find_button.setEnabled(True)
        self.show_message(f"Could not look for models: {exc}")

    def _on_discovered(self, found: Discovered) -> None:
        self.find_button.setEnabled(True)
        if not found.models:
            self.show_message("No new models found. Looked in:\n" + "\n".join(found.places),
                              error=False)
            return
        self.message.hide()
        self.discover_dialog = open_discover_dialog(self, found.models, self.import_paths)
        self.discover_dialog.finished.connect(lambda *_: setattr(self, "discover_dialog", None))

    # --- the models folder ---

    def choose_models_dir(self) -> None:
        if paths.models_dir_from_env():
            self.show_message("The models folder is set by OPENLID_MODELS_DIR; unset it to "
                              "choose one here.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Models folder", str(self.models_dir))
        if folder:
            self.set_models_dir(folder)

    def set_models_dir(self, folder: str) -> None:
        """Use `folder` from now on (recorded for the next start and for the CLI); off-thread,
        since it creates the folder and checks it is writable."""
        self.jobs.submit(paths.set_models_dir, folder, on_done=self._on_models_dir,
                         on_error=lambda exc: self.show_message(
                             f"Can't use {folder} as the models folder: {exc}"))

    def _on_models_dir(self, folder: Path) -> None:
        self.models_dir = folder
        self._show_folder()
        self.sig_models_dir_changed.emit(str(folder))
        self.show_message(f"Models folder: {folder}. Downloads go there now; models in the old "
                          "folder stay on disk (import them to keep them listed).", error=False)
        self.refresh()

    def _show_folder(self) -> None:
        self.folder_label.setText(f"Folder: {self.models_dir}")
        self.folder_label.setToolTip(str(self.models_dir))

    # --- remote endpoints ---

    def add_remote(self) -> None:
        """Ask for an endpoint (the dialog checks and stores it) and list it, selected."""
        stored = RemoteModelDialog.ask(self)
        if stored is not None:
            self.add_entry(entry_from_remote(stored))
            self.select(stored.path)
            self.show_message(f"Added {stored.display_name}; load it like any other model.",
                              error=False)

    # --- remove ---

    def request_remove(self) -> None:
        path = self.selected_path()
        entry = self.entries.get(path)
        if entry is None:
            return
        refusal = removal_refusal(self.list, path)
        if refusal:
            self.show_message(refusal)
            return
        choice = confirm_removal(self, entry)
        if not choice:
            return
        delete = choice == DELETE
        self.show_message(f"{'Deleting' if delete else 'Removing'} {entry.name}…", error=False)
        self.jobs.submit(remove_entry, path, delete, self.models_dir,
                         on_done=lambda deleted: self._on_removed(path, entry.name, deleted),
                         on_error=lambda exc: self.show_message(
                             f"Could not remove {entry.name}: {exc}"))

    def _on_removed(self, path: str, name: str, deleted: bool) -> None:
        self._drop(path)
        self.sig_entry_removed.emit(path)
        self.show_message(f"Deleted {name} from disk." if deleted
                          else f"Removed {name} from the list.", error=False)
        self._after_change()

    # --- rows (rendered by LibraryList) ---

    @property
    def ready_path(self) -> str:
        return self.list.ready_path

    def add_entry(self, entry: LibraryEntry) -> None:
        """List (or update) an entry of any kind; non-file kinds survive rescans."""
        self.list.put(entry)
        self._update_buttons()

    def _drop(self, path: str) -> None:
        self.list.drop(path)
        self._update_buttons()

    def details(self, path: str) -> str:
        """The second line of a row: architecture · parameters · quant · context · template (or
        why it is unusable)."""
        return self.list.details(path)

    def display_name(self, path: str) -> str:
        return self.list.display_name(path)

    def select(self, path: str) -> None:
        self.list.select(path)

    def selected_path(self) -> str:
        return self.list.selected_path()

    def _update_buttons(self) -> None:
        path, rows = self.selected_path(), self.list
        entry = self.entries.get(path)
        self.load_button.setEnabled(entry is not None and not rows.loading_path
                                    and path != rows.loaded_path)
        self.eject_button.setEnabled(bool(rows.loaded_path) and not rows.loading_path)
        self.remove_button.setEnabled(entry is not None)
        self.info.setText(info_line(entry) if entry is not None else "")
        self.info.setVisible(entry is not None)

    # --- the row menu ---

    def _row_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        self.list.setCurrentItem(item)
        menu = self.row_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def row_menu(self) -> QMenu:
        """The selected row's actions: Load (or Eject when it is loaded), Remove…"""
        path = self.selected_path()
        return row_menu(self, loaded=bool(path) and path == self.list.loaded_path,
                        can_load=self.load_button.isEnabled(), load=self.request_load,
                        eject=self.sig_eject_requested.emit, remove=self.request_remove)

    # --- load state (from the main window) ---

    def load_path(self, path: str) -> None:
        """Load `path` (a download that just finished): now when it is listed, else after the
        rescan this starts."""
        if path in self.entries:
            self.select(path)
            self.request_load()
            return
        self._pending_load = path
        self.refresh()

    def request_load(self) -> None:
        path = self.selected_path()
        entry = self.entries.get(path)
        if entry is None:
            return
        if entry.problem:
            self.show_message(f"{self.display_name(path)} can't be loaded: {entry.problem}")
            return
        self.sig_load_requested.emit(path)

    def set_loading(self, path: str) -> None:
        self.message.hide()
        self._set_state(self.list.loaded_path, path)

    def set_loaded(self, path: str) -> None:
        self._set_state(path, "")

    def set_load_failed(self, path: str, reason: str) -> None:
        self.show_message(f"{self.display_name(path)} could not be loaded: {reason}")
        self._set_state("", "")

    def _set_state(self, loaded: str, loading: str) -> None:
        self.list.loaded_path, self.list.loading_path = loaded, loading
        self.list.redecorate()
        self._update_buttons()

    def show_message(self, text: str, error: bool = True) -> None:
        self._import_error = False
        self.message.setProperty("error", error)
        self.message.setText(text)
        self.message.show()
