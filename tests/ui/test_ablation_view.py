""""Without this part" in the X-ray window over a real chat: Gemma answers through the real
engine, the reply is stored in a real SQLite file, and the view re-scores it without a part."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.conversations import xray as X
from desktop.core.conversations.store import ConversationStore
from desktop.ui.xray.ablation_view import AblationView, drop_colour
from tests.ui.test_xray_view import RealChat

pytestmark = pytest.mark.usefixtures("no_dangling")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "xray_ablation.png"


@pytest.fixture
def chat(qtbot: Any, gemma_path: Path, tmp_path: Path) -> Iterator[RealChat]:
    real = RealChat(qtbot, gemma_path, tmp_path / "openlid.sqlite3")
    real.ctx = dataclasses.replace(
        real.ctx, system_prompt="The secret password is Tangerine.", instructions="")
    real.xray.set_engine(real.engine)
    yield real
    real.close()


def _choose(chat: RealChat, name: str) -> None:
    parts = chat.xray.parts
    item = next(parts.topLevelItem(i) for i in range(parts.topLevelItemCount())
                if parts.topLevelItem(i).text(0) == name)
    parts.setCurrentItem(item)


@pytest.mark.engine
def test_without_the_system_prompt_the_reply_is_coloured_by_its_drop(
        qtbot: Any, chat: RealChat) -> None:
    chat.send("What is the secret password?")
    view: AblationView = chat.xray.ablation
    assert not view.button.isEnabled()  # no part chosen yet
    _choose(chat, "Template markup")
    assert not view.button.isEnabled()  # markup is the prompt's shape, not a part to remove
    _choose(chat, "System prompt")
    assert view.button.isEnabled()
    assert view.button.text() == "Without the system prompt"
    view.button.click()
    assert not view.button.isEnabled()  # one at a time
    qtbot.waitUntil(lambda: view.result() is not None, timeout=120_000)
    result = view.result()
    reply = chat.replies()[-1]
    with ConversationStore(chat.db.path) as store:
        stored = tuple(s.token_id for s in store.load_steps(reply.id))
    assert result.full.token_ids == stored
    assert result.target.kind == X.SYSTEM
    assert view.status_text().startswith("Without the system prompt the same")
    assert "KV cache reused" in view.status_text()
    assert "temperature 1" in view.basis.text()
    assert view.button.isEnabled()
    # Every token is shown, coloured by its drop; hovering one gives its numbers.
    assert view.tokens.toPlainText() == "".join(t.piece or "∅" for t in result.tokens())
    worst = max(result.tokens(), key=lambda t: t.drop)
    index = view.token_at(view.tokens.starts[worst.index])
    assert index == worst.index
    assert "without the system prompt" in view.tooltip(index)
    assert f"{worst.prob_full:.2%}" in view.tooltip(index)
    cursor = view.tokens.textCursor()
    cursor.setPosition(view.tokens.starts[worst.index] + 1)
    assert cursor.charFormat().background().color() == drop_colour(worst.drop)
    assert view.token_at(10**6) == -1
    if "Tangerine" in reply.content:  # the 270M model repeated the fact: it came from there
        assert worst.drop > 1.0

    if os.environ.get("OPENLID_SCREENSHOTS") == "1":  # refresh docs/screenshots on request
        chat.xray.resize(1280, 720)
        chat.xray.show()
        qtbot.waitExposed(chat.xray)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert chat.xray.grab().save(str(SCREENSHOT))


@pytest.mark.engine
def test_a_reply_without_stored_tokens_or_by_another_model_says_so(
        qtbot: Any, chat: RealChat) -> None:
    chat.send("What is the secret password?")
    view = chat.xray.ablation
    reply = chat.replies()[-1]
    with ConversationStore(chat.db.path) as store:
        store.update_message(reply.id, meta={**reply.meta, "model_path": "/models/other.gguf"})
    _choose(chat, "System prompt")
    view.button.click()
    qtbot.waitUntil(lambda: "another model" in view.status_text(), timeout=10_000)
    assert view.result() is None
    assert view.button.isEnabled()
    with ConversationStore(chat.db.path) as store:
        store.save_steps(reply.id, [])
        store.update_message(reply.id, meta=reply.meta)
    view.button.click()
    qtbot.waitUntil(lambda: "not stored" in view.status_text(), timeout=10_000)
    assert view.result() is None
