"""A local Hugging Face Hub for tests: the real API shapes, served from files built in a temp dir.

Two ThreadingHTTPServers on 127.0.0.1: the Hub (`url`) and a "CDN" (`cdn_url`, another port, so
another origin as on the real Hub) that LFS files redirect to with a signed URL. Routes:

    GET  /api/models?search=&author=&filter=&num_parameters=&sort=&limit=&expand=&cursor=
                                             list, Link: rel="next" paging
    GET  /api/models/{repo}[/revision/{rev}][?blobs=true]          model info with siblings
    GET  /api/models/{repo}/tree/{rev}[/{path}]                     list_repo_tree
    POST /api/models/{repo}/paths-info/{rev}                        get_paths_info
    GET|HEAD /{repo}/resolve/{rev}/{path}    small files: 200/206; LFS: 302 to the CDN with
                                             X-Repo-Commit, X-Linked-Etag, X-Linked-Size
    GET|HEAD /cdn/{sha256}?sig=              the bytes, with Range (206, Content-Range, 416)

Gated repos answer resolve with 401 (no token) or 403 (token without access) and
X-Error-Code: GatedRepo; private repos answer everything with 401/404 RepoNotFound, as the Hub
does. `HubServer.faults` switches (throttle, drop the connection after N bytes, corrupt a byte,
stall, ignore Range, gzip text, a longer file with or without a Content-Length) apply to file
bodies. `requests` logs every request with its
headers; `bytes_served` counts body bytes per file path. Handler threads are the server's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.hub.repos import FakeRepo
from tests.hub.serving import BaseHandler, Faults, LoggedRequest, State

__all__ = ["Faults", "HubServer", "LoggedRequest", "wait_until"]

_SECRET = b"openlid-test-cdn"


def _sign(sha256: str) -> str:
    return hmac.new(_SECRET, sha256.encode(), hashlib.sha256).hexdigest()[:32]

class _Handler(BaseHandler):
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _can_see(self, repo: FakeRepo) -> bool:
        return not repo.private or self._token() in self.state.granted.get(repo.repo_id, set())

    def _not_found(self) -> None:
        status = 404 if self._token() else 401
        self._error(status, "RepoNotFound", "Repository not found")

    # --- routing ----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._log()
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        if path == "/api/models":
            self._list(query)
        elif path.startswith("/api/models/"):
            self._api_get(path[len("/api/models/") :], query)
        elif "/resolve/" in path:
            self._resolve(path.lstrip("/"))
        else:
            self._error(404, None, "Not found")

    def do_POST(self) -> None:
        self._log()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        path = unquote(urlsplit(self.path).path)
        if "/paths-info/" not in path:
            self._error(404, None, "Not found")
            return
        repo_id, rev = path[len("/api/models/") :].split("/paths-info/", 1)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(body or "{}")
            wanted = form.get("paths", [])
        else:
            wanted = parse_qs(body).get("paths", [])
        repo = self._repo_at(repo_id, rev)
        if repo is not None:
            self._json(200, [repo.entry(p) for p in wanted if p in repo.files])

    def _repo_at(self, repo_id: str, rev: str) -> FakeRepo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or not self._can_see(repo):
            self._not_found()
            return None
        if rev not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo

    def _list(self, query: dict[str, list[str]]) -> None:
        repos = [r for r in self.state.repos.values() if self._can_see(r)]
        if text := query.get("search", [""])[0].lower():
            repos = [r for r in repos if text in r.repo_id.lower()]
        if author := query.get("author", [""])[0]:
            repos = [r for r in repos if r.author == author]
        for tag in query.get("filter", []):
            repos = [r for r in repos if tag in r.tags]
        if num := query.get("num_parameters", [""])[0]:
            low, high = _param_range(num)
            repos = [r for r in repos if r.params is not None and low <= r.params <= high]
        sort = query.get("sort", ["trendingScore"])[0]
        repos.sort(key=lambda r: (r.summary().get(sort) or 0, r.repo_id), reverse=True)
        limit = min(int(query.get("limit", [str(self.state.page_size)])[0]),
                    self.state.page_size)
        start = int(query.get("cursor", ["0"])[0])
        page = repos[start : start + limit]
        headers = {}
        if start + limit < len(repos):
            flat = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
            nxt = urlencode([*flat, ("cursor", str(start + limit))])
            headers["Link"] = f'<http://{self._host()}/api/models?{nxt}>; rel="next"'
        expand = query.get("expand", [])
        self._json(200, [r.expanded(expand) for r in page], headers)

    def _host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"  # type: ignore[index]

    def _api_get(self, rest: str, query: dict[str, list[str]]) -> None:
        for marker in ("/tree/", "/revision/"):
            if marker in rest:
                repo_id, tail = rest.split(marker, 1)
                break
        else:
            repo_id, tail, marker = rest, "main", "/revision/"
        rev, _, sub = tail.partition("/")
        repo = self._repo_at(repo_id, rev)
        if repo is None:
            return
        if marker == "/tree/":
            recursive = query.get("recursive", ["False"])[0].lower() == "true"
            self._json(200, repo.tree(sub, recursive))
        else:
            blobs = query.get("blobs", ["False"])[0].lower() == "true"
            self._json(200, repo.info(blobs))

    def _resolve(self, rest: str) -> None:
        repo_id, tail = rest.split("/resolve/", 1)
        rev, _, file_path = tail.partition("/")
        repo = self._repo_at(repo_id, rev)
        if repo is None:
            return
        if repo.gated:
            token = self._token()
            if token is None:
                self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You "
                            "must have access to it and be authenticated to access it. "
                            "Please log in.")
                return
            if token not in self.state.granted.get(repo_id, set()):
                self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you "
                            "are not in the authorized list. Visit "
                            f"https://huggingface.co/{repo_id} to ask for access.")
                return
        data = repo.files.get(file_path)
        if data is None:
            self._error(404, "EntryNotFound", f"{file_path} does not exist on \"{rev}\"",)
            return
        common = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if data.lfs:
            signed = urlencode({"name": file_path, "sig": _sign(data.sha256)})
            location = f"{self.state.cdn_url}/cdn/{data.sha256}?{signed}"
            self._reply(302, b"", {
                **common, "Location": location, "ETag": f'"{data.sha256}"',
                "X-Linked-Etag": f'"{data.sha256}"', "X-Linked-Size": str(len(data.data)),
            }, content_type="text/plain")
            return
        self._file(data, {**common, "ETag": f'"{data.blob_sha1}"'})

def _param_range(text: str) -> tuple[float, float]:
    """The Hub's `num_parameters` syntax: "min:1B,max:8B", "min:6B", "max:500M"."""
    units = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
    bounds = {"min": 0.0, "max": float("inf")}
    for part in text.split(","):
        key, _, value = part.partition(":")
        number = value.rstrip("KMBTkmbt")
        bounds[key.strip()] = float(number) * units[value[len(number):].upper()]
    return bounds["min"], bounds["max"]


class _CdnHandler(_Handler):
    server_name_tag = "cdn"

    def do_GET(self) -> None:
        self._log()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        sha = parts.path.rsplit("/", 1)[-1]
        if query.get("sig", [""])[0] != _sign(sha):
            self._reply(403, b"<Error>AccessDenied</Error>", content_type="application/xml")
            return
        for repo in self.state.repos.values():
            for data in repo.files.values():
                if data.lfs and data.sha256 == sha:
                    self._file(data, {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"})
                    return
        self._reply(404, b"<Error>NoSuchKey</Error>", content_type="application/xml")


class HubServer:
    """Both servers, started on construction; `stop()` ends them and cuts open connections
    (a stopped Hub must look offline even to a client holding a kept-alive connection)."""

    def __init__(self, repos: list[FakeRepo]) -> None:
        self.state = State({r.repo_id: r for r in repos})
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.cdn_url = self._serve(_CdnHandler, "cdn")
        self.state.cdn_url = self.cdn_url
        self.url = self._serve(_Handler, "hub")

    def _serve(self, base: type[_Handler], name: str) -> str:
        handler = type(f"Bound{base.__name__}", (base,), {"state": self.state})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"test-hub-{name}", daemon=True,
        )
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def requests(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def served(self, path: str) -> int:
        with self.state.lock:
            return self.state.bytes_served[path]

    def quiet(self) -> bool:
        """No file body is being sent (a killed client's response has run out)."""
        with self.state.lock:
            return self.state.sending == 0

    def grant(self, repo_id: str, token: str) -> None:
        self.state.granted.setdefault(repo_id, set()).add(token)

    def resolve_url(self, repo_id: str, path: str) -> str:
        return f"{self.url}/{repo_id}/resolve/main/{quote(path)}"

    def stop(self) -> None:
        if self.state.stopped.is_set():
            return
        self.state.stopped.set()
        for server in self._servers:
            server.shutdown()
        with self.state.lock:
            connections = list(self.state.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.005) -> bool:
    """Poll a cheap condition (a file's size, a counter) until it holds; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
