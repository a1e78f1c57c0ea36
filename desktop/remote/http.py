"""The HTTP side of a remote engine: requests to an OpenAI-compatible endpoint, its server-sent
event stream, and its errors in words.

Standard library HTTP (`http.client`), so no extra dependency. `remote.client` drives it and
`remote.steps` turns what arrives into StepRecords. Blocking: runs on the thread that streams
(a worker thread, never the GUI thread); nothing here keeps state between calls.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RemoteError", "error_message", "open_request", "public_url", "sse_events"]

_ERROR_BODY_LIMIT = 64 * 1024


def public_url(url: str) -> str:
    """The URL without user:password, query or fragment: safe to show and to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RemoteError(Exception):
    """The endpoint could not be reached or refused the request; `str()` says why in words."""

    def __init__(self, message: str, *, kind: str = "http", status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind  # "config", "connect", "http", "protocol"
        self.status = status


def _connect(base_url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, parts.port, timeout=timeout)
    return http.client.HTTPConnection(host, parts.port, timeout=timeout)


def _headers(api_key: str, stream: bool) -> dict[str, str]:
    headers = {"Content-Type": "application/json",
               "Accept": "text/event-stream" if stream else "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def open_request(
    base_url: str,
    api_key: str,
    timeout: float,
    method: str,
    endpoint: str,
    body: dict[str, Any] | None,
    *,
    stream: bool,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one request to `endpoint` (relative to `base_url`) and return the connection and its
    200 response; the caller closes the connection. Raises RemoteError, naming only the public
    URL (never the key or the URL's password)."""
    conn = _connect(base_url, timeout)
    data = json.dumps(body).encode("utf-8") if body is not None else None
    path = urlsplit(base_url).path.rstrip("/") + endpoint
    try:
        conn.request(method, path, body=data, headers=_headers(api_key, stream))
        response = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise RemoteError(f"cannot reach {public_url(base_url)}: {exc}", kind="connect") from exc
    if response.status != 200:
        detail = error_message(response.read(_ERROR_BODY_LIMIT))
        conn.close()
        raise RemoteError(f"{public_url(base_url)} answered {response.status}: {detail}",
                          status=response.status)
    return conn, response


def sse_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """JSON objects of a server-sent event stream, until `data: [DONE]` or the end."""
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:
            continue  # comments (":"), "event:"/"id:" fields, stray blank lines
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise RemoteError(f"the endpoint sent a chunk that is not JSON: {payload[:200]!r}",
                              kind="protocol") from exc
        if isinstance(event, dict):
            yield event


def error_message(body: bytes) -> str:
    """The message of an error body in OpenAI's shape (or FastAPI's "detail"), else the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(no details)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("detail"):
            return str(data["detail"])[:500]
    return text[:500]
