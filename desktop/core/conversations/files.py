"""Conversation files: export to JSON (every branch, re-importable) and Markdown (the branch being
shown, for reading), and import JSON back as a new conversation.

The JSON format, version 1::

    {"format": "openlid-conversation", "version": 1,
     "conversation": {"title", "created", "updated", "model_path", "system_prompt",
                      "custom_instructions", "template_id", "sampler": {...}, "mode",
                      "active_leaf_id"},
     "messages": [{"id", "parent_id", "role", "content", "created", "meta",
                   "steps": [StepRecord rows, as `openlid generate --jsonl` prints them]}, ...]}

"steps" (optional) holds what the engine recorded for a reply, so an imported conversation can
be inspected token by token like the original; an export without them is smaller. Ids are only
meaningful inside the file; import gives everything new ids. Runs on whichever
thread owns the `ConversationStore` passed in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from desktop.core.conversations.records import step_rows, steps_from_rows
from desktop.core.conversations.store import Conversation, ConversationStore, Message, StoreError
from desktop.core.sampling import SamplerSettings

EXPORT_FORMAT = "openlid-conversation"
EXPORT_VERSION = 1


def export_json(store: ConversationStore, conversation_id: int,
                include_steps: bool = True) -> dict[str, Any]:
    """The whole conversation (all branches) as a JSON-ready dict, with each reply's recorded
    steps unless `include_steps` is False."""
    c = store.get(conversation_id)

    def message(m: Message) -> dict[str, Any]:
        row: dict[str, Any] = {"id": m.id, "parent_id": m.parent_id, "role": m.role,
                               "content": m.content, "created": m.created, "meta": m.meta}
        if include_steps and m.role == "assistant" and store.has_steps(m.id):
            row["steps"] = step_rows(store.load_steps(m.id))
        return row

    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "conversation": {
            "title": c.title,
            "created": c.created,
            "updated": c.updated,
            "model_path": c.model_path,
            "system_prompt": c.system_prompt,
            "custom_instructions": c.custom_instructions,
            "template_id": c.template_id,
            "sampler": c.sampler.to_json(),
            "mode": c.mode,
            "active_leaf_id": c.active_leaf_id,
        },
        "messages": [message(m) for m in store.messages(conversation_id)],
    }


def import_json(store: ConversationStore, data: Any) -> Conversation:
    """Add an exported conversation to `store` as a new one; StoreError if the data is not a
    readable export (nothing is written then)."""
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise StoreError("not an Openlid conversation export")
    info, raw = data.get("conversation"), data.get("messages")
    if not isinstance(info, Mapping) or not isinstance(raw, list):
        raise StoreError("the export has no conversation or no message list")
    try:
        if int(data.get("version", 0)) > EXPORT_VERSION:
            raise StoreError("this export was written by a newer Openlid")
        now = time.time()
        leaf = info.get("active_leaf_id")
        conversation = Conversation(
            id=0,
            title=str(info.get("title") or "Imported conversation"),
            created=float(info.get("created", now)),
            updated=float(info.get("updated", now)),
            model_path=str(info.get("model_path", "")),
            system_prompt=str(info.get("system_prompt", "")),
            custom_instructions=str(info.get("custom_instructions", "")),
            template_id=str(info.get("template_id", "")),
            sampler=SamplerSettings.from_json(dict(info.get("sampler") or {})),
            mode=info.get("mode", "chat"),
            active_leaf_id=None if leaf is None else int(leaf),
        )
        messages = [
            Message(
                id=int(m["id"]),
                conversation_id=0,
                parent_id=None if m.get("parent_id") is None else int(m["parent_id"]),
                role=m["role"],
                content=str(m["content"]),
                created=float(m.get("created", now)),
                meta=m["meta"] if isinstance(m.get("meta"), dict) else None,
            )
            for m in raw
        ]
        steps = {int(m["id"]): steps_from_rows(m["steps"]) for m in raw if m.get("steps")}
        return store.insert_conversation(conversation, messages, steps)
    except StoreError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"the export is damaged: {exc}") from None


def export_markdown(store: ConversationStore, conversation_id: int) -> str:
    """The branch being shown, as Markdown: title, system prompt, then one section per message."""
    conversation = store.get(conversation_id)
    lines = [f"# {conversation.title}", ""]
    for label, text in (("System prompt", conversation.system_prompt),
                        ("Custom instructions", conversation.custom_instructions)):
        if text.strip():
            lines += [f"**{label}:**", "", text, ""]
    for message in store.active_path(conversation_id):
        lines += [f"## {message.role.capitalize()}", "", message.content, ""]
    return "\n".join(lines).rstrip() + "\n"
