"""DownloadsPanel: the download queue — per job and overall progress, bytes, speed, ETA, state,
the reason a job stopped, and pause / resume / retry / cancel / remove, and Load for a finished
one (`sig_load_requested(path)`). Each state has its own colour, on its word and its bar; long
titles are cut in the middle, whole on hover. GUI thread only.

It draws `DownloadsSnapshot`s (immutable, from DownloadService, at most a few a second) and
asks for changes through `sig_*_requested(job_id)` signals; it never calls the manager itself.
Job rows are kept and updated in place, keyed by job id, so a snapshot costs a few label
updates, not a rebuild. The queue is the manager's, persisted in SQLite: after a restart the
same rows come back.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.core.downloads.progress import (
    DownloadsSnapshot,
    JobProgress,
    format_duration,
    format_size,
)
from desktop.core.downloads.store import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_DOWNLOADING,
    JOB_FAILED,
    JOB_PAUSED,
    JOB_QUEUED,
    DownloadJob,
)
from desktop.core.hub import quant
from desktop.ui.hub.elided_label import ElidedLabel
from desktop.ui.hub.hub_format import model_path

__all__ = ["DownloadsPanel", "JobRow", "job_title"]

_STATE_TEXT = {JOB_QUEUED: "Waiting", JOB_DOWNLOADING: "Downloading", JOB_PAUSED: "Paused",
               JOB_FAILED: "Failed", JOB_CANCELLED: "Cancelled", JOB_DONE: "Done"}
_PHASE_TEXT = {"verifying": "Checking", "retrying": "Retrying", "starting": "Starting"}
_SCALE = 1000  # progress bars count in tenths of a percent
# Which buttons each state offers.
_ACTIONS = {
    JOB_QUEUED: ("pause", "cancel"),
    JOB_DOWNLOADING: ("pause", "cancel"),
    JOB_PAUSED: ("resume", "cancel", "remove"),
    JOB_FAILED: ("retry", "cancel", "remove"),
    JOB_CANCELLED: ("retry", "remove"),
    JOB_DONE: ("load", "folder", "remove"),
}


def job_title(job: DownloadJob) -> str:
    """'owner/repo — tiny-Q8_0.gguf (3 shards)': the repo and the model the files make."""
    groups = quant.group_files(f.path for f in job.files)
    n = len(job.files)
    if len(groups) == 1:
        g = groups[0]
        count = f" ({n} shards)" if g.kind == quant.KIND_GGUF and n > 1 else \
            f" ({n} files)" if n > 1 else ""
        return f"{job.repo_id} — {g.name}{count}"
    name = job.files[0].path if n == 1 else f"{n} files"
    return f"{job.repo_id} — {name}"


def _state_text(p: JobProgress) -> str:
    if p.state == JOB_DOWNLOADING:
        phases = {f.phase for f in p.files if f.phase != "done"}
        for phase, text in _PHASE_TEXT.items():
            if phase in phases and "downloading" not in phases:
                return text
    return _STATE_TEXT.get(p.state, p.state)


def _detail_text(p: JobProgress) -> str:
    total = p.total_bytes
    size = f"{format_size(p.done_bytes)} of {format_size(total)}" if total is not None \
        else format_size(p.done_bytes)
    if p.state == JOB_DONE:
        return f"{format_size(total)} · in {p.job.dest_dir}"
    bits = [size]
    if p.state == JOB_DOWNLOADING:
        bits.append(f"{format_size(p.speed)}/s")
        if p.eta is not None:
            bits.append(f"{format_duration(p.eta)} left")
    return " · ".join(bits)


class JobRow(QFrame):
    """One job: title, state, bar, bytes/speed/ETA, its message, and its buttons."""

    def __init__(self, panel: DownloadsPanel, job_id: int) -> None:
        super().__init__()
        self.setObjectName("downloadJob")
        self.job_id = job_id
        self._dest = ""
        self.model = ""  # the file (or folder) to load once the job is done
        self.title = ElidedLabel()
        self.title.setObjectName("jobTitle")
        self.state = QLabel()
        self.state.setObjectName("jobState")
        self.bar = QProgressBar()
        self.bar.setRange(0, _SCALE)
        self.bar.setTextVisible(True)
        self.bar.setAccessibleName("Download progress")
        self.bar.setObjectName("jobBar")
        self.detail = QLabel()
        self.detail.setObjectName("jobDetail")
        self.message = QLabel()
        self.message.setObjectName("jobMessage")
        self.message.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.detail, 1)
        for name, text, signal in (
            ("pause", "Pause", panel.sig_pause_requested),
            ("resume", "Resume", panel.sig_resume_requested),
            ("retry", "Retry", panel.sig_retry_requested),
            ("cancel", "Cancel", panel.sig_cancel_requested),
            ("remove", "Remove", panel.sig_remove_requested),
        ):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, s=signal: s.emit(self.job_id))
            self.buttons[name] = button
            buttons.addWidget(button)
        load = QPushButton("Load")
        load.setToolTip("Load this model to chat with it")
        load.clicked.connect(lambda: panel.sig_load_requested.emit(self.model))
        self.buttons["load"] = load
        buttons.addWidget(load)
        folder = QPushButton("Show folder")
        folder.clicked.connect(self._open_folder)
        self.buttons["folder"] = folder
        buttons.addWidget(folder)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.state)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 6, 8, 6)
        column.setSpacing(3)
        column.addLayout(head)
        column.addWidget(self.bar)
        column.addLayout(buttons)
        column.addWidget(self.message)

    def update_from(self, p: JobProgress) -> None:
        self._dest = p.job.dest_dir
        self.model = model_path(p.job)
        title = job_title(p.job)
        self.title.setText(title)
        self.title.setToolTip("\n".join((title, *(f.path for f in p.job.files))))
        self.state.setText(_state_text(p))
        if self.state.property("state") != p.state:  # re-styling costs more than the labels
            for widget in (self.state, self.bar):  # the bar's colour says the state too
                widget.setProperty("state", p.state)
                widget.style().unpolish(widget)
                widget.style().polish(widget)
        fraction = 1.0 if p.state == JOB_DONE else p.fraction or 0.0
        self.bar.setValue(round(fraction * _SCALE))
        self.bar.setFormat(f"{fraction:.0%}")
        self.detail.setText(_detail_text(p))
        self.message.setText(p.message)
        self.message.setVisible(bool(p.message))
        offered = _ACTIONS.get(p.state, ())
        for name, button in self.buttons.items():
            button.setVisible(name in offered)
        self.buttons["retry"].setText("Download again" if p.state == JOB_CANCELLED else "Retry")

    def _open_folder(self) -> None:
        if self._dest:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self._dest))))


class DownloadsPanel(QWidget):
    sig_load_requested = Signal(str)  # a finished download's model file (or folder)
    sig_pause_requested = Signal(int)
    sig_resume_requested = Signal(int)
    sig_retry_requested = Signal(int)
    sig_cancel_requested = Signal(int)
    sig_remove_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("downloadsPanel")
        self.setMinimumHeight(150)  # room for the heading and one job row
        self.rows: dict[int, JobRow] = {}
        self.heading = QLabel("<b>Downloads</b>")
        self.summary = QLabel("")
        self.summary.setObjectName("downloadsSummary")
        self.overall = QProgressBar()
        self.overall.setRange(0, _SCALE)
        self.overall.setAccessibleName("Overall download progress")
        self.overall.setMaximumWidth(220)
        self.empty = QLabel("No downloads yet. Pick a model and press Download; downloads go on "
                            "after a restart.")
        self.empty.setObjectName("downloadsEmpty")
        self.empty.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("downloadsMessage")
        self.message.setWordWrap(True)
        self.message.hide()

        self._list = QWidget()
        self._list.setObjectName("downloadsList")
        self._list_column = QVBoxLayout(self._list)
        self._list_column.setContentsMargins(0, 0, 0, 0)
        self._list_column.setSpacing(4)
        self._list_column.addWidget(self.empty)
        self._list_column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._list)

        head = QHBoxLayout()
        head.addWidget(self.heading)
        head.addWidget(self.summary, 1)
        head.addWidget(self.overall)
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 6)
        column.addLayout(head)
        column.addWidget(self.message)
        column.addWidget(scroll, 1)

    def show_refusal(self, text: str) -> None:
        """A download that could not be queued (disk space …), until the next one is asked for."""
        self.message.setText(text)
        self.message.show()

    def clear_refusal(self) -> None:
        self.message.hide()

    def set_snapshot(self, snap: DownloadsSnapshot) -> None:
        seen = set()
        for p in snap.jobs:
            seen.add(p.id)
            row = self.rows.get(p.id)
            if row is None:
                row = JobRow(self, p.id)
                self.rows[p.id] = row
                self._list_column.insertWidget(self._list_column.count() - 1, row)
            row.update_from(p)
        for job_id in [j for j in self.rows if j not in seen]:
            row = self.rows.pop(job_id)
            self._list_column.removeWidget(row)
            row.deleteLater()
        self.empty.setVisible(not self.rows)
        self._summarise(snap)

    def _summarise(self, snap: DownloadsSnapshot) -> None:
        live = [p for p in snap.jobs if not p.job.settled]
        self.heading.setText(f"<b>Downloads</b> ({len(live)} active)" if live
                             else "<b>Downloads</b>")
        self.overall.setVisible(bool(live))
        if not live:
            done = sum(1 for p in snap.jobs if p.state == JOB_DONE)
            self.summary.setText(f"{done} finished" if done else "")
            return
        fraction = snap.done_bytes / snap.total_bytes if snap.total_bytes else 0.0
        self.overall.setValue(round(min(1.0, fraction) * _SCALE))
        self.overall.setFormat(f"{fraction:.0%}")
        bits = [f"{format_size(snap.done_bytes)} of {format_size(snap.total_bytes)}",
                f"{format_size(snap.speed)}/s"]
        if snap.eta is not None:
            bits.append(f"{format_duration(snap.eta)} left")
        self.summary.setText(" · ".join(bits))
