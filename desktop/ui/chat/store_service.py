"""StoreService: the conversation database on its own named thread ("openlid-db").

Created on the GUI thread. sqlite3 ties a connection to the thread that opened it, and the GUI
thread must not wait on the disk, so one Python thread opens the `ConversationStore` and runs
every database call in order (FIFO: a later call sees what an earlier one wrote). A call is a plain
function `fn(store) -> result`; the result, or the exception, comes back through a signal queued to
this object on the GUI thread, where the callbacks run. Results should be immutable values (the
store's frozen `Conversation`/`Message`, tuples of them).

Stop order in `closeEvent`: `stop()` drops the callbacks (cancel), asks the thread to end after
the call it is running (quit), and joins it (wait).
"""

from __future__ import annotations

import itertools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core.conversations.store import ConversationStore
from desktop.core.database import DatabaseDamaged, damage_detail
from desktop.ui.job_service import deliver

log = logging.getLogger("openlid.db")

StoreCall = Callable[[ConversationStore], Any]
_STOP = object()


class StoreService(QObject):
    _sig_call_finished = Signal(int, object, object)  # call id, result, Exception | None
    sig_failed = Signal(str)  # a call without on_error failed; the message in plain words

    def __init__(self, path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable[[Any], None] | None,
                                         Callable[[Exception], None] | None]] = {}
        self._stopped = threading.Event()
        self._sig_call_finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._thread = threading.Thread(target=self._run, name="openlid-db", daemon=True)
        self._thread.start()

    def call(self, fn: StoreCall, on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[Exception], None] | None = None) -> int:
        """Run `fn(store)` on the database thread; callbacks later, on the GUI thread."""
        if self._stopped.is_set():
            return 0
        call_id = next(self._ids)
        self._callbacks[call_id] = (on_done, on_error)
        self._queue.put((call_id, fn))
        return call_id

    @property
    def pending(self) -> int:
        return len(self._callbacks)

    def _run(self) -> None:
        try:
            store: ConversationStore | None = ConversationStore(self.path)
            opened: Exception | None = None
        except Exception as exc:  # every later call reports why the database is unusable
            log.error("cannot open the conversation database %s", self.path, exc_info=True)
            store, opened = None, exc
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            call_id, fn = item
            if self._stopped.is_set():
                continue
            error: Exception | None
            try:
                if isinstance(opened, DatabaseDamaged):
                    raise self._damaged(opened.detail)
                if store is None:
                    raise RuntimeError(f"the conversation database cannot be opened: {opened}")
                result, error = fn(store), None
            except sqlite3.DatabaseError as exc:
                log.warning("database call failed", exc_info=True)
                detail = damage_detail(exc)
                result, error = None, exc if detail is None else self._damaged(detail)
            except Exception as exc:
                log.warning("database call failed", exc_info=True)
                result, error = None, exc
            if not self._stopped.is_set():
                self._sig_call_finished.emit(call_id, result, error)
        if store is not None:
            store.close()

    def _damaged(self, detail: str) -> DatabaseDamaged:
        # The file went bad after start-up, where the recovery dialog runs.
        return DatabaseDamaged(self.path, f"{detail}. Quit Openlid and start it again: it will "
                                          "keep the damaged file and offer to recover it")

    def _on_finished(self, call_id: int, result: Any, error: Exception | None) -> None:
        callbacks = self._callbacks.pop(call_id, None)
        if callbacks is None or self._stopped.is_set():
            return
        if not deliver(*callbacks, result, error):
            self.sig_failed.emit(str(error))

    def stop(self, timeout: float = 10.0) -> None:
        """cancel → quit → wait. Safe to call twice."""
        self._stopped.set()
        self._callbacks.clear()
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
