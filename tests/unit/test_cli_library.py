"""`openlid import PATH` and `openlid models --json`, run as real subprocesses. Every run uses
one module-wide OPENLID_HOME (below the one tests/conftest.py set), so the ready model is
assembled once and each test sees what the earlier ones imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ggufmaker import write_tiny_gguf


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("cli-library-home")
    out = {**os.environ, "OPENLID_HOME": str(home)}
    out.pop("OPENLID_MODELS_DIR", None)
    return out


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=120)


def _models(env: dict[str, str]) -> list[dict[str, Any]]:
    out = _run(env, "models", "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def test_import_then_models_lists_it_with_metadata(env: dict[str, str], tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "tiny.gguf", name="Tiny CLI", chat_template="{{ x }}")
    out = _run(env, "import", str(model), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["imported"] is True
    assert report["source"] == "imported"
    rows = {r["path"]: r for r in _models(env)}
    row = rows[str(model)]
    assert (row["name"], row["architecture"], row["context_length"]) == ("Tiny CLI", "llama", 256)
    assert row["has_template"] is True
    assert row["n_params"] > 0
    assert row["quant"]
    assert row["source"] == "imported"
    # Linked in place: nothing was copied into the models folder.
    models_dir = Path(env["OPENLID_HOME"]) / "data" / "models"
    assert not [p for p in models_dir.rglob("*.gguf") if p.name == "tiny.gguf"]


def test_import_refuses_a_bad_file_with_reason(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "page.gguf"
    bad.write_text("<!doctype html><html>Sign in</html>")
    out = _run(env, "import", str(bad), "--json")
    assert out.returncode == 2
    assert json.loads(out.stdout)["imported"] is False
    assert "HTML page" in out.stderr
    assert str(bad) not in {r["path"] for r in _models(env)}


def test_import_plain_output_and_pickle_folder(env: dict[str, str], tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "plain.gguf")
    out = _run(env, "import", str(model))
    assert out.returncode == 0, out.stderr
    assert "added Tiny Llama (imported)" in out.stdout
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04junk")
    out = _run(env, "import", str(folder))
    assert out.returncode == 2
    assert "pickle" in out.stderr


def test_models_plain_text_lists_metadata(env: dict[str, str], tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "shown.gguf", name="Shown Model")
    assert _run(env, "import", str(model)).returncode == 0
    out = _run(env, "models")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("Shown Model"))
    assert "llama" in line
    assert "ctx 256" in line
    assert "imported" in line
    assert str(model) in out.stdout


def test_models_folder_is_chosen_from_the_cli_and_scanned(tmp_path: Path) -> None:
    env = {**os.environ, "OPENLID_HOME": str(tmp_path / "home")}
    env.pop("OPENLID_MODELS_DIR", None)
    folder = tmp_path / "disk" / "models"
    (folder / "org").mkdir(parents=True)
    mine = write_tiny_gguf(folder / "org" / "mine.gguf", name="Mine")
    out = _run(env, "models", "--folder", str(folder))
    assert out.returncode == 0, out.stderr
    assert f"models folder: {folder}" in out.stdout
    rows = {r["path"]: r for r in _models(env)}
    assert rows[str(mine)]["source"] == "models folder"
    out = _run(env, "models", "--folder", "default", "--json")
    assert out.returncode == 0, out.stderr
    assert str(mine) not in {r["path"] for r in _models(env)}
    bad = _run(env, "models", "--folder", str(mine / "sub"))
    assert bad.returncode != 0
    assert "can't use" in bad.stderr


def test_models_imports_an_old_library_json(tmp_path: Path) -> None:
    env = {**os.environ, "OPENLID_HOME": str(tmp_path / "home")}
    env.pop("OPENLID_MODELS_DIR", None)
    data = tmp_path / "home" / "data"
    data.mkdir(parents=True)
    model = write_tiny_gguf(tmp_path / "kept.gguf", name="Kept From JSON")
    (data / "library.json").write_text(json.dumps(
        {"version": 1, "models": {str(model): {"source": "imported", "meta": {}}}, "hidden": []}))
    rows = {r["path"]: r for r in _models(env)}
    assert rows[str(model)]["name"] == "Kept From JSON"  # metadata read again (none was cached)
    assert (data / "library.json.migrated").is_file()
    assert not (data / "library.json").exists()
    assert (data / "openlid.sqlite3").is_file()


def test_imports_from_several_processes_at_once_are_all_kept(
        env: dict[str, str], tmp_path: Path) -> None:
    # With the old library.json the last writer won; in SQLite each import is a transaction.
    files = [write_tiny_gguf(tmp_path / f"p{i}.gguf") for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "desktop", "import", str(f)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
             for f in files]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert {str(f) for f in files} <= {r["path"] for r in _models(env)}
