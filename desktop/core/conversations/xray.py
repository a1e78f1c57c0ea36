"""The X-ray of a conversation: what each turn's prompt was made of, as it was really sent.

A model keeps nothing between replies: every turn the app sends the whole text again — system
prompt, custom instructions, every earlier turn, laid into the template's markup. This module
says, for the prompt behind each stored reply, where each stretch of it came from and how many
tokens the engine made of it, and what changed from the turn before (new, dropped by the
overflow policy, reused from the KV cache).

Three steps, all pure:

* `label_pieces` (when the prompt is rendered): each (text, trusted) piece → `PieceLabel`s, by
  finding message text in the messages that were sent.
* `make_record` (when the reply is stored): labels + the engine's tokens per piece
  (`Usage.piece_tokens`) + the reuse and prefill time → a JSON dict kept in the reply's meta
  under `"xray"`. Message text is stored as a reference into the message it came from, so a
  long conversation does not store its history again with every reply.
* `turn_xrays` (when the X-ray is shown): the records of a branch read back into `TurnXray`s;
  `diff` compares two of them. Replies stored before the X-ray existed read "not recorded".

The engine tokenizes piece by piece and joins the results, so per-piece counts add up to the
prompt's token count exactly; when one piece holds two sources (the system prompt and the
instructions share the system message) its tokens are shared out by characters and marked
inexact. Runs on the database thread (records, reading) and any thread (values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.core.conversations.overflow import ContextOverflow, fit_messages
from desktop.core.templates.prompt import build_messages

SYSTEM, INSTRUCTIONS, HISTORY, NEW, SO_FAR, TEMPLATE = (
    "system", "instructions", "history", "new message", "reply so far", "template")
DOCUMENT = "document"  # an attached document's excerpt (or the block's own lines) before a message
# The context meter's categories; "reply so far" (a reply continued in place) is history.
CATEGORIES = (SYSTEM, INSTRUCTIONS, HISTORY, DOCUMENT, NEW, TEMPLATE)
RECORD_VERSION = 1
NOT_RECORDED = "not recorded"

Pieces = tuple[tuple[str, bool], ...]
DocRef = tuple[str, int, float | None]  # a document part's file, page (0: none), BM25 score


@dataclass(frozen=True)
class Source:
    """One stretch of a sent message's content: `start:end` in it, and where it came from."""

    kind: str
    start: int
    end: int
    turn: int = 0  # the conversation turn (1-based) a message's text belongs to; 0: none
    message_id: int | None = None
    offset: int = 0  # where this stretch starts in the stored message's content
    doc: DocRef | None = None  # DOCUMENT stretches: the excerpt's file, page and score


@dataclass(frozen=True)
class SentMessage:
    """A message as sent (after the overflow policy) and the sources its content is made of."""

    content: str
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class PieceLabel:
    """Part of one prompt piece: `start:end` of the piece's text, and its source."""

    piece: int
    kind: str
    start: int
    end: int
    turn: int = 0
    message_id: int | None = None
    offset: int = 0  # where this text starts in the stored message (message_id)
    doc: DocRef | None = None


@dataclass(frozen=True)
class PromptPart:
    """A stretch of a recorded prompt with its tokens, read back from a record."""

    kind: str
    text: str
    tokens: int
    turn: int = 0
    message_id: int | None = None
    exact: bool = True  # False: its piece's tokens were shared out by characters
    doc: DocRef | None = None  # a document excerpt's file, page and BM25 score

    @property
    def category(self) -> str:
        return HISTORY if self.kind == SO_FAR else self.kind

    @property
    def key(self) -> tuple[str, int, int | None]:
        """The same part in two turns' prompts ("new message" of turn 3 is history in turn 4)."""
        if self.kind == DOCUMENT:  # excerpts are chosen again for every message
            return (DOCUMENT, self.turn, hash(self.text))
        kind = HISTORY if self.kind in (NEW, SO_FAR) else self.kind
        return (kind, self.turn, self.message_id if self.turn else None)


@dataclass(frozen=True)
class TurnXray:
    """The prompt behind one stored reply."""

    reply_id: int
    turn: int  # the conversation turn it answers (1-based)
    recorded: bool
    parts: tuple[PromptPart, ...] = ()
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prompt_ms: float = 0.0
    n_ctx: int = 0
    policy: str = ""
    dropped_turns: tuple[int, ...] = ()
    has_parts: bool = False  # False: totals only (the prompt was sent as token ids)

    @property
    def recomputed_tokens(self) -> int:
        return max(0, self.prompt_tokens - self.cached_tokens)

    def by_category(self) -> dict[str, int]:
        totals = dict.fromkeys(CATEGORIES, 0)
        for part in self.parts:
            totals[part.category] += part.tokens
        return totals

    def turns_sent(self) -> tuple[int, ...]:
        return tuple(sorted({p.turn for p in self.parts if p.turn}))


@dataclass(frozen=True)
class TurnDiff:
    """What changed from one turn's prompt to the next."""

    new: tuple[PromptPart, ...]
    dropped: tuple[PromptPart, ...]  # parts of the previous prompt no longer sent
    dropped_turns: tuple[int, ...]
    new_tokens: int
    dropped_tokens: int


# ---- labelling (prompt rendered) -------------------------------------------------------------


def system_sources(content: str, system_prompt: str, instructions: str) -> tuple[Source, ...]:
    """The system message's stretches: the system prompt, then the instructions (joined by a
    blank line by `build_messages`); the blank line goes with the instructions."""
    if instructions.strip() and content.endswith(instructions):
        cut = len(content) - len(instructions)
        if system_prompt.strip() and cut >= 2:
            cut -= 2  # the "\n\n" between them
        parts = [Source(SYSTEM, 0, cut), Source(INSTRUCTIONS, cut, len(content))]
        return tuple(s for s in parts if s.end > s.start)
    return (Source(SYSTEM, 0, len(content)),)


def message_sources(content: str, kind: str, turn: int, message_id: int | None,
                    instructions: str = "") -> tuple[Source, ...]:
    """A user or assistant message's stretches; instructions put in front of the first user
    message (`instructions_placement="first_user"`) are their own stretch."""
    lead = f"{instructions}\n\n" if instructions.strip() else ""
    if lead and content.startswith(lead):
        return (Source(INSTRUCTIONS, 0, len(lead)),
                Source(kind, len(lead), len(content), turn, message_id, 0))
    return (Source(kind, 0, len(content), turn, message_id, 0),)


def turn_numbers(roles: Sequence[str]) -> list[int]:
    """The conversation turn of each message: a user message opens one, replies belong to it."""
    numbers, turn = [], 0
    for role in roles:
        if role == "user" or turn == 0:
            turn += 1
        numbers.append(turn)
    return numbers


def sent_messages(messages: Sequence[Mapping[str, str]],
                  kept: Sequence[tuple[Mapping[str, str], int, int | None]], *,
                  system_prompt: str, instructions: str, placement: str = "system",
                  documents: Sequence[tuple[int, int, DocRef | None]] = (),
                  ) -> list[SentMessage]:
    """Each message of `messages` (what `build_messages` made of the kept history) with the
    sources of its text. `kept`: the history messages sent, each with its turn number and its
    stored id (None when not stored yet); the last one, when it is a user message, is the new
    message this turn answers. `documents`: the excerpt block at the start of the new
    message's text (start, end, reference), which the stored message does not hold."""
    offset = len(messages) - len(kept)
    sent: list[SentMessage] = []
    first_user = instructions if placement == "first_user" else ""
    if offset >= 1 and messages[0]["role"] == "system":
        content = messages[0]["content"]
        in_system = "" if placement == "first_user" else instructions
        sent.append(SentMessage(content, system_sources(content, system_prompt, in_system)))
    seen_user = False
    for k, (chat, turn, message_id) in enumerate(kept):
        content = messages[len(sent)]["content"] if len(sent) < len(messages) else chat["content"]
        kind = NEW if k == len(kept) - 1 and chat["role"] == "user" else HISTORY
        lead = first_user if chat["role"] == "user" and not seen_user else ""
        seen_user = seen_user or chat["role"] == "user"
        sources = message_sources(content, kind, turn, message_id, lead)
        if documents and kind == NEW:
            sources = _with_documents(sources, documents, turn)
        sent.append(SentMessage(content, sources))
    for extra in messages[len(sent):]:  # instructions sent as a message of their own
        sent.append(SentMessage(extra["content"],
                                (Source(INSTRUCTIONS, 0, len(extra["content"])),)))
    return sent


def _with_documents(sources: tuple[Source, ...],
                    documents: Sequence[tuple[int, int, DocRef | None]],
                    turn: int) -> tuple[Source, ...]:
    """The new message's stretches with the excerpt block cut out of its own text."""
    out: list[Source] = []
    for s in sources:
        if s.kind != NEW:
            out.append(s)
            continue
        base = s.start
        out += [Source(DOCUMENT, base + a, base + b, turn, doc=ref) for a, b, ref in documents]
        start = base + max(b for _, b, _ in documents)
        if s.end > start:
            out.append(Source(NEW, start, s.end, s.turn, s.message_id, s.offset))
    return tuple(out)


def label_pieces(pieces: Pieces, sent: Sequence[SentMessage]) -> tuple[PieceLabel, ...]:
    """Where each piece of a rendered prompt came from. Trusted pieces are the template's
    markup; each untrusted piece is found in the sent messages, in order (a template may trim
    a message's text, never reorder it). Text found nowhere counts as history."""
    labels: list[PieceLabel] = []
    at_message, at_char = 0, 0
    for index, (text, trusted) in enumerate(pieces):
        if not text:
            continue
        if trusted:
            labels.append(PieceLabel(index, TEMPLATE, 0, len(text)))
            continue
        found = None
        for m in range(at_message, len(sent)):
            start = sent[m].content.find(text, at_char if m == at_message else 0)
            if start >= 0:
                found = (m, start)
                break
        if found is None:
            labels.append(PieceLabel(index, HISTORY, 0, len(text)))
            continue
        m, start = found
        at_message, at_char = m, start + len(text)
        end = start + len(text)
        for s in sent[m].sources:
            a, b = max(s.start, start), min(s.end, end)
            if b > a:
                labels.append(PieceLabel(index, s.kind, a - start, b - start, s.turn,
                                         s.message_id, s.offset + a - s.start, s.doc))
    return tuple(labels)


# ---- the record (reply stored) -------------------------------------------------------------


def _shares(tokens: int, sizes: Sequence[int]) -> list[int]:
    """`tokens` shared in proportion to `sizes` (largest remainder: they add up exactly)."""
    total = sum(sizes)
    if total <= 0:
        return [tokens] + [0] * (len(sizes) - 1) if sizes else []
    exact = [tokens * s / total for s in sizes]
    shares = [int(x) for x in exact]
    for i in sorted(range(len(sizes)), key=lambda i: exact[i] - shares[i],
                    reverse=True)[:tokens - sum(shares)]:
        shares[i] += 1
    return shares


def make_record(pieces: Pieces, labels: Sequence[PieceLabel], *, prompt_tokens: int,
                piece_tokens: Sequence[int], cached_tokens: int, prompt_ms: float,
                n_ctx: int = 0, policy: str = "",
                dropped_turns: Iterable[int] = ()) -> dict[str, Any]:
    """The JSON kept in a reply's meta["xray"]. `piece_tokens`: the engine's count per piece,
    its own added tokens first (`Usage.piece_tokens`); () stores the totals without parts."""
    record: dict[str, Any] = {
        "version": RECORD_VERSION, "prompt_tokens": prompt_tokens,
        "cached_tokens": cached_tokens, "prompt_ms": round(prompt_ms, 3), "n_ctx": n_ctx,
        "policy": policy, "dropped_turns": sorted(set(dropped_turns)),
    }
    if len(piece_tokens) != len(pieces) + 1 or sum(piece_tokens) != prompt_tokens:
        return record  # not counted by piece (token ids sent, or a backend that cannot)
    parts: list[dict[str, Any]] = []
    if piece_tokens[0]:
        parts.append({"k": TEMPLATE, "t": piece_tokens[0], "x": ""})  # BOS, by the engine
    by_piece: dict[int, list[PieceLabel]] = {}
    for label in labels:
        by_piece.setdefault(label.piece, []).append(label)
    for index, (text, _trusted) in enumerate(pieces):
        tokens = piece_tokens[index + 1]
        own = by_piece.get(index) or [PieceLabel(index, TEMPLATE, 0, len(text))]
        shares = _shares(tokens, [lb.end - lb.start for lb in own])
        for label, share in zip(own, shares, strict=True):
            entry: dict[str, Any] = {"k": label.kind, "t": share}
            if label.turn:
                entry["turn"] = label.turn
            if label.doc is not None:
                entry["doc"] = list(label.doc)
            if label.message_id is not None:
                entry.update(m=label.message_id, a=label.offset, n=label.end - label.start)
            else:
                entry["x"] = text[label.start:label.end]
            if len(own) > 1:
                entry["approx"] = True
            parts.append(entry)
    record["parts"] = _merged(parts)
    return record


def _merged(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neighbouring markup entries joined (a prompt has hundreds of short markup pieces)."""
    out: list[dict[str, Any]] = []
    for part in parts:
        last = out[-1] if out else None
        if (last is not None and part["k"] == TEMPLATE and last["k"] == TEMPLATE
                and "x" in part and "x" in last):
            last["t"] += part["t"]
            last["x"] += part["x"]
        else:
            out.append(dict(part))
    return out


# ---- reading records back (X-ray shown) ----------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _doc_ref(value: Any) -> DocRef | None:
    """A stored document reference [file, page, score]; None when missing or malformed."""
    if not isinstance(value, list) or len(value) != 3:
        return None
    score = value[2]
    return (str(value[0]), _int(value[1]),
            float(score) if isinstance(score, (int, float)) else None)


def read_record(reply_id: int, turn: int, meta: Mapping[str, Any] | None,
                contents: Mapping[int, str]) -> TurnXray:
    """A reply's X-ray from its stored meta; `contents` maps message ids to their text (the
    parts that reference a message read their text from it). Anything malformed or missing
    reads as not recorded, never as a wrong figure."""
    record = (meta or {}).get("xray")
    if not isinstance(record, Mapping) or _int(record.get("version")) != RECORD_VERSION:
        return TurnXray(reply_id, turn, recorded=False,
                        prompt_tokens=_int((meta or {}).get("prompt_tokens")))
    parts: list[PromptPart] = []
    raw_parts = record.get("parts")
    if isinstance(raw_parts, list):
        for p in raw_parts:
            if not isinstance(p, Mapping):
                continue
            mid = p.get("m")
            if isinstance(mid, int):
                a, n = _int(p.get("a")), _int(p.get("n"))
                text = contents.get(mid, "")[a:a + n]
            else:
                mid, text = None, str(p.get("x", ""))
            parts.append(PromptPart(str(p.get("k", TEMPLATE)), text, _int(p.get("t")),
                                    _int(p.get("turn")), mid, not p.get("approx"),
                                    _doc_ref(p.get("doc"))))
    dropped = record.get("dropped_turns")
    return TurnXray(
        reply_id, turn, recorded=True, parts=tuple(parts),
        prompt_tokens=_int(record.get("prompt_tokens")),
        cached_tokens=_int(record.get("cached_tokens")),
        prompt_ms=float(record.get("prompt_ms") or 0.0), n_ctx=_int(record.get("n_ctx")),
        policy=str(record.get("policy", "")),
        dropped_turns=tuple(_int(t) for t in dropped) if isinstance(dropped, list) else (),
        has_parts=isinstance(raw_parts, list))


def diff(previous: TurnXray | None, current: TurnXray) -> TurnDiff:
    """What `current`'s prompt added to `previous`'s and what it no longer sends."""
    if previous is None or not previous.has_parts or not current.has_parts:
        new = current.parts if previous is None else ()
        return TurnDiff(new, (), current.dropped_turns, sum(p.tokens for p in new), 0)
    before = {p.key for p in previous.parts if p.kind != TEMPLATE}
    after = {p.key for p in current.parts if p.kind != TEMPLATE}
    new = tuple(p for p in current.parts if p.kind != TEMPLATE and p.key not in before)
    dropped = tuple(p for p in previous.parts if p.kind != TEMPLATE and p.key not in after)
    markup = (sum(p.tokens for p in current.parts if p.kind == TEMPLATE)
              - sum(p.tokens for p in previous.parts if p.kind == TEMPLATE))
    dropped_turns = tuple(sorted({p.turn for p in dropped if p.turn}))
    return TurnDiff(new, dropped, dropped_turns,
                    sum(p.tokens for p in new) + max(0, markup), sum(p.tokens for p in dropped))


@dataclass(frozen=True)
class ConversationXray:
    """Every stored reply of a branch, in order, and the branch's turns."""

    conversation_id: int
    turns: tuple[TurnXray, ...]
    n_turns: int  # turns in the branch (the last may not be answered yet)
    messages: tuple[tuple[str, str, int], ...] = field(default=())  # (role, content, turn)


def branch_xray(conversation_id: int, path: Sequence[Any]) -> ConversationXray:
    """The X-ray of a branch (`path`: its stored messages, root first, each with id, role,
    content and meta)."""
    chat = [m for m in path if m.role != "system"]
    numbers = turn_numbers([m.role for m in chat])
    contents = {m.id: m.content for m in chat}
    turns = tuple(read_record(m.id, n, m.meta, contents)
                  for m, n in zip(chat, numbers, strict=True) if m.role == "assistant")
    return ConversationXray(conversation_id, turns, max(numbers, default=0),
                            tuple((m.role, m.content, n)
                                  for m, n in zip(chat, numbers, strict=True)))


@dataclass(frozen=True)
class NextPrompt:
    """The branch as the overflow policy would send it now, before sending: its tokens and
    the turns it would leave out (`refused`: the "stop" policy or a turn too long alone)."""

    tokens: int
    dropped_turns: tuple[int, ...]
    refused: str = ""


def next_prompt(messages: Sequence[tuple[str, str, int]], *, system_prompt: str,
                instructions: str, placement: str, n_ctx: int, max_tokens: int, policy: str,
                count: Callable[[str], int], draft: str = "") -> NextPrompt:
    """What the overflow policy will do with the branch (`messages`: role, content, turn) when
    `draft` is sent after it (nothing: the branch as it stands); `count` gives one message's
    tokens (`TokenCounts.count`), as the chat counts them when it sends."""
    if draft:
        turn = max((t for _, _, t in messages), default=0) + 1
        messages = [*messages, ("user", draft, turn)]
    chats = [{"role": r, "content": c} for r, c, _ in messages]
    built = build_messages(system_prompt, instructions, chats, None,
                           instructions_placement="first_user" if placement == "first_user"
                           else "system")
    offset = len(built) - len(chats)
    try:
        fitted = fit_messages(built, n_ctx, max_tokens, policy,
                              lambda m: count(m.get("content", "")))
    except ContextOverflow as exc:
        return NextPrompt(sum(count(m["content"]) for m in built), (), str(exc))
    kept = {i - offset for i in fitted.kept if i >= offset}
    return NextPrompt(fitted.tokens, tuple(sorted({t for i, (_, _, t) in enumerate(messages)
                                                   if i not in kept})))


KIND_WORDS = {SYSTEM: "system prompt", INSTRUCTIONS: "custom instructions", HISTORY: "turn",
              NEW: "new message", SO_FAR: "reply so far", TEMPLATE: "template markup",
              DOCUMENT: "documents"}


def part_name(kind: str, turn: int = 0) -> str:
    """A part in words: "system prompt", "turn 2", "new message (turn 3)"."""
    if kind == HISTORY and turn:
        return f"turn {turn}"
    if kind in (NEW, SO_FAR) and turn:
        return f"{KIND_WORDS[kind]} (turn {turn})"
    return KIND_WORDS.get(kind, kind)


def part_rows(parts: Iterable[PromptPart]) -> list[tuple[str, int, int, bool]]:
    """Tokens per part, a row per (kind, turn) in prompt order: (kind, turn, tokens, exact)."""
    rows: dict[tuple[str, int], list[int]] = {}
    for part in parts:
        row = rows.setdefault((part.kind, part.turn), [0, 1])
        row[0] += part.tokens
        row[1] &= int(part.exact)
    return [(kind, turn, tokens, bool(exact)) for (kind, turn), (tokens, exact) in rows.items()]


def document_name(part: PromptPart) -> str:
    """A document part in words: "report.pdf, page 3 (BM25 4.12)", "notes.md (whole)"."""
    if part.doc is None:
        return "the excerpt block's own lines"
    file, page, score = part.doc
    where = f"{file}, page {page}" if page else file
    return f"{where} (BM25 {score:.2f})" if score is not None else f"{where} (whole)"


def document_lines(parts: Iterable[PromptPart]) -> list[str]:
    """One line per document excerpt sent, in prompt order, with where it sits and its tokens."""
    lines, at = [], 0
    for part in parts:
        if part.kind == DOCUMENT and part.doc is not None:
            lines.append(f"document {document_name(part)}: {part.tokens:,} tokens at token "
                         f"{at:,}{'' if part.exact else ' (≈)'}")
        at += part.tokens
    return lines


def describe(turn: TurnXray, previous: TurnXray | None = None) -> list[str]:
    """The turn in plain lines for a terminal: its parts, then the reuse and what changed."""
    if not turn.recorded:
        return [f"turn {turn.turn}: {NOT_RECORDED}"]
    lines = []
    if turn.has_parts:
        rows = ", ".join(f"{part_name(k, t)} {'' if exact else '≈'}{n:,}"
                         for k, t, n, exact in part_rows(turn.parts))
        lines.append(f"prompt {turn.prompt_tokens:,} tokens = {rows}")
    else:
        lines.append(f"prompt {turn.prompt_tokens:,} tokens (parts {NOT_RECORDED})")
    lines += document_lines(turn.parts)
    line = (f"reused {turn.cached_tokens:,} from the KV cache, recomputed "
            f"{turn.recomputed_tokens:,} in {turn.prompt_ms:,.1f} ms")
    if previous is not None and previous.has_parts and turn.has_parts:
        line += f"; new since turn {previous.turn}: {diff(previous, turn).new_tokens:,} tokens"
    if turn.dropped_turns:
        line += "; left out: turn " + ", ".join(str(t) for t in turn.dropped_turns)
    lines.append(line)
    return lines
