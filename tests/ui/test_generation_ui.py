"""One Generation per reply, read by every view: the chart says what a step was really sampled
with (not what the Sampling panel says now), the store keeps the settings sent and the seed
used, tokens are clickable without the Tokens toggle, the chart follows the branch and the
conversation shown, and Ctrl+Enter in Completion continues the text.

Driven through the real main window: with the real engine and the shipped Gemma model where the
flow lives there (sampling, seeds), with the FakeEngine for the transcript and chart wiring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QHelpEvent, QTextCursor
from PySide6.QtWidgets import QApplication, QTextBrowser, QToolTip

from desktop.core import paths
from desktop.core.conversations.store import ConversationStore
from desktop.core.generation import sampled_with
from desktop.core.model_info import LoadSettings
from desktop.core.sampler_stages import RANDOM_SEED
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import feeding_stage, stage_changed
from desktop.ui.chat.markdown_body import MarkdownBody
from desktop.ui.chat.message_widget import MessageWidget
from desktop.ui.chat.token_view import TokenView
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.threads import TEST_THREADS
from tests.ui.conftest import FakeEngine

pytestmark = [
    # The offscreen platform says these when a window (the hover card) is shown; not ours.
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints",
                              "This plugin does not support raise"),
    pytest.mark.usefixtures("no_dangling"),
]

SAMPLED = SamplerSettings(temperature=0.2, top_k=40, top_p=0.95, min_p=0.05, max_tokens=16)
PANEL_NOW = SAMPLED.replace(temperature=1.5, top_p=0.5)


def send(qtbot: Any, w: MainWindow, text: str) -> None:
    w.chat_view.input.setFocus()
    w.chat_view.input.setPlainText(text)
    qtbot.keyClick(w.chat_view.input, Qt.Key.Key_Return)


def wait_idle(qtbot: Any, w: MainWindow, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: not w.chat.busy and not w.chat_view.busy, timeout=timeout)
    # A finished reply's text is a new view: its layout (a posted event) comes a pass later,
    # and a test that clicks into it must not click into a view still 100 pixels wide.
    qtbot.wait(50)


def stored_replies() -> list[tuple[int, dict[str, Any], list[StepRecord]]]:
    with ConversationStore(paths.database_path()) as store:
        out = []
        for conversation in store.list_conversations():
            for m in store.active_path(conversation.id):
                if m.role == "assistant":
                    out.append((m.id, m.meta or {}, store.load_steps(m.id)))
        return out


def open_fake(qtbot: Any, models_dir: Path, reply: str = "Paris is the capital of France.",
              interval_ms: int = 2) -> tuple[MainWindow, FakeEngine]:
    engine = FakeEngine(reply=reply, interval_ms=interval_ms)
    w = MainWindow(AppSettings(), engine, models_dir=models_dir, with_services=False)
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    w.start()
    qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading, timeout=30_000)
    return w, engine


@pytest.fixture
def fake(qtbot: Any, home: Path, gemma_models_dir: Path) -> Iterator[tuple[MainWindow,
                                                                           FakeEngine]]:
    w, engine = open_fake(qtbot, gemma_models_dir)
    yield w, engine
    w.close()
    engine.shutdown()


def click_text(qtbot: Any, browser: QTextBrowser, shown_index: int) -> None:
    """A real left click on the character at `shown_index` of a text view."""
    cursor = QTextCursor(browser.document())
    cursor.setPosition(shown_index)
    rect = browser.cursorRect(cursor)
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(rect.right() + 3, rect.center().y()))


def hover_text(browser: QTextBrowser, shown_index: int) -> None:
    cursor = QTextCursor(browser.document())
    cursor.setPosition(shown_index)
    rect = browser.cursorRect(cursor)
    pos = QPoint(rect.right() + 3, rect.center().y())
    event = QHelpEvent(QEvent.Type.ToolTip, pos, browser.viewport().mapToGlobal(pos))
    QApplication.sendEvent(browser.viewport(), event)


def prose_of(widget: MessageWidget) -> QTextBrowser:
    assert isinstance(widget.body, MarkdownBody)
    return widget.body.findChildren(QTextBrowser)[0]


# --- the real engine and Gemma ---


@pytest.mark.engine
def test_an_old_step_shows_what_it_was_sampled_with_not_the_panel(
        qtbot: Any, home: Path, gemma_models_dir: Path) -> None:
    settings = AppSettings()
    settings.load_settings = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
    w = MainWindow(settings, models_dir=gemma_models_dir, with_services=False)
    qtbot.addWidget(w)
    w.show()
    w.start()
    try:
        qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading,
                        timeout=120_000)
        w.sampling_panel.set_settings(SAMPLED)  # seed: random, as the panel starts
        assert w.sampling_panel.settings().seed == RANDOM_SEED
        send(qtbot, w, "Write a short poem about the sea.")
        wait_idle(qtbot, w)
        [(reply_id, meta, steps)] = stored_replies()
        # The stored seed is the one used, a concrete number, not the "random" marker.
        seed = meta["seed"]
        assert isinstance(seed, int)
        assert seed != RANDOM_SEED
        assert meta["sampler"]["seed"] == seed
        assert meta["sampler"]["temperature"] == pytest.approx(0.2)

        # The panel moves on; an old token is clicked.
        w.sampling_panel.set_settings(PANEL_NOW)
        cut = [r.step for r in steps
               if stage_changed(feeding_stage(r, "top_p"), r.stage("top_p"))]  # type: ignore[arg-type]
        assert cut, "top-p 0.95 cut nothing in this reply: the test needs a step it cut"
        step = cut[0]
        w.chat_view.sig_step_clicked.emit(reply_id, step)
        dock = w.chart_dock
        assert dock.selected_step == step
        header = dock.sampled_label.text()
        assert header == f"Sampled with T 0.20 · top-k 40 · top-p 0.95 · min-p 0.05 · seed {seed}"
        assert "1.50" not in header
        assert "0.50" not in header
        assert dock.chart.top_p_line.isVisible()
        assert dock.chart.top_p_line.value() == pytest.approx(0.95)  # not the panel's 0.5
        assert dock.inspector.spins["temperature"].value() == pytest.approx(0.2)
        assert dock.inspector.spins["top_p"].value() == pytest.approx(0.95)
        assert dock.inspector.current_settings().seed == seed

        # Replaying with the stored settings and seed reproduces the reply, token for token.
        gen = dock.generation
        assert gen is not None
        assert gen.prompt_tokens
        again: list[StepRecord] = []
        w.engine.sig_step_generated.connect(lambda _rid, rec: again.append(rec))
        stored = SamplerSettings.from_json(meta["sampler"])
        with qtbot.waitSignal(w.engine.sig_generation_finished, timeout=120_000):
            w.engine.generate((), stored, prompt_tokens=gen.prompt_tokens)
        assert [r.token_id for r in again] == [r.token_id for r in steps]
    finally:
        w.close()


# --- the wiring, with the fake engine ---


def test_tokens_are_clickable_without_the_toggle_and_hover_shows_the_candidates(
        qtbot: Any, fake: tuple[MainWindow, FakeEngine]) -> None:
    w, _engine = fake
    send(qtbot, w, "Where is Paris?")
    wait_idle(qtbot, w)
    reply = w.chat_view.messages[-1]
    assert not reply.tokens_button.isChecked()
    browser = prose_of(reply)
    assert browser.document().toPlainText() == "Paris is the capital of France."
    click_text(qtbot, browser, len("Paris is the ca"))  # inside " capital", step 3
    dock = w.chart_dock
    assert dock.selected_step == 3
    assert dock.shown is not None
    assert dock.shown.text == " capital"
    assert dock.generation is reply.generation
    hover_text(browser, len("Paris i"))
    qtbot.waitUntil(QToolTip.isVisible, timeout=2000)
    assert QToolTip.text().startswith("step 1: ' is'")
    QToolTip.hideText()

    # The toggle only shades the tokens, and stays on for the next reply.
    reply.tokens_button.click()
    assert isinstance(reply.body, TokenView)
    send(qtbot, w, "And Rome?")
    wait_idle(qtbot, w)
    newest = w.chat_view.messages[-1]
    assert newest.tokens_button.isChecked()
    assert isinstance(newest.body, TokenView)
    assert isinstance(w.chat_view.messages[1].body, TokenView)


def test_a_stored_reply_clicked_after_a_restart_shows_its_own_settings(
        qtbot: Any, home: Path, gemma_models_dir: Path) -> None:
    w, engine = open_fake(qtbot, gemma_models_dir)
    w.sampling_panel.set_settings(SAMPLED.replace(seed=4242))
    send(qtbot, w, "Where is Paris?")
    wait_idle(qtbot, w)
    first_header = w.chart_dock.sampled_label.text()
    assert first_header == ("Sampled with T 0.20 · top-k 40 · top-p 0.95 · min-p 0.05 · "
                            "seed 4242")
    w.close()
    engine.shutdown()

    w, engine = open_fake(qtbot, gemma_models_dir, reply="Other words.")
    try:
        w.sampling_panel.set_settings(PANEL_NOW)
        w.conversations.list.setCurrentRow(0)
        qtbot.waitUntil(lambda: len(w.chat_view.messages) == 2, timeout=10_000)
        # The chart follows the conversation shown: its reply, as it was sampled.
        qtbot.waitUntil(lambda: w.chart_dock.generation is not None, timeout=10_000)
        assert w.chart_dock.sampled_label.text() == first_header
        reply = w.chat_view.messages[-1]
        click_text(qtbot, prose_of(reply), len("Paris is the ca"))
        qtbot.waitUntil(lambda: w.chart_dock.selected_step == 3, timeout=5000)
        assert w.chart_dock.sampled_label.text() == first_header
        assert w.chart_dock.inspector.spins["top_p"].value() == pytest.approx(0.95)
    finally:
        w.close()
        engine.shutdown()


def test_a_panel_change_mid_reply_is_not_saved_as_what_the_reply_used(
        qtbot: Any, fake: tuple[MainWindow, FakeEngine]) -> None:
    w, engine = fake
    engine.reply = " ".join(f"w{i}" for i in range(60))
    engine.interval_ms = 5
    w.sampling_panel.set_settings(SAMPLED)
    send(qtbot, w, "Go on")
    qtbot.waitUntil(lambda: len(w.chat.steps) >= 3, timeout=5000)
    w.sampling_panel.set_settings(PANEL_NOW)  # while the reply streams
    wait_idle(qtbot, w)
    [(_id, meta, steps)] = stored_replies()
    sent = engine.generated[-1][1]
    assert meta["sampler"]["temperature"] == pytest.approx(0.2)
    assert meta["sampler"]["top_p"] == pytest.approx(0.95)
    assert meta["seed"] == sent.seed != RANDOM_SEED
    assert len(steps) == 60
    assert w.chart_dock.sampled_label.text() == f"Sampled with {sampled_with(sent)}"


def test_the_chart_follows_the_branch_and_conversation_and_clears_when_deleted(
        qtbot: Any, fake: tuple[MainWindow, FakeEngine]) -> None:
    w, engine = fake
    dock = w.chart_dock

    def last_text() -> str:
        return dock.latest.text if dock.latest is not None else ""

    send(qtbot, w, "First")
    wait_idle(qtbot, w)
    assert last_text() == " France."
    engine.reply = "Lyon, say."
    w.chat.regenerate(w.chat_view.messages[-1].item.id)  # a second version of the reply
    wait_idle(qtbot, w)
    second = w.chat_view.messages[-1]
    assert second.item.sibling_count == 2
    assert last_text() == " say."
    second.prev_button.click()  # back to version 1: the chart shows its steps again
    qtbot.waitUntil(lambda: last_text() == " France.", timeout=5000)

    w.new_chat()
    assert dock.latest is None  # a new conversation: nothing to show yet
    engine.reply = "Ciao."
    send(qtbot, w, "Second")
    wait_idle(qtbot, w)
    assert last_text() == "Ciao."
    qtbot.waitUntil(lambda: w.conversations.titles() == ["Second", "First"], timeout=5000)
    w.conversations.list.setCurrentRow(1)  # back to the first conversation
    qtbot.waitUntil(lambda: last_text() == " France.", timeout=5000)

    conversation_id = w.chat.conversation_id
    assert conversation_id is not None
    w.conversations.delete(conversation_id)
    qtbot.waitUntil(lambda: dock.latest is None, timeout=5000)
    assert dock.timeline.count == 0


def test_ctrl_enter_in_completion_continues_the_text_not_the_chat_draft(
        qtbot: Any, fake: tuple[MainWindow, FakeEngine]) -> None:
    w, engine = fake
    w.chat_view.input.setPlainText("a chat draft, not to be sent")
    w.tabs.setCurrentWidget(w.completion_view)
    editor = w.completion_view.editor
    editor.setFocus()
    editor.setPlainText("Once upon a time")
    qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(engine.generated), timeout=5000)
    qtbot.waitUntil(lambda: not w.completion_view.busy, timeout=10_000)
    [(prompt, settings, _kw)] = engine.generated
    assert "".join(t for t, _ in prompt) == "Once upon a time"
    assert settings.seed != RANDOM_SEED
    assert editor.toPlainText().startswith("Once upon a timeParis is")
    assert w.chat_view.input.toPlainText() == "a chat draft, not to be sent"
    assert w.chat_view.messages == []
    assert w.chart_dock.generation is not None
    assert w.chart_dock.generation.kind == "completion"


def test_steps_reach_every_view_in_batches_from_one_timer_that_sleeps_when_idle(
        qtbot: Any, fake: tuple[MainWindow, FakeEngine]) -> None:
    w, engine = fake
    tracker = w.chat.tracker
    engine.reply = " ".join(f"w{i}" for i in range(400))
    engine.interval_ms = 1
    batches: list[tuple[StepRecord, ...]] = []
    tracker.sig_steps_added.connect(lambda _gen, batch: batches.append(batch))
    send(qtbot, w, "Go on")
    wait_idle(qtbot, w)
    steps = [r.step for batch in batches for r in batch]
    assert steps == list(range(400))  # every step once, in order
    assert len(batches) < 400 / 2  # joined: the transcript, chart and status bar get batches
    assert w.chat_view.messages[-1].text() == engine.reply
    assert w.chart_dock.latest is not None
    assert w.chart_dock.latest.step == 399
    assert w.chart_dock.paint_count <= len(batches) + 2
    assert not tracker.ticking

    # A slow model: between its tokens, nothing is left to draw and the timer sleeps.
    engine.reply = "one two three"
    engine.interval_ms = 400
    w.new_chat()  # the long reply fills the fake's context
    send(qtbot, w, "Slowly")
    qtbot.waitUntil(lambda: len(w.chat.steps) == 1, timeout=5000)
    qtbot.waitUntil(lambda: not tracker.ticking, timeout=1000)
    assert w.chat.busy
    wait_idle(qtbot, w)
    assert w.chat_view.messages[-1].text() == "one two three"
