"""ToolLoop: the chat's tool calls — offered, parsed, allowed, run, answered, and the model goes on.

GUI thread only. With MCP tools connected (`ui.tools.mcp_service.McpService`) and "Use tools"
on, every chat turn offers them to the model through its own template (`PromptContext.tools`,
rendered by `core.tools.prompt`; the exact prompt shows them). When the reply is finished its
text is parsed for calls in the template's format (`core.tools.formats`), and the calls are stored
with the reply (`meta["tool_calls"]`, the text around them as `meta["tool_content"]`): the
transcript shows each as a call with its arguments. Once the reply is stored each call asks the
person first (`ui.tools.permission`: allow once / always for this tool / deny), runs through the
McpService, and its result is stored as a message of role "tool" under the reply; after the last
one a new round starts from the results (`ChatController.begin_turn`). The loop ends when the
model answers without a call, or after `MAX_ROUNDS` rounds (said in the notice bar: the calls of
the last reply stay shown, not run). Stop, or switching conversation, ends it too; results
already stored stay.

With "Require a call" on, the first round's reply is held by a grammar to one call of the
offered tools (`core.tools.grammar`), so a small model still writes a valid call; later rounds
are free, so the model can answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.conversations.store import ConversationStore
from desktop.core.tools.calls import REQUIRED, ToolCall, ToolChoice, ToolError, ToolSpec
from desktop.core.tools.formats import HERMES, ToolFormat, parse_tool_calls
from desktop.core.tools.grammar import tool_call_grammar
from desktop.core.tools.mcp_client import McpTool, McpToolResult
from desktop.core.tools.prompt import tool_format_of
from desktop.ui.chat import turns as T
from desktop.ui.chat.controller import ChatController
from desktop.ui.tools.mcp_service import McpService
from desktop.ui.tools.permission import ToolPermissions

MAX_ROUNDS = 5  # rounds of calls in one turn before the loop stops and says so
DENIED = "The person did not allow this call."


def prepare_after_tools(store: ConversationStore, message_id: int, ctx: T.PromptContext) -> T.Turn:
    """Database thread: the next round's turn, its prompt ending with the stored results."""
    last = store.message(message_id)
    path = store.active_path(last.conversation_id, message_id)
    r = T.render_pieces(ctx, path)
    return T.Turn(
        store.get(last.conversation_id),
        T.items_of(store, path),
        message_id,
        r.pieces,
        r.notes,
        estimated_tokens=r.tokens,
        labels=r.labels,
        dropped_turns=r.dropped_turns,
        n_messages=r.n_messages,
        n_ctx=ctx.n_ctx,
        policy=ctx.overflow_policy,
    )


def add_tool_result(
    store: ConversationStore, conversation_id: int, parent_id: int, text: str, meta: dict[str, Any]
) -> int:
    """Database thread: one result stored under the reply (or the result before it)."""
    return store.add_message(conversation_id, "tool", text, parent_id=parent_id, meta=meta).id


class ToolLoop(QObject):
    sig_call_stored = Signal(object)  # ToolCall: its result is stored as a tool message
    sig_loop_ended = Signal(str)  # "answered", "limit", "stopped" or "failed"

    def __init__(
        self,
        controller: ChatController,
        mcp: McpService,
        permissions: ToolPermissions | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller, self.mcp = controller, mcp
        self.permissions = permissions or ToolPermissions()
        self.enabled = True  # offer the connected tools in the chat
        self.required = False  # hold the first round's reply to a call (a grammar)
        # Asked before every call (server, call) -> allowed; a test answers it itself.
        self.ask: Callable[[str, ToolCall], bool] = lambda server, call: self.permissions.ask(
            controller.view, server, call
        )
        self.rounds = 0  # rounds of calls run in the turn being answered
        self.max_rounds = MAX_ROUNDS
        self._fmt: ToolFormat = HERMES
        self._offered: tuple[ToolSpec, ...] = ()  # by the context built last
        self._turn_tools: tuple[ToolSpec, ...] = ()  # by the reply being generated
        self._next_is_round = False  # the generation about to start is the loop's own
        self._calls: tuple[ToolCall, ...] = ()  # the finished reply's calls, not yet run
        self._queue: list[ToolCall] = []
        self._conversation: int | None = None
        self._parent: int | None = None  # where the next result goes
        self._waiting: tuple[int, ToolCall, str] | None = None  # MCP call id, call, server
        self._serial = 0  # drops news for a loop that was stopped
        controller.context_hook = self._with_tools
        controller.reply_meta = self._reply_meta
        controller.sig_generation_started.connect(self._on_started)
        controller.sig_reply_stored.connect(self._on_reply_stored)
        controller.sig_conversation_changed.connect(self._on_conversation_changed)
        controller.view.sig_stop_requested.connect(self.stop)
        mcp.sig_tool_finished.connect(self._on_tool_finished)
        mcp.sig_tool_failed.connect(self._on_tool_failed)

    @property
    def running(self) -> bool:
        """Calls of a reply are being asked about, run or stored."""
        return self._conversation is not None

    def tools(self) -> tuple[McpTool, ...]:
        return self.mcp.tools() if self.enabled else ()

    # --- the turn: tools offered, calls parsed ---

    def _with_tools(self, ctx: T.PromptContext) -> T.PromptContext:
        specs = tuple(t.spec for t in self.tools())
        self._offered, self._fmt = specs, tool_format_of(ctx.template)
        if not specs:
            return ctx
        ctx = dataclasses.replace(ctx, tools=specs)
        if self.required and not self._next_is_round and ctx.sampler.structured_output == "none":
            grammar = tool_call_grammar(self._fmt, specs, ToolChoice(REQUIRED), parallel=False)
            ctx = dataclasses.replace(
                ctx, sampler=ctx.sampler.replace(structured_output="gbnf", grammar=grammar)
            )
        return ctx

    def _on_started(self, _request_id: int) -> None:
        if not self._next_is_round:
            self.rounds = 0  # a turn the person started
        self._next_is_round = False
        self._turn_tools, self._calls = self._offered, ()

    def _reply_meta(self, text: str) -> dict[str, Any]:
        self._calls = ()
        if not self._turn_tools:
            return {}
        parsed = parse_tool_calls(text, self._fmt)
        self._calls = parsed.calls
        if not parsed.calls:
            return {}
        return {"tool_calls": [c.to_json() for c in parsed.calls], "tool_content": parsed.content}

    def _on_reply_stored(self, conversation_id: int) -> None:
        calls, self._calls = self._calls, ()
        reply_id = self.controller.last_reply_id
        if not calls or reply_id is None or self.running:
            if self.rounds:
                self.sig_loop_ended.emit("answered")
            return
        if self.rounds >= self.max_rounds:
            self.controller.view.notice.show_notice(
                f"The model asked for tools again after {self.max_rounds} rounds of calls; "
                "they were not run. Send a message to go on.",
                kind="info",
            )
            self.sig_loop_ended.emit("limit")
            return
        self._serial += 1
        self._conversation, self._parent = conversation_id, reply_id
        self._queue = list(calls)
        self.controller.view.set_busy(True)
        self._next()

    # --- each call: asked, run, stored ---

    def _tool_named(self, name: str) -> McpTool | None:
        return next((t for t in self.tools() if t.spec.name == name), None)

    def _next(self) -> None:
        if self._conversation is None:
            return
        if not self._queue:
            self._go_on()
            return
        call = self._queue.pop(0)
        tool = self._tool_named(call.name)
        if tool is None:
            self._store(call, f"No tool named {call.name!r} is connected.", True)
            return
        try:
            arguments = call.argument_values()
        except ToolError as exc:
            self._store(call, str(exc), True, tool.server)
            return
        if not self.ask(tool.server, call):
            self._store(call, DENIED, True, tool.server)
            return
        self._waiting = (self.mcp.call_tool(tool.server, tool.name, arguments), call, tool.server)

    def _on_tool_finished(self, call_id: int, result: McpToolResult) -> None:
        if self._waiting is not None and self._waiting[0] == call_id:
            _, call, server = self._waiting
            self._waiting = None
            self._store(call, result.text, result.is_error, server)

    def _on_tool_failed(self, call_id: int, message: str) -> None:
        if self._waiting is not None and self._waiting[0] == call_id:
            _, call, server = self._waiting
            self._waiting = None
            self._store(call, f"The tool failed: {message}", True, server)

    def _store(self, call: ToolCall, text: str, is_error: bool, server: str = "") -> None:
        conversation, parent, serial = self._conversation, self._parent, self._serial
        if conversation is None or parent is None:
            return
        meta = {"tool_call_id": call.id, "name": call.name, "server": server, "is_error": is_error}

        def stored(message_id: int) -> None:
            if serial == self._serial:
                self._parent = message_id
                self.sig_call_stored.emit(call)
                self._next()

        self.controller.db.call(
            lambda s: add_tool_result(s, conversation, parent, text, meta),
            on_done=stored,
            on_error=self._failed,
        )

    # --- the next round, or the end ---

    def _go_on(self) -> None:
        last = self._parent
        self._end()
        if last is None:
            return
        self.rounds += 1
        self._next_is_round = True
        if not self.controller.begin_turn(lambda s, ctx: prepare_after_tools(s, last, ctx)):
            self._next_is_round = False
            self.sig_loop_ended.emit("failed")

    def _end(self) -> None:
        self._serial += 1
        self._conversation, self._parent, self._waiting, self._queue = None, None, None, []
        self.controller.view.set_busy(False)

    def stop(self) -> None:
        """Stop the loop: calls not run yet are dropped; results already stored stay."""
        if not self.running:
            return
        conversation = self._conversation
        self._end()
        self.sig_loop_ended.emit("stopped")
        self.controller.open_conversation(conversation)  # shows the results stored so far

    def _on_conversation_changed(self, conversation_id: Any) -> None:
        if self.running and conversation_id != self._conversation:
            self._end()  # another conversation is shown: the results stay in their own
            self.sig_loop_ended.emit("stopped")

    def _failed(self, exc: Exception) -> None:
        self._end()
        self.controller.view.notice.show_notice(str(exc) or type(exc).__name__)
        self.sig_loop_ended.emit("failed")
