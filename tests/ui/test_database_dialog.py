"""The damaged-database dialog, driven offscreen: it says what happened, Recover / Start fresh
keep the damaged file and let the window open on a new one, Quit changes nothing; the start-up
gate in `run_app` (a real process) and the database thread's words when the file goes bad."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QPushButton

from desktop.core import database, database_repair
from desktop.core.conversations.store import ConversationStore
from desktop.core.database import DatabaseDamaged
from desktop.ui.chat.store_service import StoreService
from desktop.ui.database_dialog import DatabaseDialog, resolve_database
from tests import dbfaults
from tests.dbfaults import CONVERSATIONS, MARK, MESSAGES_EACH

pytestmark = pytest.mark.usefixtures("no_dangling")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = dbfaults.populate(tmp_path / "data" / "openlid.sqlite3")
    dbfaults.break_page(path, MARK.format(c=3, m=2) + " ")
    return path


def _damage(path: Path) -> DatabaseDamaged:
    with pytest.raises(DatabaseDamaged) as caught:
        database.check(path)
    return caught.value


def _kept(path: Path) -> list[Path]:
    return sorted(path.parent.glob("openlid-damaged-*.sqlite3"))


def _dialog(qtbot: Any, path: Path) -> DatabaseDialog:
    dialog = DatabaseDialog(_damage(path))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_the_dialog_says_what_happened(qtbot: Any, db: Path) -> None:
    dialog = _dialog(qtbot, db)
    text = dialog.message.text()
    assert str(db) in text
    assert "broken pages" in text
    assert "kept" in text
    assert "openlid-damaged-" in text
    names = [b.text() for b in (dialog.recover_button, dialog.reset_button, dialog.quit_button)]
    assert names == ["Recover", "Start fresh", "Quit"]
    assert all(b.isVisible() for b in (dialog.recover_button, dialog.reset_button,
                                       dialog.quit_button))
    assert not dialog.continue_button.isVisible()


def test_recover_keeps_the_file_and_reports_what_came_back(qtbot: Any, db: Path) -> None:
    before = dbfaults.digest(db)
    dialog = _dialog(qtbot, db)
    qtbot.mouseClick(dialog.recover_button, qtbot_button())
    assert dialog.busy
    assert not dialog.quit_button.isEnabled()
    dialog.reject()  # refused while the repair runs
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.continue_button.isVisible(), timeout=20_000)
    (kept,) = _kept(db)
    assert dbfaults.digest(kept) == before
    outcome = dialog.outcome.text()
    assert str(kept) in outcome
    assert f"{CONVERSATIONS} conversations" in outcome
    assert f"of {CONVERSATIONS * MESSAGES_EACH:,} messages" in outcome
    assert dialog.report is not None
    qtbot.mouseClick(dialog.continue_button, qtbot_button())
    assert dialog.result() == QDialog.DialogCode.Accepted
    database.check(db)
    with ConversationStore(db) as store:
        assert len(store.list_conversations()) == CONVERSATIONS


def test_start_fresh_keeps_the_file_and_empties_the_database(qtbot: Any, db: Path) -> None:
    before = dbfaults.digest(db)
    dialog = _dialog(qtbot, db)
    qtbot.mouseClick(dialog.reset_button, qtbot_button())
    qtbot.waitUntil(lambda: dialog.continue_button.isVisible(), timeout=20_000)
    (kept,) = _kept(db)
    assert dbfaults.digest(kept) == before
    assert "A new, empty database" in dialog.outcome.text()
    dialog.continue_button.click()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert set(database_repair.count_rows(db).values()) == {0}


def test_a_failed_repair_says_so_and_offers_the_choice_again(
        qtbot: Any, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = dbfaults.digest(db)

    def refuse(path: Path) -> None:
        raise PermissionError(f"cannot write to {path.parent}")

    monkeypatch.setattr(database_repair, "recover", refuse)
    dialog = _dialog(qtbot, db)
    dialog.recover_button.click()
    qtbot.waitUntil(lambda: dialog.recover_button.isEnabled(), timeout=20_000)
    assert "That did not work: cannot write to" in dialog.outcome.text()
    assert "unchanged" in dialog.outcome.text()
    assert dialog.quit_button.isEnabled()
    assert not dialog.continue_button.isVisible()
    dialog.quit_button.click()
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert dbfaults.digest(db) == before
    assert _kept(db) == []


def test_resolve_database_quit_changes_nothing(qtbot: Any, db: Path) -> None:
    before = dbfaults.digest(db)
    seen: list[str] = []

    def press_quit() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, DatabaseDialog)
        seen.append(dialog.message.text())
        dialog.findChild(QPushButton, "quitButton").click()

    QTimer.singleShot(0, press_quit)
    assert resolve_database(db) is False
    assert seen
    assert "broken pages" in seen[0]
    assert dbfaults.digest(db) == before
    assert _kept(db) == []


def test_resolve_database_recover_then_continue_opens_the_window(qtbot: Any, db: Path) -> None:
    def press() -> None:  # Recover, then Continue once the report is shown
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, DatabaseDialog):
            QTimer.singleShot(20, press)
        elif dialog.continue_button.isVisible():
            dialog.continue_button.click()
        else:
            if dialog.recover_button.isEnabled():
                dialog.recover_button.click()
            QTimer.singleShot(20, press)

    QTimer.singleShot(0, press)
    assert resolve_database(db) is True
    assert len(_kept(db)) == 1
    database.check(db)


def test_resolve_database_lets_a_healthy_or_missing_file_through(tmp_path: Path) -> None:
    path = dbfaults.populate(tmp_path / "openlid.sqlite3")
    assert resolve_database(path) is True
    assert resolve_database(tmp_path / "missing.sqlite3") is True


def test_the_database_thread_puts_damage_into_words(qtbot: Any, db: Path,
                                                    tmp_path: Path) -> None:
    # Damaged before it opens (and not yet checked by this process): every call says so.
    database.forget(db)
    service = StoreService(db)
    errors: list[Exception] = []
    service.call(lambda store: store.list_conversations(), on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    service.stop()
    assert isinstance(errors[0], DatabaseDamaged)
    assert "broken pages" in str(errors[0])
    assert "start it again" in str(errors[0])

    # Damaged after this process checked it: the call that meets the broken page says so.
    later = dbfaults.populate(tmp_path / "later" / "openlid.sqlite3")
    ConversationStore(later).close()  # checked by this process now
    dbfaults.break_page(later, MARK.format(c=5, m=4) + " ")
    service = StoreService(later)
    errors.clear()
    service.call(lambda store: [store.messages(c.id) for c in store.list_conversations()],
                 on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    service.stop()
    assert isinstance(errors[0], DatabaseDamaged), errors[0]
    assert "database disk image is malformed" in str(errors[0])


def qtbot_button() -> Any:
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


_GATE = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QPushButton
    from desktop.ui.app import run_app
    from desktop.ui.database_dialog import DatabaseDialog

    app = QApplication(sys.argv[:1])
    def press():
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, DatabaseDialog):
            print("DIALOG:", dialog.message.text().replace("\\n", " "), flush=True)
            dialog.findChild(QPushButton, "quitButton").click()
        else:
            QTimer.singleShot(20, press)
    QTimer.singleShot(0, press)
    sys.exit(run_app([]))
""")


def test_run_app_asks_before_the_window_opens_and_quit_exits(db: Path, tmp_path: Path) -> None:
    home = db.parent.parent
    before = dbfaults.digest(db)
    env = {**os.environ, "OPENLID_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", _GATE], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert out.returncode == 1, out.stderr
    assert "DIALOG:" in out.stdout
    assert "broken pages" in out.stdout
    assert "Traceback" not in out.stderr
    assert dbfaults.digest(db) == before
    assert _kept(db) == []
