"""The start-up gate for a damaged database: `resolve_database` checks Openlid's one SQLite file
before the window opens and, when it is damaged, shows `DatabaseDialog`: what happened, in
words, and Recover / Start fresh / Quit. The damaged file is kept beside the new one either way
(`desktop.core.database_repair`); after a repair the dialog says how many rows of each kind came
back and the window opens on the new file.

GUI thread. The check runs there before the window exists (it reads every page: 0.2 s for a
330 MB file, warm cache). The repair (seconds for a large file) runs on a named Python thread,
"openlid-db-repair", and its outcome comes back through a signal queued to the dialog; the
dialog cannot be closed while it runs (a half-done repair cannot be stopped safely).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import database
from desktop.core.database import DatabaseDamaged
from desktop.core.database_repair import RepairReport

log = logging.getLogger("openlid.db")


class DatabaseDialog(QDialog):
    """Accepted once the database was recovered or reset (the window may open); rejected on
    Quit. `report` holds what the repair did."""

    _sig_repair_finished = Signal(object, object)  # RepairReport | None, Exception | None

    def __init__(self, damage: DatabaseDamaged, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DatabaseDialog")
        self.setWindowTitle("Openlid's database is damaged")
        self.setModal(True)
        self.path = damage.path
        self.report: RepairReport | None = None
        self._thread: threading.Thread | None = None
        self._sig_repair_finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)

        self.message = QLabel(
            f"<p><b>Openlid's database cannot be read as it is.</b></p>"
            f"<p>{_escape(str(damage.path))}: {_escape(damage.detail)}.</p>"
            "<p>It holds your conversations, your downloads and the list of your models (the "
            "model files themselves are not in it). Nothing has been changed yet, and whatever "
            "you choose the damaged file is kept beside the new one as "
            f"<i>{_escape(damage.path.stem)}-damaged-&lt;date&gt;{_escape(damage.path.suffix)}"
            "</i>.</p>"
            "<p><b>Recover</b> copies every conversation, message and model record that can "
            "still be read into a new database. <b>Start fresh</b> begins with an empty one. "
            "<b>Quit</b> leaves everything as it is.</p>")
        self.message.setObjectName("databaseProblem")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome = QLabel()
        self.outcome.setObjectName("databaseOutcome")
        self.outcome.setTextFormat(Qt.TextFormat.PlainText)  # paths may hold '<' or '&'
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome.hide()

        self.recover_button = self._button("Recover", "recoverButton", self._recover)
        self.reset_button = self._button("Start fresh", "resetButton", self._reset)
        self.quit_button = self._button("Quit", "quitButton", self.reject)
        self.continue_button = self._button("Continue", "continueButton", self.accept)
        self.continue_button.hide()
        self.recover_button.setDefault(True)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.recover_button, self.reset_button, self.quit_button,
                       self.continue_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.outcome)
        layout.addLayout(buttons)
        self.setMinimumWidth(520)

    def _button(self, text: str, name: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        return button

    @property
    def busy(self) -> bool:
        return self._thread is not None

    # --- the repair, off the GUI thread ---

    def _recover(self) -> None:
        self._start("recover", "Recovering what can still be read…")

    def _reset(self) -> None:
        self._start("reset", "Setting the damaged file aside…")

    def _start(self, action: str, text: str) -> None:
        if self.busy:
            return
        for button in (self.recover_button, self.reset_button, self.quit_button):
            button.setEnabled(False)
        self._show_outcome(text)
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self._thread = threading.Thread(target=self._run, args=(action,),
                                        name="openlid-db-repair", daemon=True)
        self._thread.start()

    def _run(self, action: str) -> None:  # on "openlid-db-repair"
        from desktop.core import database_repair

        try:
            report = (database_repair.recover(self.path) if action == "recover"
                      else database_repair.reset(self.path))
        except (OSError, sqlite3.Error) as exc:
            log.error("could not %s the database %s", action, self.path, exc_info=True)
            self._sig_repair_finished.emit(None, exc)
            return
        log.warning("database %s: %s", action, report.summary())
        self._sig_repair_finished.emit(report, None)

    def _on_finished(self, report: RepairReport | None, error: Exception | None) -> None:
        if self._thread is not None:
            self._thread.join()  # it emitted as its last act: this returns at once
            self._thread = None
        QApplication.restoreOverrideCursor()
        if report is None:
            self._show_outcome(f"That did not work: {error}. The damaged file is still at "
                               f"{self.path}, unchanged. You can try again or quit.")
            for button in (self.recover_button, self.reset_button, self.quit_button):
                button.setEnabled(True)
            return
        self.report = report
        self._show_outcome(report.summary())
        for button in (self.recover_button, self.reset_button, self.quit_button):
            button.hide()
        self.continue_button.show()
        self.continue_button.setDefault(True)
        self.continue_button.setFocus()

    def _show_outcome(self, text: str) -> None:
        self.outcome.setText(text)
        self.outcome.show()

    # --- no closing half-way ---

    def reject(self) -> None:
        if not self.busy:
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy:
            event.ignore()
            return
        super().closeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.busy and event.key() == Qt.Key.Key_Escape:
            return
        super().keyPressEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def resolve_database(path: Path, parent: QObject | None = None) -> bool:
    """Check the database at `path`; when it is damaged, ask what to do. True when the window
    may open (healthy, missing, recovered or reset), False when the person chose Quit."""
    try:
        database.check(path)
    except DatabaseDamaged as damage:
        log.error("%s", damage)
        dialog = DatabaseDialog(damage, parent if isinstance(parent, QWidget) else None)
        try:
            return dialog.exec() == QDialog.DialogCode.Accepted
        finally:
            dialog.deleteLater()
    except (sqlite3.Error, OSError):  # not damage (permissions, a lock): the stores will say
        log.warning("could not check the database %s", path, exc_info=True)
    return True
