"""HubService: the Hub browser's Qt face of `desktop.core.hub.client.HubClient`, so that no
Hub call ever runs on the GUI thread.

Created and called on the GUI thread. Each request (a search, its next page, a repo with its
model card, a token login, the hardware probe for fit badges) runs as a QRunnable on this
service's own QThreadPool ("openlid-hub"). The outcome comes back through one internal signal
connected *queued* to this object, which lives on the GUI thread; there it is checked against
the newest ticket of its kind and, unless stale, re-emitted as a public signal. So every public
signal below is emitted on the GUI thread and carries immutable values (frozen dataclasses,
strings), and an answer that arrives after a newer request of the same kind (a slow search
overtaken by the next one, a repo the user already left) is dropped.

Failures arrive as `sig_hub_failed(request, kind, message)`: `request` says which call failed
("search", "more", "repo", "card", "login", "account", "logout"), `kind` is a
`desktop.core.hub.http.KIND_*` value and `message` is a sentence for people. The token given
to `login` goes to huggingface_hub's own `login()` (through desktop.core.hub.login), which
validates it and stores it where huggingface_hub keeps tokens; it is never logged, kept or
emitted here. After a login, the client's next call reads the stored token by itself.
`check_account()` asks who the stored token belongs to (`sig_account_changed(Account)`, also
after every login and logout).

`shutdown()` (from the window's closeEvent): stop delivering, drop queued calls, wait briefly
for running ones, close the HTTP client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

from desktop.core import hardware
from desktop.core.hub.client import HubClient, RepoDetails, SearchPage, SearchQuery, card_body
from desktop.core.hub.http import KIND_BAD_RESPONSE, HubError
from desktop.core.hub.login import Account, account, logout
from desktop.core.hub.login import login as hub_login

__all__ = [
    "REQUEST_ACCOUNT",
    "REQUEST_CARD",
    "REQUEST_LOGIN",
    "REQUEST_LOGOUT",
    "REQUEST_MORE",
    "REQUEST_REPO",
    "REQUEST_SEARCH",
    "HubService",
]

_log = logging.getLogger("openlid.hub")

REQUEST_SEARCH = "search"
REQUEST_MORE = "more"
REQUEST_REPO = "repo"
REQUEST_CARD = "card"
REQUEST_LOGIN = "login"
REQUEST_LOGOUT = "logout"
REQUEST_ACCOUNT = "account"
_HARDWARE = "hardware"
_SHUTDOWN_WAIT_MS = 3000  # a call stuck on the network ends at the client's own timeout


class _Call(QRunnable):
    """One blocking call on a pool thread; hands its outcome to the service."""

    def __init__(self, owner: HubService, request: str, ticket: int,
                 fn: Callable[[], Any]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._owner, self._request, self._ticket, self._fn = owner, request, ticket, fn

    def run(self) -> None:
        if self._owner.closed.is_set():
            return
        try:
            result: Any = self._fn()
            error: HubError | None = None
        except HubError as exc:
            result, error = None, exc
        except Exception as exc:  # a bug: say so on screen rather than lose the request
            _log.exception("hub request %s failed", self._request)
            result, error = None, HubError(KIND_BAD_RESPONSE, f"Unexpected error: {exc}")
        self._owner.deliver(self._request, self._ticket, result, error)


class HubService(QObject):
    """See the module docstring. `endpoint` and `token` as for HubClient (None: HF_ENDPOINT or
    the Hub, and huggingface_hub's stored login)."""

    sig_search_finished = Signal(object)  # SearchPage: the first page of the newest search
    sig_more_finished = Signal(object)  # SearchPage: the next page of that search
    sig_repo_loaded = Signal(object)  # RepoDetails
    sig_card_loaded = Signal(str, str)  # repo id, Markdown without its front matter
    sig_hub_failed = Signal(str, str, str)  # request, kind, message
    sig_logged_in = Signal()
    sig_account_changed = Signal(object)  # Account: who the Hub calls run as now
    sig_hardware_detected = Signal(object)  # HardwareInfo
    # Internal: pool thread → GUI thread. Queued (see __init__): a direct call would run the
    # slot, and every widget it touches, on the pool thread.
    _sig_done = Signal(str, int, object, object)

    def __init__(self, endpoint: str | None = None, token: str | bool | None = None,
                 parent: QObject | None = None, *, timeout: float = 15.0) -> None:
        super().__init__(parent)
        self.closed = threading.Event()
        self._lock = threading.Lock()  # deliver() runs on pool threads while shutdown() runs
        self._client = HubClient(endpoint, token=token, timeout=timeout)
        self.endpoint = self._client.endpoint
        self._pool = QThreadPool(self)
        self._pool.setObjectName("openlid-hub")
        self._pool.setMaxThreadCount(4)
        self._tickets: dict[str, int] = {}
        self._next_url: str | None = None
        self._more_pending = False
        self._query: SearchQuery | None = None
        self._repo_id = ""
        self._sig_done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)

    # --- requests (GUI thread) --------------------------------------------------------------

    def _start(self, request: str, fn: Callable[[], Any], *, same_ticket: str = "") -> int:
        if self.closed.is_set():
            return 0
        key = same_ticket or request
        ticket = self._tickets.get(key, 0) + (0 if same_ticket else 1)
        self._tickets[key] = ticket
        self._pool.start(_Call(self, request, ticket, fn))
        return ticket

    def search(self, query: SearchQuery) -> None:
        """Start a search; any answer to an older search or its pages is dropped."""
        self._next_url = None
        self._more_pending = False
        self._query = query  # its page filters apply to the next pages too
        client = self._client
        self._start(REQUEST_SEARCH, lambda: client.search(query))

    @property
    def has_more(self) -> bool:
        return self._next_url is not None and not self._more_pending

    def more(self) -> bool:
        """Fetch the next page of the current search; False when there is none (or one is
        already on its way)."""
        url = self._next_url
        if url is None or self._more_pending:
            return False
        self._more_pending = True
        client, query = self._client, self._query
        self._start(REQUEST_MORE, lambda: client.next_page(url, query),
                    same_ticket=REQUEST_SEARCH)
        return True

    def open_repo(self, repo_id: str) -> None:
        """Load a repo's files and its model card (two calls side by side)."""
        self._repo_id = repo_id
        client = self._client
        self._start(REQUEST_REPO, lambda: client.repo(repo_id))
        self._start(REQUEST_CARD, lambda: (repo_id, card_body(client.model_card(repo_id))),
                    same_ticket=REQUEST_REPO)

    def forget_repo(self) -> None:
        """The repo's page was put away: drop its answers still on their way."""
        self._tickets[REQUEST_REPO] = self._tickets.get(REQUEST_REPO, 0) + 1
        self._repo_id = ""

    def login(self, token: str) -> None:
        """Log in to the Hub with huggingface_hub's own `login(token=…)`."""
        endpoint = self.endpoint
        self._start(REQUEST_LOGIN, lambda: hub_login(token.strip(), endpoint))

    def check_account(self) -> None:
        """Who is logged in (no network call when no token is stored)."""
        endpoint = self.endpoint
        self._start(REQUEST_ACCOUNT, lambda: account(endpoint))

    def logout(self) -> None:
        """Forget huggingface_hub's stored token, then say who (if anyone) is left."""
        endpoint = self.endpoint

        def out() -> Account:
            logout()
            return account(endpoint)

        self._start(REQUEST_LOGOUT, out)

    def detect_hardware(self) -> None:
        """`hardware.detect()` (it may run nvidia-smi) for the fit badges."""
        self._start(_HARDWARE, hardware.detect)

    # --- delivery ---------------------------------------------------------------------------

    def deliver(self, request: str, ticket: int, result: Any, error: HubError | None) -> None:
        """Pool thread: hand the outcome to the GUI thread."""
        with self._lock:
            if not self.closed.is_set():
                self._sig_done.emit(request, ticket, result, error)

    def _on_done(self, request: str, ticket: int, result: Any, error: HubError | None) -> None:
        if self.closed.is_set():
            return
        key = {REQUEST_MORE: REQUEST_SEARCH, REQUEST_CARD: REQUEST_REPO}.get(request, request)
        if ticket != self._tickets.get(key):
            return  # overtaken by a newer request of the same kind
        if request == REQUEST_MORE:
            self._more_pending = False
        if error is not None:
            self.sig_hub_failed.emit(request, error.kind, error.message)
        elif request in (REQUEST_SEARCH, REQUEST_MORE):
            page: SearchPage = result
            self._next_url = page.next_url
            (self.sig_search_finished if request == REQUEST_SEARCH
             else self.sig_more_finished).emit(page)
        elif request == REQUEST_REPO:
            details: RepoDetails = result
            self.sig_repo_loaded.emit(details)
        elif request == REQUEST_CARD:
            repo_id, markdown = result
            self.sig_card_loaded.emit(repo_id, markdown)
        elif request == REQUEST_LOGIN:
            self.sig_logged_in.emit()
            self.check_account()
        elif request in (REQUEST_ACCOUNT, REQUEST_LOGOUT):
            self.sig_account_changed.emit(result)
        elif request == _HARDWARE:
            self.sig_hardware_detected.emit(result)

    # --- lifecycle --------------------------------------------------------------------------

    def wait_idle(self, msecs: int = -1) -> bool:
        """Tests only: wait until no call runs (blocks)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop delivering, drop queued calls, wait for running ones (briefly), close."""
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        self._pool.clear()
        self._pool.waitForDone(_SHUTDOWN_WAIT_MS)
        self._client.close()
