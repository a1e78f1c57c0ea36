"""Fixtures for the Hub window's tests: the local Hub from tests/hub, huggingface_hub's token
storage redirected into the test's folder, a tiny `whoami` server for token logins, and a
HubWindow wired to all of them. Test modules import the fixtures they use by name.

huggingface_hub computes its token paths at import, so `_hub_env`'s HF_HOME does not move them:
they are patched here, so that no test reads or writes a developer's real token.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

from desktop.core.downloads.manager import RetryPolicy
from desktop.ui.hub import HubWindow
from tests.hub.conftest import GRANTED, _hub_env, fake_repos, hub  # noqa: F401 - fixtures
from tests.hub.server import HubServer

FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05, space_margin=0)
BIG_REPO, BIG_FILE = "openlid-test/big-gguf", "big-Q4_K_M.gguf"
MakeWindow = Callable[..., HubWindow]


@pytest.fixture(autouse=True)
def token_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where huggingface_hub keeps the login during this test (empty at the start)."""
    folder = tmp_path / "hf-token"
    folder.mkdir()
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(folder / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(folder / "stored_tokens"))
    return folder


class _WhoAmI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.headers.get("Authorization") == f"Bearer {GRANTED}":
            status, body = 200, {"type": "user", "name": "openlid-tester", "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "openlid-test", "role": "read"}}}
        else:
            status, body = 401, {"error": "Invalid credentials in Authorization header"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def whoami(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """huggingface_hub's `login()` checks a token with GET /api/whoami-v2 on its default
    endpoint (fixed at import); the local Hub has no such route, so this server answers it:
    GRANTED is a valid token, anything else is refused (401)."""
    from huggingface_hub import hf_api

    server = ThreadingHTTPServer(("127.0.0.1", 0), _WhoAmI)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-whoami", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def make_window(qtbot: Any, hub: HubServer, tmp_path: Path) -> Iterator[MakeWindow]:  # noqa: F811
    """HubWindows against the local Hub, on one database in tmp_path; all shut down at the end."""
    made: list[HubWindow] = []

    def make(**kw: Any) -> HubWindow:
        kw.setdefault("database", tmp_path / "openlid.sqlite3")
        kw.setdefault("policy", FAST)
        kw.setdefault("progress_interval", 0.05)
        kw.setdefault("search_on_show", False)
        window = HubWindow(tmp_path / "models", hub.url, **kw)
        qtbot.addWidget(window)
        window.resize(1200, 800)
        made.append(window)
        return window

    yield make
    for window in made:
        window.shutdown()


@pytest.fixture
def window(make_window: MakeWindow) -> HubWindow:
    w = make_window()
    w.show()
    return w


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_repo(qtbot: Any, window: HubWindow, repo_id: str, card: bool = True) -> None:
    """Open a repo and wait for its files (and its card)."""
    signals = [window.hub.sig_repo_loaded]
    if card:
        signals.append(window.hub.sig_card_loaded)
    with qtbot.waitSignals(signals, timeout=10_000):
        window.open_repo(repo_id)
