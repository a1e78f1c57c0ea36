"""ModelPage: one Hub repo — its model card, licence and access, and the models it offers, each
with quant, size, a fit badge and a Download button. GUI thread only.

Files are shown as the core groups them (`RepoDetails.units`): a split GGUF is one row whose
shards are its children, a safetensors repo one row of config, tokenizer and weights. The fit
badge (fits / tight / won't fit) is `core.fit`'s estimate for the unit's size with the given
`LoadSettings`, against the RAM available now and the GPUs `hardware.detect()` found (HubWindow
runs that once, off the GUI thread, and hands it in). Before download there is no metadata, so
the KV cache part is the size-based guess; the badge's tooltip says so with the numbers.

Gated or private repos: the Hub's refusal (401/403) in plain words, and "Log in with a token…",
which asks for a token and emits it as `sig_login_requested`; HubService hands it to
huggingface_hub's own login, which stores it. The page keeps no copy of it.

Out: `sig_download_requested(ModelUnit)`, `sig_load_requested(path)` (a downloaded unit's
Load), `sig_login_requested(str)`, `sig_reload_requested()`.
In: `show_loading`, `show_details`, `show_card`, `show_failure`, `show_info`, `set_hardware`,
`set_load_settings`, `set_downloads` (the Download buttons follow the queue: "42%",
"Resume" …, and a downloaded unit shows "Downloaded ✓" and Load).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core import fit
from desktop.core.downloads.progress import DownloadsSnapshot, JobProgress, format_size
from desktop.core.downloads.store import (
    JOB_DONE,
    JOB_DOWNLOADING,
    JOB_FAILED,
    JOB_PAUSED,
    JOB_QUEUED,
)
from desktop.core.hardware import HardwareInfo
from desktop.core.hub import quant
from desktop.core.hub.client import ModelUnit, RepoDetails
from desktop.core.hub.http import KIND_FORBIDDEN, KIND_GATED, KIND_NOT_FOUND
from desktop.core.model_info import LoadSettings
from desktop.ui.hub.card_view import CardView
from desktop.ui.hub.hub_format import (
    access_text,
    format_count,
    format_updated,
    model_path,
    unit_fit,
    unit_kind_text,
)
from desktop.ui.hub.notice import NoticeBar

__all__ = ["FILE_COLUMNS", "ModelPage"]

FILE_COLUMNS = ("Model", "Kind", "Quant", "Size", "Fit", "")
COL_NAME, COL_KIND, COL_QUANT, COL_SIZE, COL_FIT, COL_ACTION = range(len(FILE_COLUMNS))
_AGAIN = {JOB_PAUSED: "Resume", JOB_FAILED: "Retry"}
_BUTTON_WORDS = ("Download", "Resume", "Retry", "Queued", "100%", "Load")
_LOGIN_KINDS = frozenset({KIND_GATED, KIND_FORBIDDEN, KIND_NOT_FOUND})
_BADGE_TEXT = {fit.FIT_FITS: "fits", fit.FIT_TIGHT: "tight", fit.FIT_WONT: "won't fit",
               fit.FIT_UNKNOWN: "unknown"}


class ModelPage(QWidget):
    sig_download_requested = Signal(object)  # ModelUnit of the shown repo
    sig_load_requested = Signal(str)  # a downloaded unit's model file (or folder)
    sig_login_requested = Signal(str)  # a token typed by the user, for huggingface_hub's login
    sig_reload_requested = Signal()

    def __init__(self, hub_url: str = "https://huggingface.co",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPage")
        self._hub_url = hub_url.rstrip("/")
        self.details: RepoDetails | None = None
        self.repo_id = ""
        self._hardware: HardwareInfo | None = None
        self._load = LoadSettings()
        self._snapshot: DownloadsSnapshot | None = None
        self._rows: list[tuple[ModelUnit, QTreeWidgetItem, QPushButton]] = []
        self.login_dialog: QInputDialog | None = None

        self.title = QLabel("")
        self.title.setObjectName("modelTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.meta = QLabel("")
        self.meta.setObjectName("modelMeta")
        self.meta.setWordWrap(True)
        self.meta.setOpenExternalLinks(True)

        self.notice = NoticeBar()
        self.login_button = self.notice.add_button("Log in with a token…", self.ask_token)
        self.retry_button = self.notice.add_button("Try again", self.sig_reload_requested.emit)

        self.files = QTreeWidget()
        self.files.setObjectName("modelFiles")
        self.files.setHeaderLabels(list(FILE_COLUMNS))
        self.files.setRootIsDecorated(True)
        self.files.setUniformRowHeights(True)
        self.files.setAlternatingRowColors(True)
        self.files.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # the quant ends the name
        header = self.files.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for col in (COL_KIND, COL_QUANT, COL_SIZE, COL_FIT, COL_ACTION):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.files_label = QLabel("")
        self.files_label.setObjectName("filesNote")
        self.files_label.setWordWrap(True)
        self.fits_only = QCheckBox("Only what fits this machine")
        self.fits_only.toggled.connect(self._apply_fits_only)

        self.card = CardView()

        files_box = QWidget()
        files_column = QVBoxLayout(files_box)
        files_column.setContentsMargins(0, 0, 0, 0)
        files_head = QHBoxLayout()
        files_head.addWidget(QLabel("<b>Models in this repo</b>"))
        files_head.addStretch(1)
        files_head.addWidget(self.fits_only)
        files_column.addLayout(files_head)
        files_column.addWidget(self.files, 1)
        files_column.addWidget(self.files_label)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(files_box)
        split.addWidget(self.card)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(8, 6, 8, 6)
        column.addWidget(self.title)
        column.addWidget(self.meta)
        column.addWidget(self.notice)
        column.addWidget(split, 1)
        self.placeholder = QLabel(
            "Pick a model on the left to see its files, whether they fit this machine, and its "
            "model card.")
        self.placeholder.setObjectName("modelPlaceholder")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

    # --- what is shown ----------------------------------------------------------------------

    def clear(self) -> None:
        """Back to the placeholder: no repo open (Esc on the Hub page)."""
        self.stack.setCurrentIndex(0)
        self.repo_id = ""
        self.details = None
        self._clear_files()

    def show_loading(self, repo_id: str) -> None:
        self.stack.setCurrentIndex(1)
        self.repo_id = repo_id
        self.details = None
        self.title.setText(repo_id)
        self.meta.setText("Loading…")
        self.notice.hide()
        self._clear_files()
        self.files_label.setText("")
        self.card.show_text("Loading the model card…")

    def show_details(self, details: RepoDetails) -> None:
        self.details = details
        s = details.summary
        self.repo_id = s.repo_id
        self.title.setText(s.repo_id)
        page = f"{self._hub_url}/{s.repo_id}"
        bits = [f"by {s.author}" if s.author else "", f"{format_count(s.downloads)} downloads",
                f"{format_count(s.likes)} likes", f"updated {format_updated(s.updated)}",
                f"licence: {access_text(s)}", f'<a href="{page}">Open on the Hub\u00a0↗</a>']
        self.meta.setText(" · ".join(b for b in bits if b))
        self._fill_files(details)

    def show_card(self, repo_id: str, markdown: str) -> None:
        if repo_id != self.repo_id:
            return
        if markdown.strip():
            self.card.show_card(markdown, f"{self._hub_url}/{repo_id}/blob/main/")
        else:
            self.card.show_text("This repo has no model card.")

    def show_failure(self, request: str, kind: str, message: str) -> None:
        """A failed repo, card or login request: the reason, and what the user can do."""
        if request == "card" and self.details is not None and kind not in _LOGIN_KINDS:
            self.card.show_text(f"The model card could not be loaded. {message}")
            return
        if request == "card":
            self.card.show_text("")
        if request == "repo":
            self.meta.setText("")
        self.notice.show_message(message, error=True)
        self.login_button.setVisible(kind in _LOGIN_KINDS or request == "login")
        self.retry_button.setVisible(request in ("repo", "card") and kind not in _LOGIN_KINDS)

    def show_info(self, message: str) -> None:
        self.notice.show_message(message, error=False)
        self.login_button.hide()
        self.retry_button.hide()

    def ask_token(self) -> None:
        """Ask for a Hugging Face token (window-modal, not blocking the event loop)."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Log in to Hugging Face")
        dialog.setLabelText(
            "Paste an access token from huggingface.co/settings/tokens (read access is "
            "enough).\nIt is stored by huggingface_hub, as `hf auth login` does.")
        dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
        dialog.setOkButtonText("Log in")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.textValueSelected.connect(self._token_given)
        dialog.finished.connect(dialog.deleteLater)
        self.login_dialog = dialog
        dialog.open()

    def _token_given(self, token: str) -> None:
        self.login_dialog = None
        if token.strip():
            self.show_info("Checking the token with the Hub…")
            self.sig_login_requested.emit(token.strip())

    # --- files ------------------------------------------------------------------------------

    def _clear_files(self) -> None:
        self._rows = []
        self.files.clear()

    def _fill_files(self, details: RepoDetails) -> None:
        self._clear_files()
        for unit in details.units:
            item = QTreeWidgetItem(["", unit_kind_text(unit), unit.quant or "–",
                                    format_size(unit.size), ""])
            item.setText(COL_NAME, unit.name if unit.complete else f"{unit.name} (incomplete)")
            item.setToolTip(COL_NAME, "\n".join(f.path for f in unit.files))
            item.setTextAlignment(COL_SIZE, Qt.AlignmentFlag.AlignRight
                                  | Qt.AlignmentFlag.AlignVCenter)
            if len(unit.files) > 1:
                for f in unit.files:
                    child = QTreeWidgetItem([f.path, "", f.quant or "", format_size(f.size)])
                    child.setTextAlignment(COL_SIZE, Qt.AlignmentFlag.AlignRight
                                           | Qt.AlignmentFlag.AlignVCenter)
                    item.addChild(child)
            self.files.addTopLevelItem(item)
            button = QPushButton("Download")
            button.setObjectName("downloadButton")
            # Wide enough for every word it takes ("Downloaded ✓" sits beside it): the column
            # sizes itself once, so a longer word later would be cut.
            metrics = button.fontMetrics()
            button.setMinimumWidth(24 + max(metrics.horizontalAdvance(t) for t in _BUTTON_WORDS))
            button.setEnabled(unit.complete)
            if not unit.complete:
                button.setToolTip("Shards are missing on the Hub: this model cannot be loaded.")
            button.clicked.connect(lambda _=False, u=unit: self._on_action(u))
            cell = QWidget()
            cell_row = QHBoxLayout(cell)
            cell_row.setContentsMargins(2, 0, 2, 0)
            cell_row.setSpacing(4)
            mark = QLabel("Downloaded ✓")
            mark.setObjectName("downloadedMark")
            mark.setVisible(False)
            cell_row.addWidget(mark)
            cell_row.addWidget(button)
            self.files.setItemWidget(item, COL_ACTION, cell)
            self._rows.append((unit, item, button))
        grouped = {f.path for u in details.units for f in u.files}
        others = [f.path for f in details.files if f.path not in grouped]
        note = "No GGUF or safetensors model in this repo." if not details.units else ""
        if others:
            note += (" " if note else "") + "Other files: " + ", ".join(others)
        self.files_label.setText(note)
        self._update_badges()
        self._update_buttons()
        self._apply_fits_only(self.fits_only.isChecked())

    def row_texts(self) -> list[tuple[str, ...]]:
        """Tests: each unit row's texts, the fit badge's and the button's included."""
        out = []
        for _, item, button in self._rows:
            badge = self.files.itemWidget(item, COL_FIT)
            texts = [item.text(c) for c in range(COL_FIT)]
            texts.append(badge.text() if isinstance(badge, QLabel) else "")
            texts.append(button.text())
            out.append(tuple(texts))
        return out

    def download_button(self, name: str) -> QPushButton:
        return next(b for u, _, b in self._rows if u.name == name)

    def downloaded_mark(self, name: str) -> QLabel:
        """Tests: the "Downloaded ✓" beside a unit's button."""
        button = self.download_button(name)
        cell = button.parentWidget()
        mark = cell.findChild(QLabel, "downloadedMark") if cell is not None else None
        assert isinstance(mark, QLabel)
        return mark

    def _on_action(self, unit: ModelUnit) -> None:
        """The row's button: Load once the unit is downloaded, else Download (or resume)."""
        job = self._job_for(unit)
        if job is not None and job.state == JOB_DONE:
            self.sig_load_requested.emit(model_path(job.job))
        else:
            self.sig_download_requested.emit(unit)

    # --- fit badges -------------------------------------------------------------------------

    def set_hardware(self, hardware: HardwareInfo | None) -> None:
        self._hardware = hardware
        self._update_badges()

    def set_load_settings(self, settings: LoadSettings) -> None:
        self._load = settings
        self._update_badges()

    def _update_badges(self) -> None:
        memory = fit.available_memory()  # a read of /proc/meminfo: microseconds
        available = memory.available if memory is not None else None
        for unit, item, _ in self._rows:
            estimate = unit_fit(unit, self._load, self._hardware, available)
            badge = self.files.itemWidget(item, COL_FIT)
            if not isinstance(badge, QLabel):
                badge = QLabel()
                badge.setObjectName("fitBadge")
                badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
                self.files.setItemWidget(item, COL_FIT, badge)
            verdict = estimate.verdict if estimate is not None else ""
            badge.setText(_BADGE_TEXT.get(verdict, "–"))
            badge.setProperty("verdict", verdict.replace("'", "").replace(" ", "_"))
            badge.style().unpolish(badge)
            badge.style().polish(badge)
            tip = estimate.message if estimate is not None else "Not a model on its own."
            if estimate is not None and self._hardware is None:
                tip += " (Still looking for GPUs.)"
            badge.setToolTip(tip)
            item.setData(COL_FIT, Qt.ItemDataRole.UserRole, verdict)
        self._apply_fits_only(self.fits_only.isChecked())

    def _apply_fits_only(self, only: bool) -> None:
        for unit, item, _ in self._rows:
            verdict = item.data(COL_FIT, Qt.ItemDataRole.UserRole)
            hide = only and (verdict in (fit.FIT_WONT, "") or unit.kind == quant.KIND_PROJECTOR)
            item.setHidden(hide)

    # --- download state ---------------------------------------------------------------------

    def set_downloads(self, snapshot: DownloadsSnapshot) -> None:
        self._snapshot = snapshot
        self._update_buttons()

    def _job_for(self, unit: ModelUnit) -> JobProgress | None:
        if self._snapshot is None:
            return None
        paths = sorted(f.path for f in unit.files)
        found = [j for j in self._snapshot.jobs if j.job.repo_id == self.repo_id
                 and sorted(f.path for f in j.job.files) == paths]
        return max(found, key=lambda j: j.id) if found else None

    def _update_buttons(self) -> None:
        for unit, _, button in self._rows:
            if not unit.complete:
                continue
            job = self._job_for(unit)
            state = job.state if job is not None else ""
            if state == JOB_DONE:
                text, enabled = "Load", True
            elif state == JOB_DOWNLOADING and job is not None and job.fraction is not None:
                text, enabled = f"{job.fraction:.0%}", False
            elif state in (JOB_DOWNLOADING, JOB_QUEUED):
                text, enabled = "Queued", False
            else:  # none yet, or paused / failed / cancelled: queueing again resumes it
                text, enabled = _AGAIN.get(state, "Download"), True
            button.setText(text)
            button.setEnabled(enabled)
            button.setToolTip("Load this model to chat with it" if state == JOB_DONE else "")
            cell = button.parentWidget()
            mark = cell.findChild(QLabel, "downloadedMark") if cell is not None else None
            if isinstance(mark, QLabel):
                mark.setVisible(state == JOB_DONE)
        self.files.resizeColumnToContents(COL_ACTION)
