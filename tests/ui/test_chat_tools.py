"""The chat's tool loop, driven offscreen through the real ChatView, ChatController, store and a
real stdio MCP server written with the `mcp` SDK (tests/unit/mcp_add_server.py): the tools
offered in the prompt, the reply's call parsed, shown and asked about, its result stored as a
role "tool" message and sent back, and the loop going on until the model answers without a
call — capped, denied, and end to end with the real Gemma held to a call by a grammar."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.conversations.store import ConversationStore, Message
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.structured_output import grammar_effect
from desktop.core.templates.prompt import presets
from desktop.core.tools.calls import ToolCall
from desktop.core.tools.mcp_config import mcp_config_path
from desktop.ui.chart.chart_dock import ChartDock
from desktop.ui.chat.controller import ChatController
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.tool_call_widget import ToolCallWidget
from desktop.ui.chat.tool_loop import DENIED, MAX_ROUNDS, ToolLoop
from desktop.ui.chat.turns import PromptContext
from desktop.ui.chat.view import ChatView
from desktop.ui.engine_service import EngineService
from desktop.ui.tools.mcp_service import McpService
from tests.ui.conftest import FakeEngine

pytest.importorskip("mcp")
pytestmark = [
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
    pytest.mark.usefixtures("no_dangling"),
]

SERVER = str(Path(__file__).parents[1] / "unit" / "mcp_add_server.py")
CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 20, "b": 22}}\n</tool_call>'
ANSWER = "The sum is 42."


class ScriptedEngine(FakeEngine):
    """The FakeEngine answering each request with the next reply of a script."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__()
        self.replies = replies

    def generate(self, prompt: Any, settings: SamplerSettings, **kw: Any) -> int:
        self.reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return super().generate(prompt, settings, **kw)


@pytest.fixture
def mcp(qtbot: Any, home: Path) -> Iterator[McpService]:
    mcp_config_path().write_text(
        json.dumps({"mcpServers": {"adder": {"command": sys.executable, "args": [SERVER]}}}),
        encoding="utf-8",
    )
    service = McpService(start_timeout=60)
    service.reload()
    service.connect_server("adder")
    qtbot.waitUntil(lambda: service.state("adder").status == "connected", timeout=60_000)
    yield service
    service.shutdown()


class Chat:
    def __init__(
        self, qtbot: Any, engine: EngineService, mcp: McpService, db_path: Path, ctx: PromptContext
    ) -> None:
        self.qtbot, self.engine = qtbot, engine
        self.db = StoreService(db_path)
        self.view = ChatView()
        qtbot.addWidget(self.view)
        self.view.resize(800, 600)
        self.controller = ChatController(engine, self.db, self.view, lambda: ctx)
        self.loop = ToolLoop(self.controller, mcp)
        self.asked: list[tuple[str, ToolCall]] = []
        self.allow = True

        def ask(server: str, call: ToolCall) -> bool:  # the permission dialog, answered
            self.asked.append((server, call))
            return self.allow

        self.loop.ask = ask
        self.ended: list[str] = []
        self.loop.sig_loop_ended.connect(self.ended.append)
        self.failures: list[str] = []
        self.controller.sig_turn_failed.connect(self.failures.append)

    def send(self, text: str, timeout: int = 60_000) -> None:
        self.view.input.setPlainText(text)
        self.view.submit()
        self.qtbot.waitUntil(lambda: bool(self.ended or self.failures), timeout=timeout)
        assert self.failures == []
        self.qtbot.waitUntil(lambda: not self.controller.busy and not self.view.busy)

    def path(self) -> list[Message]:
        cid = self.controller.conversation_id
        assert cid is not None
        with ConversationStore(self.db.path) as store:
            return store.active_path(cid)

    def close(self) -> None:
        self.db.stop()


def gemma_ctx(sampler: SamplerSettings, path: str = "") -> PromptContext:
    return PromptContext(
        system_prompt="You can use tools.",
        instructions="",
        placement="system",
        template=presets()["gemma"],
        sampler=sampler,
        bos="<bos>",
        eos="<eos>",
        model_name="Gemma",
        model_path=path,
    )


@pytest.fixture
def make_chat(qtbot: Any, mcp: McpService, tmp_path: Path) -> Iterator[Any]:
    chats: list[Chat] = []

    def make(replies: list[str]) -> Chat:
        engine = ScriptedEngine(replies)
        chat = Chat(
            qtbot,
            engine,
            mcp,
            tmp_path / "openlid.sqlite3",
            gemma_ctx(SamplerSettings(max_tokens=64)),
        )
        chats.append(chat)
        return chat

    yield make
    for chat in chats:
        chat.close()


def test_a_call_is_asked_run_stored_as_a_tool_message_and_the_model_goes_on(make_chat: Any) -> None:
    chat = make_chat([CALL, ANSWER])
    chat.send("What is 20 + 22?")
    assert chat.ended == ["answered"]
    assert [(server, call.name, call.argument_values()) for server, call in chat.asked] == [
        ("adder", "add", {"a": 20, "b": 22})
    ]
    path = chat.path()
    assert [m.role for m in path] == ["user", "assistant", "tool", "assistant"]
    reply, result, answer = path[1:]
    assert reply.content == CALL  # stored whole: its steps spell it
    assert reply.meta is not None
    assert reply.meta["tool_content"] == ""
    [stored_call] = reply.meta["tool_calls"]
    assert stored_call["function"]["name"] == "add"
    assert result.content == "42"
    assert result.meta is not None
    assert (result.meta["tool_call_id"], result.meta["is_error"]) == (stored_call["id"], False)
    assert answer.content == ANSWER
    # What the model was sent: the tool described (Gemma's template has no place for tools),
    # then, in the second round, its call and the result.
    first, second = ("".join(t for t, _ in prompt) for prompt, _s, _kw in chat.engine.generated)
    assert '"name": "add"' in first
    assert "<tools>" in first
    assert "<tool_call>" in second
    assert "<tool_response>\n42\n</tool_response>" in second
    # The transcript: the call under the reply, collapsed, its arguments a click away; the
    # result as a tool message.
    roles = [w.item.role for w in chat.view.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    [widget] = chat.view.messages[1].findChildren(ToolCallWidget)
    assert widget.toggle.text() == "Called add(a, b)"
    assert not widget.expanded
    assert widget.arguments.isHidden()
    widget.toggle.click()
    assert widget.expanded
    assert not widget.arguments.isHidden()
    assert json.loads(widget.arguments.toPlainText()) == {"a": 20, "b": 22}
    assert chat.view.messages[2].item.label == "Tool result · add"
    assert chat.view.messages[2].objectName() == "toolMessage"


def test_a_denied_call_is_answered_in_words_and_the_loop_still_goes_on(make_chat: Any) -> None:
    chat = make_chat([CALL, ANSWER])
    chat.allow = False
    chat.send("What is 20 + 22?")
    path = chat.path()
    assert [m.role for m in path] == ["user", "assistant", "tool", "assistant"]
    assert path[2].content == DENIED
    assert path[2].meta is not None
    assert path[2].meta["is_error"] is True


def test_the_loop_stops_after_its_rounds_and_says_so(make_chat: Any) -> None:
    chat = make_chat([CALL])  # the model calls again and again
    chat.send("What is 20 + 22?", timeout=120_000)
    assert chat.ended == ["limit"]
    roles = [m.role for m in chat.path()]
    assert roles.count("tool") == MAX_ROUNDS
    assert roles[-1] == "assistant"  # the last call is shown, not run
    assert len(chat.engine.generated) == MAX_ROUNDS + 1
    assert f"after {MAX_ROUNDS} rounds" in chat.view.notice.label.text()


def test_without_tools_nothing_is_offered_or_parsed(make_chat: Any) -> None:
    chat = make_chat([CALL])
    chat.loop.enabled = False
    chat.view.input.setPlainText("What is 20 + 22?")
    chat.view.submit()
    chat.qtbot.waitUntil(lambda: chat.controller.last_reply_id is not None, timeout=30_000)
    chat.qtbot.waitUntil(lambda: not chat.controller.busy and not chat.view.busy)
    assert [m.role for m in chat.path()] == ["user", "assistant"]
    assert chat.asked == []
    assert "<tools>" not in "".join(t for t, _ in chat.engine.generated[0][0])


@pytest.mark.engine
def test_gemma_held_to_a_call_by_a_grammar_runs_the_tool_end_to_end(
    qtbot: Any, mcp: McpService, gemma_path: Path, tmp_path: Path
) -> None:
    """One round: the base model, held by the grammar, calls `add` (the one tool offered: a small
    schema, integers only), the tool runs, and the model's next reply (a few tokens) ends the
    loop. The forced call's steps carry the grammar stage, and the chart offers it."""
    engine = EngineService()
    with qtbot.waitSignal(engine.sig_model_loaded, timeout=120_000):
        # One thread: on a loaded 2-core machine llama.cpp's two threads wait on each other at
        # every barrier (0.4-2 s a token measured, against 55 ms with one).
        engine.load(gemma_path, LoadSettings(n_ctx=1024, n_threads=1))
    chat: Chat | None = None

    def context() -> PromptContext:
        # The call ends where the grammar does (34 tokens with one-digit numbers; 72 leave room
        # for two 16-digit ones); the answer after it only has to start.
        tokens = 72 if chat is None or chat.loop.rounds == 0 else 4
        return gemma_ctx(
            SamplerSettings(temperature=0.8, max_tokens=tokens, seed=3), str(gemma_path)
        )

    chat = Chat(qtbot, engine, mcp, tmp_path / "openlid.sqlite3", context())
    chat.controller.context = context
    chat.loop.tools = lambda: tuple(t for t in mcp.tools() if t.spec.name == "add")  # type: ignore[method-assign]
    try:
        chat.loop.required = True
        chat.loop.max_rounds = 1  # one round of calls, then the model's next reply ends it
        chat.send("What is 2 + 3?", timeout=300_000)
        path = chat.path()
        assert [m.role for m in path] == ["user", "assistant", "tool", "assistant"]
        assert path[1].meta is not None
        [call] = path[1].meta["tool_calls"]
        assert call["function"]["name"] == "add"
        arguments = json.loads(call["function"]["arguments"])
        assert set(arguments) == {"a", "b"}
        assert [(server, c.name) for server, c in chat.asked] == [("adder", "add")]
        assert path[2].meta is not None
        assert (path[2].meta["name"], path[2].meta["is_error"]) == ("add", False)
        assert path[2].content == str(arguments["a"] + arguments["b"])  # the server's answer
        assert path[3].meta is not None
        assert path[3].meta["completion_tokens"] <= 4
        assert chat.ended in (["answered"], ["limit"])  # the short reply may start a call
        first = chat.controller._generations[path[1].id]
        settings = first.settings_at(0)
        assert settings is not None
        assert settings.structured_output == "gbnf"
        later = chat.controller._generations[path[3].id].settings_at(0)
        assert later is not None
        assert later.structured_output == "none"  # later rounds are free
        # The grammar stage in every step of the forced call, its effect in numbers ...
        assert first.steps
        for record in first.steps:
            assert "grammar" in [stage.name for stage in record.stages]
            assert grammar_effect(record) is not None
        # ... the grammar overrode the base model somewhere (it would not write a call) ...
        assert any(e is not None and e.overrode for e in map(grammar_effect, first.steps))
        # ... and the chart offers the stage for the call's steps.
        dock = ChartDock()
        qtbot.addWidget(dock)
        dock.show()
        qtbot.waitExposed(dock)
        dock.show_generation(first)
        qtbot.waitUntil(lambda: dock.stage_box.count() > 0, timeout=5000)
        offered = [dock.stage_box.itemData(i) for i in range(dock.stage_box.count())]
        assert "grammar" in offered
        dock.clear()
    finally:
        chat.close()
        engine.shutdown()
