"""The X-ray record: made when a reply is stored, read back when the X-ray is shown.

`make_record` turns the labels of a rendered prompt (`xray_labels`) and the engine's tokens per
piece into the JSON kept in the reply's meta under `"xray"`; message text is stored as a
reference into the message it came from. `read_record` and `branch_xray` read records back as
`TurnXray`s, `diff` compares two turns, and `next_prompt` says what the overflow policy would
send now. Runs on the database thread (records, reading) and any thread (values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.core.conversations.overflow import ContextOverflow, fit_messages
from desktop.core.conversations.xray_labels import (
    CATEGORIES,
    DOCUMENT,
    HISTORY,
    NEW,
    SO_FAR,
    TEMPLATE,
    DocRef,
    PieceLabel,
    Pieces,
    turn_numbers,
)
from desktop.core.templates.prompt import build_messages

RECORD_VERSION = 1


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



def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _doc_ref(value: Any) -> DocRef | None:
    """A stored document reference [file, page, score]; None when missing or malformed."""
    if not isinstance(value, list) or len(value) not in (3, 4):
        return None
    score = value[2]
    ref = (str(value[0]), _int(value[1]),
           float(score) if isinstance(score, (int, float)) else None)
    return (*ref, str(value[3])) if len(value) == 4 else ref


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
