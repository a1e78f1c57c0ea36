"""The X-ray window over a real chat: Gemma answers through the real engine, replies are stored
in a real SQLite file, and the view reads what each turn really sent."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor

from desktop.core.conversations import xray as X
from desktop.core.conversations.store import ConversationStore
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import presets
from desktop.ui.chat.controller import ChatController
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.turns import PromptContext
from desktop.ui.chat.view import ChatView
from desktop.ui.engine_service import EngineService
from desktop.ui.xray.view import XrayView, open_xray
from tests.threads import TEST_THREADS

pytestmark = pytest.mark.usefixtures("no_dangling")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "xray.png"


class RealChat:
    def __init__(self, qtbot: Any, gemma_path: Path, db_path: Path) -> None:
        self.qtbot = qtbot
        self.engine = EngineService()
        with qtbot.waitSignal(self.engine.sig_model_loaded, timeout=120_000):
            self.engine.load(gemma_path, LoadSettings(n_ctx=1024, n_threads=TEST_THREADS))
        self.db = StoreService(db_path)
        self.view = ChatView()
        qtbot.addWidget(self.view)
        self.ctx = PromptContext(
            system_prompt="You are a terse geography tutor.",
            instructions="Answer in one short sentence.", placement="system",
            template=presets()["gemma"],
            sampler=SamplerSettings(temperature=0.0, max_tokens=12, seed=7),
            bos="<bos>", eos="<eos>", model_name="Gemma 3 270M", model_path=str(gemma_path),
            n_ctx=1024, overflow_policy="rolling_window")
        self.controller = ChatController(self.engine, self.db, self.view, lambda: self.ctx)
        self.xray = XrayView(self.db, self.controller.xray_context)
        qtbot.addWidget(self.xray)
        self.controller.sig_conversation_changed.connect(self.xray.show_conversation)
        self.controller.sig_reply_stored.connect(self.xray.refresh)

    def send(self, text: str) -> None:
        with self.qtbot.waitSignal(self.controller.sig_reply_stored, timeout=120_000):
            self.view.input.setPlainText(text)
            self.view.submit()
        self.qtbot.waitUntil(lambda: not self.controller.busy and not self.view.busy)
        self.wait_xray(len(self.replies()))

    def wait_xray(self, n_turns: int) -> None:
        self.qtbot.waitUntil(lambda: self.xray.xray() is not None
                             and len(self.xray.xray().turns) == n_turns, timeout=10_000)

    def replies(self) -> list[Any]:
        cid = self.controller.conversation_id
        assert cid is not None
        with ConversationStore(self.db.path) as store:
            return [m for m in store.active_path(cid) if m.role == "assistant"]

    def close(self) -> None:
        self.db.stop()
        self.engine.shutdown()


@pytest.fixture
def real_chat(qtbot: Any, gemma_path: Path, tmp_path: Path) -> Iterator[RealChat]:
    chat = RealChat(qtbot, gemma_path, tmp_path / "openlid.sqlite3")
    yield chat
    chat.close()


@pytest.mark.engine
def test_each_turn_records_its_parts_reuse_and_the_view_shows_them(
        qtbot: Any, real_chat: RealChat) -> None:
    chat = real_chat
    chat.send("What is the capital of France?")
    chat.send("And of Italy?")
    chat.send("And of Spain?")
    replies = chat.replies()
    assert len(replies) == 3
    for reply in replies:
        record = reply.meta["xray"]
        parts = record["parts"]
        assert sum(p["t"] for p in parts) == record["prompt_tokens"] == reply.meta[
            "prompt_tokens"]
        assert record["cached_tokens"] == reply.meta["cached_tokens"]
        assert record["prompt_ms"] > 0
    # From turn 2 on, the previous prompt is reused from the KV cache, never recomputed.
    second, third = replies[1].meta["xray"], replies[2].meta["xray"]
    assert second["cached_tokens"] >= replies[0].meta["xray"]["prompt_tokens"] - 1
    assert third["cached_tokens"] >= second["prompt_tokens"] - 1

    xray = chat.xray.xray()
    assert xray is not None
    assert [t.turn for t in xray.turns] == [1, 2, 3]
    last = xray.turns[-1]
    shown = chat.xray.prompt.toPlainText()
    assert shown == "".join(p.text for p in last.parts)
    assert shown.startswith("<bos><start_of_turn>user\nYou are a terse geography tutor.")
    assert "And of Italy?" in shown
    assert shown.rstrip().endswith("<start_of_turn>model")
    rows = {chat.xray.parts.topLevelItem(i).text(0): chat.xray.parts.topLevelItem(i).text(1)
            for i in range(chat.xray.parts.topLevelItemCount())}
    assert {"System prompt", "Custom instructions", "Turn 1", "Turn 2",
            "New message (turn 3)", "Template markup", "Whole prompt"} <= set(rows)
    assert rows["Whole prompt"] == f"{last.prompt_tokens:,}"
    summary = chat.xray.summary.text()
    assert f"Reused from the KV cache: <b>{last.cached_tokens:,}</b>" in summary
    assert f"recomputed <b>{last.recomputed_tokens:,}</b>" in summary
    # Bars: three turns and the next one, under the context window.
    assert [b.label for b in chat.xray.plot.bars()] == ["1", "2", "3", "next"]

    # An older turn: the prompt it sent, not today's.
    chat.xray.select_turn(0)
    first = chat.xray.prompt.toPlainText()
    assert "And of Italy?" not in first
    assert "What is the capital of France?" in first

    # A stored reply from before the X-ray reads "not recorded".
    with ConversationStore(chat.db.path) as store:
        old = replies[0]
        meta = {k: v for k, v in old.meta.items() if k not in ("xray", "cached_tokens")}
        store.update_message(old.id, meta=meta)
    chat.xray.refresh()
    qtbot.waitUntil(lambda: not chat.xray.xray().turns[0].recorded, timeout=5000)
    chat.xray.select_turn(0)
    assert "not recorded" in chat.xray.summary.text()
    assert "not recorded" in chat.xray.prompt.placeholderText()
    assert chat.xray.plot.bars()[0].label == "1"
    assert not chat.xray.plot.bars()[0].recorded


@pytest.mark.engine
def test_the_turns_greyed_before_sending_are_the_ones_the_policy_drops(
        qtbot: Any, real_chat: RealChat) -> None:
    chat = real_chat
    chat.send("What is the capital of France?")
    chat.send("And of Italy?")
    draft = "And what is the capital of Spain, please?"
    chat.xray.set_draft(draft)
    full = chat.xray.next_prompt()
    assert full is not None
    assert full.dropped_turns == ()
    # Shrink the context until the policy must leave the first turn out, not more.
    for n_ctx in range(full.tokens + 12, 20, -4):
        chat.ctx = dataclasses.replace(chat.ctx, n_ctx=n_ctx)
        chat.xray.set_draft(draft)
        predicted = chat.xray.next_prompt()
        assert predicted is not None
        if predicted.dropped_turns and not predicted.refused:
            break
    assert predicted.dropped_turns == (1,)
    # Greyed before sending: the plot's next bar and turn 1's row.
    assert chat.xray.plot.bars()[-1].greyed > 0
    items = [chat.xray.parts.topLevelItem(i) for i in range(chat.xray.parts.topLevelItemCount())]
    turn_1 = next(i for i in items if i.text(0) == "Turn 1 — left out next")
    assert turn_1.foreground(0).color() == QColor(140, 140, 140)
    kept = next(i for i in items if i.text(0) == "New message (turn 2)")
    assert kept.foreground(0).color() != QColor(140, 140, 140)

    chat.send(draft)
    record = chat.replies()[-1].meta["xray"]
    assert tuple(record["dropped_turns"]) == predicted.dropped_turns
    sent_turns = {p.get("turn") for p in record["parts"] if p.get("turn")}
    assert sent_turns == {2, 3}
    assert sum(p["t"] for p in record["parts"]) == record["prompt_tokens"]
    shown = chat.xray.xray()
    assert shown is not None
    assert shown.turns[-1].dropped_turns == (1,)
    assert X.diff(shown.turns[-2], shown.turns[-1]).dropped_turns == (1,)
    assert "Left out by the overflow policy (rolling_window): turn(s) 1" in (
        chat.xray.summary.text())
    assert any(b.falls_out for b in chat.xray.plot.bars())

    if os.environ.get("OPENLID_SCREENSHOTS") == "1":  # refresh docs/screenshots on request
        window = open_xray(None, chat.db, chat.controller.xray_context)
        qtbot.addWidget(window)
        window.show_conversation(chat.controller.conversation_id)
        window.set_draft("And of Portugal?")
        qtbot.waitUntil(lambda: window.xray() is not None and len(window.xray().turns) == 3,
                        timeout=5000)
        window.show()
        qtbot.waitExposed(window)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert window.grab().save(str(SCREENSHOT))
