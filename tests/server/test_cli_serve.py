"""`openlid serve` as a user runs it: a real server process (`python -m desktop serve`) with the
key from OPENLID_API_KEY, origins from --allow-origin and OPENLID_ORIGINS, and the time limit
from --max-request-seconds; plus what --help says and how bad values are refused."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

KEY = "sk-openlid-from-the-environment"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENLID_API_KEY", "OPENLID_ORIGINS")}
    return {**env, **extra}


def _serve(*args: str, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", "serve", *args], capture_output=True,
                          text=True, timeout=timeout, env=env or _env())


def test_help_states_the_limits_and_prefers_the_env_key() -> None:
    done = _serve("--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for words in ("--max-request-seconds S", "at most --max-request-seconds (default 300 s)",
                  "--default-max-tokens (default 2048", "--max-wait-seconds (default 120 s)",
                  "--allow-origin URL", "$OPENLID_ORIGINS", "prefer $OPENLID_API_KEY=KEY",
                  "can read a command line with `ps`", "403 for a Host header",
                  "Content-Type: application/json"):
        assert words in text, words


def test_bad_limits_and_origins_are_refused_in_words() -> None:
    done = _serve("--api-key", "on-the-command-line", "--max-request-seconds", "0")
    assert done.returncode == 2
    assert "visible to other users in `ps`; set OPENLID_API_KEY instead" in done.stderr
    assert "time limit must be a positive number of seconds" in done.stderr
    assert "Traceback" not in done.stderr
    done = _serve("--allow-origin", "localhost:3000")
    assert done.returncode == 2
    assert "'localhost:3000' is not an origin" in done.stderr
    done = _serve(env=_env(OPENLID_ORIGINS="http://ok.example,ok.example"))
    assert done.returncode == 2
    assert "'ok.example' is not an origin" in done.stderr


@pytest.fixture(scope="module")
def served(gemma_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`openlid serve` in its own process; (process, base URL, the lines it printed first)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "serve", "--model", str(gemma_path), "--port", "0",
         "--ctx", "1024", "--max-request-seconds", "2",
         "--allow-origin", "http://also.example"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(OPENLID_API_KEY=KEY, OPENLID_ORIGINS="http://ok.example, http://two.example"),
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        assert "serving" in lines[0], lines[0] + proc.stdout.read()
        while "Ctrl-C" not in lines[-1]:
            lines.append(proc.stdout.readline())
        yield proc, lines[0].split(" at ")[1].strip(), lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _request(base: str, method: str, path: str, body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, Any]:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        conn.request(method, url.path + path, body=json.dumps(body) if body else None,
                     headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, response.headers, json.loads(data) if data else None
    finally:
        conn.close()


def test_the_key_comes_from_the_environment_not_the_command_line(
        served: tuple[subprocess.Popen[str], str, list[str]]) -> None:
    proc, base, _lines = served
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    if cmdline.exists():
        assert KEY not in cmdline.read_text()
    assert _request(base, "GET", "/models")[0] == 401
    assert _request(base, "GET", "/models", headers={"Authorization": f"Bearer {KEY}"})[0] == 200


def test_the_served_process_keeps_web_pages_out(
        served: tuple[subprocess.Popen[str], str, list[str]]) -> None:
    _proc, base, lines = served
    assert any("web pages allowed from http://also.example, http://ok.example" in line
               for line in lines)
    key = {"Authorization": f"Bearer {KEY}"}
    json_type = {**key, "Content-Type": "application/json"}
    completion = {"model": "m", "prompt": "Hi", "max_tokens": 1}
    status, _headers, body = _request(base, "GET", "/models",
                                      headers={**key, "Host": "rebound.evil.example"})
    assert (status, body["error"]["code"]) == (403, "host_not_allowed")
    status, _headers, body = _request(base, "POST", "/completions", completion,
                                      {**key, "Content-Type": "text/plain",
                                       "Origin": "http://evil.example"})
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
    status, _headers, body = _request(base, "POST", "/completions", completion,
                                      {**key, "Content-Type": "text/plain"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    for origin in ("http://also.example", "http://ok.example", "http://two.example"):
        status, headers, body = _request(base, "POST", "/completions", completion,
                                         {**json_type, "Origin": origin})
        assert status == 200, body
        assert headers["Access-Control-Allow-Origin"] == origin


def test_the_served_process_stops_a_long_generation_at_its_time_limit(
        served: tuple[subprocess.Popen[str], str, list[str]]) -> None:
    _proc, base, lines = served
    assert any("at most 2 s and, unless it asks otherwise, 1024 tokens"
               in line for line in lines)
    started = time.monotonic()
    status, _headers, body = _request(
        base, "POST", "/completions",
        {"model": "m", "prompt": "Once upon a time", "max_tokens": 1000, "ignore_eos": True},
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert status == 200, body
    assert time.monotonic() - started < 15
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] < 1000
