"""What the conversation store keeps, as values and as stored bytes.

`Conversation` and `Message` are the frozen values `ConversationStore` hands out; this module
also holds their row encodings (JSON text columns for the sampler settings and a message's
generation `meta`) and the encoding of a reply's `StepRecord`s (zlib-compressed JSON of the
top-N per stage the records carry, in `message_steps`). Keeping the encodings here lets the
store stay about SQL and transactions.

Pure (no I/O); runs on whatever thread owns the store.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from desktop.core.conversations.schema import StoreError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord, step_from_json

__all__ = ["MODES", "ROLES", "Conversation", "Message", "Mode", "Role", "conversation_from_row",
           "decode_steps", "dumps", "encode_steps", "loads_dict", "message_from_row"]

Role = Literal["system", "user", "assistant"]
Mode = Literal["chat", "completion"]
ROLES = ("system", "user", "assistant")
MODES = ("chat", "completion")


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

    def to_chat(self) -> dict[str, str]:
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
    """A `conversations` row as a Conversation."""
    sampler = loads_dict(row["sampler_json"]) or {}
    return Conversation(
        id=row["id"], title=row["title"], created=row["created"], updated=row["updated"],
        model_path=row["model_path"], system_prompt=row["system_prompt"],
        custom_instructions=row["custom_instructions"], template_id=row["template_id"],
        sampler=SamplerSettings.from_json(sampler), mode=row["mode"],
        active_leaf_id=row["active_leaf_id"],
    )


def message_from_row(row: sqlite3.Row) -> Message:
    """A `messages` row as a Message."""
    return Message(id=row["id"], conversation_id=row["conversation_id"],
                   parent_id=row["parent_id"], role=row["role"], content=row["content"],
                   created=row["created"], meta=loads_dict(row["meta_json"]))


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
    text = "\n".join(dumps(row) for row in step_rows(records))
    return zlib.compress(text.encode("utf-8"), 6)


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
