"""OpenlidServer: the loaded model served over an OpenAI-compatible HTTP API, with real logprobs.

The top of the package: it owns the engine and creates the HTTP server (`http`), which sees it
only as a `ServerApp` (`app`). The engine is a `ServerEngine` (`server_engine`): by default the
server's own worker process with its own copy of the model (`served_engine`, what `openlid serve`
uses); the app passes `engine=` to serve through its own engine instead (`shared_engine`). Also
importable from here, as callers use them: `RequestLogEntry` (from `log_entry`) and
`ServerConfigError` (from `config`).

Standard library only (`http.server.ThreadingHTTPServer`), so the base install stays light.
Threads: `start()` loads the model on the caller's thread (call it off the GUI thread), then one
thread ("openlid-server") accepts connections and each connection gets its own handler thread
(see `desktop.server.http`). The engine serves one generation at a time, so requests take turns
(`ServerEngine.take_turn`: a lock for the server's own engine, a place in the app's queue for a
shared one), and beyond `max_waiting` waiting requests the server answers 429; a request that
waited `max_wait_seconds` gets a 503, and a generation stops after `max_request_seconds` (both
with Retry-After from the running generation's deadline), so no request starves the queue. Every
finished request is reported to `on_request(RequestLogEntry)` on its handler thread, with the
rendered prompt and the `StepRecord`s, so the app can show what a program sent and what the model
computed; each token also goes to `on_step(request_id, StepRecord)` as it arrives (same thread).
The app's Qt bridge must re-emit both as queued signals: they never run on the GUI thread.

Only loopback by default: binding any other address needs an API key. Web pages are kept out by
the Host and Origin checks of `access` (an `allowed_origins` list lets chosen pages in, with CORS).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.openai.requests import ApiError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.server.access import AccessPolicy
from desktop.server.config import (
    DEFAULT_MAX_REQUEST_S,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_WAIT_S,
    MIB,
    ClientGone,
    RetryLater,
    ServerConfigError,
    is_loopback,
)
from desktop.server.http import make_http_server
from desktop.server.log_entry import RequestCallback, RequestLogEntry, StepCallback
from desktop.server.served_engine import ServedEngine
from desktop.server.server_engine import POLL_S, ServerEngine

__all__ = ["OpenlidServer", "RequestLogEntry", "ServerConfigError"]

log = logging.getLogger("openlid.server")


class OpenlidServer:
    """A local OpenAI-compatible server for one model: a GGUF file it loads in its own engine,
    or (`engine=`) whatever model an engine it is given holds."""

    def __init__(
        self,
        model_path: str | Path | None,
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
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_request_seconds: float = DEFAULT_MAX_REQUEST_S,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_S,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        engine: Callable[[], ServerEngine] | None = None,
    ) -> None:
        """`engine`: makes the engine to serve with (called at each start); None: a
        `ServedEngine` of its own for `model_path` with `load_settings`. `model_id`: the name
        clients see; None: the served model file's stem (it follows a shared engine's model)."""
        if engine is None and model_path is None:
            raise ServerConfigError("choose a model file to serve")
        if not is_loopback(host) and not api_key:
            raise ServerConfigError(
                f"refusing to serve on {host}, which other machines can reach, without an API "
                "key: set one, or bind 127.0.0.1"
            )
        if not 0 <= port <= 65535:
            raise ServerConfigError("port must be between 0 and 65535")
        for name, seconds in (("the request time limit", max_request_seconds),
                              ("the queue wait limit", max_wait_seconds)):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ServerConfigError(f"{name} must be a positive number of seconds")
        if default_max_tokens < 1:
            raise ServerConfigError("the default max_tokens must be at least 1")
        self.access = AccessPolicy.make(host, allowed_origins, allowed_hosts)
        self.max_request_seconds = float(max_request_seconds)
        self.max_wait_seconds = float(max_wait_seconds)
        self.default_max_tokens = default_max_tokens
        self.model_path = Path(model_path) if model_path is not None else None
        self.host = host
        self.port = port
        self.api_key = api_key or None
        self.max_body = max_body
        self._model_id = model_id or ""
        self.sampler_defaults = (sampler_defaults or SamplerSettings()).validated()
        self.on_request = on_request
        self.on_step = on_step
        self.max_waiting = max_waiting
        self.created = int(time.time())
        self.load_settings = (load_settings or LoadSettings()).validated()
        self._make_engine = engine or self._own_engine
        self.engine = self._make_engine()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids_lock = threading.Lock()
        self._next_id = 0
        self._reported = 0
        self._waiting = 0
        self._turn_ends: float | None = None  # monotonic deadline of the running generation

    # --- lifetime ---

    def _own_engine(self) -> ServerEngine:
        assert self.model_path is not None  # checked in __init__
        return ServedEngine(self.model_path, self.load_settings)

    @property
    def info(self) -> ModelInfo | None:
        return self.engine.info

    @property
    def unavailable(self) -> str:
        """Why no model is there now, in words (the 503's message)."""
        return self.engine.unavailable()

    @property
    def model_id(self) -> str:
        """The model's name in the API: the one given, else the served file's stem."""
        if self._model_id:
            return self._model_id
        if self.model_path is not None:
            return self.model_path.stem
        return model_name(self.engine.info)

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
        if self.engine.stopping.is_set():  # stopped before: a fresh engine (process)
            self.engine = self._make_engine()
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
            target=self._httpd.serve_forever, kwargs={"poll_interval": POLL_S},
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
    def engine_turn(self, gone: Callable[[], bool] | None = None) -> Iterator[ServerEngine]:
        """Wait for the engine (bounded queue, bounded wait), hold it for one generation."""
        with self._ids_lock:
            if self._waiting >= self.max_waiting:
                raise RetryLater(
                    "Too many requests are waiting for the model; try again shortly.",
                    status=429, type_="rate_limit_error", code="server_busy",
                    retry_after=self._retry_after(),
                )
            self._waiting += 1
        give_up = time.monotonic() + self.max_wait_seconds
        engine = self.engine

        def check() -> None:
            if engine.stopping.is_set():
                raise ApiError("The server is shutting down.", status=503, type_="server_error")
            if gone is not None and gone():
                raise ClientGone("the client left while waiting for the model")
            if time.monotonic() >= give_up:
                raise RetryLater(
                    f"The model stayed busy with other requests for "
                    f"{self.max_wait_seconds:g} s; try again later.",
                    status=503, code="server_busy", retry_after=self._retry_after(),
                )

        try:
            engine.take_turn(check)
        finally:
            with self._ids_lock:
                self._waiting -= 1
        self._turn_ends = time.monotonic() + self.max_request_seconds
        try:
            yield engine
        finally:
            self._turn_ends = None
            engine.end_turn()

    def _retry_after(self) -> int:
        """Seconds until the running generation must end (its time limit), at least 1."""
        ends = self._turn_ends
        return max(1, math.ceil(ends - time.monotonic())) if ends is not None else 1

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


def model_name(info: ModelInfo | None) -> str:
    """The API name of a loaded model: its file's stem (an endpoint's id for a remote one)."""
    if info is None:
        return ""
    if info.architecture == "remote":
        return info.name or info.path
    return Path(info.path).stem
