"""Where Openlid keeps things: platformdirs folders, overridable with OPENLID_HOME (tests, portable
installs). Pure; any thread."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "Openlid"


def _home() -> Path | None:
    home = os.environ.get("OPENLID_HOME")
    return Path(home) if home else None


def data_dir() -> Path:
    home = _home()
    path = home / "data" if home else Path(platformdirs.user_data_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = Path(os.environ.get("OPENLID_MODELS_DIR") or data_dir() / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    home = _home()
    path = home / "logs" if home else Path(platformdirs.user_log_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def templates_dir() -> Path:
    """User-saved prompt templates (shared by the GUI and the CLI)."""
    path = data_dir() / "templates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    return data_dir() / "openlid.sqlite3"
