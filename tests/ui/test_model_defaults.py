"""Per-model defaults in the window: a loaded model's settings come from what was saved for it,
else its author's values (generation_config.json, GGUF general.sampling.*), else — for a base
model — Openlid's repeat penalty, in Completion; the bar above the Sampling panel names the
source and the difference, and its buttons apply, save and reset."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer

from desktop.core.model_info import LoadSettings
from desktop.core.model_settings import ModelSettingsStore
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.ggufmaker import write_tiny_gguf
from tests.threads import TEST_THREADS
from tests.ui.conftest import FakeEngine, fake_info
from tests.unit.test_model_defaults import QWEN, gguf_with_sampling, safetensors_folder

pytestmark = pytest.mark.usefixtures("no_dangling")

BASE_SOURCE = ("base model: Completion, repeat penalty 1.15 over the last 64 tokens "
               "(Openlid's default for base models)")
OWN = SamplerSettings(temperature=1.1, top_k=30, top_p=0.9)


class ChatModelEngine(FakeEngine):
    """A FakeEngine whose models have a chat template, except .gguf files (base models)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, LoadSettings]] = []

    def load(self, path: str | Path, settings: LoadSettings) -> int:
        rid = next(self._ids)
        self.loading_id = rid
        self.loads.append((str(path), settings))
        templates = {} if str(path).endswith(".gguf") else {"default": "{{ messages }}"}
        info = dataclasses.replace(fake_info(str(path)), chat_templates=templates)
        QTimer.singleShot(1, self, lambda: self._on_event(P.Loaded(rid, info)))
        return rid


@pytest.fixture
def fake(qtbot: Any, home: Path, tmp_path: Path) -> Iterator[tuple[MainWindow, ChatModelEngine]]:
    engine = ChatModelEngine()
    models = tmp_path / "models"
    models.mkdir()
    w = MainWindow(AppSettings(), engine, models_dir=models, with_services=False)
    qtbot.addWidget(w)
    w.show()
    w.sampling_panel.set_settings(OWN)
    yield w, engine
    w.close()
    engine.shutdown()


def load(qtbot: Any, w: MainWindow, path: Path | str) -> None:
    with qtbot.waitSignal(w.wiring.model_defaults.sig_applied, timeout=10_000):
        w.models.load(str(path))


def test_author_values_from_generation_config_are_applied_and_named(
        qtbot: Any, fake: tuple[MainWindow, ChatModelEngine], tmp_path: Path) -> None:
    w, _ = fake
    bar = w.wiring.model_defaults.bar
    assert bar.isHidden()  # no model yet
    load(qtbot, w, safetensors_folder(tmp_path, QWEN))
    panel = w.sampling_panel.settings()
    assert (panel.temperature, panel.top_p, panel.top_k) == (0.7, 0.8, 20)
    assert (panel.repeat_penalty, panel.repeat_last_n) == (1.05, -1)
    assert panel.min_p == OWN.min_p  # the author said nothing about it: the person's value
    assert bar.isVisibleTo(w)
    assert w.sampling_dock.isAncestorOf(bar)
    assert bar.source.endswith(
        "author's generation_config.json: repeat penalty 1.05 over the whole context, "
        "temperature 0.7, top-p 0.8, top-k 20")
    assert "Not applied: no_repeat_ngram_size" in bar.details
    assert w.tabs.currentWidget() is w.chat_view  # a chat model stays in Chat
    assert not bar.apply_author_button.isEnabled()

    w.sampling_panel.set_settings(panel.replace(temperature=1.3, min_p=0.2))
    assert "the panel differs: temperature 1.3 (author 0.7)" in bar.details
    assert "Changed since loaded: min-p 0.2 (was 0.05)" in bar.details
    assert "temperature 1.3 (was" not in bar.details  # said once, against the author's
    assert bar.apply_author_button.isEnabled()
    qtbot.mouseClick(bar.apply_author_button, Qt.MouseButton.LeftButton)
    assert w.sampling_panel.settings() == panel.replace(min_p=0.2)  # the rest is the person's
    assert not bar.apply_author_button.isEnabled()


def test_a_base_model_opens_in_completion_and_the_next_chat_model_gets_its_own_settings(
        qtbot: Any, fake: tuple[MainWindow, ChatModelEngine], tmp_path: Path) -> None:
    w, _ = fake
    bar = w.wiring.model_defaults.bar
    load(qtbot, w, write_tiny_gguf(tmp_path / "base.gguf"))  # no template: a base model
    assert w.tabs.currentWidget() is w.completion_view
    assert w.sampling_panel.settings() == OWN.replace(repeat_penalty=1.15, repeat_last_n=64)
    assert bar.source.endswith(BASE_SOURCE)
    assert "it opened in the Completion tab" in w.chat_view.empty_label.text()

    # A chat model without author values: back to Chat, and the base model's penalty is gone.
    folder = safetensors_folder(tmp_path, {"bos_token_id": 1})
    load(qtbot, w, folder)
    assert w.tabs.currentWidget() is w.chat_view
    assert w.sampling_panel.settings() == OWN
    assert bar.source.endswith("no recommended values: your own settings")


def test_author_values_in_a_gguf_read_while_it_loads(
        qtbot: Any, fake: tuple[MainWindow, ChatModelEngine], tmp_path: Path) -> None:
    w, _ = fake
    path = gguf_with_sampling(tmp_path / "sampled.gguf", temp=0.6, top_p=0.95)
    w.models.load(str(path))
    # The library has not read this file: its keys are read on a job thread, and applied as
    # long as the panel still shows what the load set.
    qtbot.waitUntil(lambda: w.sampling_panel.settings().temperature == 0.6, timeout=10_000)
    assert w.sampling_panel.settings() == OWN.replace(
        temperature=0.6, top_p=0.95, repeat_penalty=1.15, repeat_last_n=64)
    source = w.wiring.model_defaults.bar.source
    assert "author's GGUF general.sampling.* keys: temperature 0.6, top-p 0.95" in source
    assert source.endswith(BASE_SOURCE)


def test_a_broken_generation_config_is_said_and_nothing_is_applied(
        qtbot: Any, fake: tuple[MainWindow, ChatModelEngine], tmp_path: Path) -> None:
    w, _ = fake
    load(qtbot, w, safetensors_folder(tmp_path, "{not json"))
    assert w.sampling_panel.settings() == OWN
    assert "The author's values were not read:" in w.wiring.model_defaults.bar.details
    assert "not valid JSON" in w.wiring.model_defaults.bar.details


def test_a_damaged_settings_file_is_reported_in_the_bar(
        qtbot: Any, fake: tuple[MainWindow, ChatModelEngine], tmp_path: Path) -> None:
    w, _ = fake
    store = w.wiring.model_defaults.store
    store.path.write_text("{ half", encoding="utf-8")
    load(qtbot, w, safetensors_folder(tmp_path, None))
    bar = w.wiring.model_defaults.bar
    assert "cannot be read" in bar.problem_label.text()
    assert bar.problem_label.isVisibleTo(w)
    qtbot.mouseClick(bar.save_button, Qt.MouseButton.LeftButton)
    assert "kept as model_settings.json.damaged-" in bar.problem_label.text()
    assert list(store.path.parent.glob("model_settings.json.damaged-*"))


@pytest.mark.engine
def test_ready_gemma_gets_base_defaults_and_remembers_saved_ones(
        qtbot: Any, home: Path, gemma_models_dir: Path, gemma_path: Path) -> None:
    settings = AppSettings()
    settings.load_settings = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
    w = MainWindow(settings, models_dir=gemma_models_dir, with_services=False)
    qtbot.addWidget(w)
    w.show()
    defaults = w.wiring.model_defaults
    bar = defaults.bar
    try:
        with qtbot.waitSignal(defaults.sig_applied, timeout=120_000):
            w.start()  # the ready model loads by itself
        name = w.library.display_name(str(gemma_path))
        assert bar.source == f"{name} — {BASE_SOURCE}"
        shown = w.sampling_panel.settings()
        assert (shown.repeat_penalty, shown.repeat_last_n) == (1.15, 64)
        assert w.tabs.currentWidget() is w.completion_view

        # Change both panels, save them as this model's defaults.
        w.sampling_panel.set_settings(shown.replace(temperature=0.3))
        assert "Changed since loaded: temperature 0.3 (was 0.8)" in bar.details
        w.load_panel.set_settings(w.load_panel.settings().replace(n_ctx=768))
        qtbot.mouseClick(bar.save_button, Qt.MouseButton.LeftButton)
        assert bar.source.startswith(f"{name} — your saved sampler and load settings (saved ")
        assert bar.reset_button.isEnabled()
        saved = ModelSettingsStore().get(str(gemma_path))
        assert saved is not None
        assert saved.load is not None
        assert saved.load.n_ctx == 768

        # Eject, change the panels, load again: what was saved comes back, load settings too.
        with qtbot.waitSignal(w.models.sig_model_changed, timeout=30_000):
            w.models.eject()
        w.sampling_panel.set_settings(SamplerSettings(temperature=0.9))
        w.load_panel.set_settings(LoadSettings(n_ctx=1024, n_threads=TEST_THREADS))
        with qtbot.waitSignal(defaults.sig_applied, timeout=120_000):
            w.models.load(str(gemma_path))
        assert w.models.applied is not None
        assert w.models.applied.n_ctx == 768
        assert w.models.info is not None
        assert w.models.info.n_ctx == 768
        assert w.load_panel.settings().n_ctx == 768
        assert w.load_panel.saved_note.text().startswith(f"These are the settings saved for {name}")
        assert w.load_panel.saved_note.isVisibleTo(w.load_panel)
        assert w.sampling_panel.settings() == shown.replace(temperature=0.3)
        assert "The panels match the saved settings." in bar.details

        # Reset: forgotten, and the base-model defaults over the person's own settings.
        qtbot.mouseClick(bar.reset_button, Qt.MouseButton.LeftButton)
        assert ModelSettingsStore().get(str(gemma_path)) is None
        assert w.sampling_panel.settings() == SamplerSettings(
            temperature=0.9, repeat_penalty=1.15, repeat_last_n=64)
        assert bar.source == f"{name} — {BASE_SOURCE}"
        assert not bar.reset_button.isEnabled()
        assert json.loads(ModelSettingsStore().path.read_text())["models"] == {}
    finally:
        w.close()
