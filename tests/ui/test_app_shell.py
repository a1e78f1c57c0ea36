"""The shell around the main window: about, first-run welcome, crash dialog, single instance."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer, QUrl
from PySide6.QtWidgets import QApplication, QWidget

from desktop import __version__
from desktop.core import paths
from desktop.core.logs import log_file_path
from desktop.core.model_info import ModelInfo
from desktop.ui.settings import AppSettings
from desktop.ui.single_instance import SingleInstance, bring_to_front, server_name
from desktop.ui.window import about_dialog
from desktop.ui.window.about_dialog import AboutDialog, backend_text, library_licences
from desktop.ui.window.crash_dialog import CrashReporter, install_excepthook
from desktop.ui.window.welcome_dialog import (
    WelcomeDialog,
    mark_shown,
    should_show,
    show_if_first_run,
)

# The offscreen platform cannot resize or raise real windows; on a desktop these calls work.
pytestmark = pytest.mark.qt_log_ignore(
    "This plugin does not support propagateSizeHints", r"This plugin does not support raise\(\)"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path))
    return tmp_path


def model_info(**changes: object) -> ModelInfo:
    values: dict[str, object] = dict(
        path="/models/gemma.gguf", architecture="gemma3", name="Gemma 3 270m", n_params=268_000_000,
        quant="Q4_K_M", size_bytes=253_000_000, n_vocab=262_144, n_ctx_train=32_768, n_ctx=4096,
        n_layer=18, backend="CUDA", gpu_offload_supported=True, n_gpu_layers_requested=-1,
        n_layers_offloaded=18, system_info="AVX2 = 1 | FMA = 1",
    )
    values.update(changes)
    return ModelInfo(**values)  # type: ignore[arg-type]


# --- about ---


def test_about_dialog_shows_versions_backend_and_licences(
    qtbot, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialog = AboutDialog(model_info())
    qtbot.addWidget(dialog)
    rows = dict(dialog.version_rows())
    assert rows["Openlid"] == __version__
    assert rows["llama-cpp-python"][0].isdigit()
    assert rows["Backend"] == "CUDA, 18 of 18 layers on the GPU"
    assert rows["Logs"] == str(paths.log_dir())

    licence = dialog.findChild(QWidget, "modelLicence")
    assert "Gemma Terms of Use" in licence.text()
    assert "ai.google.dev/gemma/terms" in licence.text()

    table = dialog.libraries_table
    names = {table.item(r, 0).text(): table.item(r, 2).text() for r in range(table.rowCount())}
    assert "llama-cpp-python" in names
    assert any(name.lower().startswith("pyside6") for name in names)
    assert "llama.cpp / ggml" in names
    assert all(names.values()), "every library names a licence"

    opened: list[QUrl] = []
    monkeypatch.setattr(about_dialog, "_open_url", lambda url: opened.append(url) or True)
    dialog.logs_button.click()
    assert [Path(u.toLocalFile()) for u in opened] == [paths.log_dir()]


def test_about_dialog_without_a_model(qtbot, home: Path) -> None:
    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    assert dict(dialog.version_rows())["Backend"] == "shown once a model is loaded"


def test_backend_text_for_a_cpu_only_build() -> None:
    info = model_info(backend="CPU", gpu_offload_supported=False, n_gpu_layers_requested=0,
                      n_layers_offloaded=0)
    assert backend_text(info) == "CPU (this build has no GPU offload)"


def test_library_list_skips_openlid_itself() -> None:
    names = [row.name.lower() for row in library_licences()]
    assert "openlid" not in names
    assert names == sorted(names)


# --- welcome ---


def test_welcome_shows_once_then_never_again(qtbot, home: Path) -> None:
    settings = AppSettings()
    assert should_show(settings)
    dialog = show_if_first_run(settings)
    assert dialog is not None
    qtbot.waitExposed(dialog)
    text = " ".join(w.text() for w in dialog.findChildren(QWidget) if hasattr(w, "text"))
    for word in ("Prompt", "Template", "Sampling", "Chart", "Hub browser"):
        assert word in text
    with qtbot.waitSignal(dialog.sig_ready_model_requested, timeout=2000):
        dialog.ready_button.click()
    assert not dialog.isVisible()
    assert not should_show(settings)
    assert show_if_first_run(AppSettings()) is None  # also after a restart (read from disk)


def test_skipping_the_welcome_counts_as_seen(qtbot, home: Path) -> None:
    settings = AppSettings()
    dialog = WelcomeDialog(settings)
    qtbot.addWidget(dialog)
    dialog.show()
    hub: list[bool] = []
    dialog.sig_hub_browser_requested.connect(lambda: hub.append(True))
    dialog.skip_button.click()
    assert hub == []
    assert not should_show(AppSettings())


def test_hub_button_asks_for_the_hub_browser(qtbot, home: Path) -> None:
    dialog = WelcomeDialog()  # without settings: nothing is recorded
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.sig_hub_browser_requested, timeout=2000):
        dialog.hub_button.click()
    assert should_show(AppSettings())
    mark_shown(AppSettings())
    assert not should_show(AppSettings())


# --- uncaught exceptions ---


@pytest.fixture
def reporter(qtbot, home: Path) -> Iterator[CrashReporter]:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    reporter = install_excepthook(app)
    yield reporter
    reporter.uninstall()
    if reporter.dialog is not None:
        reporter.dialog.close()
    reporter.deleteLater()


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_timer_callback_shows_the_dialog(
    qtbot, reporter: CrashReporter, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise ValueError("boom in a timer")

    with caplog.at_level(logging.ERROR, "openlid.crash"), \
            qtbot.waitSignal(reporter.sig_exception_reported, timeout=5000) as blocker:
        QTimer.singleShot(0, boom)
    where, text = blocker.args
    assert where == "the main thread"
    assert "ValueError: boom in a timer" in text
    dialog = reporter.dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    assert "ValueError: boom in a timer" in dialog.text()
    assert str(log_file_path()) in dialog.summary.text()
    assert any("boom in a timer" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    dialog.close()
    qtbot.waitUntil(lambda: reporter.dialog is None, timeout=2000)


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_python_thread_reaches_the_gui_thread(
    qtbot, reporter: CrashReporter
) -> None:
    shown_on: list[bool] = []
    reporter.sig_exception_reported.connect(
        lambda *_: shown_on.append(threading.current_thread() is threading.main_thread())
    )

    def work() -> None:
        raise RuntimeError("boom in a worker")

    with qtbot.waitSignal(reporter.sig_exception_reported, timeout=5000) as blocker:
        thread = threading.Thread(target=work, name="openlid-test-worker")
        thread.start()
        thread.join()
    assert blocker.args[0] == "thread openlid-test-worker"
    assert "RuntimeError: boom in a worker" in blocker.args[1]
    assert shown_on == [True]
    assert reporter.dialog is not None
    reporter.dialog.close()


@pytest.mark.qt_no_exception_capture
def test_a_burst_of_errors_fills_one_dialog(qtbot, reporter: CrashReporter) -> None:
    def boom() -> None:
        raise KeyError("again")

    for _ in range(3):
        QTimer.singleShot(0, boom)
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.count == 3,
                    timeout=5000)
    dialog = reporter.dialog
    assert dialog is not None
    assert len(QApplication.topLevelWidgets()) >= 1
    assert "3 unexpected errors" in dialog.summary.text()
    assert dialog.text().count("KeyError: 'again'") == 3
    dialog.close()


def test_uninstall_restores_the_previous_hooks(qtbot, home: Path) -> None:
    import sys

    before = (sys.excepthook, threading.excepthook)
    reporter = CrashReporter()
    reporter.install()
    assert sys.excepthook != before[0]
    reporter.uninstall()
    assert (sys.excepthook, threading.excepthook) == before


# --- single instance ---


def test_second_instance_activates_the_first(qtbot) -> None:
    name = f"openlid-test-{uuid.uuid4().hex[:12]}"
    first = SingleInstance(name)
    second = SingleInstance(name)
    try:
        assert first.start() is True
        assert first.listening
        with qtbot.waitSignal(first.sig_activation_requested, timeout=5000):
            assert second.start() is False
        assert not second.listening
    finally:
        first.close()
        second.close()
    third = SingleInstance(name)  # the first is gone: the next launch becomes the first
    try:
        assert third.start() is True
    finally:
        third.close()


def test_server_name_depends_on_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "a"))
    a = server_name()
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "b"))
    b = server_name()
    assert a != b
    assert a.startswith("openlid-")
    assert len(a) < 40


def test_bring_to_front_restores_a_minimised_window(qtbot) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    window.showMinimized()
    bring_to_front(window)
    assert window.isVisible()
    assert not window.isMinimized()


def test_the_charts_view_options_are_remembered(qtbot, home: Path) -> None:
    from desktop.ui.chart.chart_dock import ChartDock

    dock = ChartDock()
    qtbot.addWidget(dock)
    settings = AppSettings()
    dock.sig_view_options_changed.connect(
        lambda options: setattr(settings, "chart_view", options))
    dock.controls.auto_y_box.setChecked(not dock.controls.auto_y_box.isChecked())
    wanted = dock.view_options()
    assert AppSettings().chart_view == wanted  # on disk
    # A new dock at the next start gets them back (restore_panels hands it the stored ones).
    again = ChartDock()
    qtbot.addWidget(again)
    again.set_view_options(AppSettings().chart_view)
    assert again.view_options() == wanted
