"""Stored steps and the context overflow policy in the main window's chat, with the FakeEngine:
a reply's tokens can be inspected after a restart, and a long conversation is fitted to the
context as the Template panel's policy says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from desktop.core import paths
from desktop.core.conversations.store import ConversationStore
from desktop.core.sampling import SamplerSettings
from desktop.ui.chat.token_view import TokenView
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.ui.conftest import FakeEngine

pytestmark = pytest.mark.usefixtures("no_dangling")


def open_window(qtbot: Any, models_dir: Path, reply: str) -> tuple[MainWindow, FakeEngine]:
    engine = FakeEngine(reply=reply)
    w = MainWindow(AppSettings(), engine, models_dir=models_dir)
    qtbot.addWidget(w)
    w.show()
    w.start()
    qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading, timeout=30_000)
    return w, engine


def close(w: MainWindow, engine: FakeEngine) -> None:
    w.close()
    engine.shutdown()


@pytest.fixture
def window(qtbot: Any, home: Path, gemma_models_dir: Path) -> Iterator[MainWindow]:
    w, engine = open_window(qtbot, gemma_models_dir, "Bonjour tout le monde.")
    yield w
    close(w, engine)


def send(qtbot: Any, w: MainWindow, text: str) -> None:
    w.chat_view.input.setFocus()
    w.chat_view.input.setPlainText(text)
    qtbot.keyClick(w.chat_view.input, Qt.Key.Key_Return)


def wait_idle(qtbot: Any, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: not w.chat.busy and not w.chat_view.busy, timeout=10_000)


def test_a_reply_s_tokens_can_be_inspected_after_a_restart(
        qtbot: Any, home: Path, gemma_models_dir: Path) -> None:
    w, engine = open_window(qtbot, gemma_models_dir, "Bonjour tout le monde.")
    send(qtbot, w, "Say hello")
    wait_idle(qtbot, w)
    reply_id = w.chat_view.messages[-1].item.id
    close(w, engine)
    with ConversationStore(paths.database_path()) as store:
        assert [r.text for r in store.load_steps(reply_id)] == ["Bonjour", " tout", " le",
                                                               " monde."]

    w, engine = open_window(qtbot, gemma_models_dir, "Other words.")
    try:
        assert w.chart_dock.latest is None  # nothing generated in this run
        w.conversations.list.setCurrentRow(0)
        qtbot.waitUntil(lambda: len(w.chat_view.messages) == 2, timeout=5000)
        reply = w.chat_view.messages[-1]
        assert reply.item.id == reply_id
        assert reply.item.has_steps
        assert not reply.tokens_button.isHidden()
        reply.tokens_button.setChecked(True)  # the steps load from the database
        qtbot.waitUntil(lambda: isinstance(reply.body, TokenView), timeout=5000)
        qtbot.waitUntil(lambda: w.chart_dock.latest is not None, timeout=5000)
        assert isinstance(reply.body, TokenView)
        reply.body.sig_step_clicked.emit(2)  # click " le"
        assert w.chart_dock.selected_step == 2
        assert w.chart_dock.shown is not None
        assert w.chart_dock.shown.text == " le"
        assert w.chart_dock.shown.stage("raw") is not None
    finally:
        close(w, engine)


def test_a_continued_reply_keeps_all_its_steps(qtbot: Any, window: MainWindow) -> None:
    w = window
    send(qtbot, w, "Say hello")
    wait_idle(qtbot, w)
    reply_id = w.chat_view.messages[-1].item.id
    w.chat.continue_reply(reply_id)
    wait_idle(qtbot, w)
    with ConversationStore(paths.database_path()) as store:
        steps = store.load_steps(reply_id)
    assert [r.step for r in steps] == list(range(8))
    assert "".join(r.text for r in steps) == "Bonjour tout le monde." * 2


def test_a_reply_continued_under_other_settings_keeps_each_part_s_settings(
        qtbot: Any, window: MainWindow) -> None:
    from desktop.core.generation import Generation

    w = window
    w.sampling_panel.set_settings(SamplerSettings(temperature=0.2, seed=11))
    send(qtbot, w, "Say hello")
    wait_idle(qtbot, w)
    reply_id = w.chat_view.messages[-1].item.id
    w.sampling_panel.set_settings(SamplerSettings(temperature=1.5, top_p=0.5, seed=12))
    w.chat.continue_reply(reply_id)
    wait_idle(qtbot, w)
    with ConversationStore(paths.database_path()) as store:
        meta = store.message(reply_id).meta
        steps = store.load_steps(reply_id)
    gen = Generation.saved(meta, steps, message_id=reply_id)
    first, later = gen.settings_at(3), gen.settings_at(4)
    assert first is not None
    assert later is not None
    assert (first.temperature, first.seed) == (0.2, 11)
    assert (later.temperature, later.top_p, later.seed) == (1.5, 0.5, 12)
    # The chart shows the stored reply's old part as it was sampled.
    w.chat_view.sig_step_clicked.emit(reply_id, 1)
    qtbot.waitUntil(lambda: w.chart_dock.selected_step == 1, timeout=5000)
    assert "T 0.20" in w.chart_dock.sampled_label.text()
    w.chat_view.sig_step_clicked.emit(reply_id, 6)
    qtbot.waitUntil(lambda: w.chart_dock.selected_step == 6, timeout=5000)
    assert w.chart_dock.sampled_label.text().startswith("Sampled with T 1.50 · top-k 40 · "
                                                        "top-p 0.50")


def long_text(tag: str) -> str:
    return f"{tag} " + "word " * 240  # ≈ 1,200 characters: about 350 estimated tokens


def test_rolling_window_leaves_out_the_oldest_turns(qtbot: Any, window: MainWindow) -> None:
    w = window
    engine = w.engine
    assert isinstance(engine, FakeEngine)
    w.sampling_panel.set_settings(SamplerSettings(max_tokens=256))
    w.template_panel.set_overflow_policy("rolling_window")
    for tag in ("first", "second", "third"):
        send(qtbot, w, long_text(tag))
        wait_idle(qtbot, w)
    prompt = "".join(t for t, _ in engine.generated[-1][0])
    assert "third" in prompt
    assert "first" not in prompt  # 1,024 tokens minus 256 for the reply hold two turns
    assert "left out to fit 1,024 tokens" in w.chat_view.notice.label.text()
    assert len(w.chat_view.messages) == 6  # everything is still stored and shown


def test_stop_at_the_limit_refuses_and_keeps_the_draft(qtbot: Any, window: MainWindow) -> None:
    w = window
    engine = w.engine
    assert isinstance(engine, FakeEngine)
    w.template_panel.set_overflow_policy("stop")
    text = "word " * 2000
    send(qtbot, w, text)
    qtbot.waitUntil(lambda: "tokens over" in w.chat_view.notice.label.text(), timeout=5000)
    wait_idle(qtbot, w)
    assert engine.generated == []
    assert w.chat_view.messages == []  # nothing stored
    assert w.chat_view.input.toPlainText() == text  # given back, not lost
