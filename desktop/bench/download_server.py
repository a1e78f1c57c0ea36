"""A local file server for `openlid bench --download`: one file on 127.0.0.1, at the path of a
Hub `resolve` URL, with the parts of HTTP the download manager relies on (Range → 206 with
Content-Range, 416 past the end, Accept-Ranges, ETag, X-Repo-Commit).

It is a benchmark fixture, not a Hub: no API, no redirects, no auth. The body is sent with
`socket.sendfile` (zero copy from the page cache), so the server costs as little CPU as it can
and the clients' own work is what the benchmark compares.

Processes and threads: `BenchFileServer` starts a child process (multiprocessing, spawn
context) that runs a `ThreadingHTTPServer`, each connection on a handler thread of its own.
The server must not share the measuring process: threads in one process share its GIL, and a
server thread holding it while it sends would slow whichever client is being timed (and skew
every experiment about the client's threads). `stop()` ends the child. A spawned child imports
the parent's `__main__` again, so entry points that start a server need the usual
`if __name__ == "__main__"` guard (`openlid`'s console script and `python -m` have one).
Standard library only; no Qt.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ["BENCH_REPO", "BENCH_REVISION", "BenchFileServer", "write_random_file"]

BENCH_REPO = "openlid-bench/local-file"
BENCH_REVISION = "0" * 40  # a commit-looking revision, as downloads pin one
_PACE_BLOCK = 256 << 10


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub and the CDN speak
    file_path: Path
    url_path: str
    sha256: str
    rate: float  # bytes per second the body is paced to; 0 = as fast as the socket takes it

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the benchmark prints its own report

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # a client that went away is not news
            super().handle()

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        if unquote(urlsplit(self.path).path) != self.url_path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = self.file_path.stat().st_size
        start, end = 0, size - 1
        status = 200
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and "," not in wanted:
            first, _, last = wanted[6:].partition("-")
            if first.isdigit():
                start = int(first)
                end = min(int(last), size - 1) if last.isdigit() else size - 1
                status = 206
            if status == 206 and start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{self.sha256}"')
        self.send_header("X-Repo-Commit", BENCH_REVISION)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body and length:
            with self.file_path.open("rb") as f:
                if not self.rate:
                    self.connection.sendfile(f, start, length)
                    return
                began, sent = time.monotonic(), 0
                while sent < length:  # paced like a link of `rate` bytes/s
                    n = min(_PACE_BLOCK, length - sent)
                    self.connection.sendfile(f, start + sent, n)
                    sent += n
                    ahead = sent / self.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)


def _serve(path: str, url_path: str, sha256: str, rate: float,
           ready: Connection) -> None:
    """The child process: serve until the parent closes its end of `ready` (or dies)."""
    import threading

    handler = type("BoundBenchHandler", (_Handler,), {
        "file_path": Path(path), "url_path": url_path, "sha256": sha256, "rate": rate,
    })
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     name="openlid-bench-server", daemon=True).start()
    ready.send(server.server_address[1])
    with contextlib.suppress(EOFError, OSError):
        ready.recv()  # anything, or EOF when the parent closes the pipe or exits
    server.shutdown()
    server.server_close()


class BenchFileServer:
    """Serves `path` (whose sha256 is `sha256`) from a child process until `stop()`, at most
    `rate` bytes/s per response when `rate` > 0 (a network link's speed). `url` is the Hub-like
    endpoint; `file_url` the file's resolve URL under it. Blocks until the server listens."""

    def __init__(self, path: Path, sha256: str, rate: float = 0.0) -> None:
        name = path.name
        url_path = f"/{BENCH_REPO}/resolve/{BENCH_REVISION}/{name}"
        ctx = multiprocessing.get_context("spawn")  # no fork: the caller may hold threads
        self._pipe, child_end = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(str(path), url_path, sha256, rate, child_end),
            name="openlid-bench-server", daemon=True,
        )
        self._process.start()
        child_end.close()
        try:
            if not self._pipe.poll(60):
                raise EOFError
            port = self._pipe.recv()
        except EOFError:  # the child died (or hung) before it listened
            self.stop()
            raise RuntimeError("the benchmark's file server did not start") from None
        self.url = f"http://127.0.0.1:{port}"
        self.repo_id = BENCH_REPO
        self.revision = BENCH_REVISION
        self.file_name = name
        self.file_url = self.url + quote(url_path)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send(None)
        self._pipe.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)

    def __enter__(self) -> BenchFileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_random_file(path: Path, size: int, block: int = 8 << 20) -> str:
    """Fill `path` with `size` random bytes; return their sha256 (hex)."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left > 0:
            chunk = os.urandom(min(block, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()
