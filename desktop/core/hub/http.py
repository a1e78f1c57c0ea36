"""HTTP plumbing shared by the Hub client and the download manager: which endpoint, which
headers, how a `resolve` URL is followed to its bytes, and every failure as one `HubError` whose
message a person can act on.

huggingface_hub supplies the URLs (`hf_hub_url`), the auth and user-agent headers
(`build_hf_headers`, which reads the token from huggingface_hub's own login storage: Openlid never
stores or logs it) and the classification of error answers (`hf_raise_for_status`). Openlid owns
the redirect walk because the token must not leave the Hub: an LFS file answers 302 with a signed
CDN URL, which needs no token, so `Authorization` is sent only to the endpoint's own origin.

Blocking calls on the caller's thread (never the GUI thread); no shared state beyond what the
arguments carry, so any thread may call them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import constants, hf_hub_url, hf_raise_for_status
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import (  # type: ignore[attr-defined]  # lazy export, public API
    build_hf_headers,
)

from desktop import __version__

__all__ = [
    "HUB_FAILURES",
    "KIND_BAD_RESPONSE",
    "KIND_FORBIDDEN",
    "KIND_GATED",
    "KIND_NOT_FOUND",
    "KIND_OFFLINE",
    "KIND_RATE_LIMITED",
    "KIND_SERVER",
    "PERMANENT_KINDS",
    "HubError",
    "ensure_online",
    "explain",
    "hub_headers",
    "resolve_endpoint",
    "resolve_url",
    "stream_resolved",
]

KIND_OFFLINE = "offline"
KIND_GATED = "gated"
KIND_NOT_FOUND = "not_found"
KIND_FORBIDDEN = "forbidden"
KIND_RATE_LIMITED = "rate_limited"
KIND_SERVER = "server"
KIND_BAD_RESPONSE = "bad_response"
# Asking again will not help: the user has to log in, ask for access or fix a name.
PERMANENT_KINDS = frozenset({KIND_GATED, KIND_NOT_FOUND, KIND_FORBIDDEN})
_MAX_REDIRECTS = 5
# What a Hub call can fail with, short of a bug: network, HTTP status, offline mode, and an
# answer that does not parse (json/ModelInfo raise ValueError, KeyError or TypeError).
HUB_FAILURES: tuple[type[BaseException], ...] = (
    httpx2.HTTPError, HfHubHTTPError, OfflineModeIsEnabled, ValueError, KeyError, TypeError,
)


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> _Origin:
        parts = urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, (parts.hostname or "").lower(), parts.port or default)


class HubError(Exception):
    """A Hub call that failed, said in plain words. `kind` is one of the KIND_* constants;
    `status` the HTTP status when there was an answer. str(error) is the message."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status

    @property
    def permanent(self) -> bool:
        return self.kind in PERMANENT_KINDS


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The Hub to talk to: the argument, else HF_ENDPOINT read now (huggingface_hub reads it only
    at import), else huggingface_hub's default."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    return chosen.rstrip("/")


def ensure_online() -> None:
    """Honour huggingface_hub's offline mode (HF_HUB_OFFLINE) for requests Openlid sends."""
    if constants.is_offline_mode():
        raise explain(OfflineModeIsEnabled("HF_HUB_OFFLINE is set"), what="", endpoint="")


def hub_headers(token: str | bool | None = None) -> dict[str, str]:
    """User agent and, when logged in (or `token` given), the Authorization header."""
    headers = build_hf_headers(token=token, library_name="openlid", library_version=__version__)
    return {str(k): str(v) for k, v in headers.items()}


def resolve_url(endpoint: str, repo_id: str, path: str, revision: str | None) -> str:
    return hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint)


def _auth_free(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


@contextmanager
def stream_resolved(
    client: httpx2.Client,
    url: str,
    headers: dict[str, str],
    *,
    endpoint: str,
    what: str,
    repo_id: str | None = None,
) -> Iterator[httpx2.Response]:
    """GET `url` as a stream, following redirects by hand so that the token goes only to the
    endpoint's origin. Yields the final response, whatever its status (the caller decides what
    206, 200 or 416 mean); raises HubError for a failure to connect or a Hub error status other
    than 416. Errors while the caller reads the body reach the caller unchanged (httpx2's).
    `what` names the thing fetched, for messages."""
    ensure_online()
    hub = _Origin.of(endpoint)
    with ExitStack() as stack:
        for _ in range(_MAX_REDIRECTS + 1):
            send = headers if _Origin.of(url) == hub else _auth_free(headers)
            try:
                response = stack.enter_context(client.stream("GET", url, headers=send))
                if response.has_redirect_location:
                    url = urljoin(url, response.headers["Location"])
                    response.close()
                    continue
                if response.status_code >= 400 and response.status_code != 416:
                    response.read()  # error bodies are small; hf_raise_for_status parses them
                    hf_raise_for_status(response)
            except HUB_FAILURES as exc:
                raise explain(exc, what=what, endpoint=endpoint, repo_id=repo_id) from exc
            yield response
            return
    raise HubError(KIND_BAD_RESPONSE, f"Too many redirects while fetching {what}.")


def _host(endpoint: str) -> str:
    return urlsplit(endpoint).netloc or endpoint


def _repo_page(endpoint: str, repo_id: str | None) -> str:
    return f"{endpoint}/{repo_id}" if repo_id else endpoint


def _explain_status(exc: HfHubHTTPError, what: str, endpoint: str, repo_id: str | None) -> HubError:
    status = exc.response.status_code if exc.response is not None else None
    page = _repo_page(endpoint, repo_id)
    name = repo_id or what
    if isinstance(exc, GatedRepoError):
        if status == 401:
            return HubError(
                KIND_GATED,
                f"{name} is gated: its authors ask you to accept their terms first. Log in "
                f"with a Hugging Face token (`hf auth login`), then accept the terms at {page}.",
                status,
            )
        return HubError(
            KIND_GATED,
            f"Your Hugging Face account has not been granted access to {name} yet. Request "
            f"access at {page}; once it is approved, try again.",
            status,
        )
    if isinstance(exc, RepositoryNotFoundError):
        if status == 401:
            msg = (f"{name} was not found, or it is private and you are not logged in. Check the "
                   "name, or log in with a token that can read it (`hf auth login`).")
        else:
            msg = f"{name} was not found, or your Hugging Face token cannot read it."
        return HubError(KIND_NOT_FOUND, msg, status)
    if isinstance(exc, RevisionNotFoundError):
        return HubError(KIND_NOT_FOUND, f"{name} has no such revision.", status)
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubError(KIND_NOT_FOUND, f"The Hub has no file {what}.", status)
    if status == 401:
        return HubError(
            KIND_FORBIDDEN,
            "The Hub did not accept your Hugging Face token: log in again (`hf auth login`).",
            status,
        )
    if status == 403:
        return HubError(
            KIND_FORBIDDEN,
            f"The Hub refused access to {what}: your token lacks the permission to read it.",
            status,
        )
    if status == 404:
        return HubError(KIND_NOT_FOUND, f"The Hub has no {what}.", status)
    if status == 429:
        return HubError(
            KIND_RATE_LIMITED,
            "The Hub is limiting how fast you can ask; wait a minute and try again.",
            status,
        )
    if status is not None and status >= 500:
        return HubError(
            KIND_SERVER, f"The Hub had a problem ({status}) with {what}; try again later.", status
        )
    return HubError(KIND_BAD_RESPONSE, f"The Hub answered {status} for {what}.", status)


def explain(
    exc: BaseException, *, what: str, endpoint: str, repo_id: str | None = None
) -> HubError:
    """Turn any exception from a Hub call into a HubError with a message for people."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(
            KIND_OFFLINE,
            "Hugging Face offline mode is on (HF_HUB_OFFLINE); unset it to reach the Hub.",
        )
    if isinstance(exc, HfHubHTTPError):
        return _explain_status(exc, what, endpoint, repo_id)
    if isinstance(exc, httpx2.TimeoutException):
        return HubError(
            KIND_OFFLINE,
            f"The Hub at {_host(endpoint)} stopped answering while fetching {what}. Check the "
            "network connection; Openlid keeps working with the models you have.",
        )
    if isinstance(exc, httpx2.TransportError):
        return HubError(
            KIND_OFFLINE,
            f"Cannot reach the Hugging Face Hub at {_host(endpoint)} ({_reason(exc)}). Check "
            "the network connection; Openlid keeps working with the models you have.",
        )
    return HubError(KIND_BAD_RESPONSE, f"The Hub's answer for {what} could not be read.")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    for _ in range(8):  # a short walk down the chain; chains can loop
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return text[:200]
