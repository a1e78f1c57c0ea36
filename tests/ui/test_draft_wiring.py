"""Speculative decoding in the window: the Load panel hands out the draft settings, and the
status bar says how many proposals the model kept and what the draft gained."""

from __future__ import annotations

from typing import Any

from desktop.core.drafting import DRAFT_NGRAM, DraftCounts
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.steps import GenerationDone, Timings, Usage
from desktop.ui.panels.load_panel import LoadPanel
from desktop.ui.window.status_bar import StatusBar


def test_the_load_panel_carries_the_draft_settings(qtbot: Any) -> None:
    panel = LoadPanel()
    qtbot.addWidget(panel)
    assert panel.settings().draft == "none"
    panel.set_settings(LoadSettings(n_ctx=2048, draft=DRAFT_NGRAM, n_draft=5))
    settings = panel.settings()
    assert (settings.draft, settings.n_draft, settings.n_ctx) == (DRAFT_NGRAM, 5, 2048)
    panel.set_settings(LoadSettings())
    assert panel.settings().draft == "none"


def _info(path: str) -> ModelInfo:
    return ModelInfo(path=path, architecture="gemma3", name="m", n_params=1, quant="Q4_K_M",
                     size_bytes=1, n_vocab=10, n_ctx_train=512, n_ctx=512, n_layer=1)


def _done(tps: float, draft: DraftCounts | None = None) -> GenerationDone:
    return GenerationDone("length", "text", Usage(10, 20), Timings(5, 6, 7, tps), draft=draft)


def test_the_status_bar_names_the_draft_and_its_speed_up(qtbot: Any) -> None:
    bar = StatusBar()
    qtbot.addWidget(bar)
    bar.set_model(_info("/m/a.gguf"), name="a")
    bar.generation_finished(_done(20.0))
    assert bar.speed_label.text() == "20.0 tok/s"
    bar.generation_finished(_done(30.0, DraftCounts(DRAFT_NGRAM, proposed=10, accepted=7,
                                                    passes=4)))
    assert bar.speed_label.text() == "30.0 tok/s · n-gram draft: 7/10 accepted (70%), ×1.50 speed"
    # Another model has no speed without a draft yet: no speed-up is claimed.
    bar.set_model(_info("/m/b.gguf"), name="b")
    bar.generation_finished(_done(30.0, DraftCounts(DRAFT_NGRAM, proposed=4, accepted=1)))
    assert bar.speed_label.text() == "30.0 tok/s · n-gram draft: 1/4 accepted (25%)"
