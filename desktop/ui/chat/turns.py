"""Database-thread steps of a chat turn: save the message, read the branch, render the prompt.

Each function takes the `ConversationStore` first and runs on the StoreService thread
("openlid-db"), so one call both writes the user's message and renders the prompt from what is
now stored, in order with every other database call. No Qt here: the results (`Turn`, tuples
of `MessageItem`) are frozen values handed back to the GUI thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.core.conversations import images as I
from desktop.core.conversations import xray as X
from desktop.core.conversations.overflow import TokenCounts, fit_messages
from desktop.core.conversations.store import Conversation, ConversationStore, Message
from desktop.core.documents import prompt as D
from desktop.core.documents.extract import Document
from desktop.core.documents.retrieval import Excerpt, retrieve
from desktop.core.documents.store import DocumentStore
from desktop.core.documents.vectors import Embed, EmbeddingError
from desktop.core.generation import SettingsSpan, spans_from_meta, spans_to_meta
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.templates.prompt import (
    InstructionsPlacement,
    PromptTemplate,
    build_messages,
    render_prompt,
)
from desktop.core.tools.calls import ToolCall, ToolSpec
from desktop.core.tools.prompt import render_with_tools
from desktop.ui.chat.message_widget import ASSISTANT, USER, MessageItem

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
    n_ctx: int = 0  # the loaded context window; 0: unknown, no overflow policy applied
    overflow_policy: str = "stop"  # an overflow.POLICIES id (the Template panel's combo)
    token_scale: float = 1.0  # real tokens / estimated tokens of the last prompt sent
    thinking: bool | None = None  # enable_thinking for templates that take it (None: no switch)
    tools: tuple[ToolSpec, ...] = ()  # tools offered to the model this turn (ui.chat.tool_loop)
    attachments: tuple[Document, ...] = ()  # files attached to the message being sent
    embed: Embed | None = None  # search documents by meaning (ui.chat.embedder); None: BM25
    # The engine's exact counts of texts already sent (the controller fills it in).
    token_counts: TokenCounts = field(default_factory=TokenCounts)

    def counts(self) -> TokenCounts:
        """The counts to fit the prompt with: a scale set by the window wins over none."""
        if self.token_counts.texts or self.token_scale == 1.0:
            return self.token_counts
        return dataclasses.replace(self.token_counts, scale=self.token_scale)

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
    images: tuple[bytes, ...] = ()  # one per image marker in `pieces`, in order (vision)
    estimated_tokens: int = 0  # the prompt's estimated size (calibrates the next estimate)
    # For the X-ray: where each piece came from, which turns the overflow policy left out,
    # how many messages were sent, and the context it was fitted to.
    labels: tuple[X.PieceLabel, ...] = ()
    dropped_turns: tuple[int, ...] = ()
    n_messages: int = 0
    n_ctx: int = 0
    policy: str = ""


@dataclass(frozen=True)
class RenderedTurn:
    """`render_pieces`' answer: the prompt and what the X-ray records about it."""

    pieces: PromptPieces
    notes: tuple[str, ...]
    tokens: int  # the prompt's size as the overflow policy counted it
    labels: tuple[X.PieceLabel, ...]
    dropped_turns: tuple[int, ...]
    n_messages: int


def title_from(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "New conversation")
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def footer_of(meta: dict[str, Any] | None) -> str:
    if not meta:
        return ""
    parts = []
    tokens = meta.get("completion_tokens")
    if tokens:
        thinking = meta.get("thinking_tokens")
        parts.append(f"{tokens} tokens ({thinking} thinking)" if thinking else f"{tokens} tokens")
    rate = meta.get("tokens_per_second")
    if rate:
        parts.append(f"{rate:.1f} tok/s")
    reason = {"cancelled": "stopped", "length": "hit the token limit",
              "context": "context full", "crashed": "engine crashed"}.get(
        str(meta.get("finish_reason", "")))
    if reason:
        parts.append(reason)
    return " · ".join(parts)


def item_of(store: ConversationStore, message: Message,
            images: Sequence[I.StoredImage] | None = None) -> MessageItem:
    """What the transcript shows of `message`; its images read from the ImageStore unless
    given (`items_of` reads a whole branch's in one query)."""
    if images is None:
        with I.ImageStore(store.path) as image_store:
            images = image_store.load(message.id)
    siblings = store.siblings(message.id)
    index = next((i for i, m in enumerate(siblings) if m.id == message.id), 0)
    meta = message.meta or {}
    label = "You" if message.role == USER else str(meta.get("model_name") or "Assistant")
    if message.role == "tool":
        label = f"Tool result · {meta.get('name', '')}"
    assistant = message.role == ASSISTANT
    calls = tuple(ToolCall(str(c.get("id", "")), str(c.get("function", {}).get("name", "")),
                           str(c.get("function", {}).get("arguments", "{}")))
                  for c in meta.get("tool_calls") or () if isinstance(c, dict)) \
        if assistant else ()
    return MessageItem(message.id, message.role, message.content, label, index, len(siblings),
                       footer_of(meta) if assistant else "",
                       has_steps=assistant and store.has_steps(message.id), tool_calls=calls,
                       images=tuple(images))


def items_of(store: ConversationStore, path: list[Message]) -> tuple[MessageItem, ...]:
    shown = [m for m in path if m.role != "system"]
    with I.ImageStore(store.path) as image_store:
        images = image_store.load_many(m.id for m in shown)
    return tuple(item_of(store, m, images.get(m.id, ())) for m in shown)


def render_pieces(ctx: PromptContext, history: Sequence[Message | Mapping[str, str]],
                  excerpts: Sequence[Excerpt] = (),
                  image_counts: Mapping[int, int] | None = None) -> RenderedTurn:
    """The prompt for `history` under the context overflow policy: its pieces, notes for the
    chat (what was left out), its token count (exact where the engine has counted the text)
    and, for the X-ray, where each piece came from. ContextOverflow when it cannot fit (the
    "stop" policy, or a last turn too long on its own)."""
    stored = [m for m in history if (m.role if isinstance(m, Message) else m["role"]) != "system"]
    chats = [m.to_chat() if isinstance(m, Message) else dict(m) for m in stored]
    ids = [m.id if isinstance(m, Message) else None for m in stored]
    for i, n in enumerate((image_counts or {}).get(j, 0) if j is not None else 0 for j in ids):
        if n:  # an image marker per attached image, where the engine puts it (vision)
            chats[i] = {**chats[i], "content": I.with_markers(chats[i]["content"], n)}
    numbers = X.turn_numbers([m["role"] for m in chats])
    block = D.Block("", ())
    if excerpts and chats and chats[-1]["role"] == "user":  # documents before the message
        block = D.compose(excerpts, chats[-1]["content"])
        chats[-1] = {**chats[-1], "content": block.content}
    placement: InstructionsPlacement = ("first_user" if ctx.placement == "first_user"
                                        else "system")

    def build(turns: list[dict[str, str]]) -> list[dict[str, str]]:
        return build_messages(ctx.system_prompt, ctx.instructions, turns, None,
                              instructions_placement=placement)

    counts = ctx.counts()
    messages = build(chats)
    fitted = fit_messages(messages, ctx.n_ctx, ctx.sampler.max_tokens, ctx.overflow_policy,
                          lambda m: counts.count(m["content"]))
    notes: tuple[str, ...] = (fitted.note,) if fitted.note else ()
    offset = len(messages) - len(chats)  # the system message, when there is one
    kept = list(range(len(chats)))
    if fitted.dropped_turns:
        # Rebuild from the kept history, so instructions placed in the first user message move
        # to the first one still sent rather than leaving with a dropped turn.
        kept = [i - offset for i in fitted.kept if i >= offset]
        messages = build([chats[i] for i in kept])
    extra = {"enable_thinking": ctx.thinking} if ctx.thinking is not None else None
    if ctx.tools or any(c["role"] == "tool" or c.get("tool_calls") for c in chats):
        # Calls and results keep their fields (build_messages keeps role and content only).
        first = next((j for j, m in enumerate(messages) if m["role"] != "system"), 0)
        rich = [{**chats[i], **m} if m["role"] == chats[i]["role"] else m
                for m, i in zip(messages[first:], kept, strict=False)]
        messages = [*messages[:first], *rich, *messages[first + len(rich):]]
        rendered = render_with_tools(ctx.template, messages, ctx.tools, bos_token=ctx.bos,
                                     eos_token=ctx.eos, extra=extra).rendered
    else:
        rendered = render_prompt(ctx.template, messages, add_generation_prompt=True,
                                 bos_token=ctx.bos, eos_token=ctx.eos, extra=extra)
    pieces = D.split_pieces(tuple((s.text, s.trusted) for s in rendered.segments),
                            block.segments())
    sent = X.sent_messages(messages, [(chats[i], numbers[i], ids[i]) for i in kept],
                           system_prompt=ctx.system_prompt, instructions=ctx.instructions,
                           placement=ctx.placement, documents=block.spans)
    dropped = tuple(sorted({numbers[i] for i in range(len(chats)) if i not in set(kept)}))
    return RenderedTurn(pieces, (*notes, *rendered.notes), fitted.tokens,
                        X.label_pieces(pieces, sent), dropped, len(messages))


def _with_new_id(labels: tuple[X.PieceLabel, ...], message_id: int) -> tuple[X.PieceLabel, ...]:
    """The new message's labels once it is stored (it is rendered before it has an id)."""
    return tuple(dataclasses.replace(lb, message_id=message_id)
                 if lb.kind == X.NEW and lb.message_id is None else lb for lb in labels)


def _turn(conversation: Conversation, items: tuple[MessageItem, ...], parent_id: int | None,
          r: RenderedTurn, ctx: PromptContext, **extra: Any) -> Turn:
    labels = r.labels if parent_id is None else _with_new_id(r.labels, parent_id)
    return Turn(conversation, items, parent_id, r.pieces, r.notes, estimated_tokens=r.tokens,
                labels=labels, dropped_turns=r.dropped_turns, n_messages=r.n_messages,
                n_ctx=ctx.n_ctx, policy=ctx.overflow_policy, **extra)


def load_branch(store: ConversationStore,
                conversation_id: int) -> tuple[Conversation, tuple[MessageItem, ...]]:
    conversation = store.get(conversation_id)
    return conversation, items_of(store, store.active_path(conversation_id))


def _retrieve(docs: DocumentStore, conversation_id: int | None, message: str,
              ctx: PromptContext, pending: Sequence[Document] = ()
              ) -> tuple[tuple[Excerpt, ...], tuple[str, ...]]:
    """`retrieve` by meaning when an embedding model is chosen, else (or when it fails or
    times out: the note says so) by keywords; the excerpts and the notes for the chat."""
    if ctx.embed is not None:
        try:
            return retrieve(docs, conversation_id, message, pending, embed=ctx.embed), ()
        except EmbeddingError as exc:
            note = (f"Searching the documents by meaning failed ({exc}): they were searched "
                    "by keywords (BM25) instead.")
            return retrieve(docs, conversation_id, message, pending), (note,)
    return retrieve(docs, conversation_id, message, pending), ()


def _excerpts(store: ConversationStore, conversation_id: int | None,
              path: Sequence[Message | Mapping[str, str]],
              ctx: PromptContext) -> tuple[tuple[Excerpt, ...], tuple[str, ...]]:
    """The documents' excerpts for the last user message of `path` (none without one)."""
    last = path[-1] if path else None
    if last is None or (last.role if isinstance(last, Message) else last["role"]) != "user":
        return (), ()
    with DocumentStore(store.path) as docs:
        return _retrieve(docs, conversation_id, last.content if isinstance(last, Message)
                         else last["content"], ctx)


def prepare_send(store: ConversationStore, conversation_id: int | None, text: str,
                 ctx: PromptContext, images: Sequence[I.StoredImage] = ()) -> Turn:
    # Render first: a prompt refused by the "stop" policy must not leave the message stored
    # (nor its attachments: they are searched provisionally, stored after).
    history = store.active_path(conversation_id) if conversation_id is not None else []
    with DocumentStore(store.path) as docs:
        excerpts, found = _retrieve(docs, conversation_id, text, ctx, ctx.attachments)
        counts, earlier = I.branch_images(store.path, [m.id for m in history])
        new = {"role": "user", "content": I.with_markers(text, len(images))}
        rendered = render_pieces(ctx, [*history, new], excerpts, counts)
        if conversation_id is None:
            conversation = store.create(
                title_from(text), model_path=ctx.model_path, system_prompt=ctx.system_prompt,
                custom_instructions=ctx.instructions, template_id=ctx.template.id,
                sampler=ctx.sampler)
            conversation_id = conversation.id
        attached = [docs.attach(conversation_id, d) for d in ctx.attachments]
    user = store.append(conversation_id, "user", text)
    if images:
        with I.ImageStore(store.path) as image_store:
            image_store.save(user.id, images)
    path = store.active_path(conversation_id)
    notes = tuple(f"{d.name} attached: " + ("sent whole with every message" if d.whole else
                                            f"{d.chunks} chunks, the most relevant sent with "
                                            "each message") for d in attached)
    rendered = dataclasses.replace(rendered, notes=(*rendered.notes, *found, *notes))
    sent = I.images_sent(rendered.pieces, [*earlier, *(im.data for im in images)])
    return _turn(store.get(conversation_id), items_of(store, path), user.id, rendered, ctx,
                 images=sent)


def _render_branch(store: ConversationStore, ctx: PromptContext, conversation_id: int,
                   path: Sequence[Message]) -> tuple[RenderedTurn, tuple[bytes, ...]]:
    """`render_pieces` for a stored branch, its messages' images marked and sent with it."""
    counts, images = I.branch_images(store.path, [m.id for m in path])
    excerpts, found = _excerpts(store, conversation_id, path, ctx)
    rendered = render_pieces(ctx, path, excerpts, counts)
    rendered = dataclasses.replace(rendered, notes=(*rendered.notes, *found))
    return rendered, I.images_sent(rendered.pieces, images)


def prepare_regenerate(store: ConversationStore, message_id: int, ctx: PromptContext) -> Turn:
    reply = store.message(message_id)
    if reply.parent_id is None:
        raise ValueError("this reply has no message before it to answer")
    path = store.active_path(reply.conversation_id, reply.parent_id)
    rendered, images = _render_branch(store, ctx, reply.conversation_id, path)
    return _turn(store.get(reply.conversation_id), items_of(store, path), reply.parent_id,
                 rendered, ctx, images=images)


def prepare_edit(store: ConversationStore, message_id: int, text: str,
                 ctx: PromptContext) -> Turn:
    edited = store.edit_message(message_id, text)
    with I.ImageStore(store.path) as image_store:  # the new version keeps the old's images
        image_store.copy(message_id, edited.id)
    path = store.active_path(edited.conversation_id)
    rendered, images = _render_branch(store, ctx, edited.conversation_id, path)
    return _turn(store.get(edited.conversation_id), items_of(store, path), edited.id,
                 rendered, ctx, images=images)


def prepare_continue(store: ConversationStore, message_id: int, ctx: PromptContext) -> Turn:
    """Continue a reply in place: the prompt ends with the reply so far, as the model's own
    unfinished turn (plain text, so it cannot forge special tokens)."""
    reply = store.message(message_id)
    history = store.active_path(reply.conversation_id, reply.parent_id) \
        if reply.parent_id is not None else []
    so_far = ctx.counts().count(reply.content)
    fit_ctx = ctx
    if ctx.n_ctx > 0:  # the reply so far takes room from the context, like the history
        fit_ctx = dataclasses.replace(ctx, n_ctx=max(1, ctx.n_ctx - so_far))
    r, images = _render_branch(store, fit_ctx, reply.conversation_id, history)
    turn = max((lb.turn for lb in r.labels), default=0)
    label = X.PieceLabel(len(r.pieces), X.SO_FAR, 0, len(reply.content), turn, reply.id)
    r = dataclasses.replace(r, pieces=(*r.pieces, (reply.content, False)),
                            labels=(*r.labels, label), tokens=r.tokens + so_far)
    path = store.active_path(reply.conversation_id, reply.id)
    return _turn(store.get(reply.conversation_id), items_of(store, path), reply.parent_id, r,
                 ctx, continue_id=reply.id, continue_text=reply.content, images=images)


def save_reply(store: ConversationStore, turn: Turn, text: str, meta: dict[str, Any],
               steps: Sequence[StepRecord] = ()) -> tuple[MessageItem, ...]:
    """Store a finished (or stopped) reply and its steps; returns the branch now shown.

    `meta` carries the settings the reply was sampled with (`Generation.meta`). A reply
    continued in place keeps its old part's settings: each part becomes a `sampler_spans`
    entry, so every stored step still says what it was sampled with."""
    conversation_id = turn.conversation.id
    if turn.continue_id is not None:
        old_steps = store.load_steps(turn.continue_id)
        n = len(old_steps)
        if old_steps and steps:
            # The continuation's steps count from 0 again: number them after the old ones, so
            # the stored steps spell the whole reply.
            store.save_steps(turn.continue_id,
                             [*old_steps, *(dataclasses.replace(r, step=n + r.step)
                                            for r in steps)])
        old = store.message(turn.continue_id).meta or {}
        spans = (*spans_from_meta(old),
                 *(SettingsSpan(n + span.start, span.settings) for span in spans_from_meta(meta)))
        merged = {**old, **meta,
                  "completion_tokens": int(old.get("completion_tokens", 0))
                  + int(meta.get("completion_tokens", 0)),
                  "sampler_spans": spans_to_meta(spans)}
        store.update_message(turn.continue_id, content=turn.continue_text + text, meta=merged)
        store.select_branch(turn.continue_id)
    else:
        reply = store.add_message(conversation_id, "assistant", text, parent_id=turn.parent_id,
                                  meta=meta)
        if steps:
            store.save_steps(reply.id, steps)
    return items_of(store, store.active_path(conversation_id))


@dataclass(frozen=True)
class StoredReply:
    """A stored reply's generation metadata and steps, read on the database thread; the GUI
    thread rebuilds its `Generation` from them (`Generation.saved`)."""

    message_id: int
    meta: dict[str, Any]
    steps: tuple[StepRecord, ...]


def steps_of(store: ConversationStore, message_id: int) -> tuple[StepRecord, ...]:
    """The stored steps of a reply."""
    return tuple(store.load_steps(message_id))


def reply_of(store: ConversationStore, message_id: int) -> StoredReply:
    """A stored reply's meta and steps (for its token view, hover cards and the chart)."""
    return StoredReply(message_id, dict(store.message(message_id).meta or {}),
                       tuple(store.load_steps(message_id)))


def select_sibling(store: ConversationStore, message_id: int,
                   index: int) -> tuple[MessageItem, ...]:
    siblings = store.siblings(message_id)
    target = siblings[max(0, min(index, len(siblings) - 1))]
    path = store.select_branch(target.id)
    return items_of(store, path)
