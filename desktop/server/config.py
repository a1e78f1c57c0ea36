"""What a server may be configured with: `ServerConfigError`, the loopback check that decides
whether an API key is required, the limits every request runs under (request body, generation
time, queue wait, default `max_tokens`), `RetryLater`, the refusal that tells a client when to
come back, and `ClientGone`, raised where a request notices that its client has left.

Plain values and pure functions (`is_loopback` may ask the resolver about a host name); safe on
any thread.
"""

from __future__ import annotations

import ipaddress
import socket

from desktop.core.openai.requests import ApiError

__all__ = [
    "DEFAULT_MAX_REQUEST_S",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MAX_WAIT_S",
    "MIB",
    "ClientGone",
    "RetryLater",
    "ServerConfigError",
    "is_loopback",
]

MIB = 1024 * 1024
# A request generates for at most this long, then it is stopped and answered with what it has
# (finish_reason "length"): one request can hold the single engine only so long.
DEFAULT_MAX_REQUEST_S = 300.0
# A request waits for the engine at most this long before a 503 with Retry-After: an HTTP client
# that waits much longer has usually given up already (the openai client's timeout is 600 s).
DEFAULT_MAX_WAIT_S = 120.0
# max_tokens for a request that gives none (or the rest of the context window, if shorter): a
# reply rarely needs more, and the context window (8,192 and up) would take minutes on a CPU.
DEFAULT_MAX_TOKENS = 2048


class ServerConfigError(ValueError):
    """The server cannot start as configured (bad bind address, no key, model failed to load)."""


class RetryLater(ApiError):
    """A refusal for now (429 queue full, 503 waited too long): sent with a Retry-After header."""

    def __init__(self, message: str, *, status: int, retry_after: int, code: str,
                 type_: str = "server_error") -> None:
        super().__init__(message, status=status, code=code, type_=type_)
        self.retry_after = max(1, retry_after)


class ClientGone(ConnectionAbortedError):
    """The client closed its connection before its answer was written (the message says when);
    a disconnection like any other to the HTTP side, which logs the message."""


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
