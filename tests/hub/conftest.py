"""Fixtures for the Hub tests: the fake repos (built once), a fresh local Hub per test, and an
environment where huggingface_hub finds no real token and no real Hub."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.downloads.manager import DownloadManager, RetryPolicy
from desktop.core.hub.client import HubClient, ModelFile, RepoDetails
from tests.hub.repos import FakeRepo, build_repos
from tests.hub.server import HubServer

GRANTED = "hf_openlid_granted_token"  # a token the local Hub grants gated/private access
DENIED = "hf_openlid_denied_token"  # a valid-looking token without access


@pytest.fixture(scope="session")
def fake_repos(tmp_path_factory: pytest.TempPathFactory) -> list[FakeRepo]:
    return build_repos(tmp_path_factory.mktemp("hub-repos"))


@pytest.fixture(autouse=True)
def _hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # huggingface_hub must not read a developer's stored token or cache, nor phone home.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def hub(fake_repos: list[FakeRepo], monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    server = HubServer(fake_repos)
    server.grant("openlid-gated/tiny-gated", GRANTED)
    server.grant("openlid-private/secret", GRANTED)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        yield server
    finally:
        server.stop()


def repo_by_id(repos: list[FakeRepo], repo_id: str) -> FakeRepo:
    return next(r for r in repos if r.repo_id == repo_id)


# --- download helpers ---------------------------------------------------------------------------

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, space_margin=0)
BIG_REPO, BIG_FILE = "openlid-test/big-gguf", "big-Q4_K_M.gguf"


def _download_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("openlid-download-")]


@pytest.fixture
def managers(tmp_path: Path, hub: HubServer) -> Iterator[Callable[..., DownloadManager]]:
    """Make DownloadManagers on one database (tmp_path/openlid.sqlite3) against the local Hub;
    all are closed at the end, and no download thread may outlive them."""
    made: list[DownloadManager] = []

    def make(**kw: Any) -> DownloadManager:
        kw.setdefault("policy", FAST)
        kw.setdefault("token", False)
        kw.setdefault("progress_interval", 0.05)
        manager = DownloadManager(tmp_path / "openlid.sqlite3", endpoint=hub.url, **kw)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()
    assert not _download_threads()


@pytest.fixture
def details(hub: HubServer) -> Callable[[str], RepoDetails]:
    def fetch(repo_id: str) -> RepoDetails:
        with HubClient(hub.url, token=GRANTED) as client:
            return client.repo(repo_id)

    return fetch


def unit_files(repo: RepoDetails, name: str) -> tuple[ModelFile, ...]:
    return next(u.files for u in repo.units if u.name == name)


def cdn_ranges(hub: HubServer, name: str) -> list[str | None]:
    return [r.headers.get("range") for r in hub.requests
            if r.server == "cdn" and r.method == "GET" and name in r.path]
