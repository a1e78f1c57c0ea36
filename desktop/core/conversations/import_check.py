"""An exported conversation checked field by field before anything is stored.

`check_export` takes the parsed JSON of a conversation file (the format in
`conversations.files`) and returns a `ConversationImport`: the values to store, the messages
parents-first, each reply's steps already compressed. A file with anything wrong raises ONE
`ImportRefused` listing every problem with the path of the bad field
(`messages[3].steps[0]: expected an object, got 5`), so the person can see all of it at once and
nothing half-checked is ever written. What is checked: JSON types, finite timestamps between 1970
and 3000, roles and modes, ids unique and parents that exist and form a tree (no loops), the
shape of every step row, sampler settings, the generation metadata the chat reads, and string
lengths, each message's images and the attached documents.

Pure and linear in the size of the file; in the app it runs on a job thread, so the database
thread only does the short insert. The limits and the one-field checks are `import_fields`; the
step rows of each reply are checked by `import_steps`; images and documents (with their own
limits: sizes, counts) by `import_attachments`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from desktop.core.conversations.images import StoredImage
from desktop.core.conversations.import_attachments import AttachmentChecker
from desktop.core.conversations.import_fields import (
    MAX_LISTED,
    MAX_MESSAGES,
    MAX_NAME,
    MAX_SHOWN,
    MAX_STEPS,
    MAX_TEXT,
    MAX_TITLE,
    is_int,
    is_number,
    shown,
)
from desktop.core.conversations.import_steps import StepChecker
from desktop.core.conversations.records import (
    MODES,
    ROLES,
    Conversation,
    EncodedSteps,
    Message,
    Mode,
    Role,
    tree_order,
)
from desktop.core.conversations.schema import StoreError
from desktop.core.documents.extract import Document
from desktop.core.sampling import SamplerSettings, SettingsError

EXPORT_FORMAT = "openlid-conversation"
EXPORT_VERSION = 1
# MAX_LISTED, MAX_SHOWN and MAX_TEXT are this module's words too: ImportRefused's limits.
__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "MAX_LISTED", "MAX_SHOWN", "MAX_TEXT",
           "ConversationImport", "ImportRefused", "check_export", "shown"]

# Generation metadata the chat reads back (footer, continue): each key's expected kind.
_META_KINDS = {"model_name": "text", "model_path": "text", "template_id": "text",
               "finish_reason": "text", "completion_tokens": "count", "prompt_tokens": "count",
               "tokens_per_second": "amount", "first_token_ms": "amount", "seed": "integer",
               "sampler": "object"}
_MISSING = object()


class ImportRefused(StoreError):
    """A conversation file with problems; nothing was stored. `problems` lists the first
    MAX_LISTED as "path: what is wrong", `total` counts them all."""

    def __init__(self, problems: Sequence[str], total: int) -> None:
        self.problems = tuple(problems)
        self.total = total
        lines = [f"  {p}" for p in self.problems[:MAX_SHOWN]]
        if total > MAX_SHOWN:
            lines.append(f"  … and {total - MAX_SHOWN:,} more")
        super().__init__("\n".join([self.summary + ":", *lines]))

    @property
    def summary(self) -> str:
        many = "problem" if self.total == 1 else "problems"
        return f"the export is damaged ({self.total:,} {many}); nothing was imported"


@dataclass(frozen=True)
class ConversationImport:
    """A checked file, ready for `ConversationStore.insert_conversation`."""

    conversation: Conversation
    messages: tuple[Message, ...]  # parents before children; ids only meaningful in the file
    steps: Mapping[int, EncodedSteps]  # a message id of `messages` -> its reply's steps
    # a message id of `messages` -> its images, in order
    images: Mapping[int, tuple[StoredImage, ...]] = dataclasses.field(default_factory=dict)
    # the attached documents, each with the time it was attached (None: unknown)
    documents: tuple[tuple[Document, float | None], ...] = ()


class _Checker(StepChecker, AttachmentChecker):
    """Every field of an export; the step rows are `StepChecker`'s, images and documents
    `AttachmentChecker`'s."""

    def __init__(self) -> None:
        super().__init__()
        self.message_images: dict[int, tuple[StoredImage, ...]] = {}

    # --- the conversation ---

    def conversation(self, info: Any, now: float) -> Conversation:
        if not isinstance(info, dict):
            self.expected("conversation", "an object", info)
            info = {}
        path = "conversation"
        return Conversation(
            id=0,
            title=self.text(info, "title", path, MAX_TITLE) or "Imported conversation",
            created=self.time(info, "created", path, now),
            updated=self.time(info, "updated", path, now),
            model_path=self.text(info, "model_path", path, MAX_NAME),
            system_prompt=self.text(info, "system_prompt", path, MAX_TEXT),
            custom_instructions=self.text(info, "custom_instructions", path, MAX_TEXT),
            template_id=self.text(info, "template_id", path, MAX_NAME),
            sampler=self.sampler(info.get("sampler"), f"{path}.sampler"),
            mode=_as_mode(self.mode(info.get("mode"), f"{path}.mode")),
            active_leaf_id=self.ident(info, "active_leaf_id", path),
        )

    def mode(self, value: Any, path: str) -> Any:
        if value is not None and value not in MODES:
            self.expected(path, f"one of {', '.join(MODES)}", value)
        return value

    def sampler(self, raw: Any, path: str) -> SamplerSettings:
        if raw is None:
            return SamplerSettings()
        if not isinstance(raw, dict):
            self.expected(path, "an object", raw)
            return SamplerSettings()
        values: dict[str, Any] = {}
        fine = True
        for f in dataclasses.fields(SamplerSettings):
            value = raw.get(f.name, _MISSING)
            if value is _MISSING:
                continue
            kind = str(f.type)  # annotations are text here (postponed evaluation)
            if kind == "bool":
                ok, what = type(value) is bool, "true or false"
            elif kind == "int":
                ok, what = is_int(value), "a whole number"
            elif kind == "float":
                ok, what = is_number(value), "a finite number"
            elif kind.startswith("tuple"):  # stop strings, stage order, DRY breakers
                ok = (isinstance(value, list) and len(value) <= 256
                      and all(type(s) is str and len(s) <= MAX_NAME for s in value))
                what = "a list of texts"
            else:  # a kind this check does not know yet: `validated` still judges it
                ok, what = True, ""
            if ok:
                values[f.name] = value
            else:
                self.expected(f"{path}.{f.name}", what, value)
                fine = False
        if not fine:
            return SamplerSettings()
        try:  # from_json: lists to tuples, an older stage order completed
            return SamplerSettings.from_json(values).validated()
        except (SettingsError, TypeError, ValueError) as exc:
            self.bad(path, str(exc))
            return SamplerSettings()

    # --- messages ---

    def message(self, m: Any, path: str, now: float
                ) -> tuple[Message, list[dict[str, Any]] | None] | None:
        if not isinstance(m, dict):
            self.expected(path, "an object", m)
            return None
        before = self.total
        message_id = self.ident(m, "id", path, required=True)
        parent_id = self.ident(m, "parent_id", path)
        role = m.get("role")
        if role not in ROLES:
            self.expected(f"{path}.role", f"one of {', '.join(ROLES)}", role)
        content = self.text(m, "content", path, MAX_TEXT, required=True)
        created = self.time(m, "created", path, now)
        meta = self.meta(m.get("meta"), f"{path}.meta")
        steps: list[dict[str, Any]] | None = None
        raw_steps = m.get("steps")
        if raw_steps is not None:
            if not isinstance(raw_steps, list):
                self.expected(f"{path}.steps", "a list", raw_steps)
            elif raw_steps and role != "assistant":
                self.bad(f"{path}.steps", "only replies (role assistant) have steps")
            elif len(raw_steps) > MAX_STEPS:
                self.bad(f"{path}.steps", f"{len(raw_steps):,} steps, more than {MAX_STEPS:,}")
            elif raw_steps:
                steps = self.steps(raw_steps, f"{path}.steps")
        images = self.images(m.get("images"), f"{path}.images")
        if self.total != before or message_id is None:
            return None
        if images:
            self.message_images[message_id] = images
        return Message(id=message_id, conversation_id=0, parent_id=parent_id,
                       role=_as_role(role), content=content, created=created, meta=meta), steps

    def meta(self, raw: Any, path: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.expected(path, "an object", raw)
            return None
        for key, kind in _META_KINDS.items():
            value = raw.get(key)
            if value is None:
                continue
            where = f"{path}.{key}"
            if kind == "text" and not (type(value) is str and len(value) <= MAX_NAME):
                self.expected(where, f"text of at most {MAX_NAME:,} characters", value)
            elif kind == "count" and not (is_int(value) and value >= 0):
                self.expected(where, "a count (a whole number ≥ 0)", value)
            elif kind == "integer" and not is_int(value):
                self.expected(where, "a whole number", value)
            elif kind == "amount" and not (is_number(value) and value >= 0):
                self.expected(where, "a finite number ≥ 0", value)
            elif kind == "object" and not isinstance(value, dict):
                self.expected(where, "an object", value)
        return raw


def _as_mode(value: Any) -> Mode:
    return "completion" if value == "completion" else "chat"


def _as_role(value: Any) -> Role:
    return value if value in ("system", "assistant", "tool") else "user"


def check_export(data: Any, now: float) -> ConversationImport:
    """The checked contents of an exported conversation; ImportRefused listing every problem,
    or StoreError when `data` is not an Openlid conversation export at all. `now` stands in for
    a missing timestamp."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise StoreError("not an Openlid conversation export")
    version = data.get("version", EXPORT_VERSION)
    if not is_int(version):
        raise ImportRefused([f"version: expected a whole number, got {shown(version)}"], 1)
    if version > EXPORT_VERSION:
        raise StoreError(f"this export was written by a newer Openlid (format version "
                         f"{version}; this version reads up to {EXPORT_VERSION})")
    check = _Checker()
    conversation = check.conversation(data.get("conversation"), now)
    raw = data.get("messages")
    if not isinstance(raw, list):
        check.expected("messages", "a list", raw)
        raw = []
    elif len(raw) > MAX_MESSAGES:
        check.bad("messages", f"{len(raw):,} messages, more than {MAX_MESSAGES:,}")
        raw = []
    checked = [check.message(m, f"messages[{i}]", now) for i, m in enumerate(raw)]
    documents = check.documents(data.get("attachments"), "attachments")
    place: dict[int, int] = {}  # message id -> the index in `raw` of its first message
    links: list[tuple[int, int | None]] = []  # (index in `raw`, parent id), ids unique
    for i, m in enumerate(raw):
        message_id = m.get("id") if isinstance(m, dict) else None
        if not is_int(message_id):
            continue
        if message_id in place:
            check.bad(f"messages[{i}].id",
                      f"{message_id} is also the id of messages[{place[message_id]}]")
            continue
        place[message_id] = i
        parent = m.get("parent_id")
        links.append((i, parent if is_int(parent) else None))  # a bad one is reported already
    # The tree is checked even when other fields are bad, so one pass shows every problem.
    tree = tree_order([raw[i]["id"] for i, _ in links], [parent for _, parent in links])
    for k in tree.orphans:
        i, parent = links[k]
        check.bad(f"messages[{i}].parent_id", f"no message has the id {parent}")
    for k in tree.looped:
        i, parent = links[k]
        check.bad(f"messages[{i}].parent_id",
                  f"{parent} makes a loop (the message would be its own ancestor)")
    leaf = conversation.active_leaf_id
    if leaf is not None and is_int(leaf) and leaf not in place:
        check.bad("conversation.active_leaf_id", f"no message has the id {leaf}")
    if check.total:
        raise ImportRefused(check.listed, check.total)
    # No problems: every entry of `raw` became a message, so `links` indexes `checked` too.
    messages = [ok[0] for ok in checked if ok is not None]
    ordered = tuple(messages[links[k][0]] for k in tree.order)
    steps = {ok[0].id: EncodedSteps.of_rows(ok[1]) for ok in checked if ok is not None and ok[1]}
    return ConversationImport(conversation, ordered, steps, dict(check.message_images), documents)
