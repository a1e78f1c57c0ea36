"""The parts of the local Hub that are plain HTTP: shared state, the request log, replies, and
file bodies with Range (206, Content-Range, 416) and the fault switches. Handler threads are the
server's own; `State.lock` guards every counter and list a test reads.

The overrun switches play a mirror or proxy that serves a different, longer file: `overrun_bytes`
of junk follow the body, announced in Content-Length, or, with `hide_length`, in a body with no
length at all that ends when the connection closes (a client must stop reading on its own)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.hub.repos import FakeRepo, RepoFileData

_CHUNK = 16 << 10
_JUNK = bytes(range(251))


@dataclass
class Faults:
    """Fault switches for file bodies; counters count down per response they spoil."""

    throttle_bps: int = 0
    drop_after: int | None = None  # body bytes sent before the connection is cut
    drop_times: int = 0
    corrupt_times: int = 0
    corrupt_offset: int = 0  # file offset of the byte flipped
    stall_after: int | None = None  # body bytes sent before going silent
    stall_seconds: float = 0.0
    stall_times: int = 0
    ignore_range: bool = False
    gzip_text: bool = False  # gzip non-LFS files when the client accepts it (ignores Range)
    overrun_bytes: int = 0  # junk sent after the file's last byte
    overrun_times: int = 0
    hide_length: bool = False  # no Content-Length: the body ends when the connection closes
    only_path: str | None = None  # spoil only this repo path


@dataclass(frozen=True)
class LoggedRequest:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class State:
    repos: dict[str, FakeRepo]
    faults: Faults = field(default_factory=Faults)
    granted: dict[str, set[str]] = field(default_factory=dict)  # repo → tokens with access
    requests: list[LoggedRequest] = field(default_factory=list)
    bytes_served: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)
    connections: set[socket.socket] = field(default_factory=set)
    cdn_url: str = ""
    page_size: int = 1000  # the Hub's own cap on one page of /api/models
    sending: int = 0  # file bodies being written now


class BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_name_tag = "hub"
    state: State

    # --- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        # The client went away (pause, cancel, a test cutting it): nothing to report.
        with contextlib.suppress(OSError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _log(self) -> None:
        entry = LoggedRequest(
            self.server_name_tag, self.command, self.path,
            {k.lower(): v for k, v in self.headers.items()},
        )
        with self.state.lock:
            self.state.requests.append(entry)

    def _reply(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._reply(status, json.dumps(data).encode(), headers)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    # --- file bodies with Range and faults -----------------------------------------------------

    def _file(self, data: RepoFileData, headers: dict[str, str]) -> None:
        f = self.state.faults
        body, start, status = data.data, 0, 200
        accepts_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if f.gzip_text and not data.lfs and accepts_gzip:
            self._reply(200, gzip.compress(body), {**headers, "Content-Encoding": "gzip"},
                        "text/plain")
            return
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and "," not in wanted and not f.ignore_range:
            first, _, last = wanted[6:].partition("-")
            start = int(first or 0)
            if start >= len(body):
                self._reply(416, b"", {**headers, "Content-Range": f"bytes */{len(body)}"},
                            "text/plain")
                return
            end = min(int(last), len(body) - 1) if last else len(body) - 1
            body, status = body[start : end + 1], 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data.data)}"}
        if self.command == "GET" and self._overruns(data.path):
            body += (_JUNK * (f.overrun_bytes // len(_JUNK) + 1))[: f.overrun_bytes]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if f.hide_length:
            self.close_connection = True  # HTTP/1.1 without a length: close ends the body
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self._send_body(data.path, body, start)

    def _overruns(self, path: str) -> bool:
        f = self.state.faults
        with self.state.lock:
            if f.overrun_times <= 0 or (f.only_path is not None and f.only_path != path):
                return False
            f.overrun_times -= 1
            return True

    def _spoils(self, path: str) -> tuple[int | None, bool, int | None, float, int]:
        f, st = self.state.faults, self.state
        with st.lock:
            applies = f.only_path is None or f.only_path == path
            drop = f.drop_after if applies and f.drop_times > 0 else None
            if drop is not None:
                f.drop_times -= 1
            corrupt = applies and f.corrupt_times > 0
            if corrupt:
                f.corrupt_times -= 1
            stall = f.stall_after if applies and f.stall_times > 0 else None
            if stall is not None:
                f.stall_times -= 1
            return drop, corrupt, stall, f.stall_seconds, f.throttle_bps

    def _send_body(self, path: str, body: bytes, start: int) -> None:
        with self.state.lock:
            self.state.sending += 1
        try:
            self._send_spoiled(path, body, start)
        finally:
            with self.state.lock:
                self.state.sending -= 1

    def _send_spoiled(self, path: str, body: bytes, start: int) -> None:
        drop, corrupt, stall, stall_s, bps = self._spoils(path)
        if corrupt and start <= self.state.faults.corrupt_offset < start + len(body):
            spoiled = bytearray(body)
            spoiled[self.state.faults.corrupt_offset - start] ^= 0xFF
            body = bytes(spoiled)
        sent = 0
        while sent < len(body) and not self.state.stopped.is_set():
            if drop is not None and sent >= drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if stall is not None and sent >= stall:
                stall = None
                if self.state.stopped.wait(stall_s):
                    return
            n = _CHUNK
            for limit in (drop, stall):
                if limit is not None and sent < limit:
                    n = min(n, limit - sent)
            chunk = body[sent : sent + n]
            if bps and self.state.stopped.wait(len(chunk) / bps):
                return
            self.wfile.write(chunk)
            sent += len(chunk)
            with self.state.lock:
                self.state.bytes_served[path] += len(chunk)
