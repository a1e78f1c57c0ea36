"""The Sampling, Load and Prompt panels, driven offscreen through their widgets (the Template
panel has its own file)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex

from desktop.core.model_info import LoadSettings, ModelInfo, SpecialToken
from desktop.core.sampler_stages import GENERAL_PARAMS, STAGE_PARAMS
from desktop.core.sampling import (
    DEFAULT_ORDER,
    PRESETS,
    STAGE_PENALTIES,
    STAGE_TEMPERATURE,
    STAGE_TOP_K,
    SamplerSettings,
)
from desktop.ui.panels.load_panel import LoadPanel
from desktop.ui.panels.prompt_panel import PromptPanel
from desktop.ui.panels.sampling_panel import RANDOM_SEED, SamplingPanel
from desktop.ui.settings import AppSettings

# The offscreen platform says this once per shown top-level window; it is harmless.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def sampling(qtbot) -> SamplingPanel:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    return panel


def gemma_info(**changes: object) -> ModelInfo:
    info = ModelInfo(path="/models/gemma-3-270m-q4_k_m.gguf", architecture="gemma3",
                     name="Gemma 3 270m", n_params=268_098_176, quant="Q4_K_M",
                     size_bytes=253_113_024, n_vocab=262_144, n_ctx_train=32_768, n_ctx=1024,
                     n_layer=18, bos=SpecialToken(2, "<bos>"), eos=SpecialToken(1, "<eos>"),
                     eot=SpecialToken(106, "<end_of_turn>"))
    return dataclasses.replace(info, **changes)


# ---- sampling -------------------------------------------------------------------------------


def test_every_sampler_field_round_trips(qtbot, sampling: SamplingPanel) -> None:
    custom = SamplerSettings(
        temperature=1.35, top_k=7, top_p=0.42, min_p=0.125, typical_p=0.66,
        repeat_penalty=1.17, repeat_last_n=-1, presence_penalty=-0.35, frequency_penalty=0.8,
        mirostat=2, mirostat_tau=3.5, mirostat_eta=0.25, seed=4_000_000_000, max_tokens=777,
        stop=("\n\n", "###", "tab\there", "back\\slash"),
        order=(STAGE_TEMPERATURE, STAGE_TOP_K, "xtc", "typical", "top_p", "dry", "min_p",
               STAGE_PENALTIES, "top_n_sigma"),
        top_n=123, ignore_eos=True, dry_multiplier=0.8, dry_base=2.5, dry_allowed_length=4,
        dry_penalty_last_n=-1, dry_sequence_breakers=("\n", "User:"), top_n_sigma=1.5,
        xtc_probability=0.25, xtc_threshold=0.2, dynatemp_range=0.5, dynatemp_exponent=2.0,
        structured_output="gbnf", json_schema='{"type": "string"}', grammar='root ::= "x"',
    )
    with qtbot.waitSignal(sampling.sig_settings_changed) as blocker:
        sampling.set_settings(custom)
    assert blocker.args == [custom]
    assert sampling.settings() == custom
    assert not sampling.message.isVisibleTo(sampling)
    # Every field differs from the default, so this checks each control, not a default.
    defaults = SamplerSettings()
    for name in custom.to_json():
        assert getattr(custom, name) != getattr(defaults, name), name
    sampling.set_settings(defaults)
    assert sampling.settings() == defaults


def test_editing_a_spin_box_emits_new_settings(qtbot, sampling: SamplingPanel) -> None:
    with qtbot.waitSignal(sampling.sig_settings_changed) as blocker:
        sampling.fields["top_k"].spin.setValue(12)
    assert blocker.args[0].top_k == 12
    # The slider follows the spin box, and dragging the slider moves the spin box.
    assert sampling.fields["top_k"].slider.value() == 12
    sampling.fields["temperature"].slider.setValue(150)
    assert sampling.settings().temperature == 1.5


def test_every_field_has_a_tooltip(sampling: SamplingPanel) -> None:
    for name, field in sampling.fields.items():
        assert len(field.spin.toolTip()) > 30, name
    for widget in (sampling.mirostat_combo, sampling.seed_lock, sampling.stop_edit,
                   sampling.order_editor, sampling.ignore_eos, sampling.preset_combo):
        assert widget.toolTip(), widget


def test_preset_applies_and_keeps_session_fields(qtbot, sampling: SamplingPanel) -> None:
    sampling.set_settings(SamplerSettings(stop=("END",), max_tokens=99, seed=5))
    index = sampling.preset_combo.findData("Creative")
    with qtbot.waitSignal(sampling.sig_settings_changed):
        sampling.preset_combo.activated.emit(index)
    s = sampling.settings()
    creative = PRESETS["Creative"]
    assert (s.temperature, s.top_k, s.top_p, s.min_p) == (
        creative.temperature, creative.top_k, creative.top_p, creative.min_p)
    assert (s.stop, s.max_tokens, s.seed) == (("END",), 99, 5)
    assert sampling.preset_combo.currentData() == "Creative"
    sampling.fields["temperature"].spin.setValue(0.5)
    assert sampling.preset_combo.currentText() == "Custom"
    sampling.apply_preset("Greedy")
    assert sampling.settings().greedy
    assert "greedy" in sampling.truncation_note.text().lower()


def test_user_presets_persist_through_app_settings(qtbot) -> None:
    app_settings = AppSettings()
    panel = SamplingPanel(app_settings)
    qtbot.addWidget(panel)
    panel.fields["temperature"].spin.setValue(0.33)
    assert panel.save_preset("Mine")
    assert not panel.save_preset("Balanced")  # a built-in name
    assert "built-in" in panel.message.text()
    again = SamplingPanel(AppSettings())
    qtbot.addWidget(again)
    assert "Mine" in again.preset_names()
    again.apply_preset("Mine")
    assert again.settings().temperature == 0.33
    assert again.preset_combo.currentData() == "Mine"


def test_reset_per_field(qtbot, sampling: SamplingPanel) -> None:
    field = sampling.fields["repeat_penalty"]
    assert not field.reset_button.isEnabled()
    field.spin.setValue(1.3)
    assert field.reset_button.isEnabled()
    with qtbot.waitSignal(sampling.sig_settings_changed) as blocker:
        field.reset_button.click()
    assert blocker.args[0].repeat_penalty == SamplerSettings().repeat_penalty
    assert not field.reset_button.isEnabled()


def test_seed_lock(qtbot, sampling: SamplingPanel) -> None:
    assert sampling.settings().seed == RANDOM_SEED
    assert not sampling.seed_spin.isEnabled()
    sampling.seed_lock.setChecked(True)
    sampling.seed_spin.setValue(1234)
    assert sampling.settings().seed == 1234
    sampling.new_seed_button.click()
    assert sampling.settings().seed != RANDOM_SEED
    sampling.seed_lock.setChecked(False)
    assert sampling.settings().seed == RANDOM_SEED
    sampling.set_settings(SamplerSettings(seed=7))
    assert sampling.seed_lock.isChecked()
    assert sampling.settings().seed == 7


def test_sampler_order_reorders(qtbot, sampling: SamplingPanel) -> None:
    editor = sampling.order_editor
    assert sampling.settings().order == DEFAULT_ORDER
    editor.list.setCurrentRow(len(DEFAULT_ORDER) - 1)  # temperature, last by default
    with qtbot.waitSignal(sampling.sig_settings_changed) as blocker:
        editor.up_button.click()
    order = blocker.args[0].order
    assert order[-2] == STAGE_TEMPERATURE
    assert sorted(order) == sorted(DEFAULT_ORDER)
    for _ in range(len(DEFAULT_ORDER)):
        editor.up_button.click()
    assert sampling.settings().order[0] == STAGE_TEMPERATURE
    assert not editor.up_button.isEnabled()
    editor.reset_button.click()
    assert sampling.settings().order == DEFAULT_ORDER
    # A drag and drop ends in the model's rowsMoved, as this move does.
    with qtbot.waitSignal(sampling.sig_settings_changed) as dragged:
        assert editor.list.model().moveRows(QModelIndex(), 1, 1, QModelIndex(), 0)
    assert dragged.args[0].order[:2] == ("dry", STAGE_PENALTIES)


def test_invalid_values_show_a_message_and_never_raise(qtbot, sampling: SamplingPanel) -> None:
    sampling.set_settings(SamplerSettings(top_p=1.5, typical_p=0.0, mirostat=7))
    assert sampling.message.isVisibleTo(sampling)
    assert "top_p" in sampling.message.text()
    sampling.settings().validated()  # what the panel hands out is always valid
    # Mirostat on: the knobs it replaces are disabled and a note says why.
    sampling.mirostat_combo.setCurrentIndex(2)
    assert not sampling.fields["top_k"].isEnabled()
    for name in ("repeat_penalty", "dry_multiplier", "xtc_probability", "top_n_sigma",
                 "dynatemp_range"):  # as in llama.cpp, only temperature runs before Mirostat
        assert not sampling.fields[name].isEnabled(), name
    assert sampling.fields["temperature"].isEnabled()
    assert sampling.fields["mirostat_tau"].isEnabled()
    assert "Mirostat" in sampling.truncation_note.text()
    # Any edit clears the adjustment message.
    sampling.fields["temperature"].spin.setValue(0.7)
    assert not sampling.message.isVisibleTo(sampling)


def test_every_registry_knob_has_a_control_with_its_range(sampling: SamplingPanel) -> None:
    for p in (*STAGE_PARAMS, *GENERAL_PARAMS):
        if not p.is_number or p.choices or p.field == "seed":
            continue
        field = sampling.fields[p.field]
        assert field.spin.maximum() == pytest.approx(p.hi), p.field
        assert field.spin.minimum() == pytest.approx(p.panel_minimum), p.field
        assert field.spin.toolTip() == p.help
    editor = sampling.order_editor
    labels = [editor.list.item(i).text() for i in range(editor.list.count())]
    assert labels == ["Penalties", "DRY", "Top-n-sigma", "Top-k", "Typical-p", "Top-p", "Min-p",
                      "XTC", "Temperature"]


def test_settings_saved_before_the_new_stages_load_without_a_warning(
        qtbot, sampling: SamplingPanel) -> None:
    saved = {"temperature": 0.7, "top_k": 12, "retired_knob": 3,
             "order": ["top_k", "penalties", "typical", "top_p", "min_p", "temperature"]}
    settings = SamplerSettings.from_json(saved)
    sampling.set_settings(settings)
    assert not sampling.message.isVisibleTo(sampling)
    assert sampling.settings() == settings
    assert settings.order[:3] == ("top_k", "penalties", "dry")  # DRY after penalties, as default
    sampling.breakers_edit.setPlainText("\\n\nUser:")
    assert sampling.settings().dry_sequence_breakers == ("\n", "User:")


def test_stop_strings_editor_escapes(sampling: SamplingPanel) -> None:
    sampling.stop_edit.setPlainText("\\n\\n\nUser:\n\n\\\\end")
    assert sampling.settings().stop == ("\n\n", "User:", "\\end")


# ---- load -----------------------------------------------------------------------------------


def test_load_panel_round_trip_fit_and_reload(qtbot, tmp_path: Path) -> None:
    panel = LoadPanel()
    qtbot.addWidget(panel)
    custom = LoadSettings(n_gpu_layers=-1, n_ctx=8192, n_threads=3, n_batch=256,
                          flash_attn="on", use_mmap=False, use_mlock=True, kv_cache_type="q8_0",
                          seed=11)
    panel.set_settings(custom)
    assert panel.settings() == custom
    assert "unknown until a model is loaded" in panel.gpu_status.text()
    assert not panel.reload_button.isEnabled()  # no file chosen yet

    model = tmp_path / "model.gguf"
    model.write_bytes(b"\0" * 4096)
    panel.set_model_file(str(model), None)  # no report: a rough estimate from the size
    estimate = panel.estimate()
    assert estimate is not None
    assert estimate.rough
    assert "rough" in panel.fit_label.text()
    assert panel.reload_button.isEnabled()

    cpu_only = "GPU layers auto: this llama.cpp build has no GPU backend, so every layer runs " \
               "on the CPU"
    panel.set_model_info(gemma_info(offload_note=cpu_only), applied=custom)
    assert "CPU only" in panel.gpu_status.text()
    assert "no GPU backend" not in panel.gpu_status.text()  # said once, not twice
    assert not panel.reload_button.isEnabled()  # nothing to apply
    with qtbot.waitSignal(panel.sig_settings_changed):
        panel.n_ctx.spin.setValue(2048)
    assert panel.reload_button.text() == "Reload to apply"
    with qtbot.waitSignal(panel.sig_reload_requested) as blocker:
        panel.reload_button.click()
    assert blocker.args[0] == custom.replace(n_ctx=2048)


def test_load_panel_reports_offload_and_adjusts_bad_values(qtbot) -> None:
    panel = LoadPanel()
    qtbot.addWidget(panel)
    panel.set_model_info(gemma_info(gpu_offload_supported=True, backend="CUDA",
                                    n_layers_offloaded=18), applied=LoadSettings())
    assert "offloads to CUDA: 18 of 18 layers" in panel.gpu_status.text()
    fewer = "only 10 of the 19 layers asked went to the GPU (llama.cpp assigned: CUDA0 10)"
    panel.set_model_info(gemma_info(gpu_offload_supported=True, backend="CUDA",
                                    n_layers_offloaded=10, offload_note=fewer),
                         applied=LoadSettings())
    assert fewer in panel.gpu_status.text()  # a GPU build's note is news
    panel.set_settings(LoadSettings(n_batch=0, kv_cache_type="f8"))
    assert panel.message.isVisibleTo(panel)
    panel.settings().validated()
    assert panel.use_mmap.toolTip()


def test_load_panel_flash_attention_auto_off_and_what_auto_came_to(qtbot) -> None:
    panel = LoadPanel()
    qtbot.addWidget(panel)
    assert panel.flash_attn.currentText() == "Auto"  # llama.cpp's own default
    with qtbot.waitSignal(panel.sig_settings_changed) as changed:
        panel.flash_attn.setCurrentIndex(panel.flash_attn.findText("Off"))
    assert changed.args[0].flash_attn == "off"
    panel.kv_type.setCurrentText("q8_0")  # a quantized V half needs the fused kernel
    assert "set it to Auto or On" in panel.context_note.text()
    panel.flash_attn.setCurrentIndex(panel.flash_attn.findText("Auto"))
    assert "Auto or On" not in panel.context_note.text()
    # Loaded: what llama.cpp resolved "auto" to, read from its log by the engine.
    panel.set_model_info(gemma_info(flash_attn=True), applied=panel.settings())
    assert "flash attention on (auto)" in panel.context_note.text()
    panel.set_model_info(gemma_info(flash_attn=False), applied=panel.settings())
    assert "flash attention off (auto)" in panel.context_note.text()
    # Loaded with "on", then the box set to Auto without reloading: the note says how it loaded.
    panel.set_model_info(gemma_info(flash_attn=True), applied=panel.settings().replace(
        flash_attn="on"))
    assert "flash attention on." in panel.context_note.text()


# ---- system prompt and instructions ----------------------------------------------------------


def test_prompt_panel_signals_and_presets(qtbot) -> None:
    panel = PromptPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.sig_system_prompt_changed) as blocker:
        panel.system_field.editor.setPlainText("Be brief.")
    assert blocker.args == ["Be brief."]
    assert panel.system_field.combo.currentText() == "Custom"
    with qtbot.waitSignal(panel.sig_instructions_changed):
        panel.apply_preset("instructions", "Short answers")
    assert panel.instructions().startswith("Keep answers short")
    assert panel.instructions_field.combo.currentData() == "Short answers"
    panel.system_field.editor.undo()  # a preset replaces text undoably; this undoes the typing
    assert panel.save_preset("system", "Pirate") is True
    assert "Pirate" in panel.presets("system")
    assert panel.save_preset("system", "None") is False
    with qtbot.waitSignal(panel.sig_instructions_placement_changed) as placed:
        panel.set_placement("first_user")
    assert placed.args == ["first_user"]


def _wheel(widget, down: bool = True) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    at = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(at, QPointF(widget.mapToGlobal(at.toPoint())), QPoint(0, 0),
                        QPoint(0, -120 if down else 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_panel_and_changes_no_setting(qtbot,
                                                             sampling: SamplingPanel) -> None:
    """Scrolling down the panel over its controls moved top-p and typical-p (seen at 1280x720):
    a control takes the wheel only once it has focus."""
    from PySide6.QtWidgets import QScrollArea

    sampling.resize(420, 300)
    sampling.show()
    qtbot.waitExposed(sampling)
    scroll = sampling.findChild(QScrollArea)
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0
    before = sampling.settings()
    top_p = sampling.fields["top_p"]
    for control in (top_p.slider, top_p.spin, sampling.fields["top_k"].spin):
        _wheel(control)
    assert sampling.settings() == before
    assert bar.value() > 0  # the panel scrolled instead
    top_p.slider.setFocus()
    qtbot.waitUntil(top_p.slider.hasFocus)
    _wheel(top_p.slider)  # focused: the wheel is the control's
    assert sampling.settings().top_p != before.top_p
