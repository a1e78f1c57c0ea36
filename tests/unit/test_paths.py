"""paths: the models folder a person chose is remembered in settings.json and shared by the GUI
and the CLI; OPENLID_MODELS_DIR wins over it; a damaged settings file falls back to the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core import paths


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENLID_MODELS_DIR", raising=False)


def test_default_then_chosen_then_back_to_default(tmp_path: Path) -> None:
    assert paths.models_dir() == paths.default_models_dir()
    chosen = tmp_path / "disk" / "models"
    assert paths.set_models_dir(chosen) == chosen.resolve()
    assert chosen.is_dir()
    assert paths.models_dir() == chosen.resolve()
    assert paths.set_models_dir(None) == paths.default_models_dir()


def test_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths.set_models_dir(tmp_path / "chosen")
    monkeypatch.setenv("OPENLID_MODELS_DIR", str(tmp_path / "env"))
    assert paths.models_dir_from_env()
    assert paths.models_dir() == tmp_path / "env"


def test_a_damaged_settings_file_means_the_default(tmp_path: Path) -> None:
    (paths.data_dir() / "settings.json").write_text("{not json")
    assert paths.models_dir() == paths.default_models_dir()
    paths.set_models_dir(tmp_path / "m")  # and it is rewritten whole
    assert paths.models_dir() == (tmp_path / "m").resolve()


def test_a_folder_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError):  # mkdir under a file
        paths.set_models_dir(blocker / "models")
    assert paths.models_dir() == paths.default_models_dir()
