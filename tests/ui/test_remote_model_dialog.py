"""RemoteModelDialog driven offscreen: fields, validation in words, "Fetch models" and "Test
connection" against a real llama-cpp-python server on loopback, and the entry it stores."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLineEdit
from pytestqt.qtbot import QtBot

from desktop.remote import entries
from desktop.remote.client import RemoteModel
from desktop.ui.library.remote_model_dialog import RemoteModelDialog
from tests.server.test_remote_engine import llama_server
from tests.threads import TEST_THREADS

__all__ = ["llama_server"]  # the module fixture, shared with tests/server

pytestmark = [
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
    pytest.mark.usefixtures("no_dangling", "home"),
]
KEY = "sk-dialog-secret-42"


@pytest.fixture(scope="module")
def gemma_path(gemma_models_dir: Path) -> Path:
    """Module-scoped here, because the llama_server fixture (module scope) needs it."""
    from desktop.core.ready_model import ready_model_path

    return ready_model_path(gemma_models_dir)


@pytest.fixture
def dialog(qtbot: QtBot) -> RemoteModelDialog:
    dialog = RemoteModelDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def status_says(dialog: RemoteModelDialog, words: str) -> bool:
    return words in dialog.status.text()


def test_fields_and_validation_messages(qtbot: QtBot, dialog: RemoteModelDialog) -> None:
    assert dialog.windowTitle() == "Add remote model"
    assert dialog.url_edit.text() == "http://127.0.0.1:8080/v1"
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Password
    assert dialog.model_combo.isEditable()
    assert dialog.extras_box.isChecked()

    dialog.url_edit.setText("gpu-box:8080")
    dialog.model_combo.setEditText("llama")
    dialog.accept()
    assert dialog.isVisible()  # refused, with the reason
    assert status_says(dialog, "is not an http(s) URL")
    assert dialog.status.property("error") is True

    dialog.url_edit.setText("http://gpu-box:8080/v1/")
    dialog.model_combo.setEditText("  ")
    dialog.test_connection()
    assert status_says(dialog, "The remote model needs a model name.")
    assert entries.list_entries() == []

    dialog.model_combo.setEditText("llama")
    dialog.key_edit.setText(KEY)
    dialog.name_edit.setText("Big llama")
    dialog.extras_box.setChecked(False)
    dialog.accept()
    assert not dialog.isVisible()
    assert dialog.entry is not None
    stored = entries.resolve(dialog.entry.path)
    assert stored == RemoteModel("http://gpu-box:8080/v1", "llama", KEY, "Big llama", False)
    assert KEY not in dialog.status.text()


def test_fetch_models_and_test_connection_against_a_real_server(
    qtbot: QtBot, dialog: RemoteModelDialog, llama_server: str
) -> None:
    dialog.url_edit.setText(llama_server)
    dialog.fetch_models()
    assert not dialog.fetch_button.isEnabled()  # one request at a time
    qtbot.waitUntil(lambda: dialog.fetch_button.isEnabled(), timeout=15_000)
    assert status_says(dialog, "The endpoint serves 1 model.")
    served = dialog.model_combo.itemText(0)
    assert dialog.model_combo.count() == 1
    assert dialog.model_combo.currentText() == served

    dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=15_000)
    assert status_says(dialog, f"Connected: {llama_server} serves '{served}'.")

    dialog.model_combo.setEditText("not-served")
    dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=15_000)
    assert status_says(dialog, "serves no model named 'not-served'")
    assert dialog.status.property("error") is True


def test_an_unreachable_endpoint_is_reported(qtbot: QtBot, dialog: RemoteModelDialog) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dialog.url_edit.setText(f"http://127.0.0.1:{port}/v1")
    dialog.key_edit.setText(KEY)
    dialog.fetch_models()
    qtbot.waitUntil(lambda: dialog.fetch_button.isEnabled(), timeout=15_000)
    assert status_says(dialog, f"Cannot reach http://127.0.0.1:{port}/v1")
    assert KEY not in dialog.status.text()


def test_ask_returns_the_stored_entry_or_none(qtbot: QtBot) -> None:
    def fill_and_save() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, RemoteModelDialog)
        dialog.url_edit.setText("http://127.0.0.1:8000/v1")
        dialog.model_combo.setEditText("qwen")
        dialog.accept()

    QTimer.singleShot(0, fill_and_save)
    entry = RemoteModelDialog.ask(None)
    assert entry is not None
    assert entry.display_name == "qwen"
    assert entry.details == "qwen at http://127.0.0.1:8000/v1"
    assert [e.path for e in entries.list_entries()] == [entry.path]

    def edit_and_save() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, RemoteModelDialog)
        assert dialog.windowTitle() == "Edit remote model"
        assert dialog.model_combo.currentText() == "qwen"
        dialog.name_edit.setText("Qwen on the box")
        dialog.accept()

    QTimer.singleShot(0, edit_and_save)
    edited = RemoteModelDialog.ask(None, entry)
    assert edited is not None
    assert edited.path == entry.path
    assert edited.display_name == "Qwen on the box"

    def cancel() -> None:
        dialog = QApplication.activeModalWidget()
        assert dialog is not None
        dialog.close()

    QTimer.singleShot(0, cancel)
    assert RemoteModelDialog.ask(None) is None
    assert len(entries.list_entries()) == 1


@pytest.mark.engine
def test_the_main_window_loads_a_remote_entry_and_the_chart_says_what_it_shows(
    qtbot: QtBot, llama_server: str, gemma_models_dir: Path
) -> None:
    from desktop.core.model_info import LoadSettings
    from desktop.core.sampling import SamplerSettings
    from desktop.remote.client import STAGES_NOTE, RemoteEngine
    from desktop.ui.settings import AppSettings
    from desktop.ui.window.main_window import MainWindow
    from desktop.ui.window.wiring import REMOTE_REPLAY_NOTE

    served = RemoteEngine(RemoteModel(llama_server, "?")).list_models()[0]
    entry = entries.add(RemoteModel(llama_server, served, name="Gemma on loopback"))
    settings = AppSettings()
    settings.load_settings = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
    settings.sampler_settings = SamplerSettings(temperature=0.0, max_tokens=3)
    w = MainWindow(settings, models_dir=gemma_models_dir)
    qtbot.addWidget(w)
    w.show()
    try:
        w.start(entry.path)
        qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading,
                        timeout=60_000)
        assert w.models.info is not None
        assert w.models.info.backend == f"remote: {llama_server}"
        # Named as in the library (ModelInfo.name is the endpoint's id), once the scan lists it.
        qtbot.waitUntil(lambda: "Gemma on loopback" in w.status.model_label.text(),
                        timeout=10_000)
        chart = w.chart_dock
        assert chart.stages_note.text() == STAGES_NOTE
        assert chart.inspector.replay_note == REMOTE_REPLAY_NOTE

        w.completion_view.sig_generate_requested.emit("The capital of France is")
        qtbot.waitUntil(lambda: w.wiring.completion_id is None and chart.latest is not None,
                        timeout=60_000)
        assert chart.latest is not None
        assert [s.name for s in chart.latest.stages] == ["raw"]
        qtbot.waitUntil(lambda: chart.stage_box.count() == 1, timeout=5_000)
    finally:
        w.close()
