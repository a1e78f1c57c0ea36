"""Database-thread steps of a chat turn: save the message, read the branch, render the prompt.

Each function takes the `ConversationStore` first and runs on the StoreService thread
("openlid-db"), so one call both writes the user's message and renders the prompt from what is
now stored, in order with every other database call. No Qt here: the results (`Turn`, tuples
of `MessageItem`) are frozen values handed back to the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.core.conversations import Conversation, ConversationStore, Message
from desktop.core.prompt import PromptTemplate, build_messages, render_prompt
from desktop.core.sampling import SamplerSettings
from desktop.ui.message_widget import ASSISTANT, USER, MessageItem

PromptPieces = tuple[tuple[str, bool], ...]
TITLE_LENGTH = 60


@dataclass(frozen=True)
class PromptContext:
    """What the panels say right now; read on the GUI thread, used on the database thread."""

    system_prompt: str
    instructions: str
    placement: str  # "system" or "first_user"
    template: PromptTemplate
    sampler: SamplerSettings
    bos: str = ""
    eos: str = ""
    model_name: str = ""
    model_path: str = ""

    def generation_settings(self) -> SamplerSettings:
        """The sampler settings plus the template's end-of-turn strings as stop strings."""
        stops = tuple(dict.fromkeys((*self.sampler.stop, *self.template.stop)))
        return self.sampler.replace(stop=stops)


@dataclass(frozen=True)
class Turn:
    """A prepared generation: where the reply goes and the exact prompt to send."""

    conversation: Conversation
    items: tuple[MessageItem, ...]  # the branch to show before the reply streams
    parent_id: int | None  # the reply's parent (the user message)
    pieces: PromptPieces
    notes: tuple[str, ...] = ()
    continue_id: int | None = None  # an assistant message being continued in place
    continue_text: str = ""


def title_from(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "New conversation")
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def footer_of(meta: dict[str, Any] | None) -> str:
    if not meta:
        return ""
    parts = []
    tokens = meta.get("completion_tokens")
    if tokens:
        parts.append(f"{tokens} tokens")
    rate = meta.get("tokens_per_second")
    if rate:
        parts.append(f"{rate:.1f} tok/s")
    reason = {"cancelled": "stopped", "length": "hit the token limit",
              "context": "context full", "crashed": "engine crashed"}.get(
        str(meta.get("finish_reason", "")))
    if reason:
        parts.append(reason)
    return " · ".join(parts)


def item_of(store: ConversationStore, message: Message) -> MessageItem:
    siblings = store.siblings(message.id)
    index = next((i for i, m in enumerate(siblings) if m.id == message.id), 0)
    meta = message.meta or {}
    label = "You" if message.role == USER else str(meta.get("model_name") or "Assistant")
    return MessageItem(message.id, message.role, message.content, label, index, len(siblings),
                       footer_of(meta) if message.role == ASSISTANT else "")


def items_of(store: ConversationStore, path: list[Message]) -> tuple[MessageItem, ...]:
    return tuple(item_of(store, m) for m in path if m.role != "system")


def render_pieces(ctx: PromptContext,
                  history: list[Message]) -> tuple[PromptPieces, tuple[str, ...]]:
    messages = build_messages(ctx.system_prompt, ctx.instructions,
                              [m.to_chat() for m in history], None,
                              instructions_placement="first_user" if ctx.placement == "first_user"
                              else "system")
    rendered = render_prompt(ctx.template, messages, add_generation_prompt=True,
                             bos_token=ctx.bos, eos_token=ctx.eos)
    return tuple((s.text, s.trusted) for s in rendered.segments), rendered.notes


def load_branch(store: ConversationStore,
                conversation_id: int) -> tuple[Conversation, tuple[MessageItem, ...]]:
    conversation = store.get(conversation_id)
    return conversation, items_of(store, store.active_path(conversation_id))


def prepare_send(store: ConversationStore, conversation_id: int | None, text: str,
                 ctx: PromptContext) -> Turn:
    if conversation_id is None:
        conversation = store.create(
            title_from(text), model_path=ctx.model_path, system_prompt=ctx.system_prompt,
            custom_instructions=ctx.instructions, template_id=ctx.template.id,
            sampler=ctx.sampler)
        conversation_id = conversation.id
    user = store.append(conversation_id, "user", text)
    path = store.active_path(conversation_id)
    pieces, notes = render_pieces(ctx, path)
    return Turn(store.get(conversation_id), items_of(store, path), user.id, pieces, notes)


def prepare_regenerate(store: ConversationStore, message_id: int, ctx: PromptContext) -> Turn:
    reply = store.message(message_id)
    if reply.parent_id is None:
        raise ValueError("this reply has no message before it to answer")
    path = store.active_path(reply.conversation_id, reply.parent_id)
    pieces, notes = render_pieces(ctx, path)
    return Turn(store.get(reply.conversation_id), items_of(store, path), reply.parent_id,
                pieces, notes)


def prepare_edit(store: ConversationStore, message_id: int, text: str,
                 ctx: PromptContext) -> Turn:
    edited = store.edit_message(message_id, text)
    path = store.active_path(edited.conversation_id)
    pieces, notes = render_pieces(ctx, path)
    return Turn(store.get(edited.conversation_id), items_of(store, path), edited.id, pieces,
                notes)


def prepare_continue(store: ConversationStore, message_id: int, ctx: PromptContext) -> Turn:
    """Continue a reply in place: the prompt ends with the reply so far, as the model's own
    unfinished turn (plain text, so it cannot forge special tokens)."""
    reply = store.message(message_id)
    history = store.active_path(reply.conversation_id, reply.parent_id) \
        if reply.parent_id is not None else []
    pieces, notes = render_pieces(ctx, history)
    path = store.active_path(reply.conversation_id, reply.id)
    return Turn(store.get(reply.conversation_id), items_of(store, path), reply.parent_id,
                (*pieces, (reply.content, False)), notes, continue_id=reply.id,
                continue_text=reply.content)


def save_reply(store: ConversationStore, turn: Turn, text: str,
               meta: dict[str, Any]) -> tuple[MessageItem, ...]:
    """Store a finished (or stopped) reply; returns the branch now shown."""
    conversation_id = turn.conversation.id
    if turn.continue_id is not None:
        old = store.message(turn.continue_id).meta or {}
        merged = {**old, **meta,
                  "completion_tokens": int(old.get("completion_tokens", 0))
                  + int(meta.get("completion_tokens", 0))}
        store.update_message(turn.continue_id, content=turn.continue_text + text, meta=merged)
        store.select_branch(turn.continue_id)
    else:
        store.add_message(conversation_id, "assistant", text, parent_id=turn.parent_id,
                          meta=meta)
    return items_of(store, store.active_path(conversation_id))


def select_sibling(store: ConversationStore, message_id: int,
                   index: int) -> tuple[MessageItem, ...]:
    siblings = store.siblings(message_id)
    target = siblings[max(0, min(index, len(siblings) - 1))]
    path = store.select_branch(target.id)
    return items_of(store, path)
