"""What the conversation store keeps, as values and as stored bytes.

`Conversation` and `Message` are the frozen values `ConversationStore` hands out; this module
also holds their row encodings (JSON text columns for the sampler settings and a message's
generation `meta`) and the encoding of a reply's `StepRecord`s (zlib-compressed JSON of the
top-N per stage the records carry, in `message_steps`). Keeping the encodings here lets the
store stay about SQL and transactions. `tree_order` puts a message tree parents-first in linear
time (import uses it), and the time bounds say which timestamps are believable.

Pure (no I/O); runs on whatever thread owns the store.
"""

from __future__ import annotations

import json
import math
import sqlite3
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from desktop.core.conversations.schema import StoreError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord, step_from_json

__all__ = ["EARLIEST_TIME", "LATEST_TIME", "MODES", "ROLES", "Conversation", "EncodedSteps",
           "Message", "Mode", "Role", "TreeOrder", "believable_time", "conversation_from_row",
           "decode_steps", "dumps", "encode_step_rows", "encode_steps", "loads_dict",
           "message_from_row", "tree_order"]

Role = Literal["system", "user", "assistant", "tool"]
Mode = Literal["chat", "completion"]
ROLES = ("system", "user", "assistant", "tool")  # "tool": a tool's result
MODES = ("chat", "completion")
# Timestamps outside these (1970-01-01 and 3000-01-01 UTC) are damage, not dates: the C library
# cannot format some of them (OverflowError), and SQLite stores NaN as NULL.
EARLIEST_TIME = 0.0
LATEST_TIME = 32_503_680_000.0


def believable_time(value: object) -> bool:
    """A finite number of seconds since the epoch between 1970 and the year 3000."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and EARLIEST_TIME <= value < LATEST_TIME)


def _seconds(value: object) -> float:
    # A stored time as a float; NaN for what is not a number (a list shows "unknown date").
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


@dataclass(frozen=True)
class Conversation:
    """One conversation's settings and the leaf of the branch being shown."""

    id: int
    title: str
    created: float  # seconds since the epoch
    updated: float
    model_path: str = ""
    system_prompt: str = ""
    custom_instructions: str = ""
    template_id: str = ""
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    mode: Mode = "chat"
    active_leaf_id: int | None = None


@dataclass(frozen=True)
class Message:
    """One message of a conversation's tree."""

    id: int
    conversation_id: int
    parent_id: int | None  # None: a first message (a conversation may have several roots)
    role: Role
    content: str
    created: float
    meta: dict[str, Any] | None = None  # generation metadata, for assistant messages

    def to_chat(self) -> dict[str, Any]:
        """The message as a template takes it: a reply that called tools carries its calls
        (`meta["tool_calls"]`, the text outside them in `meta["tool_content"]`), a tool result
        the id and name of the call it answers."""
        meta = self.meta or {}
        if self.role == "assistant" and meta.get("tool_calls"):
            return {"role": "assistant", "content": str(meta.get("tool_content", "")),
                    "tool_calls": list(meta["tool_calls"])}
        if self.role == "tool":
            return {"role": "tool", "content": self.content,
                    "tool_call_id": str(meta.get("tool_call_id", "")),
                    "name": str(meta.get("name", ""))}
        return {"role": self.role, "content": self.content}


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what every JSON column holds)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads_dict(text: str | None) -> dict[str, Any] | None:
    """A JSON column read back as a dict; None when empty, unreadable or not an object."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    """A `conversations` row as a Conversation.

    Robust to values an older import stored unchecked (a text or absurd time, sampler settings of
    the wrong type): one damaged row must not make listing every conversation fail."""
    try:
        sampler = SamplerSettings.from_json(loads_dict(row["sampler_json"]) or {}).validated()
    except (TypeError, ValueError):  # SettingsError is a ValueError
        sampler = SamplerSettings()
    return Conversation(
        id=row["id"], title=str(row["title"]), created=_seconds(row["created"]),
        updated=_seconds(row["updated"]), model_path=row["model_path"],
        system_prompt=row["system_prompt"], custom_instructions=row["custom_instructions"],
        template_id=row["template_id"], sampler=sampler, mode=row["mode"],
        active_leaf_id=row["active_leaf_id"],
    )


def message_from_row(row: sqlite3.Row) -> Message:
    """A `messages` row as a Message."""
    return Message(id=row["id"], conversation_id=row["conversation_id"],
                   parent_id=row["parent_id"], role=row["role"], content=row["content"],
                   created=_seconds(row["created"]), meta=loads_dict(row["meta_json"]))


def step_rows(records: Sequence[StepRecord]) -> list[dict[str, Any]]:
    """StepRecords as JSON-ready rows (n_vocab and the replayed flag included)."""
    return [{**r.to_json(), "n_vocab": r.n_vocab, **({"replayed": True} if r.replayed else {})}
            for r in records]


def steps_from_rows(rows: Any) -> list[StepRecord]:
    """The StepRecords of `step_rows`; KeyError/TypeError/ValueError when damaged."""
    if not isinstance(rows, list):
        raise TypeError("steps are not a list")
    return [step_from_json(r) for r in rows]


def encode_steps(records: Sequence[StepRecord]) -> bytes:
    """A reply's StepRecords as one compressed blob: one JSON row per line.

    Row by row, not one `json.dumps` of the whole list: the C encoder holds the GIL for the
    whole call (~55 ms for a 200-token reply, 2.3 MB of JSON), and this runs on the store's
    thread while the GUI thread waits for the GIL; per row, the GIL changes hands between rows.
    zlib releases the GIL while it compresses."""
    return encode_step_rows(step_rows(records))


def encode_step_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """`encode_steps` of rows already in `step_rows` form (a checked import's)."""
    text = "\n".join(dumps(row) for row in rows)
    return zlib.compress(text.encode("utf-8"), 6)


@dataclass(frozen=True)
class EncodedSteps:
    """A reply's StepRecords as `message_steps` stores them (`count` rows in `blob`), encoded
    ahead of time so the compression runs outside the write transaction."""

    count: int
    blob: bytes

    @classmethod
    def of(cls, records: Sequence[StepRecord]) -> EncodedSteps:
        return cls(len(records), encode_steps(records))

    @classmethod
    def of_rows(cls, rows: Sequence[Mapping[str, Any]]) -> EncodedSteps:
        return cls(len(rows), encode_step_rows(rows))


def decode_steps(blob: bytes, message_id: int) -> list[StepRecord]:
    """The StepRecords of `encode_steps` (also the single-array form written before rows were
    one per line); StoreError (naming the message) if unreadable."""
    try:
        text = zlib.decompress(blob).decode("utf-8")
        if text.startswith("["):
            return steps_from_rows(json.loads(text))
        return [step_from_json(json.loads(line)) for line in text.splitlines() if line]
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"the steps of message {message_id} cannot be read: {exc}") from exc


@dataclass(frozen=True)
class TreeOrder:
    """`tree_order`'s answer, as indices into the sequence it was given."""

    order: tuple[int, ...]  # parents before their children; only messages a root leads to
    orphans: tuple[int, ...]  # their parent id is not among the ids
    looped: tuple[int, ...]  # part of a loop of parents (a message its own ancestor)

    @property
    def complete(self) -> bool:
        return not self.orphans and not self.looped


def tree_order(ids: Sequence[int], parents: Sequence[int | None]) -> TreeOrder:
    """Order a message tree parents-first, in time linear in its size (ids must be unique).

    Messages below a loop or an orphan are in none of the three: the loop or the missing parent
    is the damage to report, and mending it would reach them."""
    index = {message_id: i for i, message_id in enumerate(ids)}
    children: list[list[int]] = [[] for _ in ids]
    roots: list[int] = []
    orphans: list[int] = []
    for i, parent in enumerate(parents):
        if parent is None:
            roots.append(i)
        elif parent in index:
            children[index[parent]].append(i)
        else:
            orphans.append(i)
    order: list[int] = []
    stack = roots[::-1]
    while stack:  # depth first, without recursion: a chain may be 100,000 messages long
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(children[i]))
    looped: list[int] = []
    if len(order) + len(orphans) < len(ids):
        # What no root reaches climbs, parent by parent, into a loop or to an orphan.
        seen = [False] * len(ids)
        for i in (*order, *orphans):
            seen[i] = True
        for start in range(len(ids)):
            walk: dict[int, int] = {}  # message index -> its place in this walk
            i = start
            while not seen[i] and i not in walk:
                walk[i] = len(walk)
                parent = parents[i]
                if parent is None or parent not in index:
                    break
                i = index[parent]
            if i in walk and not seen[i]:
                looped.extend(list(walk)[walk[i]:])
            for j in walk:
                seen[j] = True
    return TreeOrder(tuple(order), tuple(orphans), tuple(sorted(looped)))
