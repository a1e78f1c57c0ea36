"""Uncaught exceptions: log them and show a dialog with the traceback, instead of vanishing.

`install_excepthook(app)` replaces `sys.excepthook` (exceptions in the main thread, including
those PySide6 reports from slots and timer callbacks) and `threading.excepthook` (Python
threads). The hooks run on whichever thread raised: they only log (logging is thread-safe) and
emit `_sig_report` with plain strings. That signal is connected *queued* to the reporter, which
lives on the GUI thread, so the dialog is always built there, after the failing callback has
returned (never inside a half-finished paint or slot). A burst of errors fills one dialog rather
than opening dozens.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.logs import log_file_path
from desktop.ui.window.about_dialog import open_logs_folder

log = logging.getLogger("openlid.crash")
MAX_TEXT = 200_000  # characters kept in the dialog; the log file has everything

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]
ThreadHook = Callable[[threading.ExceptHookArgs], Any]


class CrashDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("CrashDialog")
        self.setWindowTitle("Openlid: unexpected error")
        self.count = 0
        self.summary = QLabel()
        self.summary.setObjectName("crashSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QPlainTextEdit()
        self.details.setObjectName("crashDetails")
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("Copy details")
        copy.clicked.connect(self._copy)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        logs = QPushButton("Open logs folder")
        logs.clicked.connect(open_logs_folder)
        buttons.addButton(logs, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)
        self.resize(720, 460)

    def add_report(self, where: str, text: str) -> None:
        self.count += 1
        errors = "An unexpected error" if self.count == 1 else f"{self.count} unexpected errors"
        self.summary.setText(
            f"<p><b>{errors} happened in Openlid</b> ({where}).</p>"
            "<p>You can keep working; if something looks wrong, save what you need and restart "
            "Openlid. The details below were also written to the log, "
            f"<code>{log_file_path()}</code>, which helps when you report the problem.</p>"
        )
        previous = self.details.toPlainText()
        joined = f"{previous}\n{'-' * 60}\n{text}" if previous else text
        self.details.setPlainText(joined[-MAX_TEXT:])

    def text(self) -> str:
        return self.details.toPlainText()

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(f"{log_file_path()}\n\n{self.text()}")


class CrashReporter(QObject):
    """Owns the hooks and the dialog. Create it on the GUI thread (install_excepthook does)."""

    # Emitted on the GUI thread once an error is in the dialog: (where, traceback text).
    sig_exception_reported = Signal(str, str)
    _sig_report = Signal(str, str)  # from any thread; queued to _show

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.dialog: CrashDialog | None = None
        self._old_excepthook: ExceptHook | None = None
        self._old_threadhook: ThreadHook | None = None
        # Queued even from the GUI thread: the dialog opens after the failing callback returns.
        self._sig_report.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        if self._old_excepthook is not None:
            return
        self._old_excepthook = sys.excepthook
        self._old_threadhook = threading.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = self._threadhook

    def uninstall(self) -> None:
        """Put the previous hooks back (tests; and before the reporter is destroyed)."""
        if self._old_excepthook is None:
            return
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._old_excepthook
        if threading.excepthook == self._threadhook and self._old_threadhook is not None:
            threading.excepthook = self._old_threadhook
        self._old_excepthook = self._old_threadhook = None

    # --- hooks: any thread ---

    def _excepthook(
        self, kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt) and self._old_excepthook is not None:
            self._old_excepthook(kind, value, tb)  # Ctrl+C in a terminal: the usual behaviour
            return
        current = threading.current_thread()
        main = current is threading.main_thread()
        self._report("the main thread" if main else f"thread {current.name}", kind, value, tb)

    def _threadhook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return  # the default hook ignores it too: a thread may end itself that way
        where = f"thread {args.thread.name}" if args.thread is not None else "a thread"
        value = args.exc_value if args.exc_value is not None else args.exc_type()
        self._report(where, args.exc_type, value, args.exc_traceback)

    def _report(
        self, where: str, kind: type[BaseException], value: BaseException,
        tb: TracebackType | None,
    ) -> None:
        log.critical("Uncaught exception in %s", where, exc_info=(kind, value, tb))
        text = "".join(traceback.format_exception(kind, value, tb))
        try:
            self._sig_report.emit(where, text)
        except RuntimeError:
            # The reporter is gone (the app is shutting down): stderr is all that is left.
            if sys.stderr is not None:
                sys.stderr.write(text)

    # --- GUI thread ---

    def _show(self, where: str, text: str) -> None:
        if self.dialog is None:
            # No parent: a parent dialog closing (and deleting itself) would take this one along.
            self.dialog = CrashDialog()
            self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.dialog.finished.connect(self._dialog_closed)
        self.dialog.add_report(where, text)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.sig_exception_reported.emit(where, text)

    def _dialog_closed(self, _result: int) -> None:
        self.dialog = None


def install_excepthook(app: QApplication) -> CrashReporter:
    """Route uncaught exceptions (any thread) to the log and a dialog. Call on the GUI thread."""
    reporter = CrashReporter(app)
    reporter.install()
    app.aboutToQuit.connect(reporter.uninstall)
    return reporter
