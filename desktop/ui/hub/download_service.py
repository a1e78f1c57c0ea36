"""DownloadService: the Qt face of `desktop.core.downloads.manager.DownloadManager`, the
persisted queue of downloads.

Created and called on the GUI thread (construction reads the queue from SQLite: milliseconds);
it owns the manager, whose worker threads
(`openlid-download-<n>`) fetch the bytes. The manager calls its listener on those workers (and on
whichever thread gave a command), so the listener touches nothing but a lock-guarded slot for the
newest snapshot and emits an internal signal connected *queued* to this object: the snapshot is
then taken on the GUI thread and re-emitted as `sig_downloads_changed`. Snapshots that pile up
while the GUI thread is busy are coalesced: only the newest is delivered.

Commands (enqueue, pause, resume, retry, cancel, remove) run on a one-thread pool
("openlid-download-commands"), in the order given: they write SQLite and stat the disk, which
is quick but is still disk I/O the GUI thread must not wait on. A refused enqueue (not enough
disk space, a bad file name) comes back as `sig_download_refused(message)`.

`sig_download_finished(path)` fires once per job that reaches "done" while this service runs:
the path is what the model library should add (the GGUF, the first shard of a split one, or the
folder of a safetensors model). Jobs already done when the service starts do not fire.

After a restart the queue comes back from the database; `start()` resumes what was running.
`close()` (from the window's closeEvent) stops the workers and joins them (bounded); `.part`
files stay for the next run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

from desktop.core.downloads.manager import DownloadError, DownloadManager, RetryPolicy
from desktop.core.downloads.progress import DownloadsSnapshot
from desktop.core.downloads.store import JOB_DONE
from desktop.core.hub.client import ModelFile
from desktop.ui.hub.hub_format import model_path

__all__ = ["DownloadService", "model_path"]

_log = logging.getLogger("openlid.downloads")


class _Command(QRunnable):
    def __init__(self, owner: DownloadService, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._owner, self._fn = owner, fn

    def run(self) -> None:
        try:
            self._fn()
        except DownloadError as exc:  # a refusal in plain words (disk space, bad name …)
            self._owner.refuse(str(exc))
        except Exception as exc:  # a bug: report it on screen, keep the queue going
            _log.exception("download command failed")
            self._owner.refuse(f"Unexpected error: {exc}")


class DownloadService(QObject):
    """See the module docstring. `db_path`: the SQLite file of the queue (the app's database);
    the keyword arguments go to `DownloadManager`."""

    sig_downloads_changed = Signal(object)  # DownloadsSnapshot
    sig_download_finished = Signal(str)  # path of the model to add to the library
    sig_download_refused = Signal(str)  # why a download could not be queued
    # Internal, worker or command thread → GUI thread; queued (see the module docstring).
    _sig_snapshot_ready = Signal()
    _sig_refused = Signal(str)

    def __init__(self, db_path: str | Path, *, concurrency: int = 2,
                 endpoint: str | None = None, token: str | bool | None = None,
                 policy: RetryPolicy | None = None, progress_interval: float = 0.5,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._manager = DownloadManager(
            db_path, concurrency=concurrency, endpoint=endpoint, token=token, policy=policy,
            progress_interval=progress_interval,
        )
        self._lock = threading.Lock()
        self._pending: DownloadsSnapshot | None = None
        self._closed = False
        self._done = {j.id for j in self._manager.jobs() if j.state == JOB_DONE}
        self.snapshot: DownloadsSnapshot = self._manager.snapshot()
        self._commands = QThreadPool(self)
        self._commands.setObjectName("openlid-download-commands")
        self._commands.setMaxThreadCount(1)  # commands keep their order
        self._sig_snapshot_ready.connect(self._on_snapshot, Qt.ConnectionType.QueuedConnection)
        self._sig_refused.connect(self.sig_download_refused, Qt.ConnectionType.QueuedConnection)
        self._manager.subscribe(self._listen)

    @property
    def endpoint(self) -> str:
        return self._manager.endpoint

    def start(self) -> None:
        """Start the workers: queued jobs, and those restored from the database, begin."""
        if not self._closed:
            self._manager.start()

    # --- commands (GUI thread; run in order on the command thread) --------------------------

    def _run(self, fn: Callable[[], Any]) -> None:
        if not self._closed:
            self._commands.start(_Command(self, fn))

    def enqueue(self, repo_id: str, files: Sequence[ModelFile], dest_dir: str | Path,
                revision: str | None = None) -> None:
        """Queue the files of one model into `dest_dir` (the same unfinished download queued
        again resumes instead). A refusal arrives as `sig_download_refused`."""
        manager, files = self._manager, tuple(files)
        self._run(lambda: manager.enqueue(repo_id, files, dest_dir, revision))

    def pause(self, job_id: int) -> None:
        self._run(lambda: self._manager.pause(job_id))

    def resume(self, job_id: int) -> None:
        self._run(lambda: self._manager.resume(job_id))

    def retry(self, job_id: int) -> None:
        self._run(lambda: self._manager.retry(job_id))

    def cancel(self, job_id: int) -> None:
        self._run(lambda: self._manager.cancel(job_id))

    def remove(self, job_id: int) -> None:
        self._run(lambda: self._manager.remove(job_id))

    def refresh(self) -> None:
        """Ask for a snapshot now (the manager only sends one when something changes)."""
        manager = self._manager
        self._run(lambda: self._listen(manager.snapshot()))

    def refuse(self, message: str) -> None:
        """Command thread: report a refused command on the GUI thread."""
        self._sig_refused.emit(message)

    # --- snapshots --------------------------------------------------------------------------

    def _listen(self, snap: DownloadsSnapshot) -> None:
        """Worker or command thread: keep the newest snapshot and wake the GUI thread once."""
        with self._lock:
            wake = self._pending is None
            self._pending = snap
            if wake and not self._closed:
                self._sig_snapshot_ready.emit()

    def _on_snapshot(self) -> None:
        with self._lock:
            snap, self._pending = self._pending, None
        if snap is None or self._closed:
            return
        self.snapshot = snap
        self.sig_downloads_changed.emit(snap)
        for progress in snap.jobs:
            job = progress.job
            if job.state == JOB_DONE and job.id not in self._done:
                self._done.add(job.id)
                self.sig_download_finished.emit(model_path(job))

    # --- lifecycle --------------------------------------------------------------------------

    def wait_idle(self, msecs: int = -1) -> bool:
        """Tests only: wait until queued commands have run (blocks)."""
        return self._commands.waitForDone(msecs)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers (their `.part` files stay, jobs stay queued) and join them; blocks
        for at most about `timeout` seconds. For closeEvent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._commands.clear()
        self._commands.waitForDone(int(timeout * 1000))
        self._manager.close(timeout)
