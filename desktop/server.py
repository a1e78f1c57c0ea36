"""OpenlidServer: the loaded model served over an OpenAI-compatible HTTP API, with real logprobs.

Standard library only (`http.server.ThreadingHTTPServer`), so the base install stays light.
Threads: `start()` loads the model on the caller's thread (call it off the GUI thread), then one
thread ("openlid-server") accepts connections and each connection gets its own handler thread
(see `server_http`). The engine is one worker process (a dedicated `EngineHost`) that serves one
generation at a time, so generations are serialised by a lock: requests wait their turn, and
beyond `max_waiting` waiting requests the server answers 429. Every finished request is reported
to `on_request(RequestLogEntry)` on its handler thread, with the rendered prompt and the
`StepRecord`s, so the app can show what a program sent and what the model computed; each token
also goes to `on_step(request_id, StepRecord)` as it arrives (same thread). The app's Qt bridge
must re-emit both as queued signals: they never run on the GUI thread.

Only loopback by default: binding any other address needs an API key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from desktop import __version__
from desktop.core import paths
from desktop.core.loading import LoadSettings, ModelInfo
from desktop.core.openai_api import ApiError, ApiRequest
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

log = logging.getLogger("openlid.server")

MIB = 1024 * 1024
FINGERPRINT = f"openlid-{__version__}"
_EVENT_TIMEOUT_S = 300.0  # longest silence from the engine before a request gives up
_DRAIN_TIMEOUT_S = 30.0
_POLL_S = 0.25  # how often waiting threads look at the stop flag


class ServerConfigError(ValueError):
    """The server cannot start as configured (bad bind address, no key, model failed to load)."""


@dataclass(frozen=True)
class RequestLogEntry:
    """One request the server answered, for the app's request log."""

    request_id: int
    started: float  # time.time() when the request arrived
    method: str
    path: str
    client: str  # "address:port" of the caller
    status: int
    duration_ms: float
    body: str = ""  # the request body as received (cut at 64 KiB), "" for GET
    prompt: str = ""  # the exact prompt text sent to the engine ("" when none was)
    prompt_pieces: tuple[tuple[str, bool], ...] = ()  # (text, trusted) as the engine got them
    steps: tuple[StepRecord, ...] = ()  # one per generated token, every stage included
    done: GenerationDone | None = None
    stream: bool = False
    error: str = ""  # the error message sent back, if any


RequestCallback = Callable[[RequestLogEntry], None]
StepCallback = Callable[[int, StepRecord], None]


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


class _Engine:
    """The server's own EngineHost: loads the model, runs one generation at a time."""

    def __init__(self, model_path: Path, load_settings: LoadSettings) -> None:
        self.model_path = model_path
        self.load_settings = load_settings.validated()
        self.host = EngineHost(log_dir=paths.log_dir())
        self.info: ModelInfo | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def load(self) -> ModelInfo:
        self._drop_stale_events()
        request_id = self.host.load(self.model_path, self.load_settings)
        for event in self._events(request_id):
            if isinstance(event, P.Loaded):
                self.info = event.info
                return event.info
            raise ServerConfigError(_failure_text(event))
        raise ServerConfigError("the engine did not answer")

    def _drop_stale_events(self) -> None:
        """Forget events nobody waited for (a crash while idle would otherwise end the next
        request); safe because only the lock holder reads the queue."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.host.events.get_nowait()

    def _events(self, request_id: int, timeout: float = _EVENT_TIMEOUT_S) -> Iterator[Any]:
        """This request's events until its final one (like EngineHost.wait, but stoppable)."""
        idle_since = time.monotonic()
        while True:
            if self.stopping.is_set():
                raise ApiError("The server is shutting down.", status=503, type_="server_error")
            try:
                event = self.host.events.get(timeout=_POLL_S)
            except queue.Empty:
                if time.monotonic() - idle_since > timeout:
                    raise ApiError(
                        "The engine stopped answering.", status=500, type_="server_error"
                    ) from None
                continue
            idle_since = time.monotonic()
            if isinstance(event, P.Crashed):
                yield event
                return
            if event.request_id != request_id:
                continue  # a stale event of a request that was given up on
            yield event
            if not isinstance(event, P.Step):
                return

    def generate(
        self,
        pieces: P.PromptPieces,
        prompt_tokens: tuple[int, ...],
        settings: SamplerSettings,
    ) -> Generator[StepRecord | GenerationDone, None, None]:
        """Yield StepRecords, then GenerationDone; raise ApiError for engine failures.

        Call with the lock held. If the consumer stops early (client gone), the generation is
        cancelled and its remaining events drained, so the next request starts clean.
        """
        self._drop_stale_events()
        if not self.host.alive or self.info is None:
            log.warning("engine not running; loading %s again", self.model_path)
            try:
                self.load()
            except ServerConfigError as exc:
                raise ApiError(str(exc), status=500, type_="server_error") from exc
        request_id = self.host.generate(pieces, settings, prompt_tokens=prompt_tokens)
        finished = False
        try:
            for event in self._events(request_id):
                if isinstance(event, P.Step):
                    yield event.record
                elif isinstance(event, P.Done):
                    finished = True
                    yield event.result
                else:
                    finished = True
                    raise _engine_error(event)
        finally:
            if not finished:
                self._cancel(request_id)

    def _cancel(self, request_id: int) -> None:
        if not self.host.alive:
            return
        self.host.cancel()
        with contextlib.suppress(ApiError):
            for _event in self._events(request_id, timeout=_DRAIN_TIMEOUT_S):
                pass

    def shutdown(self) -> None:
        self.stopping.set()
        self.host.shutdown()


def chat_prompt(info: ModelInfo, request: ApiRequest) -> tuple[P.PromptPieces, SamplerSettings]:
    """Render a chat request through the model's template: the engine's prompt pieces, and the
    request's settings with the template's own stop strings added."""
    from desktop.core.prompt import TemplateError, choose_template, render_prompt

    template = choose_template(info.chat_templates, info.architecture, info.name)
    messages = [{"role": role, "content": text} for role, text in request.messages]
    try:
        rendered = render_prompt(
            template, messages,
            bos_token=info.bos.text if info.bos else None,
            eos_token=info.eos.text if info.eos else None,
        )
    except TemplateError as exc:
        raise ApiError(
            f"The model's chat template ({template.name}) cannot lay out these messages: {exc}",
            param="messages", code="template_error",
        ) from exc
    stops = tuple(dict.fromkeys(request.settings.stop + template.stop))
    pieces = tuple((segment.text, segment.trusted) for segment in rendered.segments)
    return pieces, request.settings.replace(stop=stops)


def _failure_text(event: Any) -> str:
    if isinstance(event, P.EngineError):
        return event.message
    if isinstance(event, P.Crashed):
        line = f" ({event.telling_line})" if event.telling_line else ""
        return f"{event.reason}{line}"
    return f"unexpected engine event {type(event).__name__}"


def _engine_error(event: Any) -> ApiError:
    if isinstance(event, P.EngineError) and event.kind == "context_overflow":
        return ApiError(event.message, param="messages", code="context_length_exceeded")
    if isinstance(event, P.EngineError) and event.kind == "bad_request":
        return ApiError(event.message)
    return ApiError(_failure_text(event), status=500, type_="server_error")


class OpenlidServer:
    """A local OpenAI-compatible server for one GGUF model."""

    def __init__(
        self,
        model_path: str | Path,
        load_settings: LoadSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        max_body: int = MIB,
        *,
        model_id: str | None = None,
        sampler_defaults: SamplerSettings | None = None,
        on_request: RequestCallback | None = None,
        on_step: StepCallback | None = None,
        max_waiting: int = 8,
    ) -> None:
        if not is_loopback(host) and not api_key:
            raise ServerConfigError(
                f"refusing to serve on {host}, which other machines can reach, without an API "
                "key: set one, or bind 127.0.0.1"
            )
        if not 0 <= port <= 65535:
            raise ServerConfigError("port must be between 0 and 65535")
        self.model_path = Path(model_path)
        self.host = host
        self.port = port
        self.api_key = api_key or None
        self.max_body = max_body
        self.model_id = model_id or self.model_path.stem
        self.sampler_defaults = (sampler_defaults or SamplerSettings()).validated()
        self.on_request = on_request
        self.on_step = on_step
        self.max_waiting = max_waiting
        self.created = int(time.time())
        self.load_settings = (load_settings or LoadSettings()).validated()
        self.engine = _Engine(self.model_path, self.load_settings)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids_lock = threading.Lock()
        self._next_id = 0
        self._reported = 0
        self._waiting = 0

    # --- lifetime ---

    @property
    def info(self) -> ModelInfo | None:
        return self.engine.info

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:8080 (clients want `base_url`, which adds /v1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Load the model (blocking: call it off the GUI thread), then start serving."""
        if self.running:
            return
        from desktop.server_http import make_http_server

        if self.engine.stopping.is_set():  # stopped before: a fresh engine process
            self.engine = _Engine(self.model_path, self.load_settings)
        try:
            self.engine.load()
        except BaseException:
            self.engine.shutdown()
            raise
        try:
            self._httpd = make_http_server(self, self.host, self.port)
        except OSError as exc:
            self.engine.shutdown()
            raise ServerConfigError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": _POLL_S},
            name="openlid-server", daemon=True,
        )
        self._thread.start()
        log.info("serving %s at %s", self.model_id, self.base_url)

    def stop(self) -> None:
        """Stop accepting, end running requests, stop the engine. Safe to call twice."""
        httpd, self._httpd = self._httpd, None
        self.engine.shutdown()  # waiting and generating handlers see the stop flag
        if httpd is not None:
            httpd.shutdown()
            close_connections = getattr(httpd, "close_connections", None)
            if close_connections is not None:
                close_connections()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenlidServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- used by the handler threads ---

    def next_request_id(self) -> int:
        with self._ids_lock:
            self._next_id += 1
            return self._next_id

    @contextlib.contextmanager
    def engine_turn(self) -> Iterator[_Engine]:
        """Wait for the engine (bounded queue), hold it for one generation."""
        with self._ids_lock:
            if self._waiting >= self.max_waiting:
                raise ApiError(
                    "Too many requests are waiting for the model; try again shortly.",
                    status=429, type_="rate_limit_error", code="server_busy",
                )
            self._waiting += 1
        try:
            while not self.engine.lock.acquire(timeout=_POLL_S):
                if self.engine.stopping.is_set():
                    raise ApiError("The server is shutting down.", status=503,
                                   type_="server_error")
        finally:
            with self._ids_lock:
                self._waiting -= 1
        try:
            yield self.engine
        finally:
            self.engine.lock.release()

    @property
    def in_flight(self) -> int:
        """Requests received and not yet reported to `on_request`."""
        with self._ids_lock:
            return self._next_id - self._reported

    def report(self, entry: RequestLogEntry) -> None:
        with self._ids_lock:
            self._reported += 1
        if self.on_request is None:
            return
        try:
            self.on_request(entry)
        except Exception:  # a broken listener must not break serving
            log.exception("request log callback failed")

    def report_step(self, request_id: int, record: StepRecord) -> None:
        if self.on_step is None:
            return
        try:
            self.on_step(request_id, record)
        except Exception:
            log.exception("step callback failed")
