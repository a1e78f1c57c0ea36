"""JobService: runs short blocking jobs (gguf checks, ready-model assembly, folder scans, prompt
rendering) on a small named thread pool, so the GUI thread never waits on disk or CPU work.

Created and called on the GUI thread. A job is a plain function with its arguments; it runs on a
pool thread and must not touch widgets. Its result (or the error, as text) comes back through one
internal signal connected with a *queued* connection to this object, which lives on the GUI
thread, so the callbacks run on the GUI thread. Results should be immutable (frozen dataclasses,
tuples, paths, strings).

Stop order in `closeEvent`: `cancel()` drops queued jobs and stops delivering results, then
`wait()` lets running jobs finish (a job cannot be killed mid-call; they are all short or check
`JobService.cancelled` between steps).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

log = logging.getLogger("openlid.jobs")


Callback = Callable[[Any], None]
ErrorCallback = Callable[[Exception], None]


def deliver(on_done: Callback | None, on_error: ErrorCallback | None, result: Any,
            error: Exception | None) -> bool:
    """Hand a finished call's outcome to its callback (GUI thread); False when it failed and
    there was no `on_error` to tell."""
    if error is None:
        if on_done is not None:
            on_done(result)
        return True
    if on_error is not None:
        on_error(error)
        return True
    return False


class _Job(QRunnable):
    def __init__(self, owner: JobService, job_id: int, fn: Callable[..., Any],
                 args: tuple[Any, ...]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._owner, self._id, self._fn, self._args = owner, job_id, fn, args

    def run(self) -> None:
        if self._owner.cancelled.is_set():
            return
        try:
            result: Any = self._fn(*self._args)
            error: Exception | None = None
        except Exception as exc:  # reported to the caller on the GUI thread, never swallowed
            log.warning("job failed", exc_info=True)
            result, error = None, exc
        self._owner.finish(self._id, result, error)


class JobService(QObject):
    """A named QThreadPool with results delivered on the GUI thread."""

    _sig_job_finished = Signal(int, object, object)  # job id, result, Exception | None (queued)
    sig_busy_changed = Signal(bool)

    def __init__(self, name: str = "openlid-jobs", max_threads: int = 2,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cancelled = threading.Event()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._pool.setObjectName(name)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callback | None, ErrorCallback | None]] = {}
        self._lock = threading.Lock()  # finish() runs on pool threads while the GUI may cancel
        self._sig_job_finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Callback | None = None,
               on_error: ErrorCallback | None = None) -> int:
        """Run `fn(*args)` on a pool thread; call `on_done(result)` or `on_error(exc)` later on
        the GUI thread. Returns the job id (for `forget`)."""
        if self.cancelled.is_set():
            return 0
        job_id = next(self._ids)
        was_idle = not self._callbacks
        self._callbacks[job_id] = (on_done, on_error)
        self._pool.start(_Job(self, job_id, fn, args))
        if was_idle:
            self.sig_busy_changed.emit(True)
        return job_id

    def forget(self, job_id: int) -> None:
        """Drop the callbacks of a job whose answer is no longer wanted."""
        if self._callbacks.pop(job_id, None) is not None and not self._callbacks:
            self.sig_busy_changed.emit(False)

    @property
    def pending(self) -> int:
        return len(self._callbacks)

    def finish(self, job_id: int, result: Any, error: Exception | None) -> None:
        """Called on the pool thread; hands the outcome to the GUI thread."""
        with self._lock:
            if not self.cancelled.is_set():
                self._sig_job_finished.emit(job_id, result, error)

    def _on_finished(self, job_id: int, result: Any, error: Exception | None) -> None:
        callbacks = self._callbacks.pop(job_id, None)
        if not self._callbacks and callbacks is not None:
            self.sig_busy_changed.emit(False)
        if callbacks is None or self.cancelled.is_set():
            return
        deliver(*callbacks, result, error)

    def wait_idle(self, msecs: int = -1) -> bool:
        """Tests only: wait until no job runs (blocks; never call from the app's GUI code)."""
        return self._pool.waitForDone(msecs)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
        self._pool.clear()
        self._callbacks.clear()

    def wait(self, msecs: int = 10_000) -> bool:
        return self._pool.waitForDone(msecs)

    def stop(self) -> None:
        """cancel → wait: for closeEvent."""
        self.cancel()
        self.wait()

    @property
    def active_threads(self) -> int:
        return self._pool.activeThreadCount()
