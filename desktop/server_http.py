"""The HTTP side of OpenlidServer: routing, limits, keys, JSON and server-sent events.

Standard library only. Each connection runs on its own handler thread (ThreadingHTTPServer);
a handler waits for the engine through `OpenlidServer.engine_turn()`, then streams chunks as the
engine's StepRecords arrive. Every failure becomes an OpenAI-style error object with the right
status, and the server keeps serving: bodies over the limit are drained (up to a bound) before
the 413 so the client can read it, and anything unexpected is a 500, never a dead server.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import json
import logging
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from desktop import __version__
from desktop.core import openai_stream as S
from desktop.core.openai_api import ApiError, ApiRequest, parse_chat_request
from desktop.core.openai_api import parse_completion_request as parse_completion
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.server import FINGERPRINT, OpenlidServer, RequestLogEntry, chat_prompt

log = logging.getLogger("openlid.server")

_LOGGED_BODY_CHARS = 64 * 1024
_DRAIN_FACTOR = 8  # an oversized body up to 8× the limit is read and dropped before the 413
_ROUTES = {
    "/v1/models": ("GET",),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
}
_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass
class _Exchange:
    """What one request did, filled in as it goes; becomes a RequestLogEntry at the end."""

    request_id: int
    method: str
    path: str
    client: str
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.perf_counter)
    status: int = 0
    body: str = ""
    prompt: str = ""
    pieces: tuple[tuple[str, bool], ...] = ()
    steps: list[StepRecord] = field(default_factory=list)
    done: GenerationDone | None = None
    stream: bool = False
    error: str = ""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: OpenlidServer, address: tuple[str, int], family: int) -> None:
        self.address_family = family
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query that can stall offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def close_connections(self) -> None:
        """End idle keep-alive connections, whose threads would otherwise wait for a timeout."""
        with self.connections_lock:
            for sock in list(self.connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def make_http_server(app: OpenlidServer, host: str, port: int) -> ThreadingHTTPServer:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _HttpServer(app, (host.strip("[]"), port), family)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the openai client reuses its connections
    server_version = f"Openlid/{__version__}"
    timeout = 60  # seconds a socket read or write may take (a stalled client frees its thread)
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (bad request line, huge headers) as JSON, not HTML."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send_json(code, ApiError(message or explain or "Bad request.", status=code,
                                           code="bad_http").to_json())

    # --- one request ---

    def _handle(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path.rstrip("/") or "/"
        ex = _Exchange(app.next_request_id(), self.command, path,
                       f"{self.client_address[0]}:{self.client_address[1]}")
        try:
            body = self._read_body()
            ex.body = body[:_LOGGED_BODY_CHARS * 4].decode("utf-8", "replace")[
                :_LOGGED_BODY_CHARS]
            self._authorize()
            self._route(ex, path, body)
        except ApiError as exc:
            self._fail(ex, exc)
        except _DISCONNECTED:
            ex.error = ex.error or "the client disconnected"
            self.close_connection = True
        except Exception as exc:
            log.exception("request %s %s failed", self.command, path)
            self._fail(ex, ApiError(f"Internal server error: {exc}", status=500,
                                    type_="server_error"))
        finally:
            app.report(_entry(ex))

    def _fail(self, ex: _Exchange, exc: ApiError) -> None:
        ex.error = exc.message
        if ex.status == 200:  # headers already went out (a stream): nothing more to say
            return
        ex.status = exc.status
        with contextlib.suppress(*_DISCONNECTED):
            self._send_json(exc.status, exc.to_json())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "identity").lower() != "identity":
            self.close_connection = True
            raise ApiError("Send the body with a Content-Length header (no chunked bodies).",
                           status=411, code="length_required")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            self.close_connection = True
            raise ApiError("Invalid Content-Length header.", code="bad_http") from None
        limit = self.server.app.max_body
        if length > limit:
            self._drain(length, limit * _DRAIN_FACTOR)
            raise ApiError(
                f"The request body is {length} bytes; this server takes at most {limit}.",
                status=413, code="request_too_large",
            )
        data = self.rfile.read(length)
        if len(data) < length:
            self.close_connection = True
            raise ApiError("The request body ended early.", code="bad_http")
        return data

    def _drain(self, length: int, bound: int) -> None:
        """Read and drop an oversized body (so the client gets to read our answer), then close."""
        self.close_connection = True
        if length > bound:
            return
        self.connection.settimeout(5)
        with contextlib.suppress(OSError):
            while length > 0:
                got = self.rfile.read(min(length, 64 * 1024))
                if not got:
                    break
                length -= len(got)

    def _authorize(self) -> None:
        key = self.server.app.api_key
        if key is None:
            return
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                status=401, code="invalid_api_key",
            )
        if not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError("Incorrect API key provided.", status=401, code="invalid_api_key")

    def _route(self, ex: _Exchange, path: str, body: bytes) -> None:
        app = self.server.app
        method = self.command
        if path.startswith("/v1/models/") and method == "GET":
            model_id = path[len("/v1/models/"):]
            if model_id != app.model_id:
                raise ApiError(f"The model '{model_id}' does not exist.", param="model",
                               status=404, code="model_not_found")
            return self._reply(ex, S.model_entry(app.model_id, app.created))
        allowed = _ROUTES.get(path)
        if allowed is None:
            raise ApiError(f"Unknown request URL: {method} {path}.", status=404,
                           code="unknown_url")
        if method not in allowed:
            raise ApiError(f"{method} is not allowed on {path}; use {', '.join(allowed)}.",
                           status=405, code="method_not_allowed")
        if path == "/v1/models":
            return self._reply(ex, S.models_list(app.model_id, app.created))
        data = _parse_json(body)
        info = app.info
        if info is None:
            raise ApiError("No model is loaded.", status=503, type_="server_error")
        if path == "/v1/chat/completions":
            request = parse_chat_request(data, max_tokens=info.n_ctx, base=app.sampler_defaults)
            ex.pieces, settings = chat_prompt(info, request)
            text_offset = 0
        else:
            request = parse_completion(data, max_tokens=info.n_ctx, base=app.sampler_defaults)
            if any(t >= info.n_vocab for t in request.prompt_tokens):
                raise ApiError(f"Token ids must be below {info.n_vocab}.", param="prompt")
            # The caller wrote the whole prompt, markup included: special tokens are parsed.
            ex.pieces = ((request.prompt, True),) if request.prompt else ()
            settings, text_offset = request.settings, len(request.prompt)
        ex.prompt = "".join(text for text, _ in ex.pieces)
        ex.stream = request.stream
        self._generate(ex, request, settings, text_offset)

    def _reply(self, ex: _Exchange, obj: dict[str, Any]) -> None:
        ex.status = 200
        self._send_json(200, obj)

    def _send_json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # --- generation ---

    def _generate(
        self, ex: _Exchange, request: ApiRequest, settings: SamplerSettings, text_offset: int
    ) -> None:
        app = self.server.app
        with app.engine_turn() as engine:
            events = engine.generate(ex.pieces, request.prompt_tokens, settings)
            with contextlib.closing(events):
                first = next(events)  # an engine error raises here, before any header
                items = itertools.chain([first], events)
                ids = _Ids(request.kind, app.model_id)
                if request.stream:
                    self._stream(ex, request, settings, items, ids, text_offset)
                else:
                    self._collect(ex, request, settings, items, ids, text_offset)

    def _take(self, ex: _Exchange, item: StepRecord) -> None:
        ex.steps.append(item)
        self.server.app.report_step(ex.request_id, item)

    def _collect(self, ex: _Exchange, request: ApiRequest, settings: SamplerSettings,
                 items: Iterator[StepRecord | GenerationDone], ids: _Ids,
                 text_offset: int) -> None:
        release = S.TextRelease(settings.stop)
        tokens: list[tuple[int, StepRecord]] = []
        for item in items:
            if isinstance(item, StepRecord):
                self._take(ex, item)
                tokens += release.feed(item)[1]
            else:
                ex.done = item
                tokens += release.finish(item)[1]
        if ex.done is None:
            raise ApiError("The engine ended without finishing.", status=500,
                           type_="server_error")
        common: dict[str, Any] = dict(
            response_id=ids.response_id, created=ids.created, model=ids.model, done=ex.done,
            tokens=tokens, logprobs=request.logprobs, top=request.top_logprobs,
            fingerprint=FINGERPRINT,
        )
        if request.kind == "chat":
            self._reply(ex, S.chat_response(**common))
        else:
            self._reply(ex, S.completion_response(**common, text_offset=text_offset))

    def _stream(self, ex: _Exchange, request: ApiRequest, settings: SamplerSettings,
                items: Iterator[StepRecord | GenerationDone], ids: _Ids,
                text_offset: int) -> None:
        chat = request.kind == "chat"
        usage = request.include_usage
        base: dict[str, Any] = dict(response_id=ids.response_id, created=ids.created,
                                    model=ids.model, fingerprint=FINGERPRINT,
                                    include_usage=usage)

        def chunk(text: str, tokens: list[tuple[int, StepRecord]] | None,
                  finish: str | None = None) -> dict[str, Any]:
            logged = tokens if request.logprobs and finish is None else None
            if chat:
                delta = {} if finish else {"content": text}
                return S.chat_chunk(**base, delta=delta, tokens=logged,
                                    top=request.top_logprobs, finish=finish)
            return S.completion_chunk(**base, text=text, tokens=logged, top=request.top_logprobs,
                                      text_offset=text_offset, finish=finish)

        self._start_stream()
        ex.status = 200
        if chat:
            self._event(S.chat_chunk(**base, delta={"role": "assistant", "content": ""},
                                     tokens=[] if request.logprobs else None))
        release = S.TextRelease(settings.stop)
        try:
            for item in items:
                if isinstance(item, StepRecord):
                    self._take(ex, item)
                    text, tokens = release.feed(item)
                else:
                    ex.done = item
                    text, tokens = release.finish(item)
                if text or tokens:
                    self._event(chunk(text, tokens))
        except ApiError as exc:  # the engine failed mid-stream: say so in the stream, as OpenAI
            ex.error = exc.message
            self._event(exc.to_json())
        if ex.done is not None:
            self._event(chunk("", None, S.finish_reason(ex.done)))
            if usage:
                obj = "chat.completion.chunk" if chat else "text_completion"
                self._event(S.usage_chunk(response_id=ids.response_id, created=ids.created,
                                          model=ids.model, obj=obj, usage=ex.done.usage,
                                          fingerprint=FINGERPRINT))
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _event(self, obj: dict[str, Any]) -> None:
        self._chunk(b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


@dataclass(frozen=True)
class _Ids:
    kind: str
    model: str
    response_id: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        prefix = "chatcmpl" if self.kind == "chat" else "cmpl"
        object.__setattr__(self, "response_id", f"{prefix}-{uuid.uuid4().hex[:24]}")
        object.__setattr__(self, "created", int(time.time()))


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(
            "We could not parse the JSON body of your request. The body must be valid JSON "
            "(https://www.json.org).", code="invalid_json",
        ) from None


def _entry(ex: _Exchange) -> RequestLogEntry:
    return RequestLogEntry(
        request_id=ex.request_id, started=ex.started, method=ex.method, path=ex.path,
        client=ex.client, status=ex.status,
        duration_ms=(time.perf_counter() - ex.clock) * 1000, body=ex.body, prompt=ex.prompt,
        prompt_pieces=ex.pieces, steps=tuple(ex.steps), done=ex.done, stream=ex.stream,
        error=ex.error,
    )


