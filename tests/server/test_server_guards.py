"""What a web page cannot do to a keyless local server: the Host check (DNS rebinding), the Origin
allow-list with its CORS answers, and JSON-only bodies. A real OpenlidServer with the Gemma model
on loopback, driven over raw sockets as a browser would send its requests; plus the policy itself
for binds the tests cannot make (a LAN address, a wildcard)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.server.access import AccessPolicy, parse_origin
from desktop.server.openlid_server import OpenlidServer, RequestLogEntry, ServerConfigError
from tests.server.conftest import API_KEY, LOAD, LoggedServer, settle

ALLOWED = "http://ok.example:3000"
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(gemma_path: Path) -> Iterator[LoggedServer]:
    """No API key: only the Host and Origin checks stand between a web page and the model."""
    entries: list[RequestLogEntry] = []
    srv = LoggedServer(gemma_path, LOAD, on_request=entries.append, allowed_origins=[ALLOWED])
    srv.entries = entries
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def send(server: OpenlidServer, method: str, path: str, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None,
         ) -> tuple[int, http.client.HTTPMessage, Any]:
    """One request with exactly these headers (http.client adds Host unless given one)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return response.status, response.headers, json.loads(raw) if raw else None
    finally:
        conn.close()


COMPLETION = {"model": "m", "prompt": "Hello", "max_tokens": 2, "temperature": 0}
JSON = {"Content-Type": "application/json"}


def _refused(status: int, body: Any, expected: int, code: str) -> None:
    assert status == expected, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_cross_site_text_plain_post_is_refused_before_generating(server: LoggedServer) -> None:
    # What any web page can send without a preflight: a form-like POST with its own Origin.
    status, headers, body = send(server, "POST", "/v1/completions", COMPLETION,
                                 {"Content-Type": "text/plain", "Origin": EVIL})
    _refused(status, body, 403, "origin_not_allowed")
    assert "--allow-origin" in body["error"]["message"]
    assert headers["Access-Control-Allow-Origin"] is None
    # With a JSON content type (which a page could only send after a preflight) just the same.
    status, _headers, body = send(server, "POST", "/v1/chat/completions",
                                  {"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
                                  {**JSON, "Origin": EVIL})
    _refused(status, body, 403, "origin_not_allowed")
    settle(server)
    refused = server.entries[-2:]
    assert [e.status for e in refused] == [403, 403]
    assert all(not e.steps and e.done is None for e in refused)  # the model never ran


def test_json_endpoints_take_only_json_bodies(server: LoggedServer) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        status, _headers, body = send(server, "POST", "/v1/completions", COMPLETION, headers)
        _refused(status, body, 415, "unsupported_media_type")
        assert "application/json" in body["error"]["message"]
    status, _headers, body = send(server, "POST", "/v1/completions", COMPLETION,
                                  {"Content-Type": "Application/JSON; charset=utf-8"})
    assert status == 200, body
    assert send(server, "GET", "/v1/models")[0] == 200  # GET needs no content type


def test_a_foreign_host_header_is_refused(server: LoggedServer) -> None:
    # DNS rebinding: the page's own name now points at 127.0.0.1, so the browser sends its Host.
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example",
                 "192.168.1.20", "localhost.evil.example"):
        status, _headers, body = send(server, "GET", "/v1/models", headers={"Host": host})
        _refused(status, body, 403, "host_not_allowed")
        status, _headers, body = send(server, "POST", "/v1/completions", COMPLETION,
                                      {**JSON, "Host": host})
        _refused(status, body, 403, "host_not_allowed")
    for host in (f"localhost:{server.port}", "LOCALHOST", f"127.0.0.1:{server.port}",
                 "127.0.0.2", f"[::1]:{server.port}", "app.localhost", "localhost."):
        status, _headers, body = send(server, "GET", "/v1/models", headers={"Host": host})
        assert status == 200, (host, body)
    settle(server)
    assert server.entries[-1].status == 200


def test_a_listed_origin_gets_cors_and_its_preflight_answered(server: LoggedServer) -> None:
    status, headers, body = send(server, "POST", "/v1/completions", COMPLETION,
                                 {**JSON, "Origin": ALLOWED})
    assert status == 200, body
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert headers["Vary"] == "Origin"
    # A browser asks first for a JSON POST with the openai JS client's extra headers.
    asked = "authorization, content-type, x-stainless-os"
    status, headers, _body = send(server, "OPTIONS", "/v1/chat/completions", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": asked})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == asked
    # Another page gets neither an answer nor CORS headers, and its preflight fails too.
    status, headers, body = send(server, "OPTIONS", "/v1/chat/completions", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    _refused(status, body, 403, "origin_not_allowed")
    assert headers["Access-Control-Allow-Origin"] is None
    # Programs that are not browsers send no Origin, and get no CORS headers either.
    status, headers, _body = send(server, "GET", "/v1/models")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] is None
    # An error answer to a listed page still carries CORS, so the page can read why.
    status, headers, body = send(server, "POST", "/v1/completions", {"model": "m"},
                                 {**JSON, "Origin": ALLOWED})
    assert status == 400, body
    assert headers["Access-Control-Allow-Origin"] == ALLOWED


def test_the_servers_own_origin_is_not_foreign(server: LoggedServer) -> None:
    own = f"http://127.0.0.1:{server.port}"
    status, headers, body = send(server, "POST", "/v1/completions", COMPLETION,
                                 {**JSON, "Origin": own})
    assert status == 200, body
    assert headers["Access-Control-Allow-Origin"] is None  # same-origin needs no CORS
    status, _headers, body = send(server, "GET", "/v1/models", headers={
        "Origin": own, "Host": f"localhost:{server.port}"})  # same port, other name: foreign
    _refused(status, body, 403, "origin_not_allowed")


def test_openlids_own_clients_still_get_through(server: LoggedServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                           timeout=120)
    try:
        reply = client.completions.create(model=server.model_id, prompt="Hello", max_tokens=2,
                                          temperature=0)
        assert reply.choices[0].text
    finally:
        client.close()


def test_wildcard_bind_with_a_key_answers_addresses_but_not_foreign_names(
        gemma_path: Path) -> None:
    with OpenlidServer(gemma_path, LOAD, host="0.0.0.0", api_key=API_KEY) as srv:
        key = {"Authorization": f"Bearer {API_KEY}"}
        for host, expected in (("evil.example", 403), (f"192.0.2.7:{srv.port}", 200),
                               (f"{socket.gethostname()}:{srv.port}", 200),
                               (f"[::1]:{srv.port}", 200)):
            status, _headers, body = send(srv, "GET", "/v1/models", headers={**key, "Host": host})
            assert status == expected, (host, body)


# --- the policy for binds the tests do not start ---


def test_a_lan_bind_answers_its_own_address_and_loopback_only() -> None:
    policy = AccessPolicy.make("192.168.1.5", hosts=["box.example"])
    assert policy.host_allowed("192.168.1.5:8080")
    assert policy.host_allowed("localhost:8080")
    assert policy.host_allowed("box.example:8080")
    assert policy.host_allowed(None)  # no Host at all: not a browser
    assert not policy.host_allowed("192.168.1.6:8080")
    assert not policy.host_allowed("evil.example")
    named = AccessPolicy.make("gpu-box.lan")
    assert named.host_allowed("GPU-BOX.lan:8080")
    assert not named.host_allowed("gpu-box.lan.evil.example")
    v6 = AccessPolicy.make("[fd00::5]")
    assert v6.host_allowed("[fd00::5]:8080")
    assert not v6.host_allowed("[fd00::6]:8080")


def test_wildcard_binds_answer_any_address_and_this_machines_name() -> None:
    name = socket.gethostname().partition(".")[0]
    for bind in ("0.0.0.0", "::"):
        policy = AccessPolicy.make(bind)
        assert policy.host_allowed("10.1.2.3:8080")
        assert policy.host_allowed("[fd00::1]:8080")
        assert policy.host_allowed(f"{name}:8080")
        assert policy.host_allowed(f"{name}.local")
        assert not policy.host_allowed("evil.example")


def test_origins_are_checked_when_the_server_is_made(gemma_path: Path) -> None:
    assert parse_origin("HTTP://LocalHost:3000/") == "http://localhost:3000"
    assert parse_origin("*") == "*"
    assert parse_origin("null") == "null"
    for bad in ("localhost:3000", "http://localhost:3000/app", "http://host:port",
                "http://user@host", "ok.example"):
        with pytest.raises(ServerConfigError, match="not an origin"):
            parse_origin(bad)
    with pytest.raises(ServerConfigError, match="not an origin"):
        OpenlidServer(gemma_path, LOAD, allowed_origins=["localhost:3000"])
    anyone = AccessPolicy.make("127.0.0.1", origins=["*"])
    assert anyone.origin_allowed(EVIL, "127.0.0.1:8080")
    assert anyone.cors_origin(EVIL) == EVIL
