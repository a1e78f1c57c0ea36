"""Which requests may reach the server at all: `AccessPolicy`, the Host and Origin checks that
keep web pages away from a server without a key, and `parse_origin` for the allow-list.

Why: a browser lets any page send requests to 127.0.0.1. A cross-site "simple" POST (text/plain,
no preflight) makes the model generate even though the page cannot read the answer, and a page on
a name its owner re-points at 127.0.0.1 (DNS rebinding) is same-origin with the server and can
read everything. Like Ollama, the server therefore answers only:

- **Host** headers that name this server: loopback names (`localhost`, `*.localhost`,
  127.0.0.0/8, `[::1]`, any port) and the bind address as given. Bound to a wildcard (`0.0.0.0`,
  `::`: every interface, which needs an API key anyway) it also answers to any IP address (the way
  other machines reach it; rebinding needs a name, never an address), to this machine's own host
  name (bare, or with `.local`), and to names the user adds (`allowed_hosts`). A request with no
  Host header is not a browser's and passes.
- **Origin** headers (browsers send them; curl, the openai client and Openlid's own remote client
  do not) that are the server's own (same-origin) or on the user's allow-list (`*`: any page —
  only for servers meant for the web). CORS headers go out only for listed origins.

Pure values (the machine's host name is read once, when the policy is made); the handler threads
share one policy and never change it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from desktop.server.config import ServerConfigError

__all__ = ["AccessPolicy", "parse_origin"]

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
ANY_ORIGIN = "*"


def parse_origin(text: str) -> str:
    """An allow-list entry as browsers write Origin (`scheme://host[:port]`, lower case), or `*`
    (any) or `null` (file:// pages, sandboxed frames); ServerConfigError in words otherwise."""
    value = text.strip().rstrip("/")
    if value in (ANY_ORIGIN, "null"):
        return value
    parts = urlsplit(value)
    try:
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if not parts.scheme or not parts.hostname or parts.path or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ServerConfigError(
            f"'{text}' is not an origin: write it as a browser sends it, scheme and host with an "
            "optional port and nothing after, e.g. http://localhost:3000 (or * for any page)"
        )
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _host_name(header: str) -> str:
    """The name or address in a Host header, without port, brackets or a final dot."""
    header = header.strip()
    if header.startswith("["):
        name = header[1:].partition("]")[0]
    elif header.count(":") == 1:
        name = header.partition(":")[0]
    else:
        name = header  # a bare name, or an unbracketed IPv6 address (not valid, but harmless)
    return name.lower().rstrip(".")


def _machine_names() -> frozenset[str]:
    """This machine's own names, read without DNS (getfqdn may stall offline)."""
    try:
        full = socket.gethostname().lower().rstrip(".")
    except OSError:
        return frozenset()
    if not full:
        return frozenset()
    short = full.partition(".")[0]
    return frozenset({full, short, f"{short}.local"})


@dataclass(frozen=True)
class AccessPolicy:
    """The Host names and browser Origins one server answers (see the module docstring)."""

    bind_host: str
    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def make(cls, bind_host: str, origins: Iterable[str] = (),
             hosts: Iterable[str] = ()) -> AccessPolicy:
        """Check and normalise the lists (ServerConfigError for a malformed origin)."""
        names = {_host_name(h) for h in hosts if h.strip()}
        bind = bind_host.strip().strip("[]").lower().rstrip(".")
        if bind in _WILDCARDS:
            names |= _machine_names()
        return cls(bind, frozenset(parse_origin(o) for o in origins if o.strip()),
                   frozenset(names))

    @property
    def wildcard(self) -> bool:
        return self.bind_host in _WILDCARDS

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request's Host header names this server."""
        if not header or not header.strip():
            return True  # not a browser: they always send one
        name = _host_name(header)
        if name == "localhost" or name.endswith(".localhost") or name == self.bind_host \
                or name in self.hosts:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        if address.is_loopback or self.wildcard:
            return True
        try:
            return address == ipaddress.ip_address(self.bind_host)
        except ValueError:
            return False

    def origin_allowed(self, origin: str, host_header: str | None) -> bool:
        """Whether a page of `origin` may use the server: listed, or the server's own page."""
        value = origin.strip().rstrip("/").lower()
        if ANY_ORIGIN in self.origins or value in self.origins:
            return True
        return bool(host_header) and value == f"http://{(host_header or '').strip().lower()}"

    def cors_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a listed origin; None: send no CORS."""
        if not origin:
            return None
        value = origin.strip().rstrip("/").lower()
        if ANY_ORIGIN in self.origins or value in self.origins:
            return origin.strip()
        return None
