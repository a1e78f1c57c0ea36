"""The status bar's live context figure, for a local model and for a remote endpoint (whose
steps carry no position: it says the prompt's length only with its usage, at the end)."""

from __future__ import annotations

import itertools

import pytest

from desktop.core.model_info import ModelInfo
from desktop.core.steps import GenerationDone, StepRecord, Timings, Usage
from desktop.ui.window import status_bar
from desktop.ui.window.status_bar import StatusBar

INFO = ModelInfo(path="remote:abc", architecture="", name="lsrv", n_params=0, quant="",
                 size_bytes=0, n_vocab=0, n_ctx_train=4096, n_ctx=4096, n_layer=0)


def _step(position: int) -> StepRecord:
    return StepRecord(step=0, token_id=-1, text="a", piece="a", prob=0.5, raw_prob=0.5,
                      raw_rank=1, entropy_raw=1.0, entropy_final=1.0, stages=(),
                      position=position)


@pytest.fixture
def bar(qtbot, monkeypatch: pytest.MonkeyPatch) -> StatusBar:
    clock = itertools.count(start=100.0, step=0.3)  # each label update passes the throttle
    monkeypatch.setattr(status_bar.time, "monotonic", lambda: next(clock))
    widget = StatusBar()
    qtbot.addWidget(widget)
    widget.set_model(INFO)
    return widget


def test_a_remote_reply_counts_its_tokens_until_the_endpoint_says_the_total(
        bar: StatusBar) -> None:
    bar.generation_started()
    for _ in range(30):
        bar.note_steps([_step(0), _step(0)])  # remote steps: position 0 each
    assert bar.context_label.text() == "Context 60 / 4,096 (1%)"  # not "Context 1"
    bar.generation_finished(GenerationDone(
        finish_reason="length", text="", usage=Usage(prompt_tokens=5, completion_tokens=60),
        timings=Timings(prompt_ms=1.0, first_token_ms=1.0, generate_ms=1.0,
                        tokens_per_second=9.5)))
    assert bar.context_label.text() == "Context 65 / 4,096 (2%)"


def test_a_local_reply_shows_the_position_it_reached(bar: StatusBar) -> None:
    bar.generation_started()
    for position in range(12, 20):  # a 12-token prompt, then one step per position
        bar.note_steps([_step(position)])
    assert bar.context_label.text() == "Context 20 / 4,096 (0%)"
