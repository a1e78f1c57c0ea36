"""desktop.core.library.catalog: scan, import in place, discover (fake HF cache and LM Studio
folders), remove, and the records persisted in the app's SQLite file (the one-time import of the old
library.json, concurrent writers, the other stores' tables beside it). Each test gets its own
OPENLID_HOME."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from desktop.core import paths
from desktop.core.library import catalog
from desktop.core.library.store import LibraryStore, ModelRecord
from tests.ggufmaker import tiny_param_count, write_tiny_gguf

_REAL_HF_CACHE_DIR = catalog.hf_cache_dir
_REAL_LM_STUDIO_DIRS = catalog.lm_studio_dirs


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENLID_MODELS_DIR", raising=False)
    monkeypatch.setattr(catalog, "hf_cache_dir", lambda: tmp_path / "hf" / "hub")
    monkeypatch.setattr(catalog, "lm_studio_dirs", lambda: (tmp_path / "lms" / "models",
                                                            tmp_path / "lms-old" / "models"))
    return tmp_path


def _saved() -> dict[str, ModelRecord]:
    """What a fresh connection reads from the database: what another process would see."""
    with LibraryStore(paths.database_path()) as store:
        return store.records()


def _by_path(models: list[catalog.LocalModel]) -> dict[str, catalog.LocalModel]:
    return {m.path: m for m in models}


def test_scan_lists_models_folder_with_metadata() -> None:
    target = paths.models_dir() / "org" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    write_tiny_gguf(target, name="Tiny", chat_template="{{ messages }}")
    (paths.models_dir() / "partial.gguf.part").write_bytes(b"GGUF")
    [model] = catalog.scan()
    assert model.path == str(target)
    assert (model.name, model.architecture, model.source) == ("Tiny", "llama", "models folder")
    assert model.n_params == tiny_param_count()
    assert model.quant
    assert model.context_length == 256
    assert model.has_template
    assert model.size_bytes == target.stat().st_size
    assert not model.problem
    saved = _saved()[str(target)]
    assert (saved.source, saved.size) == ("models folder", target.stat().st_size)
    assert saved.meta["name"] == "Tiny"


def test_broken_file_stays_listed_with_reason() -> None:
    (paths.models_dir() / "broken.gguf").write_bytes(b"<html>login</html>")
    [model] = catalog.scan()
    assert "HTML" in model.problem
    assert model.architecture == ""


def test_import_links_in_place(home: Path) -> None:
    (home / "elsewhere").mkdir()
    outside = write_tiny_gguf(home / "elsewhere" / "m.gguf")
    model = catalog.import_model(outside)
    assert model.source == "imported"
    assert model.path == str(outside)
    assert not any(paths.models_dir().rglob("*.gguf"))  # nothing copied
    assert _by_path(catalog.scan())[str(outside)].architecture == "llama"
    # Persisted: a fresh connection to the database still knows it.
    assert _saved()[str(outside)].source == "imported"


def test_import_refuses_bad_file_with_reason(home: Path) -> None:
    bad = home / "bad.gguf"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(catalog.LibraryError, match="LFS pointer"):
        catalog.import_model(bad)
    with pytest.raises(catalog.LibraryError, match="does not exist"):
        catalog.import_model(home / "missing.gguf")
    assert catalog.scan() == []


def _safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header = {k: {"dtype": "BF16", "shape": s, "data_offsets": [0, 0]} for k, s in shapes.items()}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_import_safetensors_folder(home: Path) -> None:
    folder = home / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["Qwen2ForCausalLM"], "max_position_embeddings": 4096}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    _safetensors(folder / "model.safetensors", {"a": [4, 8], "b": [8]})
    model = catalog.import_model(folder)
    assert (model.format, model.architecture, model.n_params) == ("safetensors",
                                                                  "Qwen2ForCausalLM", 40)
    assert model.context_length == 4096
    assert model.has_template
    assert model.quant == "BF16"


def test_import_refuses_pickle_only_folder(home: Path) -> None:
    folder = home / "pickles"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04junk")
    with pytest.raises(catalog.LibraryError, match="pickle"):
        catalog.import_model(folder)
    (folder / "config.json").unlink()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(catalog.LibraryError, match=r"config\.json"):
        catalog.import_model(folder)


def test_discover_finds_hf_cache_and_lm_studio(home: Path) -> None:
    snap = home / "hf" / "hub" / "models--org--repo" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    blob = write_tiny_gguf(home / "hf" / "hub" / "blob")
    (snap / "repo-Q4.gguf").symlink_to(blob)
    lms = home / "lms" / "models" / "pub" / "repo"
    lms.mkdir(parents=True)
    lm_file = write_tiny_gguf(lms / "model.gguf")
    write_tiny_gguf(lms / "mmproj-model-f16.gguf")  # a vision projector, not a model
    (lms / "junk.gguf").write_bytes(b"nope")  # broken files are not offered
    found = _by_path(catalog.discover())
    assert set(found) == {str(snap / "repo-Q4.gguf"), str(lm_file)}
    assert found[str(lm_file)].source == "lm studio"
    hf = found[str(snap / "repo-Q4.gguf")]
    assert hf.source == "hf cache"
    assert hf.size_bytes == blob.stat().st_size
    added = catalog.import_model(hf.path, source=hf.source)
    assert added.source == "hf cache"
    assert set(_by_path(catalog.discover())) == {str(lm_file)}
    assert _by_path(catalog.scan())[hf.path].source == "hf cache"


def test_remove_deletes_only_inside_models_folder(home: Path) -> None:
    inside = write_tiny_gguf(paths.models_dir() / "in.gguf")
    outside = catalog.import_model(write_tiny_gguf(home / "out.gguf")).path
    assert catalog.remove(outside, delete_file=True) is False
    assert Path(outside).exists()
    assert catalog.remove(inside, delete_file=True) is True
    assert not inside.exists()
    assert catalog.scan() == []


def test_remove_without_delete_hides_models_folder_file() -> None:
    inside = write_tiny_gguf(paths.models_dir() / "keep.gguf")
    assert catalog.remove(inside) is False
    assert inside.exists()
    assert catalog.scan() == []
    catalog.import_model(inside)  # adding it back un-hides it
    assert [m.source for m in catalog.scan()] == ["models folder"]


def test_metadata_cache_is_reused_and_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_tiny_gguf(paths.models_dir() / "c.gguf", name="First")
    assert catalog.scan()[0].name == "First"
    calls = []
    real = catalog.check_gguf
    monkeypatch.setattr(catalog, "check_gguf", lambda p: calls.append(p) or real(p))
    assert catalog.scan()[0].name == "First"
    assert calls == []
    write_tiny_gguf(target, name="Second", n_blocks=2)
    assert catalog.scan()[0].name == "Second"
    assert len(calls) == 1


def test_imported_file_that_vanished_is_reported(home: Path) -> None:
    gone = write_tiny_gguf(home / "gone.gguf")
    catalog.import_model(gone)
    gone.unlink()
    [model] = catalog.scan()
    assert model.problem == "the file is gone"


def test_every_call_takes_a_models_dir(home: Path) -> None:
    other = home / "other-models"
    other.mkdir()
    inside = write_tiny_gguf(other / "x.gguf")
    assert catalog.scan() == []  # the default folder is empty
    [model] = catalog.scan(other)
    assert (model.path, model.source) == (str(inside), "models folder")
    again = catalog.import_model(inside, models_dir=other)
    assert again.source == "models folder"  # inside that folder, whatever the default says
    assert catalog.remove(inside, delete_file=True) is False  # outside the default folder
    assert inside.exists()
    catalog.import_model(inside, models_dir=other)
    assert catalog.remove(inside, delete_file=True, models_dir=other) is True
    assert not inside.exists()
    assert catalog.scan(other) == []


def test_search_places_follow_the_environment_at_call_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "hf_cache_dir", _REAL_HF_CACHE_DIR)  # not the fixture's fakes
    monkeypatch.setattr(catalog, "lm_studio_dirs", _REAL_LM_STUDIO_DIRS)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert catalog.hf_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert catalog.hf_cache_dir() == tmp_path / "hfhome" / "hub"
    default = tmp_path / "user" / ".lmstudio" / "models"
    assert catalog.lm_studio_dirs()[0] == default
    settings = tmp_path / "user" / ".lmstudio" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"downloadsFolder": str(tmp_path / "moved")}))
    assert catalog.lm_studio_dirs()[:2] == (tmp_path / "moved", default)
    settings.write_text("{broken")
    assert catalog.lm_studio_dirs()[0] == default
    assert catalog.discover_places() == (tmp_path / "hfhome" / "hub", *catalog.lm_studio_dirs())


def test_concurrent_scan_and_import_keep_both_changes(home: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for i in range(6):
        write_tiny_gguf(paths.models_dir() / f"m{i}.gguf")
    (home / "ext").mkdir()
    outside = [write_tiny_gguf(home / "ext" / f"e{i}.gguf") for i in range(6)]
    with ThreadPoolExecutor(4) as pool:
        scans = [pool.submit(catalog.scan) for _ in range(6)]
        imports = [pool.submit(catalog.import_model, p) for p in outside]
        for f in scans + imports:
            f.result()
    listed = {m.path for m in catalog.scan()}
    assert {str(p) for p in outside} <= listed
    assert len(listed) == 12


def test_concurrent_scan_never_undoes_a_remove(home: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    files = [write_tiny_gguf(paths.models_dir() / f"r{i}.gguf") for i in range(6)]
    with ThreadPoolExecutor(4) as pool:
        scans = [pool.submit(catalog.scan) for _ in range(6)]
        removals = [pool.submit(catalog.remove, p) for p in files[:3]]
        for f in scans + removals:
            f.result()
    assert {m.path for m in catalog.scan()} == {str(p) for p in files[3:]}


def test_commit_scan_keeps_what_others_wrote_meanwhile() -> None:
    db = paths.database_path()
    with LibraryStore(db) as store:
        store.put("/a.gguf", ModelRecord("imported", 1, 1, {"name": "old"}))
        before = store.records()
        # Meanwhile another thread re-imports /a.gguf and hides /new.gguf.
        with LibraryStore(db) as other:
            other.put("/a.gguf", ModelRecord("hf cache", 2, 2, {"name": "theirs"}))
            other.forget("/new.gguf", hide=True)
        after = {"/a.gguf": ModelRecord("imported", 3, 3, {"name": "mine"}),
                 "/new.gguf": ModelRecord("models folder", 4, 4, {})}
        assert store.commit_scan(before, after) == 0
        assert store.records() == {"/a.gguf": ModelRecord("hf cache", 2, 2, {"name": "theirs"})}
        assert store.commit_scan(store.records(), store.records()) == 0  # no change, no write


def _legacy_json(home: Path, models: dict[str, object], hidden: list[object]) -> Path:
    legacy = paths.data_dir() / "library.json"
    legacy.write_text(json.dumps({"version": 1, "models": models, "hidden": hidden}))
    return legacy


def test_library_json_is_imported_once_and_renamed(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "ext").mkdir()
    outside = write_tiny_gguf(home / "ext" / "old.gguf", name="Real name")
    inside = write_tiny_gguf(paths.models_dir() / "hidden.gguf")
    st = outside.stat()
    cached = {"name": "Cached name", "architecture": "llama", "format": "gguf"}
    legacy = _legacy_json(home, {
        str(outside): {"source": "hf cache", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "meta": cached},
        "/broken/entry.gguf": "not a record",
        "/no/source.gguf": {"size": 3},
    }, [str(inside), 7])
    calls: list[object] = []
    monkeypatch.setattr(catalog, "check_gguf", lambda p: calls.append(p))
    [model] = catalog.scan()
    # The json's cached metadata was kept (the file is unchanged), so no header was read.
    assert (model.path, model.name, model.source) == (str(outside), "Cached name", "hf cache")
    assert calls == []
    assert not legacy.exists()
    assert legacy.with_name("library.json.migrated").is_file()
    assert set(_saved()) == {str(outside)}
    # An old Openlid writing library.json again later does not overwrite the database.
    _legacy_json(home, {"/other.gguf": {"source": "imported", "meta": {}}}, [])
    assert [m.path for m in catalog.scan()] == [str(outside)]
    assert legacy.exists()


def test_unreadable_library_json_is_set_aside(home: Path) -> None:
    legacy = paths.data_dir() / "library.json"
    for text in ("{not json", json.dumps({"version": 99, "models": {}})):
        legacy.write_text(text)
        write_tiny_gguf(paths.models_dir() / "a.gguf")
        assert len(catalog.scan()) == 1
        assert not legacy.exists()
        assert legacy.with_name("library.json.unreadable").read_text() == text


def test_library_shares_the_database_with_the_other_stores(home: Path) -> None:
    from desktop.core.conversations.store import ConversationStore
    from desktop.core.downloads.store import JobStore

    db = paths.database_path()
    with ConversationStore(db) as conversations:
        conversations.create("kept")
    jobs = JobStore(db)
    jobs.insert("org/repo", "main", str(home), [])
    model = catalog.import_model(write_tiny_gguf(home / "m.gguf"))
    assert [m.path for m in catalog.scan()] == [model.path]
    with ConversationStore(db) as conversations:
        assert [c.title for c in conversations.list_conversations()] == ["kept"]
    assert len(jobs.load()) == 1
    jobs.close()
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        rows = dict(conn.execute("SELECT component, version FROM openlid_schema").fetchall())
        conn.execute("UPDATE openlid_schema SET version = 99 WHERE component = 'library'")
        conn.commit()
    finally:
        conn.close()
    assert rows["library"] == 1
    assert "conversations" in rows
    with pytest.raises(catalog.LibraryError, match="newer Openlid"):
        catalog.scan()
