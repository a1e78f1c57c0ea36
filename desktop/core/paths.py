"""Where Openlid keeps things: platformdirs folders, overridable with OPENLID_HOME (tests, portable
installs). Pure; any thread.

The models folder is the one folder a person chooses: `set_models_dir` records the choice in
`data_dir()/settings.json` (shared by the GUI and the CLI); OPENLID_MODELS_DIR overrides it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs

from desktop.core.private_files import replace_file

APP = "Openlid"


def _home() -> Path | None:
    home = os.environ.get("OPENLID_HOME")
    return Path(home) if home else None


def data_dir() -> Path:
    home = _home()
    path = home / "data" if home else Path(platformdirs.user_data_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_models_dir() -> Path:
    return data_dir() / "models"


def models_dir_from_env() -> bool:
    """True when OPENLID_MODELS_DIR decides the folder (a choice made in the app cannot)."""
    return bool(os.environ.get("OPENLID_MODELS_DIR"))


def models_dir() -> Path:
    chosen = os.environ.get("OPENLID_MODELS_DIR") or _settings().get("models_dir")
    path = Path(chosen) if isinstance(chosen, str) and chosen else default_models_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_models_dir(path: str | os.PathLike[str] | None) -> Path:
    """Make `path` the models folder (None: back to the default); returns the folder in use.
    Raises OSError, in words, when the folder cannot be created or written to."""
    settings = _settings()
    if path is None or Path(path) == default_models_dir():
        settings.pop("models_dir", None)
    else:
        folder = Path(path).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{folder} is not writable")
        settings["models_dir"] = str(folder)
    _write_settings(settings)
    return models_dir()


def _settings_path() -> Path:
    return data_dir() / "settings.json"


def _settings() -> dict[str, Any]:
    try:
        data = json.loads(_settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: the defaults hold
    return data if isinstance(data, dict) else {}


def _write_settings(settings: dict[str, Any]) -> None:
    replace_file(_settings_path(), json.dumps(settings, indent=2).encode("utf-8"))


def log_dir() -> Path:
    """Openlid's log folder (the app's log, faults.log and the engine workers' logs). Created
    0700 when missing; the writers (`logs`, `engine_logs`) check it is the user's own and private
    before writing (`private_files.private_dir`), so merely showing the path never fails on it."""
    home = _home()
    path = home / "logs" if home else Path(platformdirs.user_log_dir(APP, appauthor=False))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def templates_dir() -> Path:
    """User-saved prompt templates (shared by the GUI and the CLI)."""
    path = data_dir() / "templates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    return data_dir() / "openlid.sqlite3"
