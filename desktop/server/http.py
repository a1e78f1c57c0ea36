"""The HTTP side of the server: `make_http_server` (routing, limits, keys, JSON and server-sent
events) for any `ServerApp`, in practice an `OpenlidServer`.

Standard library only. Each connection runs on its own handler thread (ThreadingHTTPServer);
a generation request, once routed and checked, is answered by `desktop.server.generation` on
that same thread (it waits for the engine, then streams chunks as the StepRecords arrive). Every
failure becomes an OpenAI-style error object with the right status, and the server keeps
serving: bodies over the limit are drained (up to a bound) before the 413 so the client can read
it, and anything unexpected is a 500, never a dead server.

Before anything else a request must pass `ServerApp.access` (see `desktop.server.access`): a
Host header that does not name this server (DNS rebinding) or a browser Origin that is neither
the server's own nor on the allow-list gets a 403, and the JSON endpoints take only
`Content-Type: application/json` (415 otherwise: a form or text/plain body is what a web page can
send cross-site without asking first). Listed origins get CORS headers on every answer and their
preflight OPTIONS answered; no one else ever gets CORS headers.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import select
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from desktop import __version__
from desktop.core.openai import responses as S
from desktop.core.openai.requests import ApiError, parse_chat_request
from desktop.core.openai.requests import parse_completion_request as parse_completion
from desktop.server.app import ServerApp
from desktop.server.config import ClientGone, RetryLater
from desktop.server.generation import Exchange, GenerationReply, chat_prompt

__all__ = ["make_http_server"]

log = logging.getLogger("openlid.server")

_LOGGED_BODY_CHARS = 64 * 1024
_DRAIN_FACTOR = 8  # an oversized body up to 8× the limit is read and dropped before the 413
_ROUTES = {
    "/v1/models": ("GET",),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
}
_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
_JSON_TYPE = "application/json"
_PREFLIGHT_MAX_AGE_S = 600
# Access-Control-Request-Headers is echoed back only when it is a plain list of header names.
_HEADER_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: ServerApp, address: tuple[str, int], family: int) -> None:
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


def make_http_server(app: ServerApp, host: str, port: int) -> ThreadingHTTPServer:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _HttpServer(app, (host.strip("[]"), port), family)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the openai client reuses its connections
    server_version = f"Openlid/{__version__}"
    timeout = 60  # seconds a socket read or write may take (a stalled client frees its thread)
    server: _HttpServer
    _cors: str | None = None  # Access-Control-Allow-Origin for this request (a listed origin)

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def end_headers(self) -> None:
        # Every answer to a listed origin carries CORS headers (errors and streams too), so the
        # page can read why it was refused; `_cors` is set per request in `_check_access`.
        cors = self._cors
        if cors is not None:
            self.send_header("Access-Control-Allow-Origin", cors)
            self.send_header("Access-Control-Expose-Headers", "Retry-After")
            self.send_header("Vary", "Origin")
        super().end_headers()

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
        ex = Exchange(app.next_request_id(), self.command, path,
                       f"{self.client_address[0]}:{self.client_address[1]}")
        self._cors = None
        try:
            body = self._read_body()
            ex.body = body[:_LOGGED_BODY_CHARS * 4].decode("utf-8", "replace")[
                :_LOGGED_BODY_CHARS]
            self._check_access()
            if self.command == "OPTIONS" and self._cors is not None \
                    and self.headers.get("Access-Control-Request-Method"):
                return self._preflight(ex)
            self._authorize()
            self._route(ex, path, body)
        except ApiError as exc:
            self._fail(ex, exc)
        except _DISCONNECTED as exc:
            said = str(exc) if isinstance(exc, ClientGone) else ""
            ex.error = ex.error or said or "the client disconnected"
            self.close_connection = True
        except Exception as exc:
            log.exception("request %s %s failed", self.command, path)
            self._fail(ex, ApiError(f"Internal server error: {exc}", status=500,
                                    type_="server_error"))
        finally:
            self._cors = None  # the stdlib's own errors on this connection get none
            app.report(ex.to_entry())

    def _fail(self, ex: Exchange, exc: ApiError) -> None:
        ex.error = exc.message
        if ex.status == 200:  # headers already went out (a stream): nothing more to say
            return
        ex.status = exc.status
        extra = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RetryLater) else {}
        with contextlib.suppress(*_DISCONNECTED):
            self._send_json(exc.status, exc.to_json(), extra)

    def _check_access(self) -> None:
        """Refuse what only a web page would send (see the module docstring)."""
        access = self.server.app.access
        host = self.headers.get("Host")
        if not access.host_allowed(host):
            self.close_connection = True
            raise ApiError(
                f"This server does not answer to the host name '{host}'. Connect through "
                "localhost, 127.0.0.1 or the address it listens on (a web page that points its "
                "own name at this machine is refused).", status=403, code="host_not_allowed")
        origin = self.headers.get("Origin")
        if origin is None:
            return
        if not access.origin_allowed(origin, host):
            self.close_connection = True
            raise ApiError(
                f"Requests from web pages at {origin} are refused. To let that page use the "
                "model, allow its origin (openlid serve --allow-origin, or OPENLID_ORIGINS).",
                status=403, code="origin_not_allowed")
        self._cors = access.cors_origin(origin)

    def _preflight(self, ex: Exchange) -> None:
        """A browser asking whether a listed origin may send its request: yes, for our routes."""
        ex.status = 204
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        asked = self.headers.get("Access-Control-Request-Headers", "").strip()
        allowed = asked if _HEADER_LIST.fullmatch(asked) else "Authorization, Content-Type"
        self.send_header("Access-Control-Allow-Headers", allowed)
        self.send_header("Access-Control-Max-Age", str(_PREFLIGHT_MAX_AGE_S))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _client_gone(self) -> bool:
        """Whether the client closed its connection: readable with nothing to read is EOF.
        Polled while a request waits and generates; pipelined bytes mean it is still there."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # reset, or already closed
            return True

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

    def _route(self, ex: Exchange, path: str, body: bytes) -> None:
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
            model_id = app.model_id  # "" while a shared engine has no model: none listed
            return self._reply(ex, S.models_list(model_id, app.created) if model_id
                               else {"object": "list", "data": []})
        _require_json(self.headers.get("Content-Type"))
        data = _parse_json(body)
        info = app.info
        if info is None:
            raise ApiError(app.unavailable, status=503, type_="server_error",
                           code="model_unavailable")
        # No max_tokens: the server's default; the engine also stops where the context ends.
        default_max = min(app.default_max_tokens, info.n_ctx)
        if path == "/v1/chat/completions":
            request = parse_chat_request(data, max_tokens=default_max, base=app.sampler_defaults)
            ex.pieces, settings = chat_prompt(info, request)
            text_offset = 0
        else:
            request = parse_completion(data, max_tokens=default_max, base=app.sampler_defaults)
            if any(t >= info.n_vocab for t in request.prompt_tokens):
                raise ApiError(f"Token ids must be below {info.n_vocab}.", param="prompt")
            # The caller wrote the whole prompt, markup included: special tokens are parsed.
            ex.pieces = ((request.prompt, True),) if request.prompt else ()
            settings, text_offset = request.settings, len(request.prompt)
        ex.prompt = "".join(text for text, _ in ex.pieces)
        ex.stream = request.stream
        GenerationReply(self, app, ex, self._reply, self._client_gone).run(
            request, settings, text_offset)

    def _reply(self, ex: Exchange, obj: dict[str, Any]) -> None:
        ex.status = 200
        self._send_json(200, obj)

    def _send_json(self, status: int, obj: dict[str, Any],
                   headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _require_json(content_type: str | None) -> None:
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != _JSON_TYPE:
        said = f"'{content_type}'" if content_type else "no Content-Type"
        raise ApiError(
            f"This endpoint takes a JSON body sent with 'Content-Type: application/json'; the "
            f"request had {said}. (With curl: -H 'Content-Type: application/json'.)",
            status=415, code="unsupported_media_type")


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
