"""What a server may be configured with: `ServerConfigError`, the loopback check that decides
whether an API key is required, and the default request-body limit (`MIB`).

Plain values and pure functions (`is_loopback` may ask the resolver about a host name); safe on
any thread.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["MIB", "ServerConfigError", "is_loopback"]

MIB = 1024 * 1024


class ServerConfigError(ValueError):
    """The server cannot start as configured (bad bind address, no key, model failed to load)."""


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
