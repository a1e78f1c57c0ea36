"""The model library: every local model Openlid knows, with metadata read from the files.

Two kinds of entry: files found by scanning the models folder (`paths.models_dir()`), and models
imported from elsewhere on disk, linked in place (never copied). `discover()` offers models that
already sit in the Hugging Face cache or LM Studio's models folder.

The records live in the app's one SQLite file (`paths.database_path()`, beside conversations
and download jobs), in the tables of `desktop.core.library.store`: per path its source, the
file's size and mtime, and the metadata read from it, reused while size and mtime are unchanged
so a rescan does not re-read every header; and the models-folder files the user removed from
the list without deleting them (else the next scan would list them again). The first call after
an upgrade imports the old `data_dir()/library.json` there and renames it.

Every function takes an optional `models_dir` (default `paths.models_dir()`), so the GUI, which
is handed its folder, and tests can point the library anywhere; the database stays in data_dir.

Pure Python; reads files, so call it off the GUI thread (any thread). Each call opens its own
connection, so calls on several threads and in several processes (the GUI's scan, import and
remove jobs on pool threads, `openlid models`) are safe together: every write is one
transaction, and a scan, which reads headers outside any transaction, writes back only the rows
nobody changed meanwhile, so it never drops a concurrent import or removal.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.gguf_file.check import GgufProblem, check_gguf
from desktop.core.library.store import LibraryError, LibraryStore, ModelRecord
from desktop.core.vision import projector_beside

__all__ = [
    "SOURCES", "LibraryError", "LocalModel", "discover", "discover_places", "hf_cache_dir",
    "import_model", "lm_studio_dirs", "remove", "scan",
]

SOURCES = ("models folder", "imported", "hf cache", "lm studio")
_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_MAX_ST_HEADER = 100 << 20  # a safetensors JSON header; real ones are well under 10 MB

@dataclass(frozen=True)
class LocalModel:
    """One model on disk. `problem` is non-empty when the file failed its check (it stays
    listed, so the user sees why); `format` is "gguf" or "safetensors" (a folder)."""

    path: str
    name: str
    architecture: str
    n_params: int
    quant: str
    context_length: int
    has_template: bool
    size_bytes: int
    source: str
    format: str = "gguf"
    problem: str = ""
    vision: bool = False  # a projector (mmproj) sits beside it: it can take images


    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved like huggingface_hub does (HF_HUB_CACHE, then
    HF_HOME/hub, then XDG_CACHE_HOME/huggingface/hub), but from the environment at call time:
    huggingface_hub's own constant is frozen when it is first imported."""
    env = os.environ
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(env.get("HF_HOME") or Path(xdg) / "huggingface").expanduser() / "hub"


def lm_studio_dirs() -> tuple[Path, ...]:
    """LM Studio's models folders: the one its settings name (users can move it), the current
    default and the pre-0.3 one. Read from HOME at call time."""
    home = Path.home()
    found = [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]
    try:
        settings = json.loads((home / ".lmstudio" / "settings.json").read_text(encoding="utf-8"))
        custom = settings.get("downloadsFolder") if isinstance(settings, dict) else None
    except (OSError, ValueError):
        custom = None
    if isinstance(custom, str) and custom:
        found.insert(0, Path(custom).expanduser())
    return tuple(dict.fromkeys(found))


def discover_places() -> tuple[Path, ...]:
    """Where `discover()` looks, to tell the user when it finds nothing."""
    return (hf_cache_dir(), *lm_studio_dirs())


# --- persistence -----------------------------------------------------------------------------

def _store() -> LibraryStore:
    """A connection for one call; `paths` are read now, so OPENLID_HOME may change between
    calls (tests)."""
    return LibraryStore(paths.database_path(), legacy_json=paths.data_dir() / "library.json")


# --- reading one model -----------------------------------------------------------------------

def _stamp(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a file, or of a folder's files together."""
    if path.is_dir():
        files = [p.stat() for p in path.iterdir() if p.is_file()]
        return sum(s.st_size for s in files), max((s.st_mtime_ns for s in files), default=0)
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _gguf_meta(path: Path) -> dict[str, Any]:
    report = check_gguf(path)
    return {"name": report.name or path.stem, "architecture": report.architecture,
            "n_params": report.n_params, "quant": report.quant,
            "context_length": report.context_length, "has_template": bool(report.chat_templates),
            "size_bytes": report.file_size, "format": "gguf"}


def _safetensors_params(path: Path) -> tuple[int, str]:
    """Parameter count and the most common dtype, from the file's JSON header only."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise LibraryError(f"'{path.name}' is too short to be a safetensors file.")
        (n,) = struct.unpack("<Q", raw)
        if n > min(_MAX_ST_HEADER, path.stat().st_size - 8):
            raise LibraryError(f"'{path.name}' is not a valid safetensors file (bad header).")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise LibraryError(f"'{path.name}' has an unreadable safetensors header.") from exc
    if not isinstance(header, dict):
        raise LibraryError(f"'{path.name}' has an unreadable safetensors header.")
    total, dtypes = 0, dict[str, int]()
    for key, info in header.items():
        if key == "__metadata__" or not isinstance(info, dict):
            continue
        count = math.prod(int(d) for d in info.get("shape", []))
        total += count
        dtype = str(info.get("dtype", ""))
        dtypes[dtype] = dtypes.get(dtype, 0) + count
    return total, max(dtypes, key=lambda d: dtypes[d], default="")


def _folder_meta(folder: Path) -> dict[str, Any]:
    files = [p for p in folder.iterdir() if p.is_file()]
    weights = sorted(p for p in files if p.suffix == ".safetensors")
    if not weights:
        if any(p.suffix == ".gguf" for p in files):
            raise LibraryError(f"'{folder}' holds GGUF files; import the .gguf file itself.")
        if any(p.suffix in _PICKLE_SUFFIXES for p in files):
            raise LibraryError(f"'{folder}' holds only PyTorch pickle weights (.bin/.pt). Openlid "
                               "does not load pickles because they can run code; download the "
                               "safetensors or GGUF version of this model.")
        raise LibraryError(f"'{folder}' holds no model: expected a .gguf file or a folder with "
                           "config.json and *.safetensors.")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise LibraryError(f"'{folder}' has safetensors weights but no config.json, so the "
                           "model's architecture is unknown.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LibraryError(f"'{config_path}' is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise LibraryError(f"'{config_path}' is not a JSON object.")
    n_params, dtype = 0, ""
    for w in weights:
        count, dtype = _safetensors_params(w)
        n_params += count
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs else config.get("model_type", "")
    tok_config = folder / "tokenizer_config.json"
    has_template = (folder / "chat_template.jinja").is_file() or (
        tok_config.is_file() and '"chat_template"' in tok_config.read_text(encoding="utf-8"))
    ctx = config.get("max_position_embeddings", 0)
    return {"name": folder.name, "architecture": str(arch), "n_params": n_params,
            "quant": dtype.upper() or str(config.get("torch_dtype", "")),
            "context_length": ctx if isinstance(ctx, int) else 0, "has_template": has_template,
            "size_bytes": sum(p.stat().st_size for p in files), "format": "safetensors"}


def _read_meta(path: Path) -> dict[str, Any]:
    """Metadata of a model file or folder; raises GgufProblem or LibraryError."""
    if path.is_dir():
        return _folder_meta(path)
    if path.suffix.lower() != ".gguf":
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise LibraryError(f"'{path.name}' is a PyTorch pickle; Openlid does not load pickles "
                               "because they can run code.")
        raise LibraryError(f"'{path.name}' is not a model Openlid can use: pick a .gguf file or "
                           "a folder with config.json and *.safetensors.")
    return _gguf_meta(path)


def _model(path: Path, source: str, record: ModelRecord | None) -> tuple[LocalModel, ModelRecord]:
    """The LocalModel for `path`, reusing `record`'s cached metadata while the file is unchanged."""
    try:
        size, mtime = _stamp(path)
    except OSError as exc:
        problem = "the file is gone" if not path.exists() else f"unreadable: {exc.strerror}"
        blank = LocalModel(str(path), path.name, "", 0, "", 0, False, 0, source, problem=problem)
        return blank, ModelRecord(source)
    if record and record.size == size and record.mtime_ns == mtime and record.meta:
        meta = dict(record.meta)
    else:
        try:
            meta = _read_meta(path)
        except (GgufProblem, LibraryError) as exc:
            meta = {"name": path.name, "size_bytes": size, "problem": str(exc)}
    fields = {k: meta[k] for k in LocalModel.__dataclass_fields__ if k in meta}
    defaults: dict[str, Any] = {"name": path.name, "architecture": "", "n_params": 0, "quant": "",
                                "context_length": 0, "has_template": False, "size_bytes": size}
    model = LocalModel(**{**defaults, **fields, "path": str(path), "source": source,
                          "vision": path.is_file() and projector_beside(path) is not None})
    return model, ModelRecord(source, size, mtime, meta)


# --- finding models --------------------------------------------------------------------------

def _ggufs(folder: Path, pattern: str = "*.gguf") -> list[Path]:
    """GGUF model files under `folder`: first shards only, no vision projectors."""
    found = []
    for p in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        shard = _LATER_SHARD.search(p.name)
        if (shard and shard.group(1) != "00001") or p.name.lower().startswith("mmproj"):
            continue
        if p.is_file():
            found.append(p)
    return found


def _root(models_dir: Path | None) -> Path:
    return Path(models_dir) if models_dir is not None else paths.models_dir()


def _in_models_dir(path: Path, root: Path) -> bool:
    return path.absolute().is_relative_to(root.absolute())


def _models_folder_paths(root: Path) -> list[Path]:
    found = _ggufs(root, "**/*.gguf")
    found += sorted(c.parent for c in root.glob("**/config.json")
                    if any(c.parent.glob("*.safetensors")))
    return found


def scan(models_dir: Path | None = None) -> list[LocalModel]:
    """Every model in the library: the models folder, then imported ones; updates the cache."""
    root = _root(models_dir)
    with _store() as store:
        records, hidden = store.records(), store.hidden()
        # Header reads happen here, outside any transaction: the connection holds no lock
        # between statements, and commit_scan keeps what others wrote meanwhile.
        wanted: dict[str, str] = {str(p): "models folder" for p in _models_folder_paths(root)
                                  if str(p) not in hidden}
        for key, rec in records.items():
            if key not in wanted and rec.source != "models folder":
                wanted[key] = rec.source if rec.source in SOURCES else "imported"
        out, found = [], {}
        for key, source in wanted.items():
            model, found[key] = _model(Path(key), source, records.get(key))
            out.append(model)
        # Forget hidden files that are gone, so a new download under the same name is listed.
        gone = frozenset(h for h in hidden if not Path(h).exists())
        store.commit_scan(records, found, unhide=gone)
    return out


def import_model(path: str | os.PathLike[str], source: str = "imported",
                 models_dir: Path | None = None) -> LocalModel:
    """Validate `path` (a .gguf file or a safetensors folder) and list it, linked in place.

    Raises LibraryError with the reason when the path is not a usable model. A path inside the
    models folder is listed as "models folder" whatever `source` says.
    """
    p = Path(path).expanduser().absolute()
    if not p.exists():
        raise LibraryError(f"'{p}' does not exist.")
    try:
        meta = _read_meta(p)
    except GgufProblem as exc:
        raise LibraryError(str(exc)) from exc
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    if _in_models_dir(p, _root(models_dir)):
        source = "models folder"
    size, mtime = _stamp(p)
    record = ModelRecord(source, size, mtime, meta)
    with _store() as store:
        store.put(str(p), record)
    model, _ = _model(p, source, record)
    return model


def discover(models_dir: Path | None = None) -> list[LocalModel]:
    """Models in the Hugging Face cache and LM Studio's folders that the library lacks."""
    listed = {m.path for m in scan(models_dir)}
    found: list[tuple[Path, str]] = []
    cache = hf_cache_dir()
    if cache.is_dir():
        found += [(p, "hf cache") for p in _ggufs(cache, "models--*/snapshots/*/**/*.gguf")]
    for folder in lm_studio_dirs():
        found += [(p, "lm studio") for p in _ggufs(folder, "**/*.gguf")]
    out, seen = [], set(listed)
    for p, source in found:
        if str(p) in seen:
            continue
        seen.add(str(p))
        model, _ = _model(p, source, None)
        if not model.problem:
            out.append(model)
    return out


def remove(path: str | os.PathLike[str], delete_file: bool = False,
           models_dir: Path | None = None) -> bool:
    """Take `path` off the list; with `delete_file`, also delete it when it lies inside the
    models folder (every shard, or the whole safetensors folder). Files elsewhere are never
    deleted, only unlisted. Returns True when something was deleted from disk."""
    p = Path(path).absolute()
    key = str(p)
    inside = _in_models_dir(p, _root(models_dir))
    deleted = False
    # The files go first: if deleting fails, the row stays and the error reaches the caller.
    if delete_file and inside and p.exists():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            try:
                shards = [Path(s) for s in check_gguf(p).shards]
            except GgufProblem:
                shards = [p]
            for s in shards:
                s.unlink(missing_ok=True)
        deleted = True
    with _store() as store:
        store.forget(key, hide=inside and not deleted)
    return deleted
