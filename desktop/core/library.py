"""The model library: every local model Openlid knows, with metadata read from the files.

Two kinds of entry: files found by scanning the models folder (`paths.models_dir()`), and models
imported from elsewhere on disk, linked in place (never copied). `discover()` offers models that
already sit in the Hugging Face cache or LM Studio's models folder. The list persists in
`paths.data_dir()/library.json`, written atomically (temp file + `os.replace`), so a crash never
leaves half a file and the GUI and the CLI can share it.

On-disk format: `{"version": 1, "models": {path: {"source", "size", "mtime_ns", "meta"}},
"hidden": [path, ...]}`. `meta` caches what was read from the file; it is reused while size and
mtime are unchanged, so a rescan does not re-read every header. `hidden` holds models-folder files
the user removed from the list without deleting them (else the next scan would list them again).

Every function takes an optional `models_dir` (default `paths.models_dir()`), so the GUI, which
is handed its folder, and tests can point the library anywhere; library.json stays in data_dir.

Pure Python; reads files, so call it off the GUI thread (any thread). Within one process a lock
serialises each read-modify-write of library.json, so a scan and an import running on two pool
threads never drop each other's change; across processes (GUI and CLI) only the atomic replace
protects it, and the last writer wins.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.gguf_check import GgufProblem, check_gguf

__all__ = [
    "SOURCES", "LibraryError", "LocalModel", "discover", "discover_places", "hf_cache_dir",
    "import_model", "library_path", "lm_studio_dirs", "remove", "scan",
]

SOURCES = ("models folder", "imported", "hf cache", "lm studio")
_VERSION = 1
_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_MAX_ST_HEADER = 100 << 20  # a safetensors JSON header; real ones are well under 10 MB
# Reentrant: discover() holds it while it calls scan(). Held across header reads, which is short
# because scan() reuses cached metadata for unchanged files.
_LOCK = threading.RLock()


class LibraryError(Exception):
    """A path cannot be added to the library; `str()` says why, in plain words."""


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def library_path() -> Path:
    return paths.data_dir() / "library.json"


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

def _load() -> dict[str, Any]:
    try:
        data = json.loads(library_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        data = {}
    models = data.get("models")
    hidden = data.get("hidden")
    return {"version": _VERSION, "models": models if isinstance(models, dict) else {},
            "hidden": [h for h in hidden if isinstance(h, str)] if isinstance(hidden, list)
            else []}


def _save(data: dict[str, Any]) -> None:
    target = library_path()
    fd, tmp = tempfile.mkstemp(prefix=".library-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _model(
    path: Path, source: str, record: dict[str, Any] | None
) -> tuple[LocalModel, dict[str, Any]]:
    """The LocalModel for `path`, reusing `record`'s cached metadata while the file is unchanged."""
    try:
        size, mtime = _stamp(path)
    except OSError as exc:
        problem = "the file is gone" if not path.exists() else f"unreadable: {exc.strerror}"
        blank = LocalModel(str(path), path.name, "", 0, "", 0, False, 0, source, problem=problem)
        return blank, {"source": source}
    if record and record.get("size") == size and record.get("mtime_ns") == mtime and isinstance(
            record.get("meta"), dict):
        meta: dict[str, Any] = record["meta"]
    else:
        try:
            meta = _read_meta(path)
        except (GgufProblem, LibraryError) as exc:
            meta = {"name": path.name, "size_bytes": size, "problem": str(exc)}
    fields = {k: meta[k] for k in LocalModel.__dataclass_fields__ if k in meta}
    defaults: dict[str, Any] = {"name": path.name, "architecture": "", "n_params": 0, "quant": "",
                                "context_length": 0, "has_template": False, "size_bytes": size}
    model = LocalModel(**{**defaults, **fields, "path": str(path), "source": source})
    return model, {"source": source, "size": size, "mtime_ns": mtime, "meta": meta}


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
    with _LOCK:
        return _scan(_root(models_dir))


def _scan(root: Path) -> list[LocalModel]:
    data = _load()
    records: dict[str, Any] = data["models"]
    hidden = set(data["hidden"])
    wanted: dict[str, str] = {str(p): "models folder" for p in _models_folder_paths(root)
                              if str(p) not in hidden}
    for key, rec in records.items():
        if key not in wanted and isinstance(rec, dict) and rec.get("source") != "models folder":
            wanted[key] = str(rec.get("source", "imported"))
    out, new_records = [], {}
    for key, source in wanted.items():
        rec = records.get(key)
        model, new_records[key] = _model(Path(key), source, rec if isinstance(rec, dict) else None)
        out.append(model)
    # Forget hidden files that are gone, so a new download under the same name is listed.
    data["hidden"] = sorted(h for h in hidden if Path(h).exists())
    if new_records != records or data["hidden"] != sorted(hidden):
        data["models"] = new_records
        _save(data)
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
    record = {"source": source, "size": size, "mtime_ns": mtime, "meta": meta}
    with _LOCK:
        data = _load()
        data["models"][str(p)] = record
        data["hidden"] = [h for h in data["hidden"] if h != str(p)]
        _save(data)
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
    with _LOCK:
        data = _load()
        data["models"].pop(key, None)
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
        elif inside and key not in data["hidden"]:
            data["hidden"].append(key)
        _save(data)
    return deleted
