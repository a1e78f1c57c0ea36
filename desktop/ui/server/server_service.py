"""ServerService: the Qt face of `OpenlidServer` (the local OpenAI-compatible server).

Created and called on the GUI thread. The server answers either with the window's own engine
(`ServerConfig.model_path` None: the model loaded in the window, shared — requests take turns
with the chat through `WindowEngineLender`; needs the `engine` the service was made with), or with
a model of its own, loaded in a second engine process. Starting (a load, for a model of its own)
and stopping (waiting for that process and the HTTP threads to end) run on named control threads
("openlid-server-start", "openlid-server-stop"); the GUI thread never waits on them except in
`shutdown()`, which the window's `closeEvent` calls once.

`OpenlidServer` reports each token (`on_step`) and each finished request (`on_request`) on its
HTTP handler threads. Those callbacks only emit private signals connected to this object with
*queued* connections, so every public `sig_*` fires on the GUI thread, carrying the server's
frozen `RequestLogEntry` / `StepRecord` values unchanged. After `shutdown()` nothing is emitted
(a handler thread that finishes late finds the service closed).

State: "stopped" → "starting" → "running" → "stopping" → "stopped", announced by
`sig_state_changed(str)`. Stop is accepted while starting: it interrupts the model load.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.openai.requests import ApiError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.server.config import DEFAULT_MAX_REQUEST_S
from desktop.server.openlid_server import OpenlidServer, RequestLogEntry
from desktop.server.shared_engine import SharedEngine
from desktop.ui.engine_service import EngineService
from desktop.ui.server.engine_lender import WindowEngineLender

log = logging.getLogger("openlid.ui.server")

STOPPED, STARTING, RUNNING, STOPPING = "stopped", "starting", "running", "stopping"


@dataclass(frozen=True)
class ServerConfig:
    """What the panel asks the service to serve, and where."""

    model_path: Path | None  # None: the model loaded in the window, through its engine (shared)
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (the started URL says which)
    api_key: str | None = None
    load_settings: LoadSettings = field(default_factory=LoadSettings)
    sampler_defaults: SamplerSettings | None = None
    model_id: str | None = None  # the name /v1/models reports (default: the file's stem)
    allowed_origins: tuple[str, ...] = ()  # web pages that may use the server (CORS); "*": any
    allowed_hosts: tuple[str, ...] = ()  # host names besides loopback and the bind address
    max_request_seconds: float = DEFAULT_MAX_REQUEST_S  # a generation stops after this long


class _Cancelled(Exception):
    """The start was stopped before the server came up."""


def describe_failure(exc: BaseException) -> str:
    """One line for the panel: what went wrong, in the server's own words where it has them."""
    if isinstance(exc, ApiError):
        return exc.message
    text = str(exc).strip()
    if isinstance(exc, (ValueError, OSError)) and text:
        return text  # ServerConfigError, SettingsError, a missing file: already plain words
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ServerService(QObject):
    sig_server_started = Signal(str)  # base URL, e.g. http://127.0.0.1:8080/v1
    sig_server_stopped = Signal()
    sig_server_failed = Signal(str)  # why it could not start, in plain words
    sig_request_logged = Signal(object)  # RequestLogEntry, once the request is answered
    sig_request_step = Signal(int, object)  # request id, StepRecord, as each token arrives
    sig_state_changed = Signal(str)  # STOPPED / STARTING / RUNNING / STOPPING

    # control and handler threads → GUI thread; always queued (see module docstring)
    _sig_start_finished = Signal(object, str)  # OpenlidServer | None, error text
    _sig_stop_finished = Signal()
    _sig_entry_received = Signal(object)
    _sig_step_received = Signal(int, object)

    def __init__(self, parent: QObject | None = None,
                 engine: EngineService | None = None) -> None:
        """`engine`: the window's engine, which a server may share (None: only models of the
        server's own)."""
        super().__init__(parent)
        self._lender = WindowEngineLender(engine, self) if engine is not None else None
        queued = Qt.ConnectionType.QueuedConnection
        self._sig_start_finished.connect(self._on_start_finished, queued)
        self._sig_stop_finished.connect(self._on_stop_finished, queued)
        self._sig_entry_received.connect(self._on_entry, queued)
        self._sig_step_received.connect(self._on_step, queued)
        self._state = STOPPED
        self._config: ServerConfig | None = None
        self._base_url = ""
        self._server: OpenlidServer | None = None  # set by the start thread, under _lock
        self._lock = threading.Lock()
        self._closed = False  # under _lock: once set, worker threads emit nothing
        self._stop_wanted = threading.Event()
        self._threads: list[threading.Thread] = []
        self._jobs = 0  # control threads whose result the GUI thread has not handled yet

    # --- state (GUI thread) ---

    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return self._state == RUNNING

    @property
    def base_url(self) -> str:
        """The URL clients use (…/v1) while running, else ""."""
        return self._base_url if self._state == RUNNING else ""

    @property
    def config(self) -> ServerConfig | None:
        """The configuration of the server that is running or starting (or last ran)."""
        return self._config

    @property
    def can_share(self) -> bool:
        """Whether a server may answer with the window's engine (`ServerConfig(None, …)`)."""
        return self._lender is not None

    @property
    def shared(self) -> bool:
        """Whether the server that runs (or starts, or last ran) shares the window's engine."""
        return self._config is not None and self._config.model_path is None

    @property
    def model_id(self) -> str:
        server = self._server
        return server.model_id if server is not None else ""

    @property
    def model_info(self) -> ModelInfo | None:
        server = self._server
        return server.info if server is not None and self._state == RUNNING else None

    # --- commands (GUI thread) ---

    def start(self, config: ServerConfig) -> bool:
        """Start serving in the background; False when a server is already up or on its way.
        The outcome comes as `sig_server_started` or `sig_server_failed`."""
        if self._closed or self._state != STOPPED:
            return False
        self._reap()
        self._config = config
        self._stop_wanted = threading.Event()
        self._set_state(STARTING)
        self._spawn("openlid-server-start", self._start_job, config, self._stop_wanted)
        return True

    def stop(self) -> None:
        """Stop serving (or stop starting); `sig_server_stopped` follows."""
        if self._closed or self._state not in (STARTING, RUNNING):
            return
        # Set before the stop thread looks for the server: whichever of the two threads
        # comes second sees the other's work (see _start_job).
        self._stop_wanted.set()
        self._set_state(STOPPING)
        with self._lock:
            server = self._server
        self._spawn("openlid-server-stop", self._stop_job, server)

    def shutdown(self, timeout: float = 15.0) -> None:
        """For the window's closeEvent: stop the server and its threads, then go quiet. Blocks
        (bounded by `timeout` per wait) — the window is closing, nothing else is drawn."""
        with self._lock:
            self._closed = True
            server = self._server
        self._stop_wanted.set()
        if server is not None and self._state != STOPPING:  # else the stop thread is at it
            server.stop()  # also ends a load in progress (the start thread then gives up)
        for thread in list(self._threads):
            thread.join(timeout)
        with self._lock:
            server = self._server
        if server is not None and server.running:  # came up while we were stopping it
            server.stop()
        if self._lender is not None:
            self._lender.close()  # whatever a request still held goes back to the window
        self._reap()
        self._state = STOPPED

    # --- control threads ---

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        self._jobs += 1
        thread.start()

    def _reap(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]

    def _post(self, signal: Any, *args: Any) -> None:
        """Emit a private signal from a worker thread unless the service has shut down; the lock
        keeps the emit from racing `shutdown()` and the object's deletion after it."""
        with self._lock:
            if not self._closed:
                signal.emit(*args)

    def _start_job(self, config: ServerConfig, stop_wanted: threading.Event) -> None:
        server: OpenlidServer | None = None
        lender = self._lender
        try:
            if config.model_path is None and lender is None:
                raise ValueError("this window has no engine to share: choose a model to serve")
            server = OpenlidServer(
                config.model_path, config.load_settings, host=config.host, port=config.port,
                api_key=config.api_key or None, model_id=config.model_id,
                sampler_defaults=config.sampler_defaults,
                on_request=self._from_server_request, on_step=self._from_server_step,
                allowed_origins=config.allowed_origins, allowed_hosts=config.allowed_hosts,
                max_request_seconds=config.max_request_seconds,
                engine=(lambda: SharedEngine(lender)) if config.model_path is None
                and lender is not None else None,
            )
            with self._lock:
                self._server = server
            # stop() sets the flag before its thread reads self._server: if that thread found
            # no server, this check sees the flag; if it found one, its stop() ends the load.
            if stop_wanted.is_set():
                raise _Cancelled
            server.start()
            if stop_wanted.is_set():  # the stop came between the load and the listen
                server.stop()
                raise _Cancelled
        except Exception as exc:
            if not isinstance(exc, _Cancelled) and not stop_wanted.is_set():
                log.warning("server failed to start", exc_info=True)
            self._post(self._sig_start_finished, None, describe_failure(exc))
            return
        self._post(self._sig_start_finished, server, "")

    def _stop_job(self, server: OpenlidServer | None) -> None:
        try:
            if server is not None:
                server.stop()
        except Exception:  # stopping must always end in "stopped"
            log.exception("server stop failed")
        self._post(self._sig_stop_finished)

    # --- HTTP handler threads ---

    def _from_server_request(self, entry: RequestLogEntry) -> None:
        self._post(self._sig_entry_received, entry)

    def _from_server_step(self, request_id: int, record: StepRecord) -> None:
        self._post(self._sig_step_received, request_id, record)

    # --- results (GUI thread, via the queued connections) ---

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.sig_state_changed.emit(state)

    def _on_start_finished(self, server: OpenlidServer | None, error: str) -> None:
        self._jobs -= 1
        if self._state == STOPPING:
            self._finish_stopping()
            return
        if server is None:
            with self._lock:
                self._server = None
            self._set_state(STOPPED)
            self.sig_server_failed.emit(error)
            return
        self._base_url = _connect_url(server)
        self._set_state(RUNNING)
        self.sig_server_started.emit(self._base_url)

    def _on_stop_finished(self) -> None:
        self._jobs -= 1
        self._finish_stopping()

    def _finish_stopping(self) -> None:
        if self._state != STOPPING or self._jobs > 0:
            return  # the other control thread has yet to report
        with self._lock:
            self._server = None
        if self._lender is not None:
            self._lender.give_back_all()  # a request that ended with the server held a turn
        self._base_url = ""
        self._reap()
        self._set_state(STOPPED)
        self.sig_server_stopped.emit()

    def _on_entry(self, entry: RequestLogEntry) -> None:
        self.sig_request_logged.emit(entry)

    def _on_step(self, request_id: int, record: StepRecord) -> None:
        self.sig_request_step.emit(request_id, record)


def _connect_url(server: OpenlidServer) -> str:
    """The base URL a client on this machine uses: a wildcard bind is reached via loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(server.host, server.host)
    host = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{host}:{server.port}/v1"


__all__ = ["RUNNING", "STARTING", "STOPPED", "STOPPING", "ServerConfig", "ServerService"]
