"""Settings remembered per model: the sampler and load settings a person saved for one model.

One small JSON file, `data_dir()/model_settings.json`, shared by every process and read afresh
each time (it holds a few entries):

    {"version": 1, "models": {"<model path>": {"sampler": {...}, "load": {...},
                                              "saved_at": "2025-01-31T12:00:00+00:00"}}}

Written whole to a temporary file and renamed, so a crash never leaves half a file. A file that
cannot be read is never overwritten: it is set aside as `model_settings.json.damaged-<time>`
first and `problem` says so, because it holds what a person saved.

Pure; any thread (the GUI reads and writes it on its own thread: the file is tiny).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.model_info import LoadSettings
from desktop.core.private_files import replace_file
from desktop.core.sampling import SamplerSettings

__all__ = ["FILE_NAME", "ModelSettingsStore", "RememberedSettings"]

FILE_NAME = "model_settings.json"
_VERSION = 1
_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class RememberedSettings:
    """What a person saved for one model."""

    sampler: SamplerSettings
    load: LoadSettings | None
    saved_at: str  # ISO 8601, UTC

    @property
    def saved_words(self) -> str:
        """"saved 31 Jan 2025 12:00" in local time, or "" when the time is unreadable."""
        try:
            when = datetime.fromisoformat(self.saved_at).astimezone()
        except ValueError:
            return ""
        return f"saved {when:%d %b %Y %H:%M}"


class ModelSettingsStore:
    """The per-model settings file. `problem` says why the file could not be read ("" when it
    could, or does not exist yet)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self.problem = ""

    @property
    def path(self) -> Path:
        return self._path or paths.data_dir() / FILE_NAME

    def get(self, model_path: str) -> RememberedSettings | None:
        entry = self._read().get(model_path)
        if not isinstance(entry, dict):
            return None
        try:
            sampler = SamplerSettings.from_json(dict(entry.get("sampler") or {})).validated()
            load_data = entry.get("load")
            load = (LoadSettings.from_json(dict(load_data)).validated()
                    if isinstance(load_data, dict) else None)
        except (TypeError, ValueError) as exc:  # SettingsError is a ValueError
            self.problem = (f"The saved settings for {Path(model_path).name} in {self.path} "
                            f"cannot be read ({exc}); they were not applied.")
            return None
        return RememberedSettings(sampler, load, str(entry.get("saved_at", "")))

    def save(self, model_path: str, sampler: SamplerSettings,
             load: LoadSettings | None) -> RememberedSettings:
        """Remember `sampler` and `load` for `model_path`. Raises OSError (with the reason in
        words) when the file cannot be written."""
        models = self._read(for_writing=True)
        saved_at = datetime.now(UTC).isoformat(timespec="seconds")
        entry: dict[str, Any] = {"sampler": sampler.to_json(), "saved_at": saved_at}
        if load is not None:
            entry["load"] = load.to_json()
        models[model_path] = entry
        self._write(models)
        return RememberedSettings(sampler, load, saved_at)

    def forget(self, model_path: str) -> bool:
        """Drop what was saved for `model_path`; True when there was something."""
        models = self._read(for_writing=True)
        if models.pop(model_path, None) is None:
            return False
        self._write(models)
        return True

    # --- the file ---

    def _read(self, *, for_writing: bool = False) -> dict[str, Any]:
        path = self.path
        try:
            if path.stat().st_size > _MAX_BYTES:
                raise ValueError(f"it is larger than {_MAX_BYTES >> 20} MB")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
                raise ValueError("it does not hold a list of models")
        except FileNotFoundError:
            self.problem = ""
            return {}
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.problem = f"The per-model settings file {path} cannot be read ({reason})."
            if for_writing:
                self._set_aside(path)
            return {}
        self.problem = ""
        return dict(data["models"])

    def _set_aside(self, path: Path) -> None:
        """Keep an unreadable file under another name before a new one takes its place."""
        kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, kept)
        except OSError as exc:
            raise OSError(f"{path} cannot be read and could not be set aside "
                          f"({exc.strerror or exc}); nothing was saved.") from exc
        self.problem += f" It was kept as {kept.name} and a new file started."

    def _write(self, models: dict[str, Any]) -> None:
        replace_file(self.path, json.dumps({"version": _VERSION, "models": models},
                                           indent=2).encode("utf-8"))
