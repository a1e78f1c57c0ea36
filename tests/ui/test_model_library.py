"""ModelLibraryPanel over desktop.core.library.catalog, driven offscreen: listing with metadata, a
broken file kept with its reason, import in place (files, safetensors folders, drops), removal with
the real confirmation box (answered by patching `QMessageBox.exec`), deletion from the models
folder, refusal for the loaded model, and "Find models on this computer" over a fake Hugging Face
cache and LM Studio folder (HF_HUB_CACHE and HOME point into tmp)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from desktop.core import paths
from desktop.remote import entries as remote_models
from desktop.remote.client import RemoteModel
from desktop.ui.job_service import JobService
from desktop.ui.library.panel import ModelLibraryPanel
from desktop.ui.library.remote_model_dialog import RemoteModelDialog
from tests.ggufmaker import write_tiny_gguf as _write_tiny_gguf

pytestmark = pytest.mark.usefixtures("no_dangling")


@pytest.fixture
def models_dir(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # LM Studio's folders live under HOME
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def panel(qtbot: Any, models_dir: Path) -> Iterator[ModelLibraryPanel]:
    jobs = JobService("openlid-test-jobs")
    widget = ModelLibraryPanel(jobs, models_dir)
    qtbot.addWidget(widget)
    yield widget
    jobs.stop()
    jobs.deleteLater()


def write_tiny_gguf(path: Path, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_tiny_gguf(path, **kw)


def scan(qtbot: Any, panel: ModelLibraryPanel) -> None:
    with qtbot.waitSignal(panel.sig_scan_finished, timeout=10_000):
        panel.start(with_ready_model=False)


def wait_message(qtbot: Any, panel: ModelLibraryPanel, text: str) -> None:
    def shown() -> None:
        assert text in panel.message.text(), panel.message.text()  # a timeout says what it saw

    qtbot.waitUntil(shown, timeout=10_000)


def answer(monkeypatch: pytest.MonkeyPatch, button_text: str) -> list[list[str]]:
    """Make every confirmation box click `button_text`; returns the buttons each box offered."""
    offered: list[list[str]] = []

    def fake_exec(box: QMessageBox) -> int:
        offered.append([b.text() for b in box.buttons()])
        [button] = [b for b in box.buttons() if b.text() == button_text]
        button.click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    return offered


def test_lists_models_folder_with_metadata_and_keeps_a_broken_file_with_its_reason(
        qtbot: Any, panel: ModelLibraryPanel, models_dir: Path) -> None:
    good = write_tiny_gguf(models_dir / "org" / "tiny.gguf", name="Tiny",
                           chat_template="{{ messages }}")
    broken = models_dir / "broken.gguf"
    broken.write_bytes(b"<html>login</html>")
    scan(qtbot, panel)
    assert set(panel.entries) == {str(good), str(broken)}
    entry = panel.entries[str(good)]
    assert entry.report is not None  # the load panel's fit estimate reads it
    assert entry.source == "models folder"
    assert panel.display_name(str(good)) == "tiny F32 · org"  # file, quant, folder
    details = panel.details(str(good))
    assert details.startswith("llama · ")
    assert "params" in details
    assert "ctx 256" in details
    assert "template" in details
    assert "unusable" in panel.details(str(broken))
    assert "HTML" in panel.details(str(broken))
    panel.select(str(good))
    assert "models folder" in panel.info.text()
    assert str(good) in panel.info.text()
    panel.select(str(broken))
    panel.request_load()
    assert "can't be loaded" in panel.message.text()


def test_import_links_in_place_and_survives_a_rescan(qtbot: Any, panel: ModelLibraryPanel,
                                                     models_dir: Path, tmp_path: Path) -> None:
    scan(qtbot, panel)
    assert "No models yet" in panel.message.text()
    outside = write_tiny_gguf(tmp_path / "elsewhere" / "m.gguf", name="Outside")
    panel.import_file(str(outside))
    qtbot.waitUntil(lambda: str(outside) in panel.entries, timeout=10_000)
    assert panel.selected_path() == str(outside)  # the listed path is the original file
    assert panel.entries[str(outside)].source == "imported"
    assert not any(models_dir.rglob("*.gguf"))  # nothing copied or linked into the folder
    assert "linked in place" in panel.message.text()
    scan(qtbot, panel)
    assert list(panel.entries) == [str(outside)]


def test_import_of_a_safetensors_folder_by_its_config(qtbot: Any, panel: ModelLibraryPanel,
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["Qwen2ForCausalLM"], "max_position_embeddings": 4096}))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4, 8], "data_offsets": [0, 0]}})
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    panel.import_file(str(folder / "config.json"))
    qtbot.waitUntil(lambda: str(folder) in panel.entries, timeout=10_000)
    entry = panel.entries[str(folder)]
    assert entry.report is None
    assert entry.usable
    assert entry.details.startswith("Qwen2ForCausalLM · ")
    assert "BF16" in entry.details


def test_import_refuses_a_bad_file_in_plain_words(qtbot: Any, panel: ModelLibraryPanel,
                                                  tmp_path: Path) -> None:
    bad = tmp_path / "pointer.gguf"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    panel.import_file(str(bad))
    wait_message(qtbot, panel, "can't be used")
    assert "pointer.gguf" in panel.message.text()
    assert "LFS" in panel.message.text()
    assert panel.message.property("error") is True
    assert panel.entries == {}


def test_dropping_a_file_imports_it(qtbot: Any, panel: ModelLibraryPanel,
                                    tmp_path: Path) -> None:
    dropped = write_tiny_gguf(tmp_path / "dropped.gguf")
    other = write_tiny_gguf(tmp_path / "other.gguf")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped)), QUrl.fromLocalFile(str(other))])
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(event)
    assert event.isAccepted()
    qtbot.waitUntil(lambda: "Added 2 models" in panel.message.text(), timeout=10_000)
    assert set(panel.entries) == {str(dropped), str(other)}


def test_remove_imported_only_unlists_and_never_deletes(
        qtbot: Any, panel: ModelLibraryPanel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    outside = write_tiny_gguf(tmp_path / "mine.gguf")
    panel.import_file(str(outside))
    qtbot.waitUntil(lambda: str(outside) in panel.entries, timeout=10_000)
    offered = answer(monkeypatch, "Remove from list")
    removed: list[str] = []
    panel.sig_entry_removed.connect(removed.append)
    panel.select(str(outside))
    panel.request_remove()
    wait_message(qtbot, panel, "Removed")
    assert offered == [["Remove from list", "Cancel"]]  # no "Delete from disk" for a user file
    assert removed == [str(outside)]
    assert outside.exists()
    assert panel.entries == {}
    scan(qtbot, panel)
    assert panel.entries == {}


def test_models_folder_file_can_be_deleted_from_disk(
        qtbot: Any, panel: ModelLibraryPanel, models_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    doomed = write_tiny_gguf(models_dir / "doomed.gguf")
    kept = write_tiny_gguf(models_dir / "kept.gguf")
    scan(qtbot, panel)
    offered = answer(monkeypatch, "Cancel")
    panel.select(str(doomed))
    panel.request_remove()
    assert doomed.exists()
    assert str(doomed) in panel.entries
    assert "Delete from disk" in offered[0]

    answer(monkeypatch, "Delete from disk")
    panel.request_remove()
    wait_message(qtbot, panel, "Deleted")
    assert not doomed.exists()
    assert list(panel.entries) == [str(kept)]

    broken = models_dir / "broken.gguf"  # a broken file can be deleted too
    broken.write_bytes(b"not a model")
    scan(qtbot, panel)
    panel.select(str(broken))
    panel.request_remove()
    # The removal's whole job, not only its unlink: the next removal must not race its update
    # of the library.
    wait_message(qtbot, panel, "Deleted broken from disk")
    assert not broken.exists()

    answer(monkeypatch, "Remove from list")  # hidden, kept on disk, not listed again
    panel.select(str(kept))
    panel.request_remove()
    wait_message(qtbot, panel, "Removed")
    assert kept.exists()
    scan(qtbot, panel)
    assert panel.entries == {}


def test_the_loaded_model_cannot_be_removed(qtbot: Any, panel: ModelLibraryPanel,
                                            models_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_tiny_gguf(models_dir / "busy.gguf", name="Busy")
    scan(qtbot, panel)
    offered = answer(monkeypatch, "Delete from disk")
    panel.set_loaded(str(model))
    assert "loaded" in panel.list.currentItem().text()
    panel.request_remove()
    assert offered == []  # refused before asking
    assert "busy F32 is in use" in panel.message.text()
    assert model.exists()
    panel.set_loaded("")
    panel.set_loading(str(model))
    panel.request_remove()
    assert offered == []


def test_find_models_offers_hf_cache_and_lm_studio_and_adds_the_checked_ones(
        qtbot: Any, panel: ModelLibraryPanel, models_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "hf" / "hub" / "models--org--repo" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    blob = write_tiny_gguf(tmp_path / "hf" / "hub" / "blob", name="From HF")
    (snap / "repo-Q4.gguf").symlink_to(blob)
    lms = tmp_path / "user" / ".lmstudio" / "models" / "pub" / "repo"
    lms.mkdir(parents=True)
    lm_file = write_tiny_gguf(lms / "model.gguf", name="From LM Studio")
    skipped = write_tiny_gguf(lms / "other.gguf", name="Not wanted")
    scan(qtbot, panel)
    panel.find_models()
    qtbot.waitUntil(lambda: panel.discover_dialog is not None, timeout=10_000)
    dialog = panel.discover_dialog
    assert dialog is not None
    texts = [dialog.list.item(i).text() for i in range(dialog.list.count())]
    assert any(t.startswith("From HF\nHugging Face cache · ") for t in texts)
    assert any(t.startswith("From LM Studio\nLM Studio · ") for t in texts)
    dialog.set_checked(str(skipped), False)
    dialog.add_button.click()
    qtbot.waitUntil(lambda: "Added 2 models" in panel.message.text(), timeout=10_000)
    hf_path = str(snap / "repo-Q4.gguf")
    assert panel.entries[hf_path].source == "hf cache"
    assert panel.entries[str(lm_file)].source == "lm studio"
    assert str(skipped) not in panel.entries
    assert not any(models_dir.rglob("*.gguf"))  # in place: nothing copied
    qtbot.waitUntil(lambda: panel.discover_dialog is None, timeout=5_000)


def test_find_models_says_where_it_looked_when_nothing_is_there(
        qtbot: Any, panel: ModelLibraryPanel, tmp_path: Path) -> None:
    panel.find_models()
    wait_message(qtbot, panel, "No new models found")
    assert str(tmp_path / "hf" / "hub") in panel.message.text()
    assert str(tmp_path / "user" / ".lmstudio" / "models") in panel.message.text()
    assert panel.discover_dialog is None
    assert panel.find_button.isEnabled()


def test_an_added_remote_model_is_stored_listed_loadable_and_removable(
        qtbot: Any, panel: ModelLibraryPanel, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = RemoteModel("http://127.0.0.1:9/v1", "big-model", api_key="sk-secret-key",
                           name="Big model")
    # The dialog itself is tested in test_remote_model_dialog.py; here it answers at once, as
    # after a successful "Test connection", by storing the entry like the real one does.
    monkeypatch.setattr(RemoteModelDialog, "ask",
                        staticmethod(lambda parent=None, entry=None: remote_models.add(endpoint)))
    scan(qtbot, panel)
    panel.add_remote()
    [stored] = remote_models.list_entries()
    assert panel.selected_path() == stored.path
    assert panel.display_name(stored.path) == "Big model"
    assert "big-model at http://127.0.0.1:9/v1" in panel.details(stored.path)
    assert "sk-secret" not in panel.info.text()
    scan(qtbot, panel)  # a rescan lists it again from the store
    assert stored.path in panel.entries
    with qtbot.waitSignal(panel.sig_load_requested) as blocker:
        panel.request_load()
    assert blocker.args == [stored.path]
    offered = answer(monkeypatch, "Remove from list")
    with qtbot.waitSignal(panel.sig_entry_removed):
        panel.request_remove()
    assert offered == [["Remove from list", "Cancel"]]
    assert stored.path not in panel.entries
    assert remote_models.list_entries() == []
    scan(qtbot, panel)
    assert stored.path not in panel.entries


def test_changing_the_models_folder_rescans_it_and_is_remembered_for_the_cli(
        qtbot: Any, panel: ModelLibraryPanel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLID_MODELS_DIR", raising=False)
    old = write_tiny_gguf(panel.models_dir / "old.gguf", name="Old")
    scan(qtbot, panel)
    assert str(old) in panel.entries
    other = tmp_path / "big disk" / "models"
    new = write_tiny_gguf(other / "org" / "new.gguf", name="New")
    with qtbot.waitSignal(panel.sig_models_dir_changed) as changed, \
            qtbot.waitSignal(panel.sig_scan_finished, timeout=10_000):
        panel.set_models_dir(str(other))
    assert changed.args == [str(other)]
    assert panel.models_dir == other
    assert str(other) in panel.folder_label.text()
    assert str(new) in panel.entries
    assert str(old) not in panel.entries
    assert old.exists()  # the old folder's models stay on disk
    assert paths.models_dir() == other  # what `openlid models` and downloads use next


def test_an_unusable_models_folder_is_refused_in_words(
        qtbot: Any, panel: ModelLibraryPanel, tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    before = panel.models_dir
    panel.set_models_dir(str(blocker / "models"))
    wait_message(qtbot, panel, "Can't use")
    assert panel.models_dir == before


def test_the_discover_dialogs_check_boxes_show_their_outline_in_the_dark_theme(
        qtbot: Any) -> None:
    """An unchecked item's box was a dark square on the dark list: it gets the check boxes'
    palette (ui.palette), whose lighter window colour Fusion darkens into an outline."""
    from PySide6.QtWidgets import QApplication

    from desktop.core.library.catalog import LocalModel
    from desktop.ui.library.discover_dialog import LibraryDiscoverDialog
    from desktop.ui.window.theme import ThemeSwitcher

    switcher = ThemeSwitcher.of(QApplication.instance())  # type: ignore[arg-type]
    before = switcher.theme or "light"
    switcher.apply("dark")
    try:
        models = tuple(LocalModel(f"/m/{n}.gguf", n, "gemma3", 268_000_000, "Q4_K_M", 32768,
                                  False, 2**28, "lm-studio") for n in ("a", "b"))
        dialog = LibraryDiscoverDialog(models)
        qtbot.addWidget(dialog)
        dialog.set_checked("/m/b.gguf", False)
        dialog.show()
        qtbot.waitExposed(dialog)
        view = dialog.list
        item = view.item(1)
        assert item is not None
        rect = view.visualItemRect(item)
        image = view.viewport().grab().toImage()
        base = image.pixelColor(rect.right() - 2, rect.center().y()).lightness()
        box = max(image.pixelColor(x, y).lightness()
                  for x in range(rect.left(), rect.left() + 20)  # the box, not the text
                  for y in range(rect.center().y() - 9, rect.center().y() + 10))
        assert box - base > 60
    finally:
        switcher.apply(before)
