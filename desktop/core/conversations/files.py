"""Conversation files: export to JSON (every branch, re-importable) and Markdown (the branch being
shown, for reading), and import JSON back as a new conversation.

The JSON format, version 1::

    {"format": "openlid-conversation", "version": 1,
     "conversation": {"title", "created", "updated", "model_path", "system_prompt",
                      "custom_instructions", "template_id", "sampler": {...}, "mode",
                      "active_leaf_id"},
     "messages": [{"id", "parent_id", "role", "content", "created", "meta",
                   "steps": [StepRecord rows, as `openlid generate --jsonl` prints them],
                   "images": [{"name", "data": the bytes in base64}]}, ...],
     "attachments": [{"name", "kind", "size", "added", "whole", "chunks",
                      "pages": [{"page", "text"}]}, ...]}

"steps" (optional) holds what the engine recorded for a reply, so an imported conversation can
be inspected token by token like the original; an export without them is smaller. "images"
(optional) are a message's attached images; "attachments" (optional) the conversation's
documents with their extracted text: import stores them again and chunks them anew ("whole" and
"chunks" are only informative). Ids are only meaningful inside the file; import gives
everything new ids.

Import is two steps: `read_export_file` / `check_export` (any thread: the app runs them on a job
thread) read and check every field and compress the steps, then
`ConversationStore.insert_conversation` writes it all in one short transaction. Anything wrong
refuses the whole file with one error listing each bad field (`import_check.ImportRefused`).
Export and `import_json` run on whichever thread owns the `ConversationStore` passed in.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from desktop.core.conversations.images import ImageStore
from desktop.core.conversations.import_check import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ConversationImport,
    ImportRefused,
    check_export,
)
from desktop.core.conversations.records import step_rows, tree_order
from desktop.core.conversations.store import Conversation, ConversationStore, Message, StoreError
from desktop.core.documents.store import DocumentStore
from desktop.core.generation import sampled_with, spans_from_meta

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "MAX_FILE_BYTES", "ConversationImport",
           "ImportRefused", "export_json", "export_markdown", "import_json", "insert_import",
           "read_export_file"]

MAX_FILE_BYTES = 1024**3  # an export with every reply's steps is ~11 KB a token


def export_json(store: ConversationStore, conversation_id: int,
                include_steps: bool = True) -> dict[str, Any]:
    """The whole conversation (all branches) as a JSON-ready dict, with each reply's recorded
    steps unless `include_steps` is False."""
    c = store.get(conversation_id)
    messages = store.messages(conversation_id)
    with ImageStore(store.path) as image_store:
        images = image_store.load_many(m.id for m in messages)

    def message(m: Message) -> dict[str, Any]:
        row: dict[str, Any] = {"id": m.id, "parent_id": m.parent_id, "role": m.role,
                               "content": m.content, "created": m.created, "meta": m.meta}
        if include_steps and m.role == "assistant" and store.has_steps(m.id):
            row["steps"] = step_rows(store.load_steps(m.id))
        if m.id in images:
            row["images"] = [{"name": im.name, "data": base64.b64encode(im.data).decode("ascii")}
                             for im in images[m.id]]
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
        "messages": [message(m) for m in messages],
        "attachments": _attachments(store, conversation_id),
    }


def _attachments(store: ConversationStore, conversation_id: int) -> list[dict[str, Any]]:
    """The conversation's attached documents with their text (`core.documents.store`)."""
    with DocumentStore(store.path) as docs:
        return docs.export_rows(conversation_id)


def read_export_file(path: Path) -> ConversationImport:
    """Read and check a conversation file; StoreError (ImportRefused: every problem listed)
    when it cannot be imported. Reads no more than MAX_FILE_BYTES."""
    name = Path(path).name
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise StoreError(f"{name} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise StoreError(f"{name} is larger than {MAX_FILE_BYTES // 1024**2:,} MiB; export it "
                         "without the steps of each reply")
    try:
        data = json.loads(raw.decode("utf-8-sig"))  # a BOM is fine
    except UnicodeDecodeError:
        raise StoreError(f"{name} is not UTF-8 text") from None
    except ValueError as exc:
        raise StoreError(f"{name} is not JSON ({exc})") from None
    except RecursionError:
        raise StoreError(f"{name} is not a conversation: its JSON is nested too deeply") from None
    return check_export(data, time.time())


def insert_import(store: ConversationStore, checked: ConversationImport) -> Conversation:
    """Store a checked file as a new conversation with new ids, its messages' images and its
    documents (chunked again, so they are searched like any attached file). The conversation
    goes in one transaction; should its images or documents fail to go in, it is deleted again
    and the error raised, so an import is never left half done."""
    conversation = store.insert_conversation(checked.conversation, checked.messages,
                                             checked.steps)
    if not checked.images and not checked.documents:
        return conversation
    try:
        new_ids = _new_ids(store, conversation.id, checked)
        with ImageStore(store.path) as images:
            for old_id, stored in checked.images.items():
                images.save(new_ids[old_id], stored)
        with DocumentStore(store.path) as docs:
            for document, added in checked.documents:
                docs.attach(conversation.id, document, added=added)
    except BaseException:
        store.delete(conversation.id)
        raise
    return conversation


def _new_ids(store: ConversationStore, conversation_id: int,
             checked: ConversationImport) -> dict[int, int]:
    """The ids `insert_conversation` gave the file's messages: increasing in its tree order."""
    ordered = [checked.messages[i] for i in tree_order([m.id for m in checked.messages],
                                                       [m.parent_id for m in checked.messages]
                                                       ).order]
    stored = sorted(store.messages(conversation_id), key=lambda m: m.id)
    if [(m.role, m.content) for m in ordered] != [(m.role, m.content) for m in stored]:
        raise StoreError("the imported messages were not stored as expected; nothing of this "
                         "import was kept")
    return {old.id: new.id for old, new in zip(ordered, stored, strict=True)}


def import_json(store: ConversationStore, data: Any) -> Conversation:
    """Add an exported conversation to `store` as a new one; StoreError if the data is not a
    readable export, ImportRefused listing every bad field (nothing is written then)."""
    return insert_import(store, check_export(data, time.time()))


def _reply_facts(meta: dict[str, Any] | None) -> list[str]:
    """What a stored reply says it was made with: its model, template and sampling settings
    (each part's, when it was made in parts), as Markdown lines."""
    if not meta:
        return []
    lines = []
    model = str(meta.get("model_name") or meta.get("model_path") or "")
    if model:
        lines.append(f"*Model: {model}*  ")
    if meta.get("template_id"):
        lines.append(f"*Template: {meta['template_id']}*  ")
    spans = spans_from_meta(meta)
    if len(spans) == 1:
        lines.append(f"*Sampled with: {sampled_with(spans[0].settings)}*  ")
    else:
        lines += [f"*From token {span.start + 1}: {sampled_with(span.settings)}*  "
                  for span in spans]
    if meta.get("finish_reason"):
        lines.append(f"*Finished: {meta['finish_reason']}*  ")
    return lines


def export_markdown(store: ConversationStore, conversation_id: int) -> str:
    """The branch being shown, as Markdown: title; what the conversation was set up with (model,
    system prompt, custom instructions, template, sampling settings); then one section per
    message, each reply with the model and the settings it was really made with (its stored
    Generation meta: these can differ from the conversation's, when they were changed
    between replies)."""
    conversation = store.get(conversation_id)
    lines = [f"# {conversation.title}", ""]
    setup = []
    if conversation.model_path:
        setup.append(f"- **Model file:** `{conversation.model_path}`")
    if conversation.template_id:
        setup.append(f"- **Template:** {conversation.template_id}")
    setup.append(f"- **Sampling settings:** {sampled_with(conversation.sampler)}")
    for doc in _attachments(store, conversation_id):
        setup.append(f"- **Attached:** {doc['name']} ({doc['size']:,} bytes, "
                     + ("sent whole)" if doc["whole"] else f"{doc['chunks']} chunks searched)"))
    lines += [*setup, ""]
    for label, text in (("System prompt", conversation.system_prompt),
                        ("Custom instructions", conversation.custom_instructions)):
        lines += [f"**{label}:**", "", text if text.strip() else "*(none)*", ""]
    shown = store.active_path(conversation_id)
    with ImageStore(store.path) as image_store:
        images = image_store.load_many(m.id for m in shown)
    for message in shown:
        lines += [f"## {message.role.capitalize()}", ""]
        if message.role == "assistant":
            facts = _reply_facts(message.meta)
            if facts:
                lines += [*facts, ""]
        if message.id in images:  # named only: the JSON export carries the bytes
            lines += [*(f"*Image: {im.name} ({len(im.data):,} bytes)*  "
                        for im in images[message.id]), ""]
        lines += [message.content, ""]
    return "\n".join(lines).rstrip() + "\n"
