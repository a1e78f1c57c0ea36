"""The byte path of a download: one GET over `http.client`, following the Hub's redirects,
whose body is read up to 1 MiB per socket read. It exists for speed: httpx2 (huggingface_hub's
client) reads 64 KiB per call and copies each piece through h11 and its stream layers, which on
a fast link cost more CPU than the sha256 of the same bytes.

It keeps the rules of `core.hub.http.stream_resolved` and its vocabulary: huggingface_hub
supplies the URL and headers (the caller passes them), the token goes only to the endpoint's
origin (an LFS file redirects to a CDN that needs none), a Hub error status becomes a `HubError`
through huggingface_hub's own classification, and a failure while the body streams is raised as
the httpx2 exception httpx2 would have raised (`ReadError`, `ReadTimeout`,
`RemoteProtocolError`), so callers treat both paths alike. TLS uses httpx2's default trust;
proxies are not supported here (the caller uses httpx2 when one is configured).

Blocking, on the caller's thread (a download worker); no state shared between calls beyond one
cached TLS context.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import hf_raise_for_status

from desktop.core.hub.http import (
    HUB_FAILURES,
    KIND_BAD_RESPONSE,
    HubError,
    ensure_online,
    explain,
)

__all__ = ["Body", "direct_get"]

# One socket read asks for up to this much: at loopback speed a read then returns ~1 MiB, so
# the per-read cost (a Python loop turn, a queue hand-off) is paid ~256 times per 256 MiB, not
# 4,000; on a slow link a read returns what has arrived, so nothing waits for a full buffer.
_NET_BLOCK = 1 << 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_NETWORK = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Body:
    """A response as `downloads.fetch` reads it, whichever library carried it: the status, a
    header lookup (None when absent) and the body's chunks as they arrive."""

    status: int
    header: Callable[[str], str | None]
    chunks: Iterator[bytes]


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx2.create_ssl_context()  # the trust httpx2's own client uses


def _connect(url: str, client: httpx2.Client) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    connect = client.timeout.connect
    conn = (http.client.HTTPSConnection(host, parts.port, timeout=connect, context=_tls())
            if parts.scheme == "https" else
            http.client.HTTPConnection(host, parts.port, timeout=connect))
    conn.connect()
    if conn.sock is not None:
        conn.sock.settimeout(client.timeout.read)  # a stalled body fails after this long
    return conn


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (parts.scheme, (parts.hostname or "").lower(),
            parts.port or (443 if parts.scheme == "https" else 80))


def _as_hub_error(exc: BaseException, endpoint: str, what: str, repo_id: str) -> HubError:
    """A socket-level failure said as `core.hub.http.explain` says httpx2's (same messages)."""
    timed_out = isinstance(exc, TimeoutError)
    wrapped = httpx2.ReadTimeout(str(exc)) if timed_out else httpx2.ConnectError(str(exc))
    wrapped.__cause__ = exc  # explain() looks down the chain for "connection refused"
    return explain(wrapped, what=what, endpoint=endpoint, repo_id=repo_id)


@contextlib.contextmanager
def direct_get(client: httpx2.Client, url: str, headers: dict[str, str], endpoint: str,
                what: str, repo_id: str) -> Iterator[Body | None]:
    """GET over http.client, following redirects as `stream_resolved` does (the token only to
    the endpoint's origin; Hub error statuses through huggingface_hub's classification).
    Yields the body, or None when it came content-encoded (httpx2 then fetches it again and
    decodes it: rare, as identity is asked for)."""
    ensure_online()
    hub = _origin(endpoint)
    for _ in range(_MAX_REDIRECTS + 1):
        send = headers if _origin(url) == hub else {
            k: v for k, v in headers.items() if k.lower() != "authorization"}
        parts = urlsplit(url)
        try:
            conn = _connect(url, client)
        except _NETWORK as exc:
            raise _as_hub_error(exc, endpoint, what, repo_id) from exc
        try:
            try:
                conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                             headers=send)
                response = conn.getresponse()
            except _NETWORK as exc:
                raise _as_hub_error(exc, endpoint, what, repo_id) from exc
            location = response.getheader("Location")
            if response.status in _REDIRECTS and location:
                url = urljoin(url, location)
                continue
            if response.status >= 400 and response.status != 416:
                _raise_for_status(response, url, endpoint, what, repo_id)
            if response.getheader("Content-Encoding", "identity") != "identity":
                yield None
                return
            yield Body(response.status, response.getheader, _chunks(response))
            return
        finally:
            conn.close()
    raise HubError(KIND_BAD_RESPONSE, f"Too many redirects while fetching {what}.")


def _raise_for_status(response: http.client.HTTPResponse, url: str, endpoint: str, what: str,
                      repo_id: str) -> None:
    try:
        content = response.read()  # error bodies are small; hf_raise_for_status parses them
        hf_raise_for_status(httpx2.Response(response.status, headers=response.getheaders(),
                                            content=content, request=httpx2.Request("GET", url)))
    except HUB_FAILURES as exc:
        raise explain(exc, what=what, endpoint=endpoint, repo_id=repo_id) from exc
    except _NETWORK as exc:
        raise _as_hub_error(exc, endpoint, what, repo_id) from exc


def _chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives, one socket read (≤ 1 MiB) per chunk. A body cut short (by a
    dropped connection or a stall) ends in an httpx2 error after its last bytes."""
    want = response.getheader("Content-Length")
    got = 0
    try:
        while chunk := response.read1(_NET_BLOCK):
            got += len(chunk)
            yield chunk
    except _NETWORK as exc:
        error = httpx2.ReadTimeout if isinstance(exc, TimeoutError) else httpx2.ReadError
        raise error(f"the connection broke ({exc or type(exc).__name__})") from exc
    if want is not None and want.isdigit() and got != int(want):
        raise httpx2.RemoteProtocolError(f"the connection closed early ({got} of {want} bytes)")
