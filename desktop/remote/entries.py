"""Remote model entries: OpenAI-compatible endpoints a person added as models, kept on disk.

Pure (no Qt, no inference library); any thread, any process: the GUI lists and edits entries,
the engine worker process resolves a library path `"remote:<id>"` to its `RemoteModel` when it
loads one. Entries live in `paths.data_dir()/remote_models.json`:

    {"version": 1, "entries": [{"id": "…", "base_url": "…", "model": "…", "name": "…",
                                "llama_extras": true, "api_key": "…"}, …]}

The file holds API keys, so it is written with mode 0600 (owner only) by a write to a temporary
file in the same folder followed by `os.replace`: a crash never leaves half a file, and the key
never sits in a file other users can read, even for a moment. Keys never appear in a repr, an
exception, a log line or a `ModelInfo`; `redact` scrubs them (and any user:password in a URL) from
text that came back from a server.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from desktop.core import paths
from desktop.core.private_files import replace_file
from desktop.remote.client import RemoteModel
from desktop.remote.http import RemoteError, public_url

__all__ = [
    "REMOTE_PREFIX", "RemoteEntry", "RemoteModelError", "add", "explain", "get", "is_remote_path",
    "list_entries", "not_served", "public_url", "redact", "remove", "resolve", "store_path",
    "update",
]

REMOTE_PREFIX = "remote:"
FILE_NAME = "remote_models.json"
_VERSION = 1
_lock = threading.Lock()  # one writer at a time within a process (read-modify-write)


class RemoteModelError(Exception):
    """An entry is missing or the file cannot be read; the message never holds a key."""


@dataclass(frozen=True)
class RemoteEntry:
    """One stored remote model: a stable id plus the endpoint it names."""

    id: str
    model: RemoteModel

    def __repr__(self) -> str:  # no key, and no user:password or ?key= from the URL either
        return (f"RemoteEntry(id={self.id!r}, url={public_url(self.model.base_url)!r}, "
                f"model={self.model.model!r})")

    @property
    def path(self) -> str:
        """What the model library and `EngineHost.load` use for this entry."""
        return REMOTE_PREFIX + self.id

    @property
    def display_name(self) -> str:
        return self.model.display_name

    @property
    def details(self) -> str:
        """One line for a list: the model name at the endpoint (never the key)."""
        return f"{self.model.model} at {public_url(self.model.base_url)}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.model.to_json(include_key=True)}


def is_remote_path(path: str) -> bool:
    return str(path).startswith(REMOTE_PREFIX)


def store_path() -> Path:
    return paths.data_dir() / FILE_NAME


def redact(text: str, model: RemoteModel) -> str:
    """`text` with the key and the URL's credentials replaced: for messages from a server."""
    secrets = [model.api_key] if len(model.api_key) >= 4 else []
    parts = urlsplit(model.base_url)
    if parts.password:
        secrets.append(parts.password)
    if parts.query:
        secrets.append(parts.query)  # a key passed as ?key=… must not show either
    if model.base_url != public_url(model.base_url):
        text = text.replace(model.base_url, public_url(model.base_url))
    for secret in secrets:
        text = text.replace(secret, "•••")
    return text


# --- reading and writing ---


def explain(exc: RemoteError, model: RemoteModel, key_hint: str) -> str:
    """A failed request to `model`'s endpoint in words that say what to change (`key_hint`:
    where this caller changes a key). Never holds the key or the URL's credentials."""
    url = public_url(model.base_url)
    detail = redact(str(exc), model)
    if exc.kind == "connect":
        return f"{detail} (is the server running and the address right?)"
    if exc.status in (401, 403):
        what = "the API key was refused" if model.api_key else "the endpoint needs an API key"
        return f"{url} answered {exc.status}: {what}; {key_hint}"
    if exc.status == 404:
        return (f"{url} has no /models: is the URL the API's base (usually ending in /v1)? "
                f"({detail})")
    return detail


def not_served(model: RemoteModel, names: list[str]) -> str:
    """Why a model the endpoint does not list cannot be used (its list, shortened)."""
    listed = ", ".join(names[:8]) + (" …" if len(names) > 8 else "") or "none"
    return (f"{public_url(model.base_url)} answers, but serves no model named '{model.model}' "
            f"(it lists: {listed})")


def _read() -> list[RemoteEntry]:
    path = store_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RemoteModelError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
        entries = [RemoteEntry(str(e["id"]), RemoteModel.from_json(e)) for e in data["entries"]]
    except (ValueError, KeyError, TypeError):
        # `from None`: the chained error could quote the file, key included.
        raise RemoteModelError(f"{path} is damaged; remove it to start afresh") from None
    return entries


def _write(entries: Iterable[RemoteEntry]) -> None:
    path = store_path()
    text = json.dumps({"version": _VERSION, "entries": [e.to_json() for e in entries]},
                      indent=2)
    replace_file(path, text.encode("utf-8"))  # 0600, whole or not at all


# --- the API ---


def list_entries() -> list[RemoteEntry]:
    """Every stored entry, in the order they were added."""
    return _read()


def get(entry_id: str) -> RemoteEntry:
    for entry in _read():
        if entry.id == entry_id:
            return entry
    raise RemoteModelError(f"there is no remote model with id {entry_id!r} (was it removed?)")


def add(model: RemoteModel) -> RemoteEntry:
    """Store a new entry (validated: an http(s) URL and a model name) under a fresh id."""
    model.validated()
    entry = RemoteEntry(uuid.uuid4().hex[:12], model)
    with _lock:
        _write([*_read(), entry])
    return entry


def update(entry_id: str, model: RemoteModel) -> RemoteEntry:
    """Replace what an entry points at; its id (and so its library path) stays."""
    model.validated()
    with _lock:
        entries = _read()
        for i, entry in enumerate(entries):
            if entry.id == entry_id:
                entries[i] = replace(entry, model=model)
                _write(entries)
                return entries[i]
    raise RemoteModelError(f"there is no remote model with id {entry_id!r} (was it removed?)")


def remove(entry_id: str) -> None:
    """Forget an entry (and its key). Removing an unknown id is not an error."""
    with _lock:
        entries = _read()
        kept = [e for e in entries if e.id != entry_id]
        if len(kept) != len(entries):
            _write(kept)


def resolve(path: str) -> RemoteModel:
    """The endpoint a library path `"remote:<id>"` names; RemoteModelError when it is unknown."""
    if not is_remote_path(path):
        raise RemoteModelError(f"{path!r} is not a remote model path")
    return get(path[len(REMOTE_PREFIX):]).model
