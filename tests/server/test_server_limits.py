"""No request holds the engine for long: a client that leaves (even a non-streaming one, even
while it waits its turn) frees the model at once, a generation stops at the time limit, a waiting
request is refused with Retry-After once it has waited long enough, and a request without
max_tokens gets the server's default. A real OpenlidServer with the Gemma model on loopback,
clients on raw sockets."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.steps import StepRecord
from desktop.server.openlid_server import RequestLogEntry
from tests.server.conftest import LOAD, LoggedServer, settle

# Long enough to run for many seconds at the ~50 tokens/s of this model on two cores; the
# context (1,024) ends it after ~1,000 tokens at the latest.
LONG = {"model": "m", "prompt": "Once upon a time", "max_tokens": 1000, "ignore_eos": True,
        "temperature": 0}
DEFAULT_MAX_TOKENS = 6


class StepCountingServer(LoggedServer):
    steps: dict[int, int]


@pytest.fixture(scope="module")
def server(gemma_path: Path) -> Iterator[StepCountingServer]:
    entries: list[RequestLogEntry] = []
    steps: dict[int, int] = {}

    def on_step(request_id: int, _record: StepRecord) -> None:
        steps[request_id] = steps.get(request_id, 0) + 1

    srv = StepCountingServer(gemma_path, LOAD, on_request=entries.append, on_step=on_step,
                             max_request_seconds=120, max_wait_seconds=60,
                             default_max_tokens=DEFAULT_MAX_TOKENS)
    srv.entries, srv.steps = entries, steps
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def open_request(server: LoggedServer, body: dict[str, Any]) -> socket.socket:
    """Send a POST on a raw socket and leave its answer unread."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return sock


def post(server: LoggedServer, body: dict[str, Any],
         ) -> tuple[int, http.client.HTTPMessage, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        conn.close()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def generating(server: StepCountingServer, before: int) -> None:
    """Wait until a request newer than `before` has produced some tokens."""
    wait_for(lambda: any(rid > before and n >= 3 for rid, n in list(server.steps.items())),
             60, "tokens")


def test_a_non_streaming_client_that_leaves_frees_the_engine(server: StepCountingServer) -> None:
    settle(server)
    before = len(server.entries)
    first_id = max(server.steps, default=0)  # request ids only grow
    with open_request(server, LONG):
        generating(server, first_id)
    # The client gave up without reading anything.
    left = time.monotonic()
    wait_for(lambda: len(server.entries) > before, 5, "the abandoned request to end")
    assert time.monotonic() - left < 5
    entry = server.entries[-1]
    assert entry.error == "the client disconnected"
    assert 0 < len(entry.steps) < 1000
    assert not server.engine.lock.locked()
    status, _headers, body = post(server, {**LONG, "max_tokens": 3})
    assert status == 200, body
    assert body["usage"]["completion_tokens"] == 3


def test_a_client_that_leaves_the_queue_is_dropped_at_once(server: StepCountingServer) -> None:
    settle(server)
    first_id = max(server.steps, default=0)
    holder = open_request(server, LONG)
    try:
        generating(server, first_id)
        before = len(server.entries)
        waiter = open_request(server, LONG)
        with waiter:
            wait_for(lambda: server._waiting == 1, 10, "the second request to queue")
        wait_for(lambda: len(server.entries) > before, 3, "the waiting request to be dropped")
        entry = server.entries[-1]
        assert entry.error == "the client left while waiting for the model"
        assert not entry.steps
        assert server.engine.lock.locked()  # the first one still generates
    finally:
        holder.close()
    wait_for(lambda: not server.engine.lock.locked(), 5, "the engine")


def test_a_generation_stops_at_the_time_limit(server: StepCountingServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "max_request_seconds", 3.0)
    settle(server)
    started = time.monotonic()
    status, _headers, body = post(server, LONG)
    assert status == 200, body
    assert time.monotonic() - started < 10
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert 0 < body["usage"]["completion_tokens"] < 1000
    settle(server)
    assert "time limit (3 s per request)" in server.entries[-1].error
    # Streamed: the stream ends properly, with the same reason.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/v1/completions", body=json.dumps({**LONG, "stream": True}),
                     headers={"Content-Type": "application/json"})
        lines = conn.getresponse().read().decode().splitlines()
    finally:
        conn.close()
    events = [line[6:] for line in lines if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"


def test_a_request_that_waits_too_long_gets_503_with_retry_after(
        server: StepCountingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "max_request_seconds", 6.0)
    monkeypatch.setattr(server, "max_wait_seconds", 1.0)
    settle(server)
    first_id = max(server.steps, default=0)
    holder = open_request(server, LONG)
    try:
        generating(server, first_id)
        started = time.monotonic()
        status, headers, body = post(server, {**LONG, "max_tokens": 2})
        waited = time.monotonic() - started
        assert status == 503, body
        assert body["error"]["code"] == "server_busy"
        assert 0.9 < waited < 4
        assert 1 <= int(headers["Retry-After"]) <= 6  # when the running one must end
    finally:
        holder.close()
    wait_for(lambda: not server.engine.lock.locked(), 5, "the engine")


def test_a_full_queue_gets_429_with_retry_after(server: StepCountingServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "max_waiting", 0)
    status, headers, body = post(server, {**LONG, "max_tokens": 2})
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1


def test_max_tokens_defaults_to_the_servers_default(server: StepCountingServer) -> None:
    body = {k: v for k, v in LONG.items() if k != "max_tokens"}
    status, _headers, reply = post(server, body)
    assert status == 200, reply
    assert reply["usage"]["completion_tokens"] == DEFAULT_MAX_TOKENS
    assert reply["choices"][0]["finish_reason"] == "length"


def test_many_abandoned_requests_do_not_starve_the_next(server: StepCountingServer) -> None:
    settle(server)
    first_id = max(server.steps, default=0)
    socks = [open_request(server, LONG) for _ in range(3)]
    try:
        generating(server, first_id)
    finally:
        for sock in socks:
            sock.close()
    started = time.monotonic()
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(post(server, {**LONG,
                                                                         "max_tokens": 2})[0]))
    worker.start()
    worker.join(30)
    assert result == [200]
    assert time.monotonic() - started < 10
