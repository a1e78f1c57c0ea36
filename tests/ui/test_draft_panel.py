"""The Speculative decoding section, driven offscreen: the kind selector enables what it needs,
the draft fields reach LoadSettings, and what stops a load is said in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.ui.panels.draft_panel import DraftPanel

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def panel(qtbot) -> DraftPanel:
    p = DraftPanel()
    qtbot.addWidget(p)
    p.show()
    return p


def test_no_draft_by_default_and_the_kind_enables_its_fields(qtbot, panel: DraftPanel) -> None:
    assert panel.apply_to(LoadSettings()) == LoadSettings()
    assert not panel.path_row.isEnabled()
    assert not panel.n_draft.isEnabled()
    with qtbot.waitSignal(panel.sig_changed) as changed:
        panel.kind.setCurrentIndex(panel.kind.findData("ngram"))
    assert changed.args[0]["draft"] == "ngram"
    assert panel.n_draft.isEnabled()
    assert not panel.path_row.isEnabled()
    assert panel.problem() == ""
    panel.kind.setCurrentIndex(panel.kind.findData("model"))
    assert panel.path_row.isEnabled()
    assert panel.p_min.isEnabled()


def test_a_draft_model_without_a_file_is_named(qtbot, panel: DraftPanel,
                                               tmp_path: Path) -> None:
    panel.kind.setCurrentIndex(panel.kind.findData("model"))
    assert "a draft model needs its GGUF file" in panel.problem()
    assert "needs its GGUF file" in panel.note.text()
    missing = tmp_path / "draft.gguf"
    panel.path.setText(str(missing))
    panel.path.editingFinished.emit()
    assert panel.problem() == f"the draft model file {missing} does not exist"
    missing.write_bytes(b"GGUF")
    panel.path.editingFinished.emit()
    assert panel.problem() == ""
    assert panel.note.text() == ""
    settings = panel.apply_to(LoadSettings(n_ctx=2048))
    assert (settings.n_ctx, settings.draft, settings.draft_model) == (2048, "model", str(missing))


def test_settings_round_trip_and_the_loaded_drafting_is_shown(qtbot, panel: DraftPanel) -> None:
    chosen = LoadSettings(draft="ngram", draft_model="/m/d.gguf", n_draft=5, draft_p_min=0.5)
    with qtbot.assertNotEmitted(panel.sig_changed):
        panel.set_from(chosen)
    assert panel.apply_to(LoadSettings()) == chosen
    panel.n_draft.spin.setValue(12)
    assert panel.fields()["n_draft"] == 12
    panel.set_from(LoadSettings(n_draft=500))  # out of range: clamped, never raises
    assert panel.fields()["n_draft"] == 64
    info = ModelInfo(path="m", architecture="gemma3", name="m", n_params=1, quant="Q4_K_M",
                     size_bytes=1, n_vocab=1, n_ctx_train=1, n_ctx=1, n_layer=1,
                     draft="n-gram drafting from the context, up to 8 tokens a pass")
    panel.set_model_info(info)
    assert panel.note.text() == "In use: n-gram drafting from the context, up to 8 tokens a pass."
    panel.set_model_info(info.__class__(**{**vars(info), "draft": ""}))
    assert panel.note.text() == "Loaded without a draft."
