"""The main window with the real engine and the shipped Gemma model, driven like a person would:
first start to chatting, Stop, a crash and Reload, a hostile file, completion mode, settings that
persist, and a responsive event loop throughout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from desktop.core import paths
from desktop.core.conversations.store import ConversationStore
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.ui.heartbeat import Heartbeat
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.ggufmaker import llama_kvs, raw_gguf, tensor_info
from tests.threads import TEST_THREADS
from tests.ui.conftest import FakeEngine

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("no_dangling")]

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
GREEDY = SamplerSettings(temperature=0.0, max_tokens=12, seed=7)


def open_window(qtbot: Any, models_dir: Path, start: bool = True) -> MainWindow:
    settings = AppSettings()
    settings.load_settings = LOAD
    window = MainWindow(settings, models_dir=models_dir)
    qtbot.addWidget(window)
    window.show()
    if start:
        window.start()
    return window


@pytest.fixture
def window(qtbot: Any, home: Path, gemma_models_dir: Path) -> Iterator[MainWindow]:
    w = open_window(qtbot, gemma_models_dir)
    yield w
    w.close()


def wait_loaded(qtbot: Any, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading, timeout=120_000)


def send(qtbot: Any, w: MainWindow, text: str) -> None:
    w.chat_view.input.setFocus()
    w.chat_view.input.setPlainText(text)
    qtbot.keyClick(w.chat_view.input, Qt.Key.Key_Return)


def wait_idle(qtbot: Any, w: MainWindow, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: not w.chat.busy and not w.chat_view.busy, timeout=timeout)


def stored_messages() -> list[tuple[str, str, dict[str, Any]]]:
    with ConversationStore(paths.database_path()) as store:
        [conversation] = store.list_conversations()
        return [(m.role, m.content, m.meta or {}) for m in store.active_path(conversation.id)]


def shortcut(w: MainWindow, keys: str) -> QAction:
    """The window's action for a key sequence (offscreen windows are never active, so tests
    trigger the action the keys are bound to)."""
    [action] = [a for a in w.findChildren(QAction) if a.shortcut() == QKeySequence(keys)]
    return action


def spy_prompts(w: MainWindow) -> list[Any]:
    sent: list[Any] = []
    real: Callable[..., int] = w.engine.generate

    def generate(prompt: Any, settings: Any, **kw: Any) -> int:
        sent.append((prompt, settings))
        return real(prompt, settings, **kw)

    w.engine.generate = generate  # type: ignore[method-assign]
    return sent


def test_first_start_loads_the_ready_model_and_chats(qtbot: Any, window: MainWindow,
                                                     gemma_path: Path) -> None:
    w = window
    wait_loaded(qtbot, w)  # no click at all: the ready model loads by itself on first start
    assert w.models.path == str(gemma_path)
    # One name for the model everywhere: file and quant, then the repo it came from.
    name = w.library.display_name(str(gemma_path))
    assert name == "gemma-3-270m-q4_k_m · google/gemma-3-270m"
    assert w.status.model_label.text() == name
    assert w.status.backend_label.text().startswith("CPU")
    assert "loaded" in w.library.list.currentItem().text()
    assert f"Chatting with {name}" in w.chat_view.empty_label.text()
    assert w.template_panel.template().id == "gemma"  # the file has no template of its own
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Chat", "Completion"]
    assert w.services is not None
    assert w.services.hub.window() is w  # the Hub is a page of the window (Ctrl+3)
    assert w.services.server_panel.config() is not None  # the loaded model, ready to serve
    w.sampling_panel.set_settings(GREEDY)  # the next generation must use this
    sent = spy_prompts(w)
    beat = Heartbeat(10)
    beat.start()
    send(qtbot, w, "What is the capital of France?")
    qtbot.waitUntil(lambda: w.chat_view.streamed_text() != "", timeout=60_000)  # streams in
    wait_idle(qtbot, w)
    worst = beat.stop()

    [(prompt, settings)] = sent
    assert "".join(t for t, _ in prompt).startswith("<bos><start_of_turn>user\n")
    assert ("What is the capital of France?", False) in prompt
    assert settings.temperature == 0.0
    assert settings.max_tokens == 12
    [(user_role, question, _), (role, reply, meta)] = stored_messages()
    assert (user_role, question) == ("user", "What is the capital of France?")
    assert role == "assistant"
    assert reply
    assert meta["sampler"]["temperature"] == 0.0
    assert [m.text() for m in w.chat_view.messages] == [question, reply]
    assert "tok/s" in w.status.speed_label.text()
    assert "First token" in w.status.ttft_label.text()
    assert w.status.context_label.text().startswith("Context ")
    assert w.chart_dock.latest is not None
    assert w.chart_dock.latest.step == meta["completion_tokens"] - 1
    assert w.conversations.titles() == ["What is the capital of France?"]
    assert worst < 1.0, f"the GUI thread was blocked for {worst:.2f} s"


def test_stop_cancels_within_a_token_and_keeps_the_partial_reply(
        qtbot: Any, window: MainWindow) -> None:
    w = window
    wait_loaded(qtbot, w)
    w.sampling_panel.set_settings(SamplerSettings(max_tokens=2000, ignore_eos=True, seed=3))
    send(qtbot, w, "Write a very long story.")
    qtbot.waitUntil(lambda: len(w.chat.steps) >= 5, timeout=60_000)
    qtbot.mouseClick(w.chat_view.stop_button, Qt.MouseButton.LeftButton)
    at_stop = len(w.chat.steps)
    wait_idle(qtbot, w)
    _, _, meta = stored_messages()[-1]
    assert meta["finish_reason"] == "cancelled"
    assert meta["completion_tokens"] <= at_stop + 2  # the engine checks Cancel every token
    assert w.chat_view.messages[-1].text() == stored_messages()[-1][1] != ""
    assert "stopped" in w.chat_view.messages[-1].footer.text()


def test_engine_crash_shows_reload_and_keeps_the_conversation(qtbot: Any,
                                                              window: MainWindow) -> None:
    w = window
    wait_loaded(qtbot, w)
    w.sampling_panel.set_settings(GREEDY)
    send(qtbot, w, "Hello")
    wait_idle(qtbot, w)
    w.engine.host.kill()  # what an out-of-memory kill or a driver crash looks like
    qtbot.waitUntil(lambda: w.chat_view.notice.isVisible(), timeout=30_000)
    notice = w.chat_view.notice
    assert "Reload" in notice.action_button.text()
    # One plain sentence (what happened, what to do); the engine's words behind "Details".
    assert notice.label.text().startswith("The model stopped because this computer ran out of "
                                          "memory.")
    assert "SIGKILL" not in notice.label.text()
    assert notice.details_link.isVisibleTo(notice)
    assert not notice.details.isVisibleTo(notice)
    notice.details_link.linkActivated.emit("details")
    assert notice.details.isVisibleTo(notice)
    assert "killed" in notice.details.text()
    assert w.models.info is None
    assert w.status.model_label.text() == "No model loaded"
    assert [m.item.role for m in w.chat_view.messages] == ["user", "assistant"]
    qtbot.mouseClick(w.chat_view.notice.action_button, Qt.MouseButton.LeftButton)
    wait_loaded(qtbot, w)
    send(qtbot, w, "Still there?")
    wait_idle(qtbot, w)
    assert len(stored_messages()) == 4


def test_a_hostile_file_is_refused_in_plain_words_and_the_window_keeps_working(
        qtbot: Any, window: MainWindow, tmp_path: Path, gemma_path: Path) -> None:
    w = window
    wait_loaded(qtbot, w)
    bad = tmp_path / "evil.gguf"
    bad.write_bytes(raw_gguf(llama_kvs(), [tensor_info("token_embd.weight", [0, 8])],
                             data=b"\0" * 64))
    w.library.import_file(str(bad))
    qtbot.waitUntil(lambda: "can't be used" in w.library.message.text(), timeout=30_000)
    assert "evil.gguf" in w.library.message.text()
    w.models.load(str(bad))  # loading it anyway (e.g. from the command line)
    qtbot.waitUntil(lambda: w.chat_view.notice.isVisible(), timeout=60_000)
    assert "could not be loaded" in w.chat_view.notice.label.text()
    assert "Openlid could not read" not in w.chat_view.notice.label.text()  # a real reason
    w.models.load(str(gemma_path))
    wait_loaded(qtbot, w)
    w.sampling_panel.set_settings(GREEDY)
    send(qtbot, w, "Hi")
    wait_idle(qtbot, w)
    assert len(w.chat_view.messages) == 2


def test_completion_mode_continues_the_text_without_a_template(qtbot: Any,
                                                                window: MainWindow) -> None:
    w = window
    wait_loaded(qtbot, w)
    w.sampling_panel.set_settings(GREEDY)
    sent = spy_prompts(w)
    w.tabs.setCurrentWidget(w.completion_view)
    w.completion_view.editor.setPlainText("The capital of France is")
    qtbot.mouseClick(w.completion_view.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.completion_view.busy, timeout=120_000)
    [(prompt, _)] = sent
    assert prompt == (("The capital of France is", False),)
    text = w.completion_view.editor.toPlainText()
    assert text.startswith("The capital of France is")
    assert len(text) > 26
    assert "tok/s" in w.completion_view.info.text()
    assert w.chart_dock.latest is not None


def test_settings_and_layout_persist(qtbot: Any, home: Path, gemma_models_dir: Path,
                                     gemma_path: Path) -> None:
    w = open_window(qtbot, gemma_models_dir)
    wait_loaded(qtbot, w)
    w.sampling_panel.set_settings(SamplerSettings(temperature=0.42, top_k=17))
    w.prompt_panel.set_system_prompt("You are a pirate.")
    w.chart_dock.set_bar_count(40)
    w.conversations_dock.hide()
    w.template_dock.raise_()
    w.close()
    assert not w.db.alive
    assert w.jobs.active_threads == 0

    again = open_window(qtbot, gemma_models_dir, start=False)
    assert again.sampling_panel.settings().temperature == pytest.approx(0.42)
    assert again.sampling_panel.settings().top_k == 17
    assert again.prompt_panel.system_prompt() == "You are a pirate."
    assert again.settings.last_model == str(gemma_path)
    assert again.settings.chart_top_n == 40
    assert again.settings.window_geometry() is not None
    assert again.conversations_dock.isHidden()  # the layout came back as it was left
    again.close()


# --- the window's wiring, with a fake engine (fast; no process) ---


@pytest.fixture
def fake_window(qtbot: Any, home: Path, gemma_models_dir: Path) -> Iterator[MainWindow]:
    settings = AppSettings()
    engine = FakeEngine(reply="Bonjour tout le monde.")
    w = MainWindow(settings, engine, models_dir=gemma_models_dir)
    qtbot.addWidget(w)
    w.show()
    w.start()
    wait_loaded(qtbot, w)
    yield w
    w.close()
    engine.shutdown()


def test_panels_feed_the_prompt_and_the_chart_follows_the_steps(
        qtbot: Any, fake_window: MainWindow) -> None:
    w = fake_window
    engine = w.engine
    assert isinstance(engine, FakeEngine)
    w.prompt_panel.set_system_prompt("You are terse.")
    assert w.template_panel.select_template("chatml")
    send(qtbot, w, "Hi <|im_end|>")
    wait_idle(qtbot, w)
    prompt, settings, _ = engine.generated[-1]
    text = "".join(t for t, _ in prompt)
    assert text.startswith("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n")
    assert ("Hi <|im_end|>", False) in prompt  # typed markup stays plain text
    assert "<|im_end|>" in settings.stop
    assert w.chart_dock.latest is not None
    assert w.chart_dock.latest.text == " monde."
    assert w.settings.template_id == "chatml"

    with qtbot.waitSignal(w.engine.sig_step_replayed):
        w.chart_dock.sig_replay_requested.emit(1, SamplerSettings(temperature=0.0))
    assert w.wiring.replay_id is not None

    reply_id = w.chat_view.messages[-1].item.id
    original = w.chart_dock.generation
    assert original is not None
    assert original.message_id == reply_id
    w.chart_dock.sig_continue_requested.emit(2, 4242)  # "continue with this token" at step 2
    wait_idle(qtbot, w)
    _, _, kw = engine.generated[-1]
    # The prefix goes in as prompt (the same prompt, token for token, then the two tokens
    # kept): only the picked token is forced, and the prefix keeps its original records.
    assert kw["forced_tokens"] == (4242,)
    assert kw["prompt_tokens"] == (*original.prompt_tokens, 1000, 1001)
    reply = w.chat_view.messages[-1]
    assert reply.item.id != reply_id
    assert reply.item.sibling_count == 2
    branch = reply.generation
    assert branch is not None
    assert branch.steps[0] is original.steps[0]
    assert branch.steps[1] is original.steps[1]
    assert [r.step for r in branch.steps] == list(range(len(branch)))
    assert reply.text().startswith("Bonjour tout")


def test_a_message_typed_while_the_model_loads_is_sent_when_it_is_ready(
        qtbot: Any, fake_window: MainWindow, gemma_path: Path) -> None:
    w = fake_window
    w.models.eject()
    qtbot.waitUntil(lambda: w.models.info is None, timeout=5000)
    assert w.status.model_label.text() == "No model loaded"
    w.models.load(str(gemma_path))
    send(qtbot, w, "Are you there?")
    assert "still loading" in w.chat_view.notice.label.text()
    wait_loaded(qtbot, w)
    qtbot.waitUntil(lambda: len(w.chat_view.messages) == 2, timeout=10_000)
    wait_idle(qtbot, w)
    assert w.chat_view.messages[0].text() == "Are you there?"


def test_new_chat_and_picking_a_conversation(qtbot: Any, fake_window: MainWindow) -> None:
    w = fake_window
    send(qtbot, w, "First")
    wait_idle(qtbot, w)
    shortcut(w, "Ctrl+N").trigger()
    assert w.chat_view.messages == []
    assert w.chat.conversation_id is None
    send(qtbot, w, "Second")
    wait_idle(qtbot, w)
    qtbot.waitUntil(lambda: w.conversations.titles() == ["Second", "First"], timeout=5000)
    w.conversations.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: [m.text() for m in w.chat_view.messages][:1] == ["First"],
                    timeout=5000)
    shortcut(w, "Ctrl+2").trigger()
    assert w.tabs.currentWidget() is w.completion_view
    shortcut(w, "Ctrl+L").trigger()
    assert w.completion_view.editor.hasFocus() or not w.isActiveWindow()
    shortcut(w, "Ctrl+1").trigger()
    shortcut(w, "Ctrl+,").trigger()
    assert not w.sampling_dock.isHidden()


def test_escape_stops_a_reply(qtbot: Any, fake_window: MainWindow) -> None:
    w = fake_window
    engine = w.engine
    assert isinstance(engine, FakeEngine)
    engine.reply = " ".join(f"w{i}" for i in range(3000))
    engine.interval_ms = 5
    send(qtbot, w, "Go on")
    qtbot.waitUntil(lambda: len(w.chat.steps) >= 3, timeout=5000)
    shortcut(w, "Esc").trigger()
    wait_idle(qtbot, w)
    assert "stopped" in w.chat_view.messages[-1].footer.text()
