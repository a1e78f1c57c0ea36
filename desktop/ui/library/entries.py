"""The model library panel's rows and disk work: `LibraryEntry` (one row), `LibraryList` (the list
widget that renders rows and the load state), the job functions that wrap
`desktop.core.library.catalog` (scan, import, remove, discover), the removal confirmation box, and
the size and parameter formatting the rows use (`format_bytes` is the status bar's too).

The job functions (`scan_entries`, `import_entries`, `remove_entry`, `discover_models`,
`ensure_ready_model`) run on `JobService` pool threads: they touch the disk and never a widget,
and return immutable values (frozen dataclasses, tuples). Everything else runs on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QMessageBox, QWidget

from desktop.core.gguf_file.check import GgufProblem, GgufReport, check_gguf
from desktop.core.library import catalog as library
from desktop.core.library.names import model_name
from desktop.remote import entries as remote_models
from desktop.ui.library.row_delegate import (
    DETAILS_ROLE,
    LOADED_ROLE,
    ORIGIN_ROLE,
    PATH_ROLE,
    STATE_ROLE,
    TITLE_ROLE,
    LibraryRowDelegate,
)

FILE = "file"  # a model on this computer, managed by desktop.core.library.catalog
REMOTE = "remote"  # a non-file entry ("remote:…") that its owner adds with `add_entry`

DELETE = "delete"
UNLIST = "unlist"


@dataclass(frozen=True)
class LibraryEntry:
    """One row of the library. `details` is the one-line summary (architecture · parameters ·
    quant · context · template); `problem` is non-empty when the model cannot be used (the row
    stays, with the reason). `report` is the GGUF check the load panel's fit estimate reads; it is
    None for safetensors folders, remote entries and broken files."""

    path: str
    name: str
    details: str = ""
    origin: str = ""  # the repo ("owner/name") or folder it came from; see core.library.names
    problem: str = ""
    kind: str = FILE
    source: str = ""
    size_bytes: int = 0
    report: GgufReport | None = None

    @property
    def display_name(self) -> str:
        """The one name Openlid uses for this model everywhere (file, quant, repo)."""
        return f"{self.name} · {self.origin}" if self.origin else self.name

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def in_models_folder(self) -> bool:
        return self.kind == FILE and self.source == "models folder"


@dataclass(frozen=True)
class Discovered:
    """What `discover_models` found, and where it looked (to say so when it found nothing)."""

    models: tuple[library.LocalModel, ...]
    places: tuple[str, ...]


# --- formatting ------------------------------------------------------------------------------

def format_bytes(n: float) -> str:
    """Sizes as the library and the status bar show them: "640 MB", "4.37 GB"."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def format_params(n: int) -> str:
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.0f}M"
    if n >= 1_000:
        return f"{n / 1e3:.0f}K"
    return str(n)


def format_context(n: int) -> str:
    return f"ctx {n // 1024}K" if n >= 1024 and n % 1024 == 0 else f"ctx {n:,}"


def summary(model: library.LocalModel) -> str:
    parts = [model.architecture,
             format_params(model.n_params) + " params" if model.n_params else "",
             model.quant,
             format_context(model.context_length) if model.context_length else "",
             "template" if model.has_template else "no template",
             "vision" if model.vision else ""]  # a projector beside it (core.vision)
    return " · ".join(p for p in parts if p)


def entry_from_model(model: library.LocalModel, report: GgufReport | None = None,
                     models_dir: Path | None = None) -> LibraryEntry:
    name = model_name(model.path, model.quant,
                      models_dir=str(models_dir.absolute()) if models_dir else "",
                      source=model.source)
    return LibraryEntry(path=model.path, name=name.title, origin=name.origin,
                        details="" if model.problem else summary(model), problem=model.problem,
                        kind=FILE, source=model.source, size_bytes=model.size_bytes,
                        report=report)


def entry_from_remote(remote: remote_models.RemoteEntry) -> LibraryEntry:
    return LibraryEntry(path=remote.path, name=remote.display_name,
                        details=f"remote · {remote.details}", kind=REMOTE,
                        source="remote endpoint")


def tooltip(entry: LibraryEntry) -> str:
    lines = [entry.path]
    if entry.details:
        lines.append(entry.details)
    facts = [entry.source, format_bytes(entry.size_bytes) if entry.size_bytes else ""]
    if any(facts):
        lines.append(" · ".join(f for f in facts if f))
    if entry.problem:
        lines += ["", entry.problem]
    return "\n".join(lines)


def info_line(entry: LibraryEntry) -> str:
    """The selected row in full, under the list: details, then where it comes from and its size."""
    head = f"⚠ {entry.problem}" if entry.problem else entry.details
    facts = [entry.source, format_bytes(entry.size_bytes) if entry.size_bytes else ""]
    tail = " · ".join(f for f in facts if f)
    return "\n".join(x for x in (head, tail, entry.path) if x)


# --- jobs (pool threads) ---------------------------------------------------------------------

def _with_report(model: library.LocalModel, models_dir: Path) -> LibraryEntry:
    """The entry, with the GGUF report the load panel needs (about 35 ms for a 270M model)."""
    if model.problem or model.format != "gguf":
        return entry_from_model(model, models_dir=models_dir)
    try:
        return entry_from_model(model, check_gguf(model.path), models_dir)
    except GgufProblem as exc:  # changed since the library cached its metadata
        return entry_from_model(library.LocalModel(**{**model.to_json(), "problem": str(exc)}),
                                models_dir=models_dir)


def scan_entries(models_dir: Path) -> tuple[LibraryEntry, ...]:
    """Every model on this computer the library knows, then the remote endpoints."""
    local = tuple(_with_report(m, models_dir) for m in library.scan(models_dir))
    try:
        remote = tuple(entry_from_remote(e) for e in remote_models.list_entries())
    except remote_models.RemoteModelError as exc:  # an unreadable file: say so, keep listing
        remote = (LibraryEntry(path=remote_models.REMOTE_PREFIX, name="Remote models",
                               problem=str(exc), kind=REMOTE),)
    return local + remote


def import_entries(items: tuple[tuple[str, str], ...],
                   models_dir: Path) -> tuple[tuple[LibraryEntry, ...], tuple[str, ...]]:
    """Import each (path, source) in place; returns the entries added and, for each refusal,
    "name: reason"."""
    added, refused = [], []
    for path, source in items:
        try:
            added.append(_with_report(library.import_model(path, source, models_dir), models_dir))
        except library.LibraryError as exc:
            refused.append(f"{Path(path).name} can't be used: {exc}")
    return tuple(added), tuple(refused)


def remove_entry(path: str, delete_file: bool, models_dir: Path) -> bool:
    """Take `path` off the library (deleting the file if asked); True when a file was deleted."""
    if remote_models.is_remote_path(path):
        remote_models.remove(path.removeprefix(remote_models.REMOTE_PREFIX))
        return False
    return library.remove(path, delete_file, models_dir)


def discover_models(models_dir: Path) -> Discovered:
    places = tuple(str(p) for p in library.discover_places())
    return Discovered(tuple(library.discover(models_dir)), places)


def ensure_ready_model(folder: Path) -> str:
    """The shipped Gemma model, assembled into `folder` the first time (copies 253 MB)."""
    from desktop.core.ready_model import ready_model_path

    return str(ready_model_path(folder))


# --- removal confirmation (GUI thread) -------------------------------------------------------

def import_target(path: str) -> str:
    """What to import for a picked or dropped file: a safetensors model's config.json or weights
    file stands for its folder."""
    p = Path(path)
    return str(p.parent if p.name == "config.json" or p.suffix == ".safetensors" else p)


def removal_refusal(rows: LibraryList, path: str) -> str:
    """Why `path` cannot be removed now, or "" when it can."""
    if path in (rows.loaded_path, rows.loading_path):
        return f"{rows.display_name(path)} is in use: eject it before removing it."
    if path == rows.ready_path:
        return ("The ready model ships with Openlid and comes back at the next start, so it "
                "cannot be removed.")
    return ""


def confirm_removal(parent: QWidget, entry: LibraryEntry) -> str:
    """Ask how to remove `entry`: DELETE, UNLIST or "" (cancelled). Only a models-folder file can
    be deleted; anything else is only taken off the list, and the box says the file stays."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Remove model")
    box.setText(f"Remove {entry.name}?")
    choices = {}
    if entry.in_models_folder:
        box.setInformativeText(
            f"It is in Openlid's models folder:\n{entry.path}\n\nDelete it from disk to free "
            f"{format_bytes(entry.size_bytes)}, or only take it off the list (a later scan will "
            "not add it back).")
        delete = box.addButton("Delete from disk", QMessageBox.ButtonRole.DestructiveRole)
        choices[delete] = DELETE
    elif entry.kind == REMOTE:
        box.setInformativeText("Openlid forgets this endpoint and its key; the server itself is "
                               "not touched.")
    elif entry.kind == FILE:
        box.setInformativeText(
            f"It will only be taken off the list; the file stays where it is:\n{entry.path}")
    unlist = box.addButton("Remove from list", QMessageBox.ButtonRole.AcceptRole)
    choices[unlist] = UNLIST
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    box.deleteLater()
    return next((c for b, c in choices.items() if b is clicked), "")


# --- the rows (GUI thread) -------------------------------------------------------------------

class LibraryList(QListWidget):
    """The rows, keyed by path: two lines each, the name and the load state (first, so eliding a
    narrow dock never hides it), then the details.
    Owns `entries` and the ready/loaded/loading paths the rows show; the panel changes them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: dict[str, LibraryEntry] = {}
        self.ready_path = ""
        self.loaded_path = ""
        self.loading_path = ""
        self.setAccessibleName("Local models")
        self.setSpacing(1)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QListView.ResizeMode.Adjust)  # rows re-wrap when the dock resizes
        self.setItemDelegate(LibraryRowDelegate(self))

    def rows(self) -> list[QListWidgetItem]:
        items = (self.item(i) for i in range(self.count()))
        return [item for item in items if item is not None]

    def item_for(self, path: str) -> QListWidgetItem | None:
        return next((it for it in self.rows() if it.data(PATH_ROLE) == path), None)

    def put(self, entry: LibraryEntry) -> None:
        self.entries[entry.path] = entry
        item = self.item_for(entry.path)
        if item is None:
            item = QListWidgetItem()
            item.setData(PATH_ROLE, entry.path)
            self.addItem(item)
            if self.currentItem() is None:
                self.setCurrentItem(item)
        item.setToolTip(tooltip(entry))
        self.decorate(item)

    def drop(self, path: str) -> None:
        self.entries.pop(path, None)
        item = self.item_for(path)
        if item is not None:
            self.takeItem(self.row(item))

    def select(self, path: str) -> None:
        item = self.item_for(path)
        if item is not None:
            self.setCurrentItem(item)

    def selected_path(self) -> str:
        item = self.currentItem()
        return str(item.data(PATH_ROLE)) if item is not None else ""

    def details(self, path: str) -> str:
        entry = self.entries.get(path)
        if entry is None:
            return ""
        return "⚠ unusable: " + entry.problem if entry.problem else entry.details

    def display_name(self, path: str) -> str:
        """The model's one name (file, quant and repo: core.library.names), as the status bar,
        the chat and every message say it."""
        entry = self.entries.get(path)
        return entry.display_name if entry is not None and entry.name else Path(path).name

    def state_text(self, path: str) -> str:
        return ("● loaded" if path == self.loaded_path
                else "◌ loading…" if path == self.loading_path else "")

    def origin_text(self, path: str) -> str:
        """The row's second line: the repo or folder, and where the file was found."""
        entry = self.entries.get(path)
        if entry is None:
            return ""
        where = ("ready model" if path == self.ready_path
                 else "" if entry.source in ("models folder", "") else entry.source)
        return " · ".join(x for x in (entry.origin, where) if x)

    def decorate(self, item: QListWidgetItem) -> None:
        """The row's texts; `LibraryRowDelegate` lays them out (wrapped to the dock's width).
        The item's own text holds them all, for screen readers and tests."""
        path = str(item.data(PATH_ROLE))
        entry = self.entries.get(path)
        title = entry.name if entry is not None and entry.name else Path(path).name
        state, origin, details = self.state_text(path), self.origin_text(path), self.details(path)
        item.setData(TITLE_ROLE, title)
        item.setData(STATE_ROLE, state)
        item.setData(ORIGIN_ROLE, origin)
        item.setData(DETAILS_ROLE, details)
        item.setData(LOADED_ROLE, path == self.loaded_path)
        item.setText("\n".join(x for x in (f"{title}  {state}".rstrip(), origin, details) if x))

    def redecorate(self) -> None:
        for item in self.rows():
            self.decorate(item)
