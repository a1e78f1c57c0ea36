"""The remote model store: entries on disk with stable ids, owner-only file, keys kept out of
reprs, messages and library paths."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from desktop.remote import entries as rm
from desktop.remote.client import RemoteError, RemoteModel

KEY = "sk-store-secret-987"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path))
    return tmp_path


def test_add_list_update_remove_resolve() -> None:
    assert rm.list_entries() == []
    a = rm.add(RemoteModel("http://gpu-box:8080/v1", "llama-70b", KEY, name="Big llama"))
    b = rm.add(RemoteModel("http://127.0.0.1:8000/v1", "qwen", llama_extras=False))
    assert a.id != b.id
    assert a.path == f"remote:{a.id}"
    assert rm.is_remote_path(a.path)
    assert not rm.is_remote_path("/models/x.gguf")
    assert a.display_name == "Big llama"
    assert b.display_name == "qwen"
    assert a.details == "llama-70b at http://gpu-box:8080/v1"
    assert [e.id for e in rm.list_entries()] == [a.id, b.id]
    assert rm.resolve(a.path) == a.model
    assert rm.resolve(b.path).llama_extras is False

    changed = rm.update(a.id, RemoteModel("http://gpu-box:9090/v1", "llama-70b", "sk-new"))
    assert changed.path == a.path  # the id, and so the library path, stays
    assert rm.resolve(a.path).api_key == "sk-new"
    rm.remove(a.id)
    rm.remove(a.id)  # twice is fine
    assert [e.id for e in rm.list_entries()] == [b.id]
    with pytest.raises(rm.RemoteModelError, match="no remote model"):
        rm.resolve(a.path)
    with pytest.raises(rm.RemoteModelError):
        rm.update(a.id, b.model)
    with pytest.raises(rm.RemoteModelError):
        rm.resolve("/models/x.gguf")


def test_invalid_entries_are_refused_before_anything_is_written() -> None:
    with pytest.raises(RemoteError, match="http"):
        rm.add(RemoteModel("gpu-box:8080", "m"))
    with pytest.raises(RemoteError, match="model name"):
        rm.add(RemoteModel("http://gpu-box:8080/v1", "  "))
    assert not rm.store_path().exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_the_file_is_owner_only_and_written_whole() -> None:
    entry = rm.add(RemoteModel("http://h:1/v1", "m", KEY))
    path = rm.store_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["entries"][0]["id"] == entry.id
    assert data["entries"][0]["api_key"] == KEY
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_keys_stay_out_of_reprs_details_and_errors() -> None:
    entry = rm.add(RemoteModel("http://user:pw-secret@h:1/v1?key=q-secret", "m", KEY))
    for text in (repr(entry), entry.details, repr(rm.list_entries())):
        assert KEY not in text
        assert "pw-secret" not in text
        assert "q-secret" not in text
    assert rm.public_url(entry.model.base_url) == "http://h:1/v1"
    message = f"{entry.model.base_url} answered 401: Incorrect API key provided: {KEY}"
    redacted = rm.redact(message, entry.model)
    assert KEY not in redacted
    assert "pw-secret" not in redacted
    assert redacted.startswith("http://h:1/v1 answered 401")

    rm.store_path().write_text('{"entries": [{"id": "x", "api_key": "' + KEY + '"}]}')
    with pytest.raises(rm.RemoteModelError) as info:
        rm.list_entries()
    assert "damaged" in str(info.value)
    assert KEY not in str(info.value)
    assert info.value.__cause__ is None
